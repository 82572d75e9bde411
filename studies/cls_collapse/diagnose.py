"""Where a collapsed 95 % student loses the input: per-layer statistics of teacher and student on dev.

For a sequence-classification/regression model with a [CLS] pooler head (BertForSequenceClassification),
prints per layer: the mean norm of the hidden states, and the spread of the [CLS] vector across
the examples of the batch (per-dimension standard deviation over examples, averaged over dimensions;
0 = the [CLS] vector is the same for every input). Also the spread of the predictions. A student whose
[CLS] spread falls far below the teacher's predicts (nearly) a constant, whatever its hidden states do.

Usage:
    .venv/bin/python studies/cls_collapse/diagnose.py --teacher runs/glue-ablation/stsb-teacher --task stsb \
        --state runs/glue-ablation/seed42/.stsb-default-20ep.partial/states/state-00001400 [--examples 64]
``--state`` is a training state (``states/state-*``, its ``model.safetensors``) or a finished run directory.
Writes nothing; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from sparsebert.data.glue import read_glue_split
from sparsebert.data.tasks import get_task
from sparsebert.models import load_for_task, load_tokenizer

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"


def dev_pairs(task: str, n: int) -> tuple[list[str], list[str] | None]:
    """First ``n`` dev examples of a GLUE task's official dev.tsv (text, text pair or None)."""
    rows = read_glue_split(task, DATA, "dev")[:n]
    return [r.text_a for r in rows], ([r.text_b for r in rows] if rows[0].text_b is not None else None)


def stats(model: torch.nn.Module, enc: dict) -> dict:
    """Per-layer mean hidden-state norm, per-layer [CLS] spread across examples, prediction spread."""
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return {"norm": [float(h.norm(dim=-1).mean()) for h in out.hidden_states],
            "cls_spread": [float(h[:, 0].std(0).mean()) for h in out.hidden_states],
            "pred_spread": float(out.logits.std(0).mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--state", required=True, type=Path)
    ap.add_argument("--examples", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = get_task(args.task)
    teacher = load_for_task(args.teacher, task, require_head=True).eval()
    student = load_for_task(args.teacher, task, require_head=True).eval()
    weights = load_file(str(args.state / "model.safetensors"))
    if any(k.startswith("model.") for k in weights):  # a training state prefixes the model's keys
        weights = {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
    missing, unexpected = student.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{args.state}: weights do not fit the teacher's architecture "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    a, b = dev_pairs(args.task, args.examples)
    tok = load_tokenizer(args.teacher)
    enc = tok(a, b, padding=True, truncation=True, max_length=128, return_tensors="pt")
    t, s = stats(teacher, enc), stats(student, enc)
    print(f"{args.task}, {args.examples} dev examples; student {args.state}")
    print()
    print("| layer | teacher mean norm | student mean norm | teacher [CLS] spread | student [CLS] spread |")
    print("|---:|---:|---:|---:|---:|")
    for i in range(len(t["norm"])):
        print(f"| {i} | {t['norm'][i]:.1f} | {s['norm'][i]:.1f} | {t['cls_spread'][i]:.3f} | {s['cls_spread'][i]:.3f} |")
    print()
    print(f"prediction spread across examples: teacher {t['pred_spread']:.3f}, student {s['pred_spread']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
