#!/usr/bin/env bash
# Issue 12, knowledge study and budget scaling on the full SST-2 (MiniLM-L6, 95 %, seed 42, 1 thread):
# experiments/minilm-sst2-knowledge.yaml with train.max_steps = STEPS and the given variants.
# The teacher cell is runs/sst2/teacher (results/run_sst2_prune.sh), hard-linked into the grid after
# checking that its recipe is the grid's (differences allowed: out; data_dir spelled differently but
# the same directory; pooling absent = cls, the only pooling when it was trained); its recipe.yaml and
# MANIFEST.json entry are replaced by the grid's recipe (new files: runs/sst2/teacher is not touched).
# Usage: [SEEDS="42 43"] bash results/run_sst2_knowledge.sh STEPS [VARIANT ...]   (resumable; default: all five
# variants, seed 42; SEEDS adds the students of other seeds to the same grid, the teacher stays seed 42's)
# Output: runs/experiments/sst2-steps$STEPS/{results.json,results.md,...}
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=$1; shift
OUT=runs/experiments/sst2-steps$STEPS
mkdir -p "$OUT/cells/sst2" logs
SPEC="$OUT/spec-input.yaml"
SEEDS="${SEEDS:-42}" VARIANTS="$*" $PY - "$STEPS" "$SPEC" <<'PY'
import os, sys, yaml
from pathlib import Path
steps, out = int(sys.argv[1]), Path(sys.argv[2])
spec = yaml.safe_load(Path("experiments/minilm-sst2-knowledge.yaml").read_text())
spec["name"] = f"minilm-sst2-steps{steps}"
spec["data_dir"] = str((Path("experiments") / spec["data_dir"]).resolve())
spec["train"]["max_steps"] = steps
spec["train"]["eval_every"] = max(100, steps // 4)
spec["seeds"] = [int(x) for x in os.environ["SEEDS"].split()]
if os.environ["VARIANTS"]:
    spec["variants"] = ["dense-teacher", *os.environ["VARIANTS"].split()]
out.write_text(yaml.safe_dump(spec, sort_keys=False))
PY
T="$OUT/cells/sst2/dense-teacher-seed42"
if [ ! -f "$T/summary.json" ]; then
  $PY -m sparsebert.cli experiment "$SPEC" --out "$OUT" --dry-run > /dev/null
  $PY - runs/sst2/teacher/recipe.yaml "$OUT/recipes/sst2/dense-teacher-seed42.yaml" <<'PY'
import sys, yaml
from pathlib import Path
have, want = (yaml.safe_load(Path(p).read_text()) for p in sys.argv[1:3])
diff = {k for k in set(have) | set(want) if have.get(k) != want.get(k)} - {"out", "threads"}
ok = (diff <= {"data_dir", "pooling"} and Path(have["data_dir"]).resolve() == Path(want["data_dir"]).resolve()
      and have.get("pooling", "cls") == want["pooling"])
if not ok:
    sys.exit(f"runs/sst2/teacher was trained with other settings than the grid's teacher: {sorted(diff)}")
PY
  rm -rf "$T" && cp -al runs/sst2/teacher "$T"
  rm "$T/recipe.yaml" "$T/MANIFEST.json" && cp "$OUT/recipes/sst2/dense-teacher-seed42.yaml" "$T/recipe.yaml"
  $PY - runs/sst2/teacher "$T" <<'PY'
import json, sys
from pathlib import Path
from sparsebert.integrity import sha256_file
from sparsebert.io import write_json_atomic
src, dst = map(Path, sys.argv[1:3])  # the same manifest, with the new recipe.yaml's hash and size
manifest = json.loads((src / "MANIFEST.json").read_text())
manifest["files"]["recipe.yaml"] = {"sha256": sha256_file(dst / "recipe.yaml"), "bytes": (dst / "recipe.yaml").stat().st_size}
write_json_atomic(dst / "MANIFEST.json", manifest)
PY
  echo "hard-linked runs/sst2/teacher as the grid's teacher cell"
fi
/usr/bin/time -f "sst2-steps$STEPS wall %e s" $PY -m sparsebert.cli experiment "$SPEC" --out "$OUT" --no-bench ${DRY:+--dry-run}
