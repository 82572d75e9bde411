"""Run an experiment grid: resumable, cells in parallel worker processes, then bench and report.

Layout of the output directory::

    OUT/spec.yaml                the spec of the last invocation
    OUT/recipes/<cell>.yaml      the stage recipe of every cell (what `sparsebert finetune|prune --recipe` takes)
    OUT/cells/<cell>/            the stage's output (model, summary.json, log.jsonl)
    OUT/logs/<cell>.log          the cell's console output
    OUT/bench/<task>.json        the S4 throughput measurements
    OUT/results.json, results.md, plots/*.png

A cell is finished when ``cells/<cell>/summary.json`` exists; stage outputs are renamed into
place only when complete, so an interrupted grid re-run with the same command skips finished
cells, continues a killed cell from its last training state and runs the rest. Editing the spec
re-runs exactly the cells whose recipe changed (and the students of a re-trained teacher). Each
cell runs as its own ``python -m sparsebert.cli`` process (crash isolation; its own thread count).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import yaml

from sparsebert.checkpointing import recipe_changes
from sparsebert.experiment.grid import Cell, cell_recipe, expand_grid, teacher_cell
from sparsebert.experiment.s4 import run_s4_benches, s4_models
from sparsebert.experiment.spec import ExperimentSpec, load_spec
from sparsebert.errors import InputError
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


def finished_recipe(out: Path, cell: Cell) -> dict | None:
    """The recipe a finished cell was trained with (its ``recipe.yaml``), or None when unfinished."""
    d = cell_dir(out, cell)
    if not (d / "summary.json").is_file() or not (d / "recipe.yaml").is_file():
        return None
    return yaml.safe_load((d / "recipe.yaml").read_text(encoding="utf-8"))


def stale_reason(spec: ExperimentSpec, out: Path, cell: Cell, model_config=None) -> str | None:
    """Why a finished cell must be re-run, or None when it is up to date.

    A cell is stale when the spec now gives it a different recipe (settings that do not change
    results — threads, save_every — excepted, and fields added to sparsebert after the cell ran
    that keep their default: :func:`~sparsebert.checkpointing.recipe_changes`), or when its
    teacher finished after it (the teacher was re-trained).
    """
    done = finished_recipe(out, cell)
    if done is None:
        return None
    changed = recipe_changes(done, cell_recipe(spec, cell, out / "cells", model_config))
    if changed:
        return f"recipe changed: {', '.join(c.split(':', 1)[0] for c in changed)}"
    if not cell.is_teacher:
        t = cell_dir(out, teacher_cell(spec, cell.task)) / "summary.json"
        if t.is_file() and t.stat().st_mtime > (cell_dir(out, cell) / "summary.json").stat().st_mtime:
            return "its teacher was re-trained after it"
    return None


def prepare_out(spec: ExperimentSpec, out: Path) -> None:
    """Create ``out`` and record the spec (``spec.yaml``, the latest one used on this grid)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))


def stage_command(cell: Cell, recipe_file: Path, launcher: list[str] | None = None) -> list[str]:
    """The argv that trains one cell: ``python -m sparsebert.cli <finetune|prune> --recipe FILE``, or with a
    ``launcher`` (e.g. ``accelerate launch --num_processes 8``) ``<launcher> -m sparsebert.cli ...``, which
    starts the stage on several processes (:mod:`sparsebert.distributed`; the recipe's global batch,
    learning rate and pruning events stay those of one process)."""
    stage = "finetune" if cell.is_teacher else "prune"
    head = [*launcher] if launcher else [sys.executable]
    return [*head, "-m", "sparsebert.cli", stage, "--recipe", str(recipe_file)]


def run_cell(spec: ExperimentSpec, cell: Cell, out: Path, model_config=None, replace: bool = False) -> CellStatus:
    """Write the cell's recipe and run its stage in a subprocess (console output to ``logs/``).

    A half-done cell (a killed run) continues from its last training state
    (:mod:`sparsebert.checkpointing`); ``replace`` re-trains a finished (stale) cell.

    A cell that another run of the same grid finished after this run listed its work (two ``sparsebert
    experiment`` processes on one output, e.g. a second one started to use an idle core) is not run
    again: its output, recipe and log are left as they are.

    Returns:
        :class:`CellStatus` (``ran``, ``failed`` with the last line of the cell's log, or ``done`` when the
        cell was finished meanwhile).
    """
    if not replace and is_done(out, cell):
        return CellStatus(cell, "done", 0.0, "finished meanwhile by another run of this grid")
    recipe = cell_recipe(spec, cell, out / "cells", model_config)
    if replace:  # drop the stale result; a partial run of the new recipe (a killed attempt) still resumes
        shutil.rmtree(cell_dir(out, cell), ignore_errors=True)
    recipe_file = out / "recipes" / f"{cell.id}.yaml"
    write_text_atomic(recipe_file, recipe_yaml(recipe))
    log_file = out / "logs" / f"{cell.id}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(log_file, "w", encoding="utf-8") as log:
        cmd = stage_command(cell, recipe_file, spec.launcher)
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"})
    seconds = time.time() - t0
    if proc.returncode == 0 and is_done(out, cell):
        return CellStatus(cell, "ran", seconds)
    lines = [ln for ln in log_file.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return CellStatus(cell, "failed", seconds, f"exit {proc.returncode}: {lines[-1] if lines else 'no output'} "
                      f"(log: {log_file})")


def _schedule(spec: ExperimentSpec, todo: list[Cell], out: Path, model_config, workers: int,
              log: Callable[[str], None], replace: set[Cell]) -> list[CellStatus]:
    """Run ``todo`` on ``workers`` parallel cells, in order, each student once its teacher is ready.

    A worker never idles while a runnable cell waits: students of a task whose teacher has
    finished start while other teachers still train. Students of a failed teacher are skipped.
    """
    teacher_state = {c.task: "pending" for c in todo if c.is_teacher}

    def teacher_ok(task: str) -> str:
        if task in teacher_state:
            return teacher_state[task]
        return "ok" if is_done(out, teacher_cell(spec, task)) else "failed"

    def one(cell: Cell) -> CellStatus:
        log(f"start  {cell.id}")
        status = run_cell(spec, cell, out, model_config, replace=cell in replace)
        log(f"{status.state:6s} {cell.id} ({status.seconds:.0f} s){' ' + status.message if status.message else ''}")
        return status

    pending, running, results = list(todo), {}, []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            for c in [c for c in pending if not c.is_teacher and teacher_ok(c.task) == "failed"]:
                pending.remove(c)
                results.append(CellStatus(c, "skipped", message=f"teacher {teacher_cell(spec, c.task).id} failed"))
            while len(running) < workers:
                cell = next((c for c in pending if c.is_teacher or teacher_ok(c.task) == "ok"), None)
                if cell is None:
                    break
                pending.remove(cell)
                running[pool.submit(one, cell)] = cell
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                status = future.result()
                del running[future]
                results.append(status)
                if status.cell.is_teacher:
                    teacher_state[status.cell.task] = "ok" if status.state in ("ran", "done") else "failed"
    return results


def run_experiment(spec_path: str | Path, out: str | Path | None = None, *, workers: int | None = None,
                   overwrite: bool = False, dry_run: bool = False, bench: bool = True,
                   log: Callable[[str], None] = print, launcher: list[str] | None = None,
                   report_only: bool = False) -> dict:
    """Run (or resume) the grid of ``spec_path``, then the S4 bench, then write results and plots.

    Args:
        out: output directory (default ``runs/experiments/<spec.name>``).
        workers: parallel cells (default: the spec's ``workers``); each gets
            ``spec.threads`` or ``cpu_count // workers`` torch threads.
        dry_run: list the cells and write their recipes, train nothing.
        bench: run the S4 bench when the spec has one.
        launcher: overrides the spec's ``launcher`` (see :func:`stage_command`).
        report_only: write ``results.json`` / ``results.md`` / plots from the cells finished so far (the
            others listed as missing) and train and time nothing; e.g. for a grid stopped part-way.
    Returns:
        ``{"out", "cells": [CellStatus...], "results": results dict or None}``.
    Resume: finished cells whose recipe is unchanged (and whose teacher was not re-trained
    after them) are skipped; changed ones are re-trained; a killed cell continues from its last
    training state. ``overwrite`` deletes every cell first.

    Raises:
        SpecError: invalid spec.
        InputError: ``report_only`` with ``overwrite``, or on an ``out`` that does not exist.
    """
    spec = load_spec(spec_path)
    out = (Path(out) if out is not None else Path("runs/experiments") / spec.name).resolve()  # cell paths absolute
    workers = workers or spec.workers
    if launcher:
        spec = spec.model_copy(update={"launcher": list(launcher)})
    if spec.threads is None:
        spec = spec.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // workers)})
    if report_only:
        from sparsebert.experiment.report import write_results

        if overwrite or not out.is_dir():
            raise InputError(f"--report-only reports on an existing grid: {out} does not exist" if not overwrite
                             else "--report-only and --overwrite exclude each other")
        cells = expand_grid(spec)
        results = write_results(spec, out, cells, spec_path=Path(spec_path))
        return {"out": out, "cells": [CellStatus(c, "done") for c in cells if is_done(out, c)], "results": results}
    if overwrite:
        for sub in ("cells", "recipes", "logs", "bench", "plots"):
            shutil.rmtree(out / sub, ignore_errors=True)
    prepare_out(spec, out)
    cells = expand_grid(spec)
    model_config = None
    if any(c.variant == "small-dense" for c in cells):
        from transformers import AutoConfig

        from sparsebert.models import hub_errors, resolve_model

        path = resolve_model(spec.model)
        with hub_errors(spec.model, path):
            model_config = AutoConfig.from_pretrained(path)
    stale = {c: r for c in cells if (r := stale_reason(spec, out, c, model_config))}
    retrain = {c.task for c in cells if c.is_teacher and (c in stale or not is_done(out, c))}
    stale.update({c: "its teacher is re-trained" for c in cells
                  if c.task in retrain and not c.is_teacher and is_done(out, c) and c not in stale})
    todo = [c for c in cells if not is_done(out, c) or c in stale]
    log(f"{spec.name}: {len(cells)} cells, {len(cells) - len(todo)} finished earlier, {len(todo)} to run "
        f"({workers} worker(s) x {spec.threads} thread(s)) -> {out}")
    for c, reason in stale.items():
        log(f"  stale {c.id}: {reason}")
    statuses = [CellStatus(c, "done") for c in cells if c not in todo]
    if dry_run:
        for c in todo:
            write_text_atomic(out / "recipes" / f"{c.id}.yaml", recipe_yaml(cell_recipe(spec, c, out / "cells", model_config)))
            log(f"  {c.id}")
        return {"out": out, "cells": statuses + [CellStatus(c, "planned") for c in todo], "results": None}
    statuses += _schedule(spec, todo, out, model_config, workers, log, set(stale))
    ran = {st.cell for st in statuses if st.state == "ran"}
    for task in spec.tasks:  # re-time a task whose compared models were (re)trained
        if ran & set(s4_models(spec, task).values()):
            (out / "bench" / f"{task}.json").unlink(missing_ok=True)
    if bench and spec.bench is not None:
        run_s4_benches(spec, out, log)
    from sparsebert.experiment.report import write_results

    results = write_results(spec, out, cells, spec_path=Path(spec_path))
    return {"out": out, "cells": statuses, "results": results}
