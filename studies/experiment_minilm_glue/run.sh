#!/usr/bin/env bash
# The knowledge study, sparsity sweep and S4 comparison on MiniLM-L6 (issue 6), then copy the report here.
# Re-running resumes: finished cells are skipped. Models stay in runs/ (git-ignored); the report is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=runs/experiments/minilm-glue
.venv/bin/sparsebert experiment experiments/minilm-glue.yaml --out "$OUT" "$@"
DEST=results/experiment_minilm_glue
mkdir -p "$DEST/plots"
cp "$OUT/results.md" "$OUT/results.json" "$OUT/spec.yaml" "$DEST/"
cp "$OUT"/plots/*.png "$DEST/plots/"
echo "copied the report to $DEST"
