"""Collect finished cells into ``results.json``, a Markdown report and PNG plots.

Metrics are the task's main dev metric (GLUE conventions: MRPC F1, RTE/SST-2 accuracy, CoLA
MCC, STS-B Pearson), in percent, mean ± sample standard deviation over seeds. The paper's own
BERT-base numbers (Xu et al., NAACL 2021, Table 1: dense → 95 %-sparse SparseBERT) are shown
beside ours as *retention* = sparse metric / dense-teacher metric.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from sparsebert.data.tasks import get_task
from sparsebert.experiment.grid import Cell
from sparsebert.experiment.s4 import best_path, load_s4, s4_models, sparse_int8_row
from sparsebert.experiment.spec import ExperimentSpec
from sparsebert.io import read_json, write_json_atomic, write_text_atomic

# Xu et al. (NAACL 2021), BERT-base teacher vs SparseBERT at 5 % of the weights (dev sets, percent).
PAPER_BERT_BASE = {
    "qnli": {"metric": "accuracy", "dense": 91.8, "sparse": 90.6},
    "mrpc": {"metric": "f1", "dense": 88.6, "sparse": 88.5},
    "rte": {"metric": "accuracy", "dense": 69.3, "sparse": 69.1},
    "cola": {"metric": "mcc", "dense": 56.3, "sparse": 52.1},
}
METRIC_NAMES = {"f1": "F1", "accuracy": "acc", "mcc": "MCC", "pearson": "Pearson", "spearman": "Spearman"}


def run_row(run: Path, task_name: str) -> dict | None:
    """A finished ``prune``/``finetune`` run directory as a flat record (None without ``summary.json``).

    ``value`` and ``metrics`` are the task's dev metrics in percent; ``encoder_nnz`` / ``encoder_numel``
    count the prunable encoder matrices; ``seed`` is the recipe's.
    """
    path = run / "summary.json"
    if not path.is_file():
        return None
    s = read_json(path)
    task = get_task(task_name)
    metrics = s["metrics"][task.eval_splits[0]]
    targets = s["sparsity"]["targets"]
    return {
        "task": task_name, "seed": s.get("recipe", {}).get("seed"),
        "metric": task.main_metric, "value": 100 * metrics[task.main_metric],
        "metrics": {k: 100 * v for k, v in metrics.items()},
        "achieved_sparsity": targets["sparsity"], "encoder_nnz": targets["nnz"], "encoder_numel": targets["numel"],
        "layers": [m["sparsity"] for m in s["sparsity"]["matrices"]],
        "layer_names": [m["name"] for m in s["sparsity"]["matrices"]],
        "small_dense": s.get("small_dense"), "steps": s["steps"], "train_examples": s["train_examples"],
        "train_seconds": s["train_seconds"], "wall_seconds": s["wall_seconds"],
    }


def cell_row(out: Path, cell: Cell) -> dict | None:
    """One finished grid cell (``out/cells/<cell.id>/``) as :func:`run_row`'s record plus the cell's keys."""
    row = run_row(out / "cells" / cell.id, cell.task)
    if row is None:
        return None
    return {"cell": cell.id, "task": cell.task, "variant": cell.variant, "sparsity": cell.sparsity,
            "seed": cell.seed, **{k: v for k, v in row.items() if k not in ("task", "seed")}}


def majority_baseline(task_name: str, data_dir: str | None) -> float | None:
    """Main dev metric (percent) of always predicting the train split's most frequent class.

    The floor a collapsed student lands on (MRPC F1 81.2, RTE accuracy 52.7, CoLA MCC 0). None
    for regression (a constant has no correlation), without local data, or when it cannot be read.
    """
    if data_dir is None:
        return None
    from sparsebert.data.glue import DataError, load_split
    from sparsebert.metrics import compute_metrics

    task = get_task(task_name)
    if task.is_regression:
        return None
    try:
        label = Counter(e.label for e in load_split(task, task.train_split, data_dir)).most_common(1)[0][0]
        gold = [e.label for e in load_split(task, task.eval_splits[0], data_dir)]
    except (DataError, OSError):  # the task's cells failed on the same data; the report still renders
        return None
    return 100 * compute_metrics(task, [label] * len(gold), gold)[task.main_metric]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean, sample std (0 for one seed) and n per (task, variant, sparsity)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["task"], r["variant"], r["sparsity"])].append(r)
    out = []
    for (task, variant, s), rs in sorted(groups.items()):
        vals = [r["value"] for r in rs]
        out.append({"task": task, "variant": variant, "sparsity": s, "metric": rs[0]["metric"],
                    "mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "n": len(vals), "values": vals, "encoder_nnz": rs[0]["encoder_nnz"]})
    return out


def _find(agg: list[dict], task: str, variant: str, sparsity: float | None = None) -> dict | None:
    for a in agg:
        if a["task"] == task and a["variant"] == variant and (sparsity is None or abs(a["sparsity"] - sparsity) < 1e-9):
            return a
    return None


def gain_retention(sparse: float | None, dense: float | None, floor: float | None) -> float | None:
    """(sparse - floor) / (dense - floor): the share of the teacher's gain over the majority-class floor
    that the sparse model keeps (0 = collapsed to the floor). Raw retention sparse / dense hides a
    collapse where the floor is high (MRPC F1: the floor is 93 % of the teacher)."""
    if sparse is None or dense is None or floor is None or dense == floor:
        return None
    return (sparse - floor) / (dense - floor)


def retention(agg: list[dict], spec: ExperimentSpec, majority: dict[str, float | None] | None = None) -> list[dict]:
    """Per task: dense-teacher and sparsebert@s means, their ratio and the gain retention over the
    majority-class floor, with the paper's beside them (the paper's gain retention uses the same dev
    set's floor)."""
    majority = majority or {}

    def paper_row(task, paper):
        if not paper:
            return None
        return {**paper, "retention": paper["sparse"] / paper["dense"],
                "gain_retention": gain_retention(paper["sparse"], paper["dense"], majority.get(task))}

    rows = []
    for task in spec.tasks:
        dense, sparse = _find(agg, task, "dense-teacher"), _find(agg, task, "sparsebert", spec.sparsity)
        d, sp = (dense["mean"] if dense else None), (sparse["mean"] if sparse else None)
        rows.append({
            "task": task, "metric": get_task(task).main_metric, "dense": d, "sparse": sp, "floor": majority.get(task),
            "retention": sp / d if d and sp is not None else None,
            "gain_retention": gain_retention(sp, d, majority.get(task)),
            "paper": paper_row(task, PAPER_BERT_BASE.get(task)),
        })
    for task, paper in PAPER_BERT_BASE.items():
        if task not in spec.tasks:
            rows.append({"task": task, "metric": paper["metric"], "dense": None, "sparse": None, "floor": None,
                         "retention": None, "gain_retention": None, "paper": paper_row(task, paper)})
    return rows


def s4_table(spec: ExperimentSpec, out: Path, rows: list[dict]) -> list[dict]:
    """Per task and compared model: metric, encoder non-zeros, best path and throughput per batch size,
    and (sparse model) the sparse int8 runtime's throughput beside it (``sparse_int8_*``, None if not
    timed; its accuracy is not evaluated, so it is never the best path)."""
    by_cell = {r["cell"]: r for r in rows}
    table = []
    for task in spec.tasks:
        bench = load_s4(out, task)
        if bench is None:
            continue
        for label, cell in s4_models(spec, task).items():
            entry = {"task": task, "model": label, "cell": cell.id, "metric": by_cell.get(cell.id, {}).get("value"),
                     "encoder_nnz": by_cell.get(cell.id, {}).get("encoder_nnz"), "throughput": {}}
            for batch, results in bench[label]["bench"]["results"].items():
                best = best_path(results)
                fp32 = next((r for r in results if r["path"] == "dense-fp32"), None)
                int8 = sparse_int8_row(results)
                entry["throughput"][batch] = {
                    "best_path": best["path"] if best else None,
                    "seq_per_s": best["seq_per_s"] if best else None,
                    "median_ms": best["median_ms"] if best else None,
                    "fp32_seq_per_s": fp32["seq_per_s"] if fp32 else None,
                    "sparse_int8_seq_per_s": int8["seq_per_s"] if int8 else None,
                    "sparse_int8_median_ms": int8["median_ms"] if int8 else None,
                }
            table.append(entry)
    return table


def _pm(a: dict | None) -> str:
    if a is None:
        return "–"
    return f"{a['mean']:.1f} ± {a['std']:.1f} (n={a['n']})" if a["n"] > 1 else f"{a['mean']:.1f}"


def _label(task: str) -> str:
    t = get_task(task)
    return f"{t.name.upper()} {METRIC_NAMES.get(t.main_metric, t.main_metric)}"


def render_markdown(spec: ExperimentSpec, results: dict, command: str) -> str:
    """The Markdown report: main table (with the majority-class floor), sweep, paper retention, S4
    comparison, unfinished cells."""
    agg, s = results["aggregate"], spec.sparsity
    variants = [v for v in spec.variants if v != "dense-teacher"]
    lines = [f"# Experiment `{spec.name}`", "", f"Command: `{command}`", "",
             f"Model `{spec.model}`; every cell: {', '.join(f'{k}={v}' for k, v in spec.train.items()) or 'recipe defaults'}"
             f"; seeds {spec.seeds} at s = {spec.seed_sparsities}, seed {spec.seeds[0]} elsewhere; "
             f"per-task settings: {', '.join(f'{t}: {o}' for t, o in spec.tasks.items() if o) or 'none'}.", "",
             f"## Dev metric at s = {s} (percent; mean ± std over seeds)", "",
             "| task | majority class | dense-teacher | " + " | ".join(variants) + " |",
             "|---|---|---|" + "---|" * len(variants)]
    for task in spec.tasks:
        cells = [_pm(_find(agg, task, v, s)) for v in variants]
        floor = results["majority"].get(task)
        lines.append(f"| {_label(task)} | {'–' if floor is None else f'{floor:.1f}'} | "
                     f"{_pm(_find(agg, task, 'dense-teacher'))} | " + " | ".join(cells) + " |")
    sweep = [v for v in spec.sweep_variants if v in spec.variants]
    if sweep:
        lines += ["", "## Sparsity sweep", "", "| task | variant | " + " | ".join(f"s = {x}" for x in spec.sparsities) + " |",
                  "|---|---|" + "---|" * len(spec.sparsities)]
        for task in spec.tasks:
            for v in sweep:
                lines.append(f"| {_label(task)} | {v} | " + " | ".join(_pm(_find(agg, task, v, x)) for x in spec.sparsities) + " |")
    lines += ["", f"## Retention at s = {s}: ours (`{spec.model}`) beside the paper (BERT-base, Xu et al. 2021)", "",
              "Gain retention = (sparse − floor) / (dense − floor), the floor being the majority class of the dev set; "
              "raw retention = sparse / dense.", "",
              "| task | metric | floor | ours dense → sparse | ours raw / gain retention | paper dense → sparse | "
              "paper raw / gain retention |",
              "|---|---|---|---|---|---|---|"]

    def pct(x):
        return f"{100 * x:.1f} %" if x is not None else "–"

    for r in results["retention"]:
        ours = f"{r['dense']:.1f} → {r['sparse']:.1f}" if r["dense"] is not None and r["sparse"] is not None else "not run"
        p = r["paper"]
        floor = f"{r['floor']:.1f}" if r.get("floor") is not None else "–"
        lines.append(f"| {r['task'].upper()} | {METRIC_NAMES.get(r['metric'], r['metric'])} | {floor} | {ours} | "
                     f"{pct(r['retention'])} / {pct(r.get('gain_retention'))} | "
                     + (f"{p['dense']} → {p['sparse']} | {pct(p['retention'])} / {pct(p.get('gain_retention'))} |"
                        if p else "– | – |"))
    if results["s4"]:
        batches = list(results["s4"][0]["throughput"])
        lines += ["", "## S4 comparison: sparse large vs small dense vs dense teacher", "",
                  "Throughput in sequences/s of each model's fastest path (sparse runtime or best dense: torch "
                  "fp32 / bf16 / dynamic int8, ONNX Runtime optimised fp32 / int8, OpenVINO fp32 / int8, where "
                  "installed), measured after training on the same machine; the metric is that of the timed fp32 "
                  f"model (seed {spec.seeds[0]}). *int8 sparse*: the sparse int8 runtime, beside the main figure "
                  "because its accuracy is not evaluated here.", "",
                  "| task | model | encoder non-zeros | metric | " + " | ".join(f"batch {b}: seq/s (path)" for b in batches) + " |",
                  "|---|---|---|---|" + "---|" * len(batches)]
        for e in results["s4"]:
            tp = " | ".join((f"{t['seq_per_s']:.1f} ({t['best_path']})" if t["seq_per_s"] else "–")
                            + (f"; int8 sparse {t['sparse_int8_seq_per_s']:.1f}" if t.get("sparse_int8_seq_per_s") else "")
                            for t in e["throughput"].values())
            metric = f"{e['metric']:.1f}" if e["metric"] is not None else "–"
            lines.append(f"| {e['task'].upper()} | {e['model']} | {e['encoder_nnz']:,} | {metric} | {tp} |")
    if results["missing"]:
        lines += ["", f"## Cells not finished ({len(results['missing'])})", ""] + [f"- `{c}`" for c in results["missing"]]
    lines += ["", "Plots: `plots/metric_vs_sparsity.png`, `plots/layer_sparsity.png`.", ""]
    return "\n".join(lines)


def plot_results(spec: ExperimentSpec, results: dict, plots: Path) -> list[Path]:
    """``metric_vs_sparsity.png`` (one panel per task) and ``layer_sparsity.png`` (final models at s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    agg, tasks = results["aggregate"], list(spec.tasks)
    ncols = min(3, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.8 * nrows), squeeze=False)
    markers = dict(zip(spec.variants, "os^Dvx"))
    for ax, task in zip(axes.flat, tasks):
        teacher = _find(agg, task, "dense-teacher")
        if teacher:
            ax.axhline(teacher["mean"], color="k", ls="--", lw=1, label="dense-teacher")
        if results["majority"].get(task) is not None:
            ax.axhline(results["majority"][task], color="gray", ls=":", lw=1, label="majority class")
        for v in spec.variants:
            pts = sorted((a for a in agg if a["task"] == task and a["variant"] == v and v != "dense-teacher"),
                         key=lambda a: a["sparsity"])
            if pts:
                ax.errorbar([a["sparsity"] for a in pts], [a["mean"] for a in pts], yerr=[a["std"] for a in pts],
                            marker=markers.get(v, "o"), capsize=3, label=v, ls="-" if len(pts) > 1 else "none")
        ax.set_title(_label(task))
        ax.set_xlabel("sparsity of the target matrices (small-dense: same non-zeros)")
        ax.set_ylabel("dev metric (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    legend: dict[str, object] = {}
    for ax in axes.flat:  # every variant once, whichever panels have it
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(4, len(legend)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    p1 = plots / "metric_vs_sparsity.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(len(tasks), 1, figsize=(10, 2.6 * len(tasks)), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for r in results["rows"]:
            if r["task"] == task and r["seed"] == spec.seeds[0] and abs(r["sparsity"] - spec.sparsity) < 1e-9 \
                    and r["variant"] not in ("dense-teacher", "small-dense"):
                ax.plot(range(len(r["layers"])), r["layers"], marker=".", label=r["variant"])
                ax.set_xticks(range(0, len(r["layers"]), 6), [n.rsplit(".", 1)[0] for n in r["layer_names"][::6]],
                              fontsize=7)
        ax.set_title(f"{_label(task)}: sparsity of each target matrix (Q, K, V, attn-out, FFN-in, FFN-out per layer)",
                     fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = plots / "layer_sparsity.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def write_results(spec: ExperimentSpec, out: Path, cells: list[Cell], spec_path: Path | None = None,
                  command: str | None = None) -> dict:
    """Collect the finished cells of ``cells`` and write ``results.json``, ``results.md`` and ``plots/``.

    Returns:
        The results dict (``rows``, ``aggregate``, ``retention``, ``s4``, ``missing``).
    """
    rows, missing = [], []
    for c in cells:
        r = cell_row(out, c)
        (rows.append(r) if r else missing.append(c.id))
    results = {"spec": spec.model_dump(mode="json"), "rows": rows, "missing": missing}
    results["aggregate"] = aggregate(rows)
    results["majority"] = {t: majority_baseline(t, spec.data_dir) for t in spec.tasks}
    results["retention"] = retention(results["aggregate"], spec, results["majority"])
    results["s4"] = s4_table(spec, out, rows)
    command = command or f"sparsebert experiment {spec_path or 'SPEC.yaml'} --out {out}"
    results["command"] = command
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "results.md", render_markdown(spec, results, command))
    if rows:
        results["plots"] = [str(p) for p in plot_results(spec, results, out / "plots")]
    return results
