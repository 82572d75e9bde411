#!/usr/bin/env bash
# Sparse export + runtime benchmarks (issue: "Sparsity that pays"). Run on a quiet machine (nothing
# else on the cores): every path of a table is measured in the same process, one after the other.
# Needs `make install` (sparsebert + onnx/onnxruntime) and, for the DeepSparse comparator,
# `make deepsparse` (its own venv in .cache/venv-deepsparse; optional, skipped when absent).
# Usage: bash benchmarks/run_sparse_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SB=.venv/bin/sparsebert
# 1. BERT-base-shaped encoder, random weights, 95 % unstructured magnitude sparsity; batch 1 and 32 x 128.
$SB bench --synthetic bert-base --sparsity 0.95 --batch-size 1 --batch-size 32 --max-length 128 \
    --json results/bench_bert-base_sparse95.json
# 1b. Same command again (run-to-run variation; written to .cache/rerun/, copied to results/*_rerun.*).
$SB bench --synthetic bert-base --sparsity 0.95 --batch-size 1 --batch-size 32 --max-length 128 --no-sizes \
    --json .cache/rerun/bench_bert-base_sparse95.json
cp .cache/rerun/bench_bert-base_sparse95.json results/bench_bert-base_sparse95_rerun.json
cp .cache/rerun/bench_bert-base_sparse95.md results/bench_bert-base_sparse95_rerun.md
# 1c. Where sparsity stops paying: the same encoder at 80 % and 90 % sparsity.
for s in 80 90; do
  $SB bench --synthetic bert-base --sparsity 0.$s --batch-size 1 --batch-size 32 --max-length 128 --path dense-fp32 --path dense-bf16 \
      --path dynamic-int8 --path sparse-runtime --no-sizes --json results/bench_bert-base_sparse$s.json
done
# 2. MiniLM-L6 pruned to 95 % by the SparseBERT pipeline (studies/minilm_glue/run.sh), same table.
$SB bench runs/minilm/mrpc-sparse95 --batch-size 1 --batch-size 32 --max-length 128 \
    --json results/bench_minilm_mrpc-sparse95.json
# 3. Its compact checkpoint on disk, and the ONNX export, checked against torch.
$SB export runs/minilm/mrpc-sparse95 --out .cache/exports/mrpc-sparse95 --overwrite
$SB export runs/minilm/mrpc-sparse95 --out .cache/exports/mrpc-sparse95-fp16 --values fp16 --overwrite
$SB export runs/minilm/mrpc-sparse95 --format onnx --out .cache/exports/mrpc-sparse95-onnx --overwrite
$SB report .cache/exports/mrpc-sparse95 --no-per-matrix --json results/minilm_mrpc-sparse95_export_report.json
