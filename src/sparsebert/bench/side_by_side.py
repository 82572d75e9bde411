"""A sparse student on the native engine beside its dense teacher's fastest paths, timed interleaved.

What ``make demo`` ends with (and what a user should look at before choosing a model): sequences per
second of the student on :class:`sparsebert.engine.EncoderEngine` and of the dense teacher on the dense
paths of ``sparsebert bench`` (torch dynamic int8, ONNX Runtime int8, OpenVINO int8 where installed),
all calls of a batch size in one round-robin (:func:`sparsebert.timing.time_calls`, rotating order), so
that drift in machine load hits every path alike.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: the teacher's dense paths timed by default (each skipped with its reason where it cannot run)
DENSE_PATHS = ("dense-fp32", "dynamic-int8", "onnxruntime-int8", "openvino-int8")


def engine_vs_dense(student: nn.Module, teacher: nn.Module, *, batches: tuple[int, ...] = (1, 32), seq: int = 64,
                    dense_paths: tuple[str, ...] = DENSE_PATHS, threads: int | None = None, warmup: int = 2,
                    min_iters: int = 5, max_iters: int = 30, budget_s: float = 2.0,
                    log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Sequences/s of ``student`` on the engine and ``teacher`` on ``dense_paths``, per batch size.

    Args:
        student: the (pruned) model the engine runs; teacher: the dense model (same tokenizer family).
        batches: sequences per call; seq: tokens per sequence (synthetic ids, no padding).
        dense_paths: paths of :data:`sparsebert.bench.run.CPU_PATHS` that ignore sparsity.
        threads: torch threads (default: the current count).
        warmup / min_iters / max_iters / budget_s: as :func:`sparsebert.timing.time_calls` (budget per path).
    Returns:
        ``{"cpu": str, "threads": int, "seq": int, "batches": {batch: {"seq_per_s": {label: float},
        "fastest_dense": label | None, "engine_vs_fastest_dense": float | None}}, "skipped": {path: reason}}``;
        labels are ``"student: engine"`` and ``"teacher: <path>"``.
    Raises:
        EngineUnavailableError, UnsupportedArchitectureError: the engine cannot run the student.
    """
    from sparsebert.bench.run import PathRunners, make_inputs
    from sparsebert.engine import EncoderEngine
    from sparsebert.runtime.build import cpu_flags, cpu_model
    from sparsebert.timing import time_calls

    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    engine = EncoderEngine(student.float().eval())
    out: dict[str, Any] = {"cpu": cpu_model(), "threads": threads, "seq": seq, "batches": {}, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="sparsebert-side-by-side-") as work:
        runners = PathRunners(teacher.float().eval(), threads, Path(work), log, None, cpu_flags())
        for batch in batches:
            inputs = make_inputs(teacher, batch, seq)
            calls = {"student: engine": (lambda x=inputs: engine(**x))}
            for path in dense_paths:
                try:
                    call, _, _ = runners.runner(path, inputs)
                    call()
                    calls[f"teacher: {path}"] = call
                except Exception as err:  # NotInstalled, or a failing baseline: it must not stop the demo
                    out["skipped"][path] = str(err).splitlines()[0] if str(err) else type(err).__name__
            log(f"batch {batch} x {seq}: timing {', '.join(calls)} interleaved ...")
            with torch.no_grad():
                times = time_calls(calls, warmup=warmup, min_iters=min_iters, max_iters=max_iters,
                                   budget_s=budget_s * len(calls), rotate=True)
            rate = {k: batch / statistics.median(v) for k, v in times.items()}
            dense = {k: v for k, v in rate.items() if k.startswith("teacher: ")}
            best = max(dense, key=dense.get) if dense else None
            out["batches"][batch] = {"seq_per_s": {k: round(v, 1) for k, v in rate.items()}, "fastest_dense": best,
                                     "engine_vs_fastest_dense": round(rate["student: engine"] / dense[best], 2)
                                     if best else None}
    return out
