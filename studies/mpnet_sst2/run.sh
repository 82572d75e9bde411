#!/usr/bin/env bash
# Issue 12, the BERT-base-shaped run: MPNet-base (all-mpnet-base-v2, 12 x 768; `make mpnet`) on the
# full SST-2, max length 64, batch 32, seed 42, THREADS threads (default 1), length-grouped batches, as
# studies/glue_ablation/run_sst2.sh does for MiniLM-L6.
#   teacher:   1 epoch of fine-tuning (2,105 steps, lr 2e-5)
#   sparse95:  prune's default recipe to 95 %, STUDENT_EPOCHS epochs (default 1 = 2,105 steps); at chance by
#              step 1,000 (lr 1e-4), stopped at step 1,020 (results/mpnet_sst2.md)
#   sparseNN-lr3e-5 (NN = 90, 95, 97): the default recipe with the paper's BERT-base lr 3e-5, to NN %
#              (95 %: 76.1 after 2,105 steps, GR 60 %)
#   small-dense95: the dense student of equal non-zeros cut from MPNet-base (1 layer, FFN 1,229 = 5 % of the
#              encoder's linear weights: sparsebert.distill.small_dense.dense_size_for, as the grid's small-dense
#              cell), distilled with the default recipe (logit KD, lr 1e-4; nothing is pruned) for STUDENT_EPOCHS
# Every stage saves its training state every 100 steps (runs/sst2-mpnet/.NAME.partial/) and
# resumes from it when the script is started again (the same command) (each session ends every process it started).
# Usage: bash studies/mpnet_sst2/run.sh [teacher|sparse95|sparse95-lr3e-5|small-dense95 ...]   (default: teacher sparse95-lr3e-5)
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=${SB:-.venv/bin/sparsebert}
DATA=../shared/data/glue
MODEL=.cache/models/all-mpnet-base-v2
OUT=runs/sst2-mpnet
EP=${STUDENT_EPOCHS:-1}
THREADS=${THREADS:-1}   # torch threads of each stage (does not change results; a resumed run may use other)
[ -f $MODEL/config.json ] || { echo "no $MODEL: run make mpnet first" >&2; exit 2; }
mkdir -p $OUT logs
stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(teacher sparse95-lr3e-5)
for s in "${stages[@]}"; do
  [ -f "$OUT/$s/summary.json" ] && continue
  case $s in
    teacher) /usr/bin/time -f "mpnet-sst2:teacher wall %e s" $SB finetune --model $MODEL --task sst2 \
      --data-dir $DATA --max-length 64 --epochs 1 --learning-rate 2e-5 --group-by-length --eval-every 500 \
      --seed 42 --threads $THREADS --save-every 100 --out $OUT/teacher >> logs/mpnet-sst2-teacher.log 2>&1 ;;
    sparse95) /usr/bin/time -f "mpnet-sst2:sparse95 wall %e s" $SB prune --teacher $OUT/teacher --student $MODEL \
      --task sst2 --data-dir $DATA --max-length 64 --epochs $EP --sparsity 0.95 --seed 42 --threads $THREADS \
      --eval-every 500 --save-every 100 --out $OUT/sparse95 >> logs/mpnet-sst2-sparse95.log 2>&1 ;;
    sparse*-lr3e-5) sp=${s#sparse}; sp=${sp%-lr3e-5}
      /usr/bin/time -f "mpnet-sst2:$s wall %e s" $SB prune --teacher $OUT/teacher --student $MODEL \
      --task sst2 --data-dir $DATA --max-length 64 --epochs $EP --sparsity 0.$sp --learning-rate 3e-5 --seed 42 \
      --threads $THREADS --eval-every 500 --save-every 100 --out $OUT/$s >> logs/mpnet-sst2-$s.log 2>&1 ;;
    small-dense95) /usr/bin/time -f "mpnet-sst2:$s wall %e s" $SB prune --teacher $OUT/teacher --student $MODEL \
      --task sst2 --data-dir $DATA --max-length 64 --epochs $EP --sparsity 0 --student-layers 1 --student-ffn 1229 \
      --seed 42 --threads $THREADS --eval-every 500 --save-every 100 --out $OUT/$s >> logs/mpnet-sst2-$s.log 2>&1 ;;
    *) echo "unknown stage $s (teacher|sparse95|sparse90-lr3e-5|sparse95-lr3e-5|sparse97-lr3e-5|small-dense95)" >&2
       exit 2 ;;
  esac
done
