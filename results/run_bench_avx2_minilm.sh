#!/usr/bin/env bash
# Issue 13's table for a real model: MiniLM-L6 pruned to 95 % by prune's default recipe on full SST-2
# (runs/sst2/sparse95-default, `bash results/run_sst2_prune.sh default`; dev accuracy 82.7), seq 128, batch 1
# and 32, every path of a batch timed interleaved in one run, 2 threads, on this AVX2-only EPYC. Same paths as
# results/run_bench_avx2.sh (dense-bf16 left out: emulated bf16 is 27x slower than fp32 here). The dev accuracy
# of each path is measured separately (results/accuracy_minilm_sst2-sparse95.md).
# Run on a quiet machine (no training). Usage: bash results/run_bench_avx2_minilm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/sparsebert
PATHS="--path dense-fp32 --path dynamic-int8 --path onnxruntime-fp32 --path onnxruntime-opt-fp32 --path onnxruntime-int8
       --path openvino-fp32 --path openvino-int8 --path sparse-runtime --path sparse-runtime-int8"
[ -x .cache/venv-deepsparse/bin/python ] && PATHS="$PATHS --path deepsparse"
$SB bench ${MODEL:-runs/sst2/sparse95-default} --batch 1 --batch 32 --seq 128 --threads 2 $PATHS \
    --budget ${BUDGET:-10} --no-sizes --remeasure-kernels --out results/bench_avx2_minilm_sst2-sparse95
