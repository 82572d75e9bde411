"""README's accuracy and speed tables (and the docs' results overview), generated from the committed results/*.json.

    .venv/bin/python docs/gen/tables.py          # rewrite the generated blocks in README.md
    .venv/bin/python docs/gen/tables.py --check  # exit 1 if a block of README.md is stale

Accuracy: one row per headline run (the demo, SST-2 at two budgets, the small GLUE tasks, MPNet-base), each
from the JSON its study's collector wrote: the majority-class floor, the dense teacher, the sparse student and
its gain retention GR = (student - floor) / (teacher - floor). Speed: one row per interleaved
`sparsebert bench` run with the engine (results/bench_*_engine*.json) and batch size: the engine's median latency
(fp32 and int8 paths) beside OpenVINO int8 and the fastest dense path of the same run, and their ratios
(> 1 = the engine is faster). The CPU of each run is named from the run's own environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = {"demo": "demo_block", "accuracy": "accuracy_block", "upstream": "upstream_block", "speed": "speed_block"}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}-table:start (docs/gen/tables.py) -->", f"<!-- {name}-table:end -->"


def _load(results: Path, name: str) -> dict:
    return json.loads((results / f"{name}.json").read_text(encoding="utf-8"))


def _cpu(env: dict) -> str:
    flags = set(env.get("cpu_flags", []))
    isa = "AVX-512 VNNI" if "avx512_vnni" in flags else ("AVX-512" if "avx512f" in flags else "AVX2")
    return f"{env.get('cpu_model', '?')} ({isa}), {env.get('cpu_count', '?')} cores"


def _link(results: Path, name: str, prefix: str) -> str:
    target = f"{name}.md" if (results / f"{name}.md").is_file() else f"{name}.json"
    return f"[{name}]({prefix}{target})"


def accuracy_rows(results: Path, prefix: str = "results/") -> list[str]:
    """One Markdown row per headline run; every number from results/*.json."""
    out = []

    def row(model: str, task: str, sparsity: float, steps: int, floor: float, teacher: float, student: float,
            gr: float, source: str) -> None:
        out.append(f"| {model} | {task} | {100 * sparsity:g} % | {steps:,} | {floor:.1f} | {teacher:.1f} | "
                   f"**{student:.1f}** | {100 * gr:.0f} % | {_link(results, source, prefix)} |")

    demo = _load(results, "demo_ablation")
    d = next(r for r in demo["rows"] if r["variant"] == "defaults")
    row("MiniLM-L6", "demo: Rotten Tomatoes snippets (accuracy)", d["sparsity"], d["steps"], 100 * demo["floor"],
        100 * demo["teacher"], 100 * d["mean"], d["gain_retention"], "demo_ablation")
    glue = {(r["task"], r["variant"]): r for r in _load(results, "glue_ablation")["rows"]}
    names = {"sst2": "SST-2 (accuracy)", "mrpc": "MRPC (F1)", "stsb": "STS-B (Pearson)", "cola": "CoLA (MCC)"}
    g = glue[("sst2", "default")]
    row("MiniLM-L6", names["sst2"], g["sparsity"], g["steps"], g["floor"], g["teacher"], g["mean"],
        g["gain_retention"], "glue_ablation")
    sst2 = _load(results, "sst2_knowledge")
    best = max(sst2["means"]["sparsebert"], key=lambda m: m["steps"])
    teacher = [r["teacher"] for r in sst2["rows"] if r["variant"] == "sparsebert" and r["steps"] == best["steps"]
               and abs(r["sparsity"] - 0.95) < 1e-9]
    row("MiniLM-L6", names["sst2"] + f", mean of {len(best['seeds'])} seeds", 0.95, best["steps"], sst2["floor"],
        sum(teacher) / len(teacher), best["accuracy"], best["gain_retention"], "sst2_knowledge")
    for task, variant in (("mrpc", "default"), ("stsb", "default"), ("stsb", "s90"), ("cola", "default")):
        g = glue[(task, variant)]
        row("MiniLM-L6", names[task], g["sparsity"], g["steps"], g["floor"], g["teacher"], g["mean"],
            g["gain_retention"], "glue_ablation")
    s4 = _load(results, "s4_pareto")
    m = next(r for r in s4["rows"] if r["key"] == "mpnet-s95" and r["path"] == "dense-fp32")
    row("MPNet-base", names["sst2"], 0.95, m["train_steps"], s4["majority_floor"], m["teacher_accuracy"],
        m["fp32_accuracy"], m["gain_retention"], "s4_pareto")
    return out


def accuracy_block(results: Path, prefix: str = "results/") -> str:
    head = ["| model | task (dev metric) | sparsity | steps | floor | dense teacher | sparse student | gain retention "
            "| source |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    return "\n".join([*head, *accuracy_rows(results, prefix)])


def upstream_block(results: Path, prefix: str = "results/") -> str:
    """Upstream pruning (results/upstream_minilm.json, MiniLM-L6 and MPNet-base): the zero-shot STS-B Spearman of
    each upstream-pruned encoder beside one-shot magnitude pruning; then the study's summary per model x sparsity:
    per task (SST-2, MRPC, STS-B, CoLA) the best variant's dev score and GR (against the better dense teacher of
    the same model, cross- or bi-encoder), and the mean GR when all four tasks have a row."""
    d = _load(results, "upstream_minilm")
    labels = {"minilm": "MiniLM-L6", "mpnet": "MPNet-base"}
    one = {m: {round(r["sparsity"], 4): r for r in o["rows"]} for m, o in (d.get("oneshot") or {}).items()}
    # the default recipe's row per model and sparsity (the first, fewest steps, when several); the variants of
    # the recipe (criterion, scope, text, steps, ...) are summed up as a range in its cell
    ups, variants, seen = [], [], set()
    for r in d["upstream"]:
        key = (r.get("model", "minilm"), r["sparsity"])
        if r["recipe_label"] == "" and key not in seen:
            seen.add(key)
            ups.append(r)
        else:
            variants.append(r)
    model = [r.get("model", "minilm") for r in ups]
    dense = {}
    for m, r in zip(model, ups):
        dense.setdefault(m, r["dense_spearman"])
    budgets = sorted({f"{r['steps']:,} x {r['batch_size']} steps" for r in ups})
    mixed = len(budgets) > 1  # then each column names its steps
    md = ["| zero-shot STS-B Spearman (retention), no task training; dense: "
          + ", ".join(f"{labels[m]} {v:.3f}" for m, v in dense.items()) + " | "
          + " | ".join(f"{labels[m]} {100 * r['sparsity']:g} %" + (f" ({r['steps']:,} steps)" if mixed else "")
                       for m, r in zip(model, ups)) + " |",
          "|---|" + "---:|" * len(ups)]

    def oneshot(m: str, r: dict) -> str:
        o = one.get(m, {}).get(round(r["sparsity"], 4))
        return "–" if o is None else f"{o['spearman']:.3f} ({100 * o['retention']:.0f} %)"

    if any(oneshot(m, r) != "–" for m, r in zip(model, ups)):
        md.append("| one-shot magnitude pruning | " + " | ".join(oneshot(m, r) for m, r in zip(model, ups)) + " |")

    def upstream(r: dict) -> str:
        """The default recipe's score, and the range of the recipe's variants at the same model and sparsity."""
        key = (r.get("model", "minilm"), r["sparsity"])
        vs = [v["spearman"] for v in variants if (v.get("model", "minilm"), v["sparsity"]) == key]
        extra = ""
        if vs:
            span = "–".join(dict.fromkeys(f"{v:.3f}" for v in (min(vs), max(vs))))
            extra = f"; {len(vs)} variant{'s' * (len(vs) > 1)}: {span}"
        return f"**{r['spearman']:.3f}** ({100 * r['retention']:.0f} %{extra})"

    batches = sorted({r["batch_size"] for r in ups})
    md.append("| upstream-pruned (" + (", ".join(f"batch {b}" for b in batches) if mixed else "".join(budgets))
              + ("; variants of the recipe: docs/guides/upstream.md" if variants else "")
              + ") | " + " | ".join(upstream(r) for r in ups) + " |")
    rows = [s for s in d.get("summary", []) if s["tasks"]]
    if rows:
        names = {"sst2": "SST-2 acc", "mrpc": "MRPC F1", "stsb": "STS-B Pearson", "cola": "CoLA MCC"}
        tasks = list(names)

        def cell(t: dict | None, twin: dict | None) -> str:
            """The best sparse row of a task, and its small dense twin's score where measured."""
            vs = "" if twin is None else f"; twin {twin['mean']:.1f}"
            if t is None:
                return "–" + (f" (twin {twin['mean']:.1f})" if twin else "")
            head = " bi" if t["head"] == "bi-encoder" else ""
            return (f"{t['mean']:.1f} ({100 * t['gain_retention']:.0f} %, {t['kind']}{head}"
                    f"{' †' if t.get('cited') else ''}{vs})")

        md += ["", f"| best sparse variant per task, dev (GR; twin = the small dense model of equal non-zeros; "
               f"{_link(results, 'upstream_minilm', prefix)}; † = cited from glue_knowledge / sst2_knowledge / "
               "s4_pareto) | " + " | ".join(names[t] for t in tasks)
               + " | mean GR |", "|---|" + "---|" * len(tasks) + "---:|"]
        twins = {(s["model"], s["sparsity"]): s["tasks"] for s in rows if s.get("group") == "small-dense"}
        for s in rows:
            if s.get("group", "sparse") != "sparse":
                continue
            mean = "–" if s["mean_gr"] is None else f"**{100 * s['mean_gr']:.0f} %**"
            twin = twins.get((s["model"], s["sparsity"]), {})
            md.append(f"| {labels[s['model']]} {100 * s['sparsity']:g} % | "
                      + " | ".join(cell(s["tasks"].get(t), twin.get(t)) for t in tasks) + f" | {mean} |")
    else:
        md += ["", f"Source: {_link(results, 'upstream_minilm', prefix)}."]
    return "\n".join(md)


def speed_rows(results: Path, prefix: str = "results/") -> list[str]:
    """One Markdown row per (engine bench file, batch size)."""
    out = []
    for path in sorted(results.glob("bench_*_engine*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        env, st = res["environment"], res["settings"]
        title = res.get("title", path.stem).replace("sparsebert bench: ", "")
        for batch, paths in res["results"].items():
            by = {r["path"]: r["median_ms"] for r in paths if r.get("median_ms")}
            ref = res["summary"][batch].get("reference_best_dense") or {}
            fastest = min((by[p] for p in ("engine", "engine-int8") if p in by), default=None)

            def ms(p: str) -> str:
                return f"{by[p]:.1f}" if p in by else "–"

            def ratio(base: float | None) -> str:
                return f"**{base / fastest:.2f}x**" if base and fastest else "–"

            best = f"{ref['path']} {ref['median_ms']:.1f}" if ref else "–"
            out.append(f"| {title} | {batch} x {st['seq']} | {ms('engine')} | {ms('engine-int8')} | "
                       f"{ms('openvino-int8')} | {best} | {ratio(by.get('openvino-int8'))} | "
                       f"{ratio(ref.get('median_ms'))} | {_cpu(env)}, {st['threads']} threads | "
                       f"{_link(results, path.stem, prefix)} |")
    return out


def speed_block(results: Path, prefix: str = "results/") -> str:
    head = ["| model | batch x seq | engine ms | engine int8 ms | OpenVINO int8 ms | best dense ms | fastest engine "
            "path vs OpenVINO int8 | vs best dense | CPU | source |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    return "\n".join([*head, *speed_rows(results, prefix)])


def demo_block(results: Path, prefix: str = "results/") -> str:
    """What ``make demo`` printed on the AVX2 EPYC (results/demo_speed_avx2.json): accuracy, then speed."""
    d = _load(results, "demo_speed_avx2")
    a = d["accuracy"]
    md = ["| model | dev accuracy | gain retention |", "|---|---:|---:|",
          f"| majority class | {a['majority_floor']:.3f} | 0 % |", f"| dense teacher | {a['teacher']:.3f} | 100 % |",
          f"| 95 %-sparse student | {a['sparse']:.3f} | {100 * a['gain_retention']:.0f} % |", ""]
    batches = list(d["batches"])
    md += ["| sequences/s (" + f"{d['seq']} tokens, {d['threads']} threads, {d['cpu']} {d['cpu_isa']}" + ") | "
           + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---:|" * len(batches)]
    for label in d["batches"][batches[0]]["seq_per_s"]:
        md.append(f"| {label} | " + " | ".join(f"{d['batches'][b]['seq_per_s'][label]:.1f}" for b in batches) + " |")
    md.append("| engine / fastest dense | " + " | ".join(f"**{d['batches'][b]['engine_vs_fastest_dense']}x**"
                                                   for b in batches) + " |")
    md += ["", f"Source: {_link(results, 'demo_speed_avx2', prefix)}."]
    return "\n".join(md)


def render(text: str, results: Path, where: str) -> str:
    """``text`` with every generated block replaced by what the results make of it now.

    Raises:
        ValueError: a block's markers are missing, naming the block and ``where``.
    """
    for name, fn in BLOCKS.items():
        start, end = markers(name)
        if start not in text or end not in text:
            raise ValueError(f"{where}: no {name}-table markers ({start} ... {end})")
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + start + "\n" + globals()[fn](results) + "\n" + end + after
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated block of README differs")
    args = ap.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        new = render(text, args.results, str(args.readme))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.check:
        if new != text:
            print(f"{args.readme}: a generated table is stale; run docs/gen/tables.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        tmp = args.readme.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
