"""Run an experiment grid: resumable, cells in parallel worker processes, then bench and report.

Layout of the output directory::

    OUT/spec.yaml                the spec the grid was started with (a resumed run must match)
    OUT/recipes/<cell>.yaml      the stage recipe of every cell (what `sparsebert finetune|prune --recipe` takes)
    OUT/cells/<cell>/            the stage's output (model, summary.json, log.jsonl)
    OUT/logs/<cell>.log          the cell's console output
    OUT/bench/<task>.json        the S4 throughput measurements
    OUT/results.json, results.md, plots/*.png

A cell is finished when ``cells/<cell>/summary.json`` exists; stage outputs are renamed into
place only when complete (:func:`sparsebert.io.staged_output_dir`), so an interrupted grid
re-run with the same command skips finished cells and re-runs the rest. Each cell runs as its
own ``python -m sparsebert.cli`` process (crash isolation; its own thread count).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from sparsebert.experiment.grid import Cell, cell_recipe, expand_grid, teacher_cell
from sparsebert.experiment.spec import ExperimentSpec, SpecError, load_spec
from sparsebert.io import write_text_atomic
from sparsebert.recipe import recipe_yaml


@dataclass
class CellStatus:
    """Outcome of one cell in this invocation: ``done`` (earlier), ``ran``, ``failed`` or ``skipped``."""

    cell: Cell
    state: str
    seconds: float = 0.0
    message: str = ""


def cell_dir(out: Path, cell: Cell) -> Path:
    """Where the stage of ``cell`` writes its output."""
    return out / "cells" / cell.id


def is_done(out: Path, cell: Cell) -> bool:
    """A finished cell has its ``summary.json`` (written last, renamed into place atomically)."""
    return (cell_dir(out, cell) / "summary.json").is_file()


def _spec_text(spec: ExperimentSpec) -> str:
    """The spec as it identifies a grid (parallelism settings excluded: they do not change results)."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude={"workers", "threads"}), sort_keys=True)


def prepare_out(spec: ExperimentSpec, out: Path, overwrite: bool) -> None:
    """Create ``out`` and record the spec; a resumed grid must have the same spec.

    Raises:
        SpecError: ``out`` holds a grid with a different spec and ``overwrite`` is False.
    """
    saved = out / "spec.yaml"
    if saved.is_file() and saved.read_text(encoding="utf-8") != _spec_text(spec):
        if not overwrite:
            raise SpecError(f"{out} holds a grid with a different spec ({saved}); use another --out, or "
                            "--overwrite to re-run every cell")
        import shutil

        for sub in ("cells", "recipes", "logs", "bench", "plots"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, _spec_text(spec))


def _stage_command(cell: Cell, recipe_file: Path) -> list[str]:
    stage = "finetune" if cell.is_teacher else "prune"
    return [sys.executable, "-m", "sparsebert.cli", stage, "--recipe", str(recipe_file)]


def run_cell(spec: ExperimentSpec, cell: Cell, out: Path, model_config=None) -> CellStatus:
    """Write the cell's recipe and run its stage in a subprocess (console output to ``logs/``).

    Returns:
        :class:`CellStatus` (``ran`` or ``failed`` with the last line of the cell's log).
    """
    recipe = cell_recipe(spec, cell, out / "cells", model_config)
    recipe_file = out / "recipes" / f"{cell.id}.yaml"
    write_text_atomic(recipe_file, recipe_yaml(recipe))
    log_file = out / "logs" / f"{cell.id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log_file, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(_stage_command(cell, recipe_file)) + "\n")
        log.flush()
        proc = subprocess.run(_stage_command(cell, recipe_file), stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"})
    seconds = time.time() - t0
    if proc.returncode == 0 and is_done(out, cell):
        return CellStatus(cell, "ran", seconds)
    lines = [ln for ln in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return CellStatus(cell, "failed", seconds, f"exit {proc.returncode}: {lines[-1] if lines else 'no output'} "
                      f"(log: {log_file})")


def _run_many(spec: ExperimentSpec, cells: list[Cell], out: Path, model_config, workers: int,
              log: Callable[[str], None]) -> list[CellStatus]:
    results: list[CellStatus] = []

    def one(cell: Cell) -> CellStatus:
        log(f"start  {cell.id}")
        status = run_cell(spec, cell, out, model_config)
        log(f"{status.state:6s} {cell.id} ({status.seconds:.0f} s){' ' + status.message if status.message else ''}")
        return status

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, cells))
    return results


def run_experiment(spec_path: str | Path, out: str | Path | None = None, *, workers: int | None = None,
                   overwrite: bool = False, dry_run: bool = False, bench: bool = True,
                   log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the grid of ``spec_path``, then the S4 bench, then write results and plots.

    Args:
        out: output directory (default ``runs/experiments/<spec.name>``).
        workers: parallel cells (default: the spec's ``workers``); each gets
            ``spec.threads`` or ``cpu_count // workers`` torch threads.
        dry_run: list the cells and write their recipes, train nothing.
        bench: run the S4 bench when the spec has one.
    Returns:
        ``{"out", "cells": [CellStatus...], "results": results dict or None}``.
    Raises:
        SpecError: invalid spec, or ``out`` holds a different grid.
    """
    spec = load_spec(spec_path)
    out = Path(out) if out is not None else Path("runs/experiments") / spec.name
    workers = workers or spec.workers
    prepare_out(spec, out, overwrite)
    if spec.threads is None:
        spec = spec.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // workers)})
    cells = expand_grid(spec)
    model_config = None
    if any(c.variant == "small-dense" for c in cells):
        from transformers import AutoConfig

        from sparsebert.models import resolve_model

        model_config = AutoConfig.from_pretrained(resolve_model(spec.model))
    todo = [c for c in cells if not is_done(out, c)]
    log(f"{spec.name}: {len(cells)} cells, {len(cells) - len(todo)} finished earlier, {len(todo)} to run "
        f"({workers} worker(s) x {spec.threads} thread(s)) -> {out}")
    statuses = [CellStatus(c, "done") for c in cells if c not in todo]
    if dry_run:
        for c in todo:
            write_text_atomic(out / "recipes" / f"{c.id}.yaml", recipe_yaml(cell_recipe(spec, c, out / "cells", model_config)))
            log(f"  {c.id}")
        return {"out": out, "cells": statuses + [CellStatus(c, "planned") for c in todo], "results": None}
    teachers = [c for c in todo if c.is_teacher]
    statuses += _run_many(spec, teachers, out, model_config, workers, log)
    ready, blocked = [], []
    for c in (c for c in todo if not c.is_teacher):
        (ready if is_done(out, teacher_cell(spec, c.task)) else blocked).append(c)
    statuses += [CellStatus(c, "skipped", message=f"teacher {teacher_cell(spec, c.task).id} failed") for c in blocked]
    statuses += _run_many(spec, ready, out, model_config, workers, log)
    if bench and spec.bench is not None:
        from sparsebert.experiment.s4 import run_s4_benches

        run_s4_benches(spec, out, log)
    from sparsebert.experiment.report import write_results

    results = write_results(spec, out, cells, spec_path=Path(spec_path))
    return {"out": out, "cells": statuses, "results": results}
