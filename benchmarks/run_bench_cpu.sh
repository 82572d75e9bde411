#!/usr/bin/env bash
# Issue 13's table on this machine: BERT-base-shaped encoder (random weights), unstructured magnitude sparsity
# (default 95 %), seq 128, batch 1 and 32, 2 threads, every path of a batch timed interleaved in one run
# (sparsebert bench). The output is named after the CPU's int8 instruction set: bench_avx512vnni_* where the CPU
# has AVX-512 VNNI, bench_avx2_* otherwise (the AVX2-only EPYC of results/bench_avx2_*). dense-bf16 is timed only
# where the CPU has native bf16 (AVX512-BF16 or AMX): elsewhere torch emulates it (27x slower than fp32 on the
# AVX2 EPYC, README "Speed"), so it cannot be the best dense path. DeepSparse is included when `make deepsparse`
# installed it. MODEL=dir NAME=name benches that model instead of the synthetic one, to results/bench_<isa>_NAME
# (benchmarks/run_bench_cpu_minilm.sh).
# Run on a quiet machine (no training).
# PATTERN=1x4 (or RxC, N:M) prunes the synthetic model in that pattern (output name ending _1x4, _2of4).
# Usage: [SPARSITY=0.9 SPARSITY_TAG=90] [PATTERN=1x4] [BUDGET=s] [OUT=path, without .json] bash benchmarks/run_bench_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/sparsebert
flags=$(grep -m1 '^flags' /proc/cpuinfo)
ISA=avx2; [[ " $flags " == *" avx512_vnni "* ]] && ISA=avx512vnni
PATHS="--path dense-fp32 --path dynamic-int8 --path onnxruntime-fp32 --path onnxruntime-opt-fp32 --path onnxruntime-int8
       --path openvino-fp32 --path openvino-int8 --path sparse-runtime --path sparse-runtime-int8"
[[ " $flags " == *" avx512_bf16 "* || " $flags " == *" amx_bf16 "* ]] && PATHS="--path dense-bf16 $PATHS"
[ -x .cache/venv-deepsparse/bin/python ] && PATHS="$PATHS --path deepsparse"
if [ -n "${MODEL:-}" ]; then
  SOURCE="$MODEL"; NAME=${NAME:?MODEL needs NAME, the output name after bench_${ISA}_}
else
  SOURCE="--synthetic bert-base --sparsity ${SPARSITY:-0.95} --pattern ${PATTERN:-unstructured}"
  SUFFIX=""; [ -n "${PATTERN:-}" ] && [ "$PATTERN" != unstructured ] && SUFFIX="_${PATTERN/:/of}"
  NAME="bert-base_sparse${SPARSITY_TAG:-95}${SUFFIX}"
fi
$SB bench $SOURCE --batch-size 1 --batch-size 32 --max-length 128 --threads 2 $PATHS --budget ${BUDGET:-10} --no-sizes \
    --remeasure-kernels --json "${OUT:-results/bench_${ISA}_${NAME}}.json"
