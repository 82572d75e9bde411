"""The int8 4x1 kernel against the 1x4 int8 kernel and fp32 CSR on BERT-base's matrix shapes, one matrix at a time.

Each matrix is magnitude-pruned in 4x1 blocks (block magnitude sums, as ``--pattern 4x1`` ranks them) to ``--sparsity``; the kernels
run on the same activations, interleaved round by round (median of ``--iters`` rounds), with ``--threads``
threads. Needs a quiet machine; on an AVX-512 VNNI CPU the native build runs vpdpbusd, ``--isa avx2`` the
AVX2 build. The outputs are checked against each other (same quantisation: equal to the last ulp).

    .venv/bin/python benchmarks/int8_4x1_kernel.py --tokens 128 --tokens 4096 --out results/int8_4x1_kernel_avx512vnni.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

SHAPES = {"qkv": (2304, 768), "attn_out": (768, 768), "ffn_in": (3072, 768), "ffn_out": (768, 3072)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.95)
    ap.add_argument("--tokens", type=int, action="append")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", default=None)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from sparsebert.engine.model import SparseMatrix
    from sparsebert.pruning.masks import block_sum
    from sparsebert.runtime.build import load_kernel
    from sparsebert.runtime.int8 import blocks_1x4, quantize_blocks_4x1, quantize_weight, units_4x1
    from sparsebert.runtime.linear import csr_arrays

    ext = load_kernel(isa=args.isa)
    tile4 = int(ext.engine_max_tile_int8_4x1())
    rows = []
    for name, (n_out, n_in) in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        w = torch.randn(n_out, n_in, generator=g) * 0.05
        score = block_sum(w.abs(), 4, 1)  # [n_out / 4, n_in]
        k = round(args.sparsity * score.numel())
        thr = score.flatten().kthvalue(k).values
        w = w * (score > thr).repeat_interleave(4, 0)
        brp, bcol, bvals = SparseMatrix.from_dense(w).blocks_4x1()
        q, scale = quantize_blocks_4x1(brp, bvals, n_out)
        urp, ucol, uw = units_4x1(brp, bcol, q, n_in)
        wq, _ = quantize_weight(w)
        rp, bc, wv = blocks_1x4(wq)
        crp, ccol, cval = csr_arrays(w)
        bias = torch.zeros(n_out)
        for tokens in args.tokens or [128]:
            x = torch.randn(tokens, n_in, generator=g)
            calls = {
                "int8-4x1": lambda: ext.int8_4x1_linear(x, urp, ucol, uw, scale, bias, tile4, 0, 0),
                "int8-1x4": lambda: ext.int8_block_linear(x, rp, bc, wv, scale, bias, 32, 64, 0),
                "fp32-csr": lambda: ext.csr_linear(x, crp, ccol, cval, bias, 4, 64, False),
            }
            ref = calls["int8-1x4"]()
            assert torch.allclose(calls["int8-4x1"](), ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))
            times = {k: [] for k in calls}
            for _ in range(3):
                for f in calls.values():
                    f()
            for _ in range(args.iters):
                for key, f in calls.items():
                    t0 = time.perf_counter()
                    f()
                    times[key].append(1e3 * (time.perf_counter() - t0))
            row = {"matrix": name, "shape": [n_out, n_in], "tokens": tokens, "nnz": int((w != 0).sum()),
                   "median_ms": {k: statistics.median(v) for k, v in times.items()}}
            row["gop_s"] = {k: 2e-6 * row["nnz"] * tokens / v for k, v in row["median_ms"].items()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({
            "command": " ".join([".venv/bin/python", "benchmarks/int8_4x1_kernel.py", *sys.argv[1:]]),
            "cpu": platform.processor(), "int8_isa": str(ext.int8_isa()), "tile_int8_4x1": tile4,
            "threads": args.threads, "sparsity": args.sparsity, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
