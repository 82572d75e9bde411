"""The S4 comparison: a large sparse model vs a small dense one vs the dense teacher, in accuracy and speed.

Yen, Xiao, Xu, *S4: a High-sparsity, High-performance AI Accelerator* (2022), §1 and §5: with
sparse execution a larger sparse model beats a smaller dense model in both accuracy and
throughput. For each task we time, with :func:`sparsebert.bench.run.bench_model` at each batch
size of the spec, the ``sparsebert`` model at ``spec.sparsity`` (seeds[0]) on the sparse runtime
(fp32 and int8) and on the dense paths, and the ``small-dense`` model and the dense teacher on the
dense paths (:data:`DENSE`: torch fp32 / bf16 / dynamic int8, ONNX Runtime optimised fp32 and
int8, OpenVINO fp32 and int8; a path whose package is missing is skipped). Each model's throughput
is that of its fastest path (:func:`best_path`), so the sparse model is compared with the best
dense execution of the others, not with fp32 alone.

The experiment's metric is that of the fp32 model; no path's accuracy is evaluated here. The
sparse int8 runtime (``sparse-runtime-int8``, opt-in int8 in :mod:`sparsebert.runtime.int8`) is
therefore never the main figure: :func:`best_path` leaves it out and it is reported beside the
main figure (:func:`sparse_int8_row`). The dense int8 paths are the standard dense baselines a
user would pick and stay candidates of every model's fastest path.
Runs after all training (never beside a training process) so the timings are not disturbed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sparsebert.experiment.grid import Cell, teacher_cell
from sparsebert.experiment.spec import ExperimentSpec
from sparsebert.io import read_json, write_json_atomic

#: dense paths timed for every model ("the best dense path" is the fastest of those measured)
DENSE = ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-opt-fp32", "onnxruntime-int8", "openvino-fp32",
         "openvino-int8")
#: sparse paths (the sparse runtime and the native engine), timed for the sparse model only
SPARSE = ("sparse-runtime", "sparse-runtime-int8", "engine", "engine-int8")
#: paths whose accuracy S4 does not check: reported beside the main figure, never as it
UNCHECKED = ("sparse-runtime-int8", "engine-int8")


def s4_models(spec: ExperimentSpec, task: str) -> dict[str, Cell]:
    """The cells compared for ``task``: ``sparse`` / ``small-dense`` / ``teacher`` (those in the spec)."""
    models = {"teacher": teacher_cell(spec, task)}
    seed = spec.seeds[0]
    if "sparsebert" in spec.variants:
        models["sparse"] = Cell(task, "sparsebert", spec.sparsity, seed)
    if "small-dense" in spec.variants:
        models["small-dense"] = Cell(task, "small-dense", spec.sparsity, seed)
    return models


def best_path(rows: list[dict]) -> dict | None:
    """The fastest measured row (by median ms) of one model at one batch size, among the paths whose
    accuracy is that of the evaluated model (not :data:`UNCHECKED`); None if none was timed."""
    timed = [r for r in rows if r.get("median_ms") and r["path"] not in UNCHECKED]
    return min(timed, key=lambda r: r["median_ms"]) if timed else None


def sparse_int8_row(rows: list[dict]) -> dict | None:
    """The timed ``sparse-runtime-int8`` row of one model at one batch size (reported beside the main
    figure), or None."""
    return next((r for r in rows if r["path"] == "sparse-runtime-int8" and r.get("median_ms")), None)


def bench_task(spec: ExperimentSpec, out: Path, task: str, log: Callable[[str], None] = print) -> dict:
    """Time the S4 models of ``task``; returns ``{label: {"cell", "bench": bench_model result}}``.

    Raises:
        FileNotFoundError: a compared cell has not finished.
    """
    from sparsebert.bench.run import bench_model
    from sparsebert.export.checkpoint import load_any

    b = spec.bench
    result = {}
    for label, cell in s4_models(spec, task).items():
        path = out / "cells" / cell.id
        if not (path / "summary.json").is_file():
            raise FileNotFoundError(f"{path}: cell not finished, cannot bench it")
        paths = DENSE + SPARSE if label == "sparse" else DENSE
        log(f"bench {task} {label} ({cell.id}) ...")
        model = load_any(path)
        result[label] = {"cell": cell.id, "bench": bench_model(
            model, batches=tuple(b.batches), seq=b.seq, threads=b.threads, paths=paths, budget_s=b.budget_s,
            min_iters=5, max_iters=30)}
    return result


def run_s4_benches(spec: ExperimentSpec, out: Path, log: Callable[[str], None] = print) -> None:
    """Bench every task whose compared cells are finished and whose ``bench/<task>.json`` is missing."""
    for task in spec.tasks:
        target = out / "bench" / f"{task}.json"
        cells = s4_models(spec, task).values()
        if target.is_file() or not all((out / "cells" / c.id / "summary.json").is_file() for c in cells):
            continue
        write_json_atomic(target, bench_task(spec, out, task, log))


def load_s4(out: Path, task: str) -> dict | None:
    """The saved bench of ``task``, or None."""
    target = out / "bench" / f"{task}.json"
    return read_json(target) if target.is_file() else None
