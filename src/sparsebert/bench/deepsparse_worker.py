"""Time DeepSparse on an ONNX model; run with DeepSparse's own Python (a separate venv).

Standalone on purpose (it never imports sparsebert or torch, which DeepSparse's venv does not
have; the timing loop, :func:`sparsebert.timing.time_calls`, is loaded from its file, which needs
only the standard library): ``sparsebert bench`` starts it as

    <deepsparse-venv>/bin/python deepsparse_worker.py --onnx model.onnx --inputs in.npz \
        --threads 2 --warmup 3 --min-iters 10 --max-iters 50 --budget 20 --out result.npz

and reads one JSON line from stdout: ``{"times_s": [...], "version": ..., "output": "result.npz"}``.
The inputs file holds the arrays in the graph's input order (``arr_0``, ``arr_1``, ...).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")


def _time_calls():
    """:func:`sparsebert.timing.time_calls`, loaded from ``../timing.py`` by path (no sparsebert install here)."""
    path = Path(__file__).resolve().parents[1] / "timing.py"
    spec = importlib.util.spec_from_file_location("_sparsebert_timing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.time_calls


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("--max-iters", type=int, default=50)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import numpy as np

    import deepsparse

    data = np.load(a.inputs)
    inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    batch = int(inputs[0].shape[0])
    t0 = time.perf_counter()
    engine = deepsparse.compile_model(a.onnx, batch_size=batch, num_cores=a.threads,
                                      input_shapes=[list(x.shape) for x in inputs])
    compile_s = time.perf_counter() - t0
    last = {}
    times = _time_calls()({"deepsparse": lambda: last.__setitem__("out", engine.run(inputs))}, warmup=a.warmup,
                          min_iters=a.min_iters, max_iters=a.max_iters, budget_s=a.budget)["deepsparse"]
    np.savez(a.out, *last["out"])
    sys.stdout.write(json.dumps({"times_s": times, "version": deepsparse.__version__, "compile_s": compile_s,
                                 "output": a.out}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
