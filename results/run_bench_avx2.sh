#!/usr/bin/env bash
# Issue 13's table on this machine (AMD EPYC, 2 cores, AVX2 only: no AVX-512, no VNNI, no native bf16):
# BERT-base-shaped encoder (random weights), 95 % unstructured magnitude sparsity, seq 128, batch 1 and 32,
# every path of a batch timed interleaved in one run (sparsebert bench). dense-bf16 is left out: without
# AVX512-BF16 / AMX, torch emulates bf16 (27x slower than fp32 here, README "Speed"), so it cannot be the
# best dense path. DeepSparse is included when `make deepsparse` installed it.
# MODEL=dir benches that model instead of the synthetic one (results/run_bench_avx2_minilm.sh), written to OUT.
# Run on a quiet machine (no training). Usage: [SPARSITY=0.9 SPARSITY_TAG=90] [BUDGET=s] bash results/run_bench_avx2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/sparsebert
PATHS="--path dense-fp32 --path dynamic-int8 --path onnxruntime-fp32 --path onnxruntime-opt-fp32 --path onnxruntime-int8
       --path openvino-fp32 --path openvino-int8 --path sparse-runtime --path sparse-runtime-int8"
[ -x .cache/venv-deepsparse/bin/python ] && PATHS="$PATHS --path deepsparse"
if [ -n "${MODEL:-}" ]; then
  SOURCE="$MODEL"
else
  SOURCE="--synthetic bert-base --sparsity ${SPARSITY:-0.95}"
fi
$SB bench $SOURCE --batch 1 --batch 32 --seq 128 --threads 2 $PATHS --budget ${BUDGET:-10} --no-sizes \
    --remeasure-kernels --out "${OUT:-results/bench_avx2_bert-base_sparse${SPARSITY_TAG:-95}}"
