"""The dense teacher's own dev curve over 10 epochs (``bash studies/teacher_curves/run.sh``) into
results/teacher_curves.{json,md}: where it flattens, against the 3-epoch teacher the knowledge grids use.

The plateau is the mean dev score over the run's last five evaluations (epochs 6–10); the curve has
*flattened* at the first evaluation within 1 point of the plateau. Dev scores are noisy (CoLA moves
±1 MCC between epochs), so a best-checkpoint value is not used as the plateau.

Usage: .venv/bin/python studies/teacher_curves/collect.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from sparsebert.experiment.collect import write_outputs

ROOT = Path(__file__).resolve().parents[2]
STUDENT_EPOCHS = 6  # studies/glue_knowledge/run.sh


def curve_record(summary: Path) -> dict:
    """One task's record: curve [(step, score in points)], plateau, flat_step, best, wall.

    The run evaluates once per epoch, so its first evaluation's step is the steps per epoch.

    Raises SystemExit naming the file when it has fewer than five evaluations or they are not one per epoch."""
    d = json.loads(summary.read_text())
    curve = [(e["step"], 100 * e["score"]) for e in d.get("eval_history") or []]
    if len(curve) < 5:
        sys.exit(f"{summary}: {len(curve)} evaluations in eval_history, need at least 5")
    per_epoch = curve[0][0]
    if [step for step, _ in curve] != [per_epoch * (i + 1) for i in range(len(curve))]:
        sys.exit(f"{summary}: eval_history steps {[step for step, _ in curve]} are not one evaluation per epoch")
    plateau = statistics.mean(s for _, s in curve[-5:])
    flat_step = next(step for step, s in curve if s >= plateau - 1)
    return {"task": d["task"], "curve": curve, "plateau": plateau, "flat_step": flat_step,
            "steps_per_epoch": per_epoch, "flat_epoch": flat_step / per_epoch, "best": max(s for _, s in curve),
            "student_steps": STUDENT_EPOCHS * per_epoch, "train_seconds": d["train_seconds"],
            "source": str(summary.parent.relative_to(ROOT))}


def main() -> int:
    runs = sorted((ROOT / "runs" / "teacher-curve").glob("*-10ep/summary.json"))
    if not runs:
        sys.exit("no runs/teacher-curve/TASK-10ep/summary.json: run studies/teacher_curves/run.sh first")
    recs = [curve_record(p) for p in runs]
    md = ["# The dense teacher's own curve: 10 epochs (MiniLM-L6)", "",
          "The knowledge grids' teacher recipe (lr 5e-5, batch 32, linear decay, seed 42) run for 10 epochs instead of "
          "3, dev evaluated every epoch. Plateau = mean of the last five evaluations; flattened = first evaluation "
          "within 1 point of it. Command: `bash studies/teacher_curves/run.sh` then "
          "`.venv/bin/python studies/teacher_curves/collect.py`.", "",
          "| task | dev curve (epoch: score) | plateau | flattened at | student budget | train wall |",
          "|---|---|---:|---|---|---:|"]
    for r in recs:
        per = r["steps_per_epoch"]
        curve = ", ".join(f"{step // per}: {s:.1f}" for step, s in r["curve"])
        md.append(f"| {r['task']} | {curve} | {r['plateau']:.1f} | step {r['flat_step']:,} (epoch {r['flat_epoch']:g}) "
                  f"| {r['student_steps']:,} steps ({STUDENT_EPOCHS} epochs, "
                  f"{r['student_steps'] / r['flat_step']:.1f}x) | {r['train_seconds'] / 60:.0f} min |")
    write_outputs(ROOT / "results" / "teacher_curves", {"plateau_rule": "mean of the last 5 evaluations",
                                                        "flat_rule": "first evaluation >= plateau - 1", "tasks": recs},
                  "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
