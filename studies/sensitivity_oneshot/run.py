"""Which matrices can a fine-tuned MiniLM-L6 lose? One-shot magnitude pruning per role group, no retraining.

For a fine-tuned model (the teacher of the GLUE ablation), prunes only the matrices of one role
group — attention Q+K, attention V+O, FFN in+out, or all six — to sparsity s by per-matrix weight
magnitude (Zhu & Gupta 2017's criterion, applied at once), and prints the dev metric. No training:
this measures where the function lives (a sensitivity analysis in the style of Han et al. 2015, §4),
not what prune-while-distill can recover. Read next to results/glue_trajectories.md, where every
task but SST-2 falls off between ~70 % and ~85 % sparsity.

Usage:
    .venv/bin/python studies/sensitivity_oneshot/run.py --model runs/glue-ablation/stsb-teacher --task stsb \
        [--sparsity 0.5 0.7 0.8 0.9] [--max-length 128] [--threads 1]
Writes nothing; prints a Markdown table (dev metric of each group x sparsity, the dense model first).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from sparsebert.data.encode import encode_examples
from sparsebert.data.glue import load_split
from sparsebert.data.tasks import get_task
from sparsebert.metrics import main_metric
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.targets import prunable_linears
from sparsebert.training import evaluate_features

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "glue"
GROUPS = {"Q+K": ("query", "key"), "V+O": ("value", "attn_out"), "FFN": ("ffn_in", "ffn_out"),
          "all six": ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")}


def magnitude_prune_(linears: dict[str, torch.nn.Linear], roles: tuple[str, ...], sparsity: float) -> None:
    """Zero the ``sparsity`` fraction of smallest-|w| weights of every matrix whose role is in ``roles``."""
    for name, lin in linears.items():
        if name.rsplit(".", 1)[1] not in roles:
            continue
        w = lin.weight.data
        k = int(round(sparsity * w.numel()))
        if k:
            threshold = w.abs().flatten().kthvalue(k).values
            w[w.abs() <= threshold] = 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tok = load_tokenizer(args.model)
    split = task.eval_splits[0]
    feats = {split: encode_examples(tok, load_split(task, split, args.data_dir), args.max_length, task.is_regression)}
    model = load_for_task(args.model, task, require_head=True).eval()
    dense = {k: v.clone() for k, v in model.state_dict().items()}

    def score() -> float:
        with torch.inference_mode():
            return 100 * main_metric(task, evaluate_features(model, task, feats, 128, tok.pad_token_id, False)[split])

    t0 = time.time()
    base = score()
    print(f"{args.model}, {task.name} {split}, one-shot per-matrix magnitude pruning, no retraining\n")
    print("| pruned matrices | " + " | ".join(f"{s:.0%}" for s in args.sparsity) + " |")
    print("|---|" + "---:|" * len(args.sparsity))
    print("| none (dense) | " + " | ".join(f"{base:.1f}" for _ in args.sparsity) + " |")
    for group, roles in GROUPS.items():
        cells = []
        for s in args.sparsity:
            model.load_state_dict(dense)
            magnitude_prune_(prunable_linears(model), roles, s)
            cells.append(f"{score():.1f}")
        print(f"| {group} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
