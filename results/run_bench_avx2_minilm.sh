#!/usr/bin/env bash
# Issue 13's table for a real model: MiniLM-L6 pruned to 95 % by prune's default recipe on full SST-2
# (runs/sst2/sparse95-default, `bash results/run_sst2_prune.sh default`; dev accuracy 82.7), seq 128, batch 1
# and 32, every path of a batch timed interleaved in one run, 2 threads, on this AVX2-only EPYC: the paths and
# settings of results/run_bench_avx2.sh. The dev accuracy of each path is measured separately
# (results/accuracy_minilm_sst2-sparse95.md).
# Run on a quiet machine (no training). Usage: [MODEL=dir] [BUDGET=s] bash results/run_bench_avx2_minilm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-runs/sst2/sparse95-default} OUT=${OUT:-results/bench_avx2_minilm_sst2-sparse95} \
    exec bash results/run_bench_avx2.sh
