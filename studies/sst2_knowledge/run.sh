#!/usr/bin/env bash
# Issue 12, knowledge study and budget scaling on the full SST-2 (MiniLM-L6, 95 %, seed 42, 1 thread):
# experiments/minilm-sst2-knowledge.yaml with train.max_steps = STEPS and the given variants.
# The teacher cell is runs/sst2/teacher (studies/glue_ablation/run_sst2.sh), hard-linked into the grid after
# checking that its recipe is the grid's (studies/link_teacher_cell.py).
# Usage: [SEEDS="42 43"] [SPARSITIES="0.9 0.95 0.97"] [WORKERS=2] bash studies/sst2_knowledge/run.sh STEPS [VARIANT ...]
# (resumable; REPORT_ONLY=1 rewrites results.json from the finished cells, listing the rest as missing;
# default: all five variants, seed 42, 95 %, one cell at a time; SEEDS adds the students of other seeds
# at 95 % to the same grid, the teacher stays seed 42's; SPARSITIES adds sparsebert, finetune-then-prune and
# small-dense at other sparsities, seed 42; WORKERS cells run at once, one thread each)
# Output: runs/experiments/sst2-steps$STEPS/{results.json,results.md,...}
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
STEPS=$1; shift
OUT=runs/experiments/sst2-steps$STEPS
mkdir -p "$OUT/cells/sst2" logs
SPEC="$OUT/spec-input.yaml"
SEEDS="${SEEDS:-42}" SPARSITIES="${SPARSITIES:-0.95}" WORKERS="${WORKERS:-1}" VARIANTS="$*" $PY - "$STEPS" "$SPEC" <<'PY'
import os, sys, yaml
from pathlib import Path
steps, out = int(sys.argv[1]), Path(sys.argv[2])
spec = yaml.safe_load(Path("experiments/minilm-sst2-knowledge.yaml").read_text())
spec["name"] = f"minilm-sst2-steps{steps}"
spec["data_dir"] = str((Path("experiments") / spec["data_dir"]).resolve())
spec["train"]["max_steps"] = steps
spec["train"]["eval_every"] = max(100, steps // 4)
spec["seeds"] = [int(x) for x in os.environ["SEEDS"].split()]
spec["sparsities"] = sorted({0.95, *(float(x) for x in os.environ["SPARSITIES"].split())})
spec["sweep_variants"] = ["sparsebert", "finetune-then-prune", "small-dense"]
spec["workers"] = int(os.environ["WORKERS"])
if os.environ["VARIANTS"]:
    spec["variants"] = ["dense-teacher", *os.environ["VARIANTS"].split()]
out.write_text(yaml.safe_dump(spec, sort_keys=False))
PY
$PY studies/link_teacher_cell.py runs/sst2/teacher "$OUT" "$SPEC" sst2
/usr/bin/time -f "sst2-steps$STEPS wall %e s" $PY -m sparsebert experiment "$SPEC" --out "$OUT" --no-bench ${DRY:+--dry-run} ${REPORT_ONLY:+--report-only}
