"""The knowledge study on the small GLUE tasks (MRPC, STS-B, CoLA) into results/glue_knowledge.{json,md}.

Reads every grid ``runs/experiments/<task>-s<sparsity>/results.json`` (``bash studies/glue_knowledge/run.sh
TASK SPARSITY [VARIANT ...]``; a run of some variants writes a results.json of those only: refresh it with
``REPORT_ONLY=1 [SEEDS="42 43"] bash studies/glue_knowledge/run.sh TASK SPARSITY``, which lists every cell). Every row: the dev metric, the floor (the main metric of always predicting
the train split's majority class, :func:`sparsebert.experiment.report.majority_baseline`: MRPC F1 81.2,
CoLA MCC 0; STS-B: 0, a constant prediction has no correlation), gain retention GR = (student − floor) /
(teacher − floor), encoder non-zeros, steps and wall time. A student at or under its floor answers nothing
about the knowledge question, and the table says so.

Usage: .venv/bin/python studies/glue_knowledge/collect.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from sparsebert.experiment.report import run_row
from sparsebert.experiment.collect import read_committed, read_summary, write_outputs

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["dense-teacher", "sparsebert", "finetuned-student-kd", "finetune-then-prune", "prune-from-pretrained-no-kd",
         "small-dense"]
START = {"dense-teacher": "pre-trained, fine-tuned 3 epochs", "sparsebert": "pre-trained",
         "finetuned-student-kd": "fine-tuned", "finetune-then-prune": "fine-tuned",
         "prune-from-pretrained-no-kd": "pre-trained", "small-dense": "pre-trained, cut to ≈ equal non-zeros"}
#: Cells trained earlier with the grid cell's exact recipe (same steps, data order, teacher, evaluation each
#: epoch; only the out/teacher paths are spelled differently), read instead of training them again.
EARLIER = {("stsb", 0.9, "sparsebert"): "runs/glue-ablation/seed42/stsb-s90"}  # bash studies/glue_ablation/run.sh stsb:s90
LOSS = {"dense-teacher": "labels", "sparsebert": "teacher logits + labels (default recipe)",
        "finetuned-student-kd": "teacher logits + labels", "finetune-then-prune": "labels only",
        "prune-from-pretrained-no-kd": "labels only", "small-dense": "teacher logits + labels"}


def _history(cell: Path) -> list[tuple[int, float]]:
    h = (read_summary(cell) or {}).get("eval_history") or []
    return [(e["step"], 100 * e["score"]) for e in h]


def earlier_rows(task: str, sparsity: float, have: set[str]) -> list[dict]:
    """Rows (as in results.json) for the seed-42 variants of ``EARLIER`` the grid lacks and that finished."""
    rows = []
    for (t, s, variant), run in EARLIER.items():
        row = run_row(ROOT / run, task) if t == task and abs(s - sparsity) < 1e-9 and variant not in have else None
        if row is not None:
            rows.append({**row, "variant": variant, "sparsity": s, "source": run})
    return rows


def _under(source: str, run_dir: str) -> bool:
    """Whether ``source`` is ``run_dir`` or a path inside it (``runs/experiments/stsb-s0.9`` does not hold
    ``runs/experiments/stsb-s0.95/results.json``: a string prefix is not a folder)."""
    return Path(run_dir) == Path(source) or Path(run_dir) in Path(source).parents


def _unique(rows: list[dict]) -> list[dict]:
    """``rows`` without exact repeats, in order (a store written before ``_under`` could repeat a teacher row)."""
    seen, out = set(), []
    for r in rows:
        key = json.dumps(r, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def seed_spread(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Per variant with more than one seed: (mean, sample std, number of seeds) of ``value``."""
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r["value"])
    return {v: (statistics.mean(x), statistics.stdev(x), len(x)) for v, x in by.items() if len(x) > 1}


HEADER = ["# Knowledge study on the small GLUE tasks (MiniLM-L6)", "",
          "Every student: the same 6 epochs of batch 32 of the task's official train split (MRPC 690 steps, STS-B "
          "1,080, CoLA 1,608), prune's default recipe (cubic GMP per matrix, logit distillation T = 2, hardness 0.5); "
          "the label-only variants with the distillation weights at 0 and label weight 1; the teacher fine-tuned "
          "for 3 epochs at lr 5e-5 (runs/glue-ablation/TASK-teacher, or the grid's own dense-teacher cell with the "
          "same recipe). GR = (student − floor) / (teacher − floor).", ""]


def grid_from_run(res: Path) -> tuple[dict, list[dict]]:
    """One grid's ``results.json`` as (grid record, rows of :data:`out`'s shape), earlier cells included.

    The grid record holds what the Markdown section needs besides the rows (floor, teacher, the teacher's
    dev curve, steps, seeds, cells not run), so a section can be rendered again without the run directory.
    """
    d = json.loads(res.read_text())
    spec = d["spec"]
    (task,) = spec["tasks"]
    floor = d["majority"].get(task)
    floor = 0.0 if floor is None else floor
    rows = d["rows"] + earlier_rows(task, spec["sparsity"], {r["variant"] for r in d["rows"] if r["seed"] == 42})
    rows = sorted(rows, key=lambda r: (ORDER.index(r["variant"]), r["sparsity"], r["seed"]))
    teacher = next(r["value"] for r in rows if r["variant"] == "dense-teacher")
    metric = rows[0]["metric"]
    cell = res.parent / "cells" / task / f"dense-teacher-seed{spec['seeds'][0]}"
    earlier = {f"{task}/{r['variant']}-s{r['sparsity']:g}-seed{r['seed']}" for r in rows if r.get("source")}
    grid = {"task": task, "sparsity": spec["sparsity"], "steps": spec["train"]["max_steps"], "metric": metric,
            "floor": floor, "teacher": teacher, "teacher_curve": _history(cell), "seeds": spec["seeds"],
            "run_dir": str(res.parent.relative_to(ROOT)),
            "not_run": [str(m) for m in d.get("missing") or [] if str(m) not in earlier],
            "variants_not_in_spec": [v for v in ORDER if v not in spec["variants"]]}
    out = []
    for r in rows:
        out.append({"task": task, "sparsity": r["sparsity"], "variant": r["variant"], "seed": r["seed"],
                    "metric": metric, "value": r["value"], "floor": floor, "teacher": teacher,
                    "gain_retention": (r["value"] - floor) / (teacher - floor), "encoder_nnz": r.get("encoder_nnz"),
                    "steps": r.get("steps"), "wall_seconds": r.get("wall_seconds"),
                    "source": r.get("source", str(res.relative_to(ROOT)))})
    return grid, out


def plateaus() -> dict[str, dict]:
    """Per task, the 10-epoch teacher curve's record (results/teacher_curves.json, from
    studies/teacher_curves/collect.py), or nothing where it was not run."""
    path = ROOT / "results" / "teacher_curves.json"
    return {r["task"]: r for r in json.loads(path.read_text())["tasks"]} if path.is_file() else {}


def render(grid: dict, rows: list[dict], plateau: dict | None = None) -> list[str]:
    """The Markdown section of one grid (task at one sparsity) from its record and rows; with ``plateau``
    (the task's 10-epoch teacher record) a second GR column against the dense model's plateau."""
    task, floor, teacher, metric = grid["task"], grid["floor"], grid["teacher"], grid["metric"]
    curve = ", ".join(f"{step}: {score:.1f}" for step, score in grid["teacher_curve"]) or "not recorded"
    h = grid["teacher_curve"]
    gain = h[-1][1] - h[-2][1] if len(h) >= 2 else 0.0
    variants = ("".join(f" {v}" for v in ORDER[1:] if v not in grid["variants_not_in_spec"])
                if grid.get("variants_not_in_spec") else "")
    seeds_env = f'SEEDS="{" ".join(map(str, grid["seeds"]))}" ' if len(grid["seeds"]) > 1 else ""
    kept = (f" Kept from an earlier results/glue_knowledge.json: {grid['run_dir']} is not on this machine."
            if grid.get("kept") else "")
    if not plateau:
        flat = (f"still rising in its last epoch (+{gain:.1f}): the teacher itself has not converged at this budget"
                if gain > 1 else "flat in its last epoch")
    else:
        flat = (f"{'still rising' if gain > 1 else 'flat'} in its last epoch ({gain:+.1f}), "
                f"{plateau['plateau'] - teacher:.1f} under the plateau of the same recipe run 10 epochs, "
                f"**{plateau['plateau']:.1f}**, which the dense model reaches at step {plateau['flat_step']:,} "
                f"(results/teacher_curves.md): the {grid['steps']:,} student steps are "
                f"{grid['steps'] / plateau['flat_step']:.1f}x the steps at which the dense model's curve flattens; "
                "*GR plateau* = (student − floor) / (plateau − floor)")
    md = [f"## {task.upper()} at {100 * grid['sparsity']:g} % ({grid['steps']:,} steps)", "",
          f"Floor **{floor:.1f}**, teacher **{teacher:.1f}** ({metric}); the teacher's own dev curve (step: score) "
          f"{curve}, {flat}. Command: `{seeds_env}bash studies/glue_knowledge/run.sh "
          f"{task} {grid['sparsity']:g}{variants}` ({grid['run_dir']}).{kept}", "",
          "| variant | student starts | loss | encoder non-zeros | dev " + metric + " | GR |"
          + (" GR plateau |" if plateau else "") + " train wall |",
          "|---|---|---|---:|---:|---:|" + ("---:|" if plateau else "") + "---:|"]
    for r in rows:
        nnz = f"{r['encoder_nnz'] / 1e6:.2f} M" if r.get("encoder_nnz") else "–"
        w = f"{r['wall_seconds'] / 60:.0f} min" if r.get("wall_seconds") else "–"
        note = " (at or under the floor)" if r["value"] <= floor else ""
        src = f" ({r['source']})" if not _under(r["source"], grid["run_dir"]) else ""
        gp = f" {100 * (r['value'] - floor) / (plateau['plateau'] - floor):.0f} % |" if plateau else ""
        md.append(f"| {r['variant']}{src} (seed {r['seed']}) | {START[r['variant']]} | {LOSS[r['variant']]} | {nnz} "
                  f"| {r['value']:.1f}{note} | {100 * r['gain_retention']:.0f} % |{gp} {w} |")
    spread = seed_spread([r for r in rows if r["variant"] != "dense-teacher"])
    if spread:
        md += ["", "Over seeds (mean ± sample std): " + "; ".join(
            f"{v} {m:.1f} ± {sd:.1f} ({n} seeds, GR {100 * (m - floor) / (teacher - floor):.0f} %)"
            for v, (m, sd, n) in sorted(spread.items(), key=lambda kv: ORDER.index(kv[0]))) + "."]
    if grid["not_run"]:
        md += ["", "Not run yet: " + ", ".join(grid["not_run"]) + "."]
    if grid.get("variants_not_in_spec"):
        md += ["", "Not in this grid (run with `... " + f"{task} {grid['sparsity']:g} VARIANT ...` to add them): "
               + ", ".join(grid["variants_not_in_spec"]) + "."]
    return md + [""]


def main() -> int:
    """Merge the grids under runs/experiments into results/glue_knowledge.{json,md}.

    A grid found under runs/ replaces its (task, sparsity) section; a section of the existing JSON whose
    run directory is gone (runs/ is not kept across machines) is kept as it was, and says so.
    """
    store = ROOT / "results" / "glue_knowledge.json"
    old = read_committed(store, "studies/glue_knowledge/collect.py") or {"grids": [], "rows": []}
    if old.get("rows") and "grids" not in old:
        sys.exit(f"{store}: rows without 'grids' records (an older format): cannot keep its sections")
    sections: dict[tuple[str, float], tuple[dict, list[dict]]] = {}
    for g in old.get("grids", []):
        key = (g["task"], g["sparsity"])
        rows = [r for r in old["rows"] if r["task"] == g["task"] and (r["sparsity"] == g["sparsity"] or (
            r["variant"] == "dense-teacher" and _under(r["source"], g["run_dir"])))]
        sections[key] = ({**g, "kept": True}, _unique(rows))
    grids = sorted((ROOT / "runs" / "experiments").glob("*-s0.*/results.json"))
    for res in (g for g in grids if not g.parent.name.startswith("sst2")):
        grid, rows = grid_from_run(res)
        sections[(grid["task"], grid["sparsity"])] = (grid, rows)
    if not sections:
        sys.exit("no runs/experiments/<task>-s<sparsity>/results.json: run studies/glue_knowledge/run.sh first")
    md, out_grids, out_rows, flat = list(HEADER), [], [], plateaus()
    for key in sorted(sections):
        grid, rows = sections[key]
        md += render(grid, rows, flat.get(grid["task"]))
        out_grids.append({k: v for k, v in grid.items() if k != "kept"})
        out_rows += rows
    write_outputs(store.with_suffix(""), {"grids": out_grids, "rows": out_rows}, "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
