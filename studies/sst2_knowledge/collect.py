"""Knowledge study, sparsity and budget scaling on the full SST-2 (MiniLM-L6): tables, fit and plot.

Reads every grid ``runs/experiments/sst2-steps<N>/results.json`` (``studies/sst2_knowledge/run.sh N
[VARIANT ...]``) and the 3-epoch runs ``runs/sst2/sparse95-default`` and ``sparse90-default``
(``[SPARSITY=0.90 TAG=90] studies/glue_ablation/run_sst2.sh default``: the grid's ``sparsebert`` cell with
6,315 steps instead of ``max_steps``). Runs are outside git and a new machine may not have them: the rows
of the committed ``results/sst2_knowledge.json`` are kept as they are (``"archived": true``) unless this
machine's runs hold the same cell (variant, steps, seed, sparsity), so a budget run on another machine adds
to the study instead of replacing it. A cell run again replaces its archived row, which is listed with its
teacher under ``superseded`` (JSON and Markdown), never dropped silently.
Every row keeps the score of the teacher it was distilled from (each grid's own ``dense-teacher`` cell)
and its GR is against that teacher. Writes

- ``results/sst2_knowledge.{json,md}``: per budget, every variant's dev accuracy, non-zeros, gain
  retention GR = (student − floor) / (teacher − floor) (floor = majority class of the dev set) and
  wall time at 95 %; a sparsity table (90 / 95 / 97 %) per budget that has other sparsities; per
  variant with >= 3 budgets at 95 % a least-squares fit GR = a + b·log10(steps) and its
  extrapolation to the SparseBERT paper's budget (≈ 85,000 steps, DerronXu/SparseBERT's MRPC run);
- ``results/sst2_budget_scaling.png``: GR against steps (log axis), one line per variant, the fits
  dotted, and the dense teacher's own dev curve (its GR against its fine-tuning steps) for scale.

Usage: .venv/bin/python studies/sst2_knowledge/collect.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from sparsebert.experiment.collect import read_committed, read_summary, write_outputs
from sparsebert.io import atomic_path

ROOT = Path(__file__).resolve().parents[2]
GRIDS = ROOT / "runs" / "experiments"
LONG_RUNS = {0.95: ROOT / "runs" / "sst2" / "sparse95-default", 0.9: ROOT / "runs" / "sst2" / "sparse90-default"}
TEACHER = ROOT / "runs" / "sst2" / "teacher"
PAPER_STEPS = 85_000
ORDER = ["sparsebert", "finetuned-student-kd", "finetune-then-prune", "prune-from-pretrained-no-kd", "small-dense"]
START = {"sparsebert": "pre-trained", "finetuned-student-kd": "fine-tuned", "finetune-then-prune": "fine-tuned",
         "prune-from-pretrained-no-kd": "pre-trained", "small-dense": "pre-trained, cut to equal non-zeros"}
LOSS = {"sparsebert": "teacher logits + labels (default recipe)", "finetuned-student-kd": "teacher logits + labels",
        "finetune-then-prune": "labels only", "prune-from-pretrained-no-kd": "labels only",
        "small-dense": "teacher logits + labels"}


def gain_retention(value: float, teacher: float, floor: float) -> float:
    """(student − floor) / (teacher − floor); all in percent points."""
    return (value - floor) / (teacher - floor)


ARCHIVE = ROOT / "results" / "sst2_knowledge.json"


def cell(r: dict) -> tuple:
    """The cell a row measures: (variant, steps, seed, sparsity)."""
    return r["variant"], r["steps"], r["seed"], round(r["sparsity"], 4)


def archived_rows() -> tuple[list[dict], list[dict], float | None]:
    """Rows of the committed results (this machine's runs/ is outside git), the rows they superseded earlier,
    and the floor they were measured against. A row written before rows carried their teacher gets the file's
    top-level ``teacher``. Raises SystemExit naming the file when it is not the collector's JSON."""
    committed = read_committed(ARCHIVE, "studies/sst2_knowledge/collect.py", lambda d: (
        [{**r, "teacher": r.get("teacher", d.get("teacher")), "archived": True} for r in d["rows"]],
        list(d.get("superseded", [])), d["floor"]))
    if committed is None:
        return [], [], None
    kept, superseded, floor = committed
    if any(r["teacher"] is None for r in kept):
        sys.exit(f"{ARCHIVE}: an archived row has no teacher score")
    return kept, superseded, floor


def load_rows() -> tuple[list[dict], list[dict], float]:
    """Every student result (variant, steps, seed, sparsity, accuracy %, non-zeros, wall s, source, its teacher's
    accuracy %), the archived rows that this machine's runs of the same cell replace (with those of earlier
    collections), and the majority-class floor (%). Raises SystemExit when there is no result at all, or when
    a grid's floor differs from the archived rows' (another dev set)."""
    archived, superseded, floor = archived_rows()
    rows = []
    teachers = {}
    for res in sorted(GRIDS.glob("sst2-steps*/results.json")):
        d = json.loads(res.read_text())
        if floor is not None and abs(d["majority"]["sst2"] - floor) > 1e-9:
            sys.exit(f"{res}: majority floor {d['majority']['sst2']} differs from the others' {floor}")
        floor = d["majority"]["sst2"]
        teacher = next((r["value"] for r in d["rows"] if r["variant"] == "dense-teacher"), None)
        if teacher is None:
            sys.exit(f"{res}: no dense-teacher row")
        teachers[res.parent.name] = teacher
        for r in d["rows"]:
            if r["variant"] == "dense-teacher":
                continue
            rows.append({"variant": r["variant"], "steps": r["steps"], "seed": r.get("seed", 42),
                         "sparsity": r["sparsity"], "accuracy": r["value"],
                         "encoder_nnz": r["encoder_nnz"], "wall_s": r.get("wall_seconds"),
                         "source": str(res.relative_to(ROOT)), "teacher": teacher})
    for sparsity, run in LONG_RUNS.items():
        s = read_summary(run)
        if s is not None:
            rows.append({"variant": "sparsebert", "steps": s["steps"], "seed": 42, "sparsity": sparsity,
                         "accuracy": 100 * s["metrics"]["dev"]["accuracy"],
                         "encoder_nnz": sum(m["nnz"] for m in s["sparsity"]["matrices"]),
                         "wall_s": s.get("wall_seconds"), "source": str(run.relative_to(ROOT)) + " (3 epochs)",
                         "teacher": teachers.get("sst2-steps2000", teachers.get("sst2-steps6315"))})
    local = {cell(r): r for r in rows}
    for r in archived:
        now = local.get(cell(r))
        if now is None:
            rows.append(r)
        elif (r["source"], round(r["accuracy"], 6)) != (now["source"], round(now["accuracy"], 6)):
            superseded.append({k: v for k, v in r.items() if k != "archived"})  # a rerun of the cell
    if not rows or floor is None:
        sys.exit("no runs/experiments/sst2-steps*/results.json and no archived rows: run "
                 "studies/sst2_knowledge/run.sh first")
    if any(r["teacher"] is None for r in rows):
        sys.exit("runs/sst2/sparse*-default found without the sst2-steps2000 or -6315 grid that holds its teacher")
    return rows, superseded, floor


def fit_log(steps: list[int], gr: list[float]) -> dict | None:
    """Least squares GR = a + b·log10(steps) over >= 3 budgets; None with fewer."""
    if len(set(steps)) < 3:
        return None
    x = np.log10(np.asarray(steps, float))
    b, a = np.polyfit(x, np.asarray(gr, float), 1)
    pred = a + b * x
    resid = float(np.sqrt(np.mean((np.asarray(gr) - pred) ** 2)))
    at = a + b * math.log10(PAPER_STEPS)
    reach = 10 ** ((1 - a) / b) if b > 0 else None
    return {"a": float(a), "b_per_decade": float(b), "rms_residual": resid,
            f"gr_at_{PAPER_STEPS}": float(at), "steps_to_gr_1": reach}


def teacher_curve(floor: float) -> list[tuple[int, float]]:
    """The teacher's own dev accuracy against its fine-tuning steps, as GR against its best (kept) score;
    the committed curve when runs/sst2/teacher is not on this machine."""
    if not (TEACHER / "summary.json").is_file():
        return [tuple(c) for c in json.loads(ARCHIVE.read_text())["teacher_curve"]]
    s = read_summary(TEACHER)
    best = 100 * max(h["score"] for h in s["eval_history"])
    return [(h["step"], gain_retention(100 * h["score"], best, floor)) for h in s["eval_history"]]


def mean_by_budget(rows: list[dict], variant: str) -> list[dict]:
    """Per budget of ``variant``: steps, mean accuracy and GR over its seeds, and the per-seed rows."""
    out = []
    for steps in sorted({r["steps"] for r in rows if r["variant"] == variant}):
        here = sorted((r for r in rows if r["variant"] == variant and r["steps"] == steps), key=lambda r: r["seed"])
        out.append({"steps": steps, "accuracy": float(np.mean([r["accuracy"] for r in here])),
                    "gain_retention": float(np.mean([r["gain_retention"] for r in here])),
                    "gr_min": min(r["gain_retention"] for r in here), "gr_max": max(r["gain_retention"] for r in here),
                    "seeds": [r["seed"] for r in here]})
    return out


def sparsity_table(rows: list[dict], order: list[str]) -> list[str]:
    """Markdown: per budget with more than one sparsity, dev accuracy (GR) of each variant at each sparsity
    (mean over seeds where there are several), with its encoder non-zeros."""
    md = []
    for steps in sorted({r["steps"] for r in rows}):
        here = [r for r in rows if r["steps"] == steps]
        levels = sorted({r["sparsity"] for r in here})
        if len(levels) < 2:
            continue
        md += [f"## Sparsity at {steps:,} steps", "", "dev accuracy (GR), encoder non-zeros; mean over seeds where "
               "a cell has several (95 %).", "", "| variant | " + " | ".join(f"{100 * x:g} %" for x in levels) + " |",
               "|---|" + "---:|" * len(levels)]
        for v in order:
            cells = []
            for x in levels:
                rs = [r for r in here if r["variant"] == v and abs(r["sparsity"] - x) < 1e-9]
                if not rs:
                    cells.append("–")
                    continue
                acc, gr = np.mean([r["accuracy"] for r in rs]), np.mean([r["gain_retention"] for r in rs])
                cells.append(f"{acc:.1f} ({100 * gr:.0f} %), {rs[0]['encoder_nnz'] / 1e6:.2f} M")
            if any(c != "–" for c in cells):
                md.append(f"| {v} | " + " | ".join(cells) + " |")
        md.append("")
    return md


def main() -> int:
    all_rows, superseded, floor = load_rows()
    for r in all_rows:
        r["gain_retention"] = gain_retention(r["accuracy"], r["teacher"], floor)
    teacher_by_steps = {}
    for r in all_rows:
        teacher_by_steps.setdefault(r["steps"], set()).add(round(r["teacher"], 6))
    teachers = sorted({t for ts in teacher_by_steps.values() for t in ts})
    rows = [r for r in all_rows if abs(r["sparsity"] - 0.95) < 1e-9]  # the budget study is at 95 %
    means = {v: mean_by_budget(rows, v) for v in ORDER}
    fits = {}
    for v in ORDER:  # one point per budget: the mean over seeds
        pts = [(m["steps"], m["gain_retention"]) for m in means[v]]
        f = fit_log([p[0] for p in pts], [p[1] for p in pts])
        if f:
            fits[v] = f
    budgets = sorted({r["steps"] for r in rows})
    md = ["# SST-2, MiniLM-L6: knowledge study (95 %, and 90 / 97 % at 2,000 steps) and budget scaling", "",
          "Paired (exact McNemar) tests of the 20,000-step students: [paired_sst2_steps20000.md]"
          "(paired_sst2_steps20000.md) (seed 42), [paired_sst2_steps20000_seed43.md](paired_sst2_steps20000_seed43.md) "
          "(seed 43, and every pair across the two seeds).", "",
          "Dense teacher (runs/sst2/teacher, 1 epoch = 2,105 steps, the same recipe each time): "
          + " / ".join(f"**{t:.1f}**" for t in teachers) + " dev accuracy (each budget's section names its own; every "
          "GR is against the teacher the student was distilled from); majority-class "
          f"floor **{floor:.1f}**; GR = (student − floor) / (teacher − floor). Every student: full SST-2 train set "
          "(67,349 sentences), max length 64, batch 32, length-grouped batches, one thread, prune's default "
          "recipe (cubic GMP per matrix to the target sparsity between 10 % and 60 % of the steps; logit distillation "
          "T = 2, "
          "hardness 0.5) — the label-only variants with the distillation weights at 0 and label weight 1. Seed 42 "
          "unless a row says otherwise (`SEEDS=\"42 43\"`: the teacher stays seed 42's); with several seeds the "
          "scaling table and the fit use the mean per budget."
          + (f" {sum(r.get('archived', False) for r in all_rows)} rows come from the committed JSON: their run "
             "folders are not on the machine that last ran this collector (`\"archived\": true`)."
             if any(r.get("archived") for r in all_rows) else ""), "",
          "Commands: `bash studies/sst2_knowledge/run.sh STEPS [VARIANT ...]` (grid `experiments/minilm-sst2-knowledge"
          ".yaml`, train.max_steps = STEPS; the 2,000-step grid as `SEEDS=\"42 43\" SPARSITIES=\"0.9 0.97\" bash "
          "studies/sst2_knowledge/run.sh 2000`: seed 43 at 95 %, sparsebert, finetune-then-prune and small-dense at "
          "90 / 97 %, ≈ 24 min per sparse cell, 4–5 min per small dense one, one thread), `[SPARSITY=0.90 TAG=90] "
          "bash studies/glue_ablation/run_sst2.sh default` (6,315 steps), `WORKERS=2 bash studies/sst2_knowledge/run.sh 20000 "
          "sparsebert finetune-then-prune small-dense` (AVX-512 EPYC, bf16 autocast, its own teacher fine-tuned by "
          "`studies/glue_ablation/run_sst2.sh`'s command: 5 min; 101 min wall, two cells at once) and its second seed, "
          "`SEEDS=\"42 43\" WORKERS=2 bash studies/sst2_knowledge/run.sh 20000 sparsebert finetune-then-prune "
          "small-dense` (two sessions: stopped at step 2,800 and resumed from the saved training state; the seed-43 "
          "train walls are the resumed part, 98 min wall for it), then `.venv/bin/python "
          "studies/sst2_knowledge/collect.py`.", ""]
    for steps in budgets:
        here = sorted((r for r in rows if r["steps"] == steps), key=lambda r: (ORDER.index(r["variant"]), r["seed"]))
        ts = " / ".join(f"{t:.1f}" for t in sorted(teacher_by_steps[steps]))
        md += [f"## {steps:,} steps (teacher {ts})", "", "| variant | seed | student starts | loss | encoder non-zeros | "
               "teacher | dev accuracy | GR | train wall |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
        for r in here:
            nnz = f"{r['encoder_nnz'] / 1e6:.2f} M"
            wall = f"{r['wall_s'] / 60:.0f} min" if r["wall_s"] else "–"
            md.append(f"| {r['variant']} | {r['seed']} | {START[r['variant']]} | {LOSS[r['variant']]} | {nnz} | "
                      f"{r['teacher']:.1f} | {r['accuracy']:.1f} | {100 * r['gain_retention']:.0f} % | {wall} |")
        for v in ORDER:
            m = next((m for m in means[v] if m["steps"] == steps and len(m["seeds"]) > 1), None)
            if m:
                md.append(f"| {v} | mean of {len(m['seeds'])} | | | | | {m['accuracy']:.1f} | "
                          f"{100 * m['gain_retention']:.0f} % ({100 * m['gr_min']:.0f}–{100 * m['gr_max']:.0f}) | |")
        md.append("")
    if superseded:
        md += ["## Cells run again", "", "Each row below was replaced in the tables above by a later run of the same "
               "cell (variant, steps, seed, sparsity); each row's teacher is the one it was distilled from.", "",
               "| variant | steps | seed | sparsity | earlier run: dev accuracy (teacher) | source |",
               "|---|---:|---:|---:|---:|---|"]
        for r in sorted(superseded, key=lambda r: (r["steps"], ORDER.index(r["variant"]), r["seed"], r["sparsity"])):
            md.append(f"| {r['variant']} | {r['steps']:,} | {r['seed']} | {100 * r['sparsity']:g} % | "
                      f"{r['accuracy']:.1f} ({r['teacher']:.1f}) | {r['source']} |")
        md.append("")
    md += sparsity_table(all_rows, ORDER)
    md += ["## Budget scaling", "", "| variant | " + " | ".join(f"{b:,}" for b in budgets) + " | fit GR = a + b·log10(steps) "
           f"| GR at {PAPER_STEPS:,} (extrapolated) |", "|---|" + "---:|" * (len(budgets) + 2)]
    for v in ORDER:
        by = {m["steps"]: m["gain_retention"] for m in means[v]}
        if not by:
            continue
        f = fits.get(v)
        fit_s = (f"a = {f['a']:.2f}, b = {f['b_per_decade']:+.3f}/decade (rms residual {f['rms_residual']:.3f})"
                 if f else "fewer than 3 budgets")
        ext = f"{100 * f[f'gr_at_{PAPER_STEPS}']:.0f} %" if f else "–"
        md.append(f"| {v} | " + " | ".join(f"{100 * by[b]:.0f} %" if b in by else "–" for b in budgets)
                  + f" | {fit_s} | {ext} |")
    md += ["", "Extrapolation is a straight line in log(steps) through at most four budgets: a trend, not a "
           "prediction; GR cannot pass 100 % for long (the teacher's own curve flattens after ~1,000 steps).",
           "", "![GR against steps](sst2_budget_scaling.png)", ""]
    out = {"teachers": teachers, "floor": floor, "rows": all_rows, "superseded": superseded, "means": means, "fits": fits,
           "teacher_curve": teacher_curve(floor), "paper_steps": PAPER_STEPS}
    write_outputs(ROOT / "results" / "sst2_knowledge", out, "\n".join(md), echo=False)
    plot(means, fits, out["teacher_curve"])
    print("\n".join(md))
    return 0


def plot(means: dict[str, list[dict]], fits: dict, curve: list[tuple[int, float]]) -> None:
    """GR against steps (log x) per variant (mean over seeds, bars: min–max), fits dotted, the teacher's own
    curve dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, v in enumerate(ORDER):
        ms = means[v]
        if not ms:
            continue
        pts = [(m["steps"], m["gain_retention"]) for m in ms]
        color = f"C{i}"
        ax.errorbar([m["steps"] for m in ms], [100 * m["gain_retention"] for m in ms],
                    yerr=[[100 * (m["gain_retention"] - m["gr_min"]) for m in ms],
                          [100 * (m["gr_max"] - m["gain_retention"]) for m in ms]],
                    fmt="o-", color=color, label=v, capsize=3)
        if v in fits:
            xs = np.logspace(math.log10(pts[0][0]), math.log10(PAPER_STEPS), 50)
            ax.plot(xs, 100 * (fits[v]["a"] + fits[v]["b_per_decade"] * np.log10(xs)), ":", color=color)
    ax.plot([c[0] for c in curve], [100 * c[1] for c in curve], "k--", lw=1, label="dense teacher (its own fine-tuning)")
    ax.axvline(PAPER_STEPS, color="grey", lw=0.8)
    ax.text(PAPER_STEPS, 0.02, " paper's budget\n (MRPC)", color="grey", fontsize=8, ha="right",
            transform=ax.get_xaxis_transform())
    ax.axhline(100, color="grey", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("training steps (batch 32)")
    ax.set_ylabel("gain retention, %  (0 = majority class, 100 = teacher)")
    ax.set_title("SST-2, MiniLM-L6 pruned to 95 %: gain retention vs budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(ROOT / "results" / "sst2_budget_scaling.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")


if __name__ == "__main__":
    raise SystemExit(main())
