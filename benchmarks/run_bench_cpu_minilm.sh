#!/usr/bin/env bash
# Issue 13's table for a real model: MiniLM-L6 pruned to 95 % by prune's default recipe, seq 128, batch 1 and 32,
# every path of a batch timed interleaved in one run, 2 threads: the paths and settings of benchmarks/run_bench_cpu.sh.
# On the AVX2 EPYC the model was runs/sst2/sparse95-default (`bash studies/glue_ablation/run_sst2.sh default`, SST-2 dev
# accuracy 82.7; results/bench_avx2_minilm_sst2-sparse95.md, its accuracy per path in
# results/accuracy_minilm_sst2-sparse95.md). NAME names the output (results/bench_<isa>_minilm_NAME).
# Run on a quiet machine (no training).
# Usage: MODEL=dir [NAME=sst2-sparse95] [BUDGET=s] bash benchmarks/run_bench_cpu_minilm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-runs/sst2/sparse95-default} NAME=minilm_${NAME:-sst2-sparse95} exec bash benchmarks/run_bench_cpu.sh
