"""Resumable training for ``finetune`` and ``prune``: lock, staging directory and saved states.

Layout beside an output ``DIR/NAME``::

    DIR/.NAME.filelock                  lock of the output (sparsebert.io.output_lock, filelock library)
    DIR/.NAME.lock                      the pid of the lock's holder
    DIR/.NAME.partial/                  staging directory, at a fixed place so that it survives a crash
        log.jsonl                       the run log
        states/state-00000400/          the newest complete training state (below)
        states/.tmp-00000600-<pid>/     a state being written (removed when a run finds it)
        model, tokenizer, summary.json, recipe.yaml   written at the end

At the end of a run ``MANIFEST.json`` (sha256 and size of every output file,
:mod:`sparsebert.integrity`) is written, ``states/`` removed and the directory renamed to
``DIR/NAME``. A training state is written every ``save_every`` optimizer steps (recipe field,
default 200; None = no periodic states) and after the last step, always after that step's log
records and evaluation. It holds no pickle — tensors in safetensors, everything else JSON:

=====================  ==================================================================
model.safetensors      trainable modules as trained (fp32): ``model.<name>``, ``extra.<i>.<name>``
                       (e.g. the hidden-state projection of distillation)
best.safetensors       the best weights so far (finetune keeps the best checkpoint), model names
optimizer.safetensors  AdamW per-parameter state: ``<param index>.exp_avg|exp_avg_sq|step``
sparsifier.safetensors pruning masks (bool, True = kept) by target name (prune with sparsity > 0)
scorer.safetensors     the pruning criterion's running state (movement / Taylor / OBS), when it has one
rng.safetensors        torch generator states (uint8): ``torch_cpu``, ``torch_cuda.<device>``
state.json             step; epoch and batches of it consumed; train seconds; latest eval results,
                       eval history, best metric and its step; log.jsonl size (bytes); AdamW
                       param groups; LR scheduler state; sparsifier's current sparsity; Python and
                       NumPy RNG states; the recipe
MANIFEST.json          written last: a state directory without it, or disagreeing with it, is
                       incomplete or corrupt
=====================  ==================================================================

A state is written to ``states/.tmp-*``, fsynced, renamed to ``states/state-<step>``, and only
then are older states deleted, so a complete state exists at every instant after the first.

Resume: a run (``--resume`` or simply the same command again) finds ``.NAME.partial`` with a
complete state and continues from it: weights, optimizer, scheduler, masks and RNG states are
restored, the epoch's batch order is re-created (``batch_indices`` with seed + epoch) and the
consumed batches skipped, and ``log.jsonl`` is cut back to its size at the state, so the log
has no duplicated records (one ``resume`` record marks the join). With the same thread count
the result on CPU is bit-identical to an uninterrupted run. Without ``--resume`` a missing or
state-less partial run starts afresh; with it, that is an error. The recipe must be the one the
partial run was started with, except for :data:`MAY_CHANGE` (threads, overwrite, resume,
save_every); otherwise the run fails and ``--overwrite`` discards the partial run. A run that
was started with ``--overwrite`` keeps its permission to replace an existing output on resume.

Several processes (``accelerate launch``, :mod:`sparsebert.distributed`): only the main process takes
the lock, decides whether to resume, creates the staging directory and writes the log, the states
and the outputs; the others wait for its decision (an error is raised on every rank) and then every
rank restores the same state (the staging directory must be on a filesystem all nodes see). A state
holds the main process's generator states; the other ranks' dropout is seeded per step, so nothing
per rank needs saving, and a run may be resumed with another number of processes.

Integrity: the newest state is verified against its manifest before anything is loaded; a
missing, truncated or altered file raises :class:`~sparsebert.integrity.CorruptCheckpointError`
naming it. There is no fallback to an older state (older states are deleted once a newer one is
complete); ``--overwrite`` starts over.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sparsebert.distributed import NullLog, context
from sparsebert.errors import InputError, SparsebertError
from sparsebert.integrity import CorruptCheckpointError, verify_manifest, write_manifest
from sparsebert.io import JsonlLogger, check_output_dir, move_into_place, output_lock
from sparsebert.recipe import TrainRecipe

STATE_FORMAT = "sparsebert-train-state"
STATE_VERSION = 2
#: Recipe fields that may differ between a partial run and the run that resumes it.
MAY_CHANGE = frozenset({"threads", "overwrite", "resume", "save_every"})


class ResumeError(SparsebertError, ValueError):
    """A partial run cannot be continued (other recipe, or ``--resume`` with nothing to resume)."""


@dataclass
class Progress:
    """Where training stands, besides tensors; saved in ``state.json``.

    ``step`` counts completed optimizer steps; ``batches_in_epoch`` the batches of epoch
    ``epoch`` already trained on; ``train_seconds`` the time spent in training steps (s);
    ``results`` the latest eval results ``{split: {metric: value}}``; ``history`` one entry per
    evaluation; ``best_score`` the best main metric so far (None before the first evaluation).
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    train_seconds: float = 0.0
    results: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    best_score: float | None = None
    best_results: dict = field(default_factory=dict)
    best_step: int = 0
    last_eval: dict = field(default_factory=dict)


def _cpu(t: torch.Tensor) -> torch.Tensor:
    # a private contiguous copy: safetensors refuses tensors that share storage (tied weights)
    return t.detach().to("cpu", copy=True).contiguous()


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"torch_cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return tensors, {"python": [version, list(internal), gauss],
                     "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"torch_cuda.{i}" in tensors:
                torch.cuda.set_rng_state(tensors[f"torch_cuda.{i}"], i)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_state(directory: Path, *, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, scheduler,
                sparsifier, progress: Progress, best_state: dict[str, torch.Tensor] | None, log_bytes: int,
                recipe: TrainRecipe) -> None:
    """Write the files of one training state (see the module docstring) into ``directory``.

    Not atomic by itself: :meth:`TrainingRun.save` writes into a temporary directory, adds the
    manifest and renames it.
    """
    save_file({f"{prefix}.{k}": _cpu(v) for prefix, m in modules.items() for k, v in m.state_dict().items()},
              directory / "model.safetensors")
    if best_state is not None:
        save_file({k: _cpu(v) for k, v in best_state.items()}, directory / "best.safetensors")
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, per_param in opt["state"].items():
        for k, v in per_param.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = _cpu(v)
            else:
                scalars[f"{idx}.{k}"] = v
    save_file(tensors, directory / "optimizer.safetensors")
    meta: dict[str, Any] = {"format": STATE_FORMAT, "version": STATE_VERSION, "progress": asdict(progress),
                            "log_bytes": log_bytes, "optimizer": {"param_groups": opt["param_groups"],
                                                                  "scalars": scalars},
                            "scheduler": scheduler.state_dict(), "sparsifier": None}
    if sparsifier is not None:
        sp = sparsifier.state_dict()
        save_file({k: _cpu(v) for k, v in sp["masks"].items()}, directory / "sparsifier.safetensors")
        if sp["scorer"]:
            save_file({k: _cpu(v) for k, v in sp["scorer"].items()}, directory / "scorer.safetensors")
        meta["sparsifier"] = {"current_sparsity": sp["current_sparsity"]}
    rng_tensors, meta["rng"] = _rng_state()
    save_file(rng_tensors, directory / "rng.safetensors")
    meta["recipe"] = recipe.model_dump(mode="json")
    (directory / "state.json").write_text(json.dumps(meta, allow_nan=True) + "\n", encoding="utf-8")


def read_state(directory: Path, *, modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, scheduler,
               sparsifier) -> tuple[Progress, dict[str, torch.Tensor] | None]:
    """Restore a verified state (see :meth:`TrainingRun.__enter__`) into the given objects.

    Returns:
        ``(progress, best_state)``; ``best_state`` is None when the state has no best weights.
    Raises:
        ValueError: the state does not fit these modules / optimizer / sparsifier (names, shapes).
    """
    meta = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    weights = load_file(directory / "model.safetensors")
    for prefix, module in modules.items():
        sub = {k[len(prefix) + 1:]: v for k, v in weights.items() if k.startswith(prefix + ".")}
        module.load_state_dict(sub, strict=True)
    state: dict[int, dict[str, Any]] = {}
    for key, t in load_file(directory / "optimizer.safetensors").items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    for key, v in meta["optimizer"]["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = meta["optimizer"]["param_groups"]
    for saved, current in zip(groups, optimizer.param_groups):
        for k, v in saved.items():  # JSON made tuples (AdamW betas) lists
            if isinstance(current.get(k), tuple):
                saved[k] = tuple(v)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    if (sparsifier is None) != (meta["sparsifier"] is None):
        raise ResumeError(f"{directory}: the state was saved {'without' if sparsifier else 'with'} a sparsifier")
    if sparsifier is not None:
        scorer_file = directory / "scorer.safetensors"
        scorer = load_file(scorer_file) if scorer_file.is_file() else {}
        sparsifier.load_state_dict({"masks": load_file(directory / "sparsifier.safetensors"), "scorer": scorer,
                                    **meta["sparsifier"]})
    best = load_file(directory / "best.safetensors") if (directory / "best.safetensors").is_file() else None
    _set_rng_state(load_file(directory / "rng.safetensors"), meta["rng"])
    return Progress(**meta["progress"]), best


def recipe_changes(saved: dict[str, Any], recipe: TrainRecipe) -> list[str]:
    """Fields (outside :data:`MAY_CHANGE`) whose value differs: ``["name: old -> new", ...]``.

    A field missing from ``saved`` whose new value is the field's default is not a change: the run
    was made by a sparsebert without that field, and a new field's default keeps the behaviour from
    before it existed (so upgrading sparsebert neither stops a resume nor re-runs a finished grid cell).
    """
    new = recipe.model_dump(mode="json")
    fields = type(recipe).model_fields

    def unchanged(k: str) -> bool:
        if k not in saved and k in fields:
            return new.get(k) == fields[k].default
        return saved.get(k) == new.get(k)

    keys = sorted((set(saved) | set(new)) - MAY_CHANGE)
    return [f"{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in keys if not unchanged(k)]


def _state_step(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


class TrainingRun:
    """Output side of one ``finetune``/``prune`` run: lock, resumable staging directory, states.

    Use as a context manager around the whole stage. On entry: take the output lock, decide
    whether to resume (see the module docstring) and check the output directory rule. On normal
    exit: write ``MANIFEST.json``, drop the states and rename the staging directory into place
    (the run log must be closed by then). On an exception the staging directory is kept when it
    holds a complete state (to resume from), else removed; the lock is released in every case.

    Attributes:
        out: the output directory; ``stage``: where the stage writes its files.
        state_dir: the verified state this run continues from, or None (fresh start).

    Raises (on entry):
        OutputLockedError: another run writes ``out``.
        OutputExistsError: ``out`` exists and may not be replaced.
        CorruptCheckpointError: the newest state is incomplete or corrupt (names the file).
        ResumeError: another recipe, or ``resume`` without a partial run.
    """

    def __init__(self, recipe: TrainRecipe):
        self.recipe = recipe
        self.out = Path(recipe.out)
        self.stage = self.out.parent / f".{self.out.name}.partial"
        self.states = self.stage / "states"
        self.state_dir: Path | None = None
        self._meta: dict[str, Any] = {}
        self._may_replace = recipe.overwrite
        self._lock = contextlib.ExitStack()

    @property
    def resumed(self) -> bool:
        """True when this run continues a saved state."""
        return self.state_dir is not None

    def __enter__(self) -> "TrainingRun":
        ctx = context()
        ctx.check_global_batch(self.recipe.batch_size)
        self.state_dir, self._meta = ctx.on_main(self._enter)  # the other ranks wait for the main one's decision
        if self.state_dir is not None and not self.state_dir.is_dir():
            raise InputError(f"process {ctx.rank} cannot see the training state {self.state_dir} that the main process "
                             "resumes from: put the output on a filesystem that every node shares")
        return self

    def _enter(self) -> tuple[Path | None, dict[str, Any]]:
        self._lock.enter_context(output_lock(self.out))
        try:
            self._prepare()
        except BaseException:
            self._lock.close()
            raise
        return self.state_dir, self._meta

    def _prepare(self) -> None:
        r = self.recipe
        if r.overwrite:
            shutil.rmtree(self.stage, ignore_errors=True)
        self.state_dir = self._newest_state()
        if self.state_dir is None:
            self._check_fresh_start()
            shutil.rmtree(self.stage, ignore_errors=True)
            self.states.mkdir(parents=True)
            self._may_replace = r.overwrite
            return
        self._meta = self._check_resume(self.state_dir)
        self._may_replace = bool(self._meta["recipe"].get("overwrite"))

    def _check_fresh_start(self) -> None:
        if self.recipe.resume:
            raise ResumeError(f"nothing to resume for {self.out}: no complete training state in {self.stage}; "
                              "run without --resume to start")
        check_output_dir(self.out, self.recipe.overwrite)

    def _check_resume(self, state_dir: Path) -> dict[str, Any]:
        """The metadata of ``state_dir`` once it is known to continue this recipe into an allowed output."""
        meta = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise ResumeError(f"{state_dir}: not a version-{STATE_VERSION} sparsebert training state; "
                              "pass --overwrite to discard it")
        changes = recipe_changes(meta["recipe"], self.recipe)
        if changes:
            raise ResumeError(f"{self.stage} holds a partial run with another recipe ({'; '.join(changes)}); "
                              "pass --overwrite to discard it")
        check_output_dir(self.out, bool(meta["recipe"].get("overwrite")))
        return meta

    def check(self) -> Path | None:
        """What entering would decide, without taking the lock and without changing anything on disk
        (``prune --dry-run``).

        Returns:
            The training state a run would resume from, or None (a fresh start).
        Raises:
            As on entry (except :class:`OutputLockedError`): the output rule, ``resume`` without a
            partial run, a partial run of another recipe or a corrupt newest state.
        """
        found = [] if self.recipe.overwrite else self._states()
        if not found:
            self._check_fresh_start()
            return None
        self._verify_state(found[-1])
        self._check_resume(found[-1])
        return found[-1]

    def _states(self) -> list[Path]:
        """The complete-looking state directories, oldest first."""
        return sorted(self.states.glob("state-*"), key=_state_step) if self.states.is_dir() else []

    def _verify_state(self, state: Path) -> None:
        try:
            verify_manifest(state, required=True)
        except CorruptCheckpointError as err:
            raise CorruptCheckpointError(f"{err}; cannot resume {self.out}: pass --overwrite to discard the "
                                         "partial run") from None

    def _newest_state(self) -> Path | None:
        if not self.states.is_dir():
            return None
        for tmp in self.states.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        found = self._states()
        if not found:
            return None
        self._verify_state(found[-1])
        return found[-1]

    def open_log(self) -> JsonlLogger | NullLog:
        """The run log ``stage/log.jsonl``; when resuming, cut back to its size at the state. Other
        processes than the main one get a :class:`~sparsebert.distributed.NullLog`."""
        if not context().is_main:
            return NullLog()
        return JsonlLogger(self.stage / "log.jsonl", truncate_at=self._meta["log_bytes"] if self.resumed else None)

    def restore(self, **objects) -> tuple[Progress, dict[str, torch.Tensor] | None]:
        """Load the state being resumed into ``objects`` (see :func:`read_state`)."""
        return read_state(self.state_dir, **objects)

    def save(self, progress: Progress, *, best_state, log_bytes: int, **objects) -> Path:
        """Write a complete state for ``progress.step`` atomically, then delete older states (the main
        process only; the others return at once).

        ``objects``: ``modules``, ``optimizer``, ``scheduler``, ``sparsifier`` (see :func:`write_state`).

        Returns:
            The new state directory ``states/state-<step>``.
        """
        final = self.states / f"state-{progress.step:08d}"
        if not context().is_main:
            return final
        if not final.exists():
            tmp = self.states / f".tmp-{progress.step:08d}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            write_state(tmp, progress=progress, best_state=best_state, log_bytes=log_bytes, recipe=self.recipe,
                        **objects)
            write_manifest(tmp)
            for f in tmp.iterdir():
                _fsync(f)
            _fsync(tmp)
            os.rename(tmp, final)
            _fsync(self.states)
        for old in self.states.glob("state-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def _has_state(self) -> bool:
        return self.states.is_dir() and any(self.states.glob("state-*"))

    def __exit__(self, exc_type, exc, tb) -> None:
        ctx = context()
        try:
            if exc_type is None:
                ctx.on_main(self._finish)  # every rank returns once the output is in place
            elif ctx.is_main and not self._has_state():
                shutil.rmtree(self.stage, ignore_errors=True)
        finally:
            self._lock.close()

    def _finish(self) -> None:
        check_output_dir(self.out, self._may_replace)
        states = tuple(p.relative_to(self.stage).as_posix() for p in self.states.rglob("*"))
        write_manifest(self.stage, exclude=states)
        # renames only between "resumable" and "done"; `.NAME.old-*` is removed by a later lock holder
        trash = self.out.parent / f".{self.out.name}.old-states-{os.getpid()}"
        os.rename(self.states, trash)
        move_into_place(self.stage, self.out)
        shutil.rmtree(trash, ignore_errors=True)
