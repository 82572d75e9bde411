"""Collect the augmentation ablation (studies/augment_ablation/run.sh) into results/augment_ablation.{json,md}.

Per task (MRPC, RTE): the plain 95 % student (runs/minilm/<task>-sparse95 of studies/minilm_glue/run.sh) beside
the student trained on the TinyBERT-augmented data (runs/minilm/<task>-sparse95-aug), same teacher, seed and
optimizer steps; dev metrics of the final (fully sparse) model.

Usage: .venv/bin/python studies/augment_ablation/collect.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sparsebert.experiment.collect import read_summary, write_outputs

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "minilm"
COMMAND = "bash studies/augment_ablation/run.sh"


def main() -> int:
    rows = []
    for task in ("mrpc", "rte"):
        row = {"task": task}
        for name, d in (("plain", f"runs/minilm/{task}-sparse95"), ("augmented", f"runs/minilm/{task}-sparse95-aug")):
            s = read_summary(ROOT / d)
            if s is None:
                row[name] = None
                continue
            row[name] = {"dir": d, "dev": s["metrics"]["dev"], "steps": s["steps"], "train_examples": s["train_examples"],
                         "seed": s["recipe"]["seed"], "sparsity": s["sparsity"]["targets"]["sparsity"],
                         "train_seconds": s["train_seconds"], "augmented_data": s.get("augmented_data")}
        aug = RUNS / f"{task}-aug20" / "augment.json"
        if aug.is_file():
            a = json.loads(aug.read_text())
            row["augment"] = {"settings": a["settings"], "counts": a["counts"], "seconds": a["seconds"],
                              "examples_per_second": a["examples_per_second"], "input_sha256": a["input"]["sha256"]}
        rows.append(row)
    if not any(r.get("plain") or r.get("augmented") for r in rows):
        sys.exit(f"no finished run under {RUNS}: run {COMMAND} first (results/augment_ablation.{{json,md}} are left "
                 "as committed)")
    lines = ["# SparseBERT 95 % on MiniLM-L6: with vs without TinyBERT augmentation", "", f"Command: `{COMMAND}` "
             "(after `bash studies/minilm_glue/run.sh`). Same teacher, seed 42, same optimizer steps; dev metrics "
             "of the final (fully sparse) model.", "",
             "| task | data | train examples | steps | seed | sparsity | dev metrics |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        for name in ("plain", "augmented"):
            v = r.get(name)
            if v:
                m = ", ".join(f"{k} {x:.4f}" for k, x in v["dev"].items())
                lines.append(f"| {r['task']} | {name} | {v['train_examples']} | {v['steps']} | {v['seed']} "
                             f"| {v['sparsity']:.4f} | {m} |")
    write_outputs(ROOT / "results" / "augment_ablation", {"command": COMMAND, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
