"""Size on disk of the compact checkpoint against the dense fp32 model, per storage option.

A synthetic BERT-base-shaped classifier (``sparsebert.bench.synthetic``, random weights, magnitude-pruned as
``sparsebert bench --synthetic`` prunes it) is exported once per option; every size is the file written, split
into target matrices / embedding tables / other tensors / header (the export summary's ``parts_bytes``), and
compared with the dense fp32 model saved as ``model.safetensors`` by transformers.

    .venv/bin/python benchmarks/export_size.py --out results/export_size_bert-base_sparse95.json
    .venv/bin/python benchmarks/export_size.py --time-load --out results/export_load_time_bert-base_sparse95.json

``--time-load`` also times loading each export (median of ``--repeats`` runs, each in a fresh process so no
cache carries over): ``sparsebert.load`` (dense reconstruction) and ``load_engine`` (fp32; int8 for the int8
layout). Timing needs a quiet machine; the sizes do not.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 1e6
#: (name, pattern, values, layout, embeddings)
CONFIGS = [
    ("before: fp32 values, fp32 embeddings (the former default)", "unstructured", "fp32", "auto", "fp32"),
    ("default: fp32 values, fp16 embeddings", "unstructured", "fp32", "auto", "fp16"),
    ("fp16 values, fp16 embeddings", "unstructured", "fp16", "auto", "fp16"),
    ("fp16 values, int8 embeddings", "unstructured", "fp16", "auto", "int8"),
    ("4x1 blocks: fp32 values, fp16 embeddings (default)", "4x1", "fp32", "auto", "fp16"),
    ("4x1 blocks: int8-4x1 layout, fp16 embeddings", "4x1", "fp32", "int8-4x1", "fp16"),
    ("4x1 blocks: int8-4x1 layout, int8 embeddings", "4x1", "fp32", "int8-4x1", "int8"),
]


def lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor()}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("Flags", "").split())
    return {"model": info.get("Model name"), "cpus": info.get("CPU(s)"), "threads_per_core": info.get("Thread(s) per core"),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_vnni": "avx512_vnni" in flags,
            "avx_vnni": "avx_vnni" in flags}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


_LOAD_SNIPPET = """
import sys, time, torch
torch.set_num_threads({threads})
t0 = time.perf_counter()
import sparsebert
from sparsebert.export.checkpoint import load_engine
t1 = time.perf_counter()
if {what!r} == "load":
    sparsebert.load({path!r})
else:
    load_engine({path!r}, int8={int8})
print(time.perf_counter() - t1)
"""


def time_load(path: Path, what: str, int8: bool, repeats: int, threads: int) -> dict:
    """Median seconds of ``repeats`` loads, each in a fresh interpreter (imports not counted)."""
    times = []
    for _ in range(repeats):
        code = _LOAD_SNIPPET.format(threads=threads, what=what, path=str(path), int8=int8)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return {"median_s": statistics.median(times), "times_s": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="bert-base")
    ap.add_argument("--sparsity", type=float, default=0.95)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--time-load", action="store_true", help="also time loading (needs a quiet machine)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from safetensors.torch import save_file

    from sparsebert.bench.synthetic import synthetic_model
    from sparsebert.export.checkpoint import export_model

    rows, dense = [], {}
    models = {}
    with tempfile.TemporaryDirectory(prefix="sparsebert-export-size-") as tmp:
        tmp = Path(tmp)
        for name, pattern, values, layout, embeddings in CONFIGS:
            if pattern not in models:
                models.clear()  # one BERT-base at a time
                models[pattern] = synthetic_model(args.shape, args.sparsity, pattern=pattern)
                dense_file = tmp / f"dense-{pattern}" / "model.safetensors"
                dense_file.parent.mkdir()
                save_file({k: v.contiguous() for k, v in models[pattern].state_dict().items()}, str(dense_file))
                dense[pattern] = dense_file.stat().st_size
            model = models[pattern]
            out = tmp / f"{len(rows)}"
            s = export_model(model, out, values=values, layout=layout, embeddings=embeddings)
            ck = s["checkpoint"]
            row = {"config": name, "pattern": pattern, "values": values, "layout": layout, "embeddings": embeddings,
                   "format_version": s["format_version"],
                   "file_mb": round(ck["sparse_file_bytes"] / MB, 3),
                   "parts_mb": {k: round(v / MB, 3) for k, v in ck["parts_bytes"].items()},
                   "target_matrices": {"count": s["targets"]["count"], "nnz": s["targets"]["nnz"],
                                       "layouts": s["targets"]["layouts"],
                                       "dense_fp32_mb": round(s["targets"]["dense_fp32_bytes"] / MB, 3)},
                   "embedding_tables_dense_fp32_mb": round(sum(
                       4 * model.state_dict()[n].numel() for n in ("bert.embeddings.word_embeddings.weight",
                                                                   "bert.embeddings.position_embeddings.weight",
                                                                   "bert.embeddings.token_type_embeddings.weight")) / MB, 3),
                   "dense_fp32_state_dict_mb": round(ck["dense_fp32_bytes"] / MB, 3),
                   "dense_fp32_safetensors_mb": round(dense[pattern] / MB, 3),
                   "ratio_vs_dense_fp32_safetensors": round(dense[pattern] / ck["sparse_file_bytes"], 3)}
            if args.time_load:
                row["load_time"] = {
                    "sparsebert.load": time_load(out, "load", False, args.repeats, args.threads),
                    "load_engine": time_load(out, "engine", False, args.repeats, args.threads)}
                if layout == "int8-4x1":
                    row["load_time"]["load_engine_int8"] = time_load(out, "engine", True, args.repeats, args.threads)
            rows.append(row)
            print(f"{name}: {row['file_mb']:.1f} MB, {row['ratio_vs_dense_fp32_safetensors']:.2f}x", flush=True)
    result = {
        "title": f"compact checkpoint size: synthetic {args.shape}, {args.sparsity:.0%} magnitude sparsity",
        "command": " ".join([".venv/bin/python", "benchmarks/export_size.py", *sys.argv[1:]]),
        "model": f"sparsebert.bench.synthetic.synthetic_model({args.shape!r}, {args.sparsity}, pattern=...): random "
                 "BertForSequenceClassification (vocab 30522, 512 positions), magnitude-pruned target matrices",
        "cpu": lscpu(), "python": platform.python_version(), "git_commit": git_commit(),
        "mb": "10^6 bytes", "rows": rows,
        "load_time": ({"measured": True, "threads": args.threads, "repeats": args.repeats} if args.time_load else
                      {"measured": False,
                       "command": ".venv/bin/python benchmarks/export_size.py --time-load --repeats 5 --threads 2 "
                                  f"--out results/export_load_time_{args.shape}_sparse{round(100 * args.sparsity)}.json"}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
