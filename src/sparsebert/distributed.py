"""Data-parallel ``finetune`` / ``prune`` across processes, GPUs and nodes, on Hugging Face accelerate.

Launch with ``accelerate launch [--multi_gpu] --num_processes P [--num_machines ...] -m sparsebert prune ...``
(or ``torchrun``). The launcher (``torch.distributed.run`` underneath) starts one process per GPU (per
CPU slot without GPUs) and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
:func:`context` then has ``accelerate.PartialState`` create the process group (NCCL on CUDA, gloo on
CPU) and choose this process's device. Without such a launch nothing here imports accelerate or
``torch.distributed``, every helper is a no-op and a one-process run is exactly what it was
(sources: accelerate's ``PartialState`` / ``accelerate launch`` docs; PyTorch DDP notes,
https://pytorch.org/docs/stable/notes/ddp.html).

What a multi-process run keeps fixed: the **global** batch (``recipe.batch_size``), learning rate,
number of steps and pruning events are those of one process; only where the examples of a batch
are computed changes.

* **Data** (:meth:`Context.share`): every rank builds the same global batch (same seed, same order:
  :func:`sparsebert.data.encode.batch_indices`) and takes every P-th example of it (rank r: examples
  r, r+P, ...), padded to its own longest. ``batch_size`` must divide by P (:meth:`check_global_batch`).
  The last batch of an epoch may hold fewer examples: shares are then weighted by their size, and a
  rank whose share is empty computes the batch's first example with weight 0.
* **Gradients** (:meth:`Context.reduce_step`): an explicit all-reduce after ``loss.backward()``, not
  DDP's wrapper, for three reasons: the stages' loss closures call the bare model (DDP's reducer is
  armed by its own ``forward``); some parameters are unused in some phases (the prediction-only
  phase, a hidden-state projection), which DDP needs ``find_unused_parameters`` for; and the average
  is over *examples*, so a short last batch is exact. The price: communication is not overlapped
  with the backward pass (one bucketed all-reduce after it).
* **Order within a step** (:func:`sparsebert.training.fit`): forward on the rank's share -> backward
  (the Sparsifier's hooks zero pruned entries of the *local* gradient; the masks are the same on every
  rank, so masking commutes with the sum) -> :meth:`Context.reduce_step` (every gradient becomes the
  global-batch gradient) -> ``Sparsifier.observe()`` (movement / Taylor / oBERT scores see the global
  gradient) -> clipping (the global norm, equal on all ranks) -> AdamW -> pruning event and mask
  enforcement. Weights, scorer state and masks therefore stay identical on every rank (as in DDP,
  which relies on identical updates after one broadcast at the start: :meth:`broadcast_modules`).
* **Loss terms**: per-example means (logit KL, cross-entropy, MSE) average to the one-process value
  through the example weights; the attention and hidden-state terms, means over the real tokens or
  (query, key) pairs of the *global* batch, divide their share's sum by the global count
  (:func:`global_denominator`, one scalar all-reduce per call) — so every term, and the loss, is the
  one-process one up to float rounding (plain DDP would average per-share means instead).
  ``--normalize-terms`` updates its running means with the global batch's value (:func:`batch_mean`).
  Logged values are these global values (``share/`` entries: the mean of the per-rank shares) and
  ``tokens`` the sum over ranks.
* **Randomness** (:meth:`Context.seed_step`): each rank's torch generator (dropout) is seeded at every
  step from (seed, step, rank), so dropout differs between ranks and a resumed run draws the same
  masks without per-rank generator states in the training state.
* **Writers**: the main process (rank 0) alone takes the output lock, creates the staging directory,
  writes the log, the training states and the outputs; the others wait for its decision
  (:meth:`Context.on_main`) and read the state it names. Evaluation runs on every rank (same weights,
  same data, same results), logged once. Resuming needs the output on a filesystem every node sees.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from sparsebert.errors import InputError, MissingDependencyError

T = TypeVar("T")

#: Environment variables that give the number of processes of a launch (torchrun / accelerate launch,
#: then the MPI launchers that accelerate also reads).
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
#: Gradient elements per all-reduce (fp32: 128 MiB), bounding the extra memory of :meth:`Context.reduce_step`.
BUCKET_ELEMENTS = 2**25


def launched_world_size() -> int:
    """Number of processes of the launch this process belongs to (1 without a distributed launcher)."""
    for var in WORLD_SIZE_VARS:
        if os.environ.get(var, "").strip():
            return int(os.environ[var])
    return 1


class Context:
    """This process's place in a data-parallel run; a one-process run is ``Context()``.

    Attributes:
        rank: global process index (0 = main process); ``world``: number of processes;
        local_rank: index on this machine; ``device``: the device this process trains on (None on
        one process: :func:`sparsebert.training.device` decides).
    """

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device: torch.device | None = None):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device
        #: this rank's fraction of the current global batch, set by :meth:`share` (sparsebert's own training
        #: loop); None outside it, where :func:`batch_mean` and :func:`global_denominator` do nothing
        self.weight: float | None = None

    @property
    def is_main(self) -> bool:
        """True on the process that writes (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True with more than one process."""
        return self.world > 1

    def check_global_batch(self, batch_size: int) -> None:
        """Raises:
            InputError: ``batch_size`` (the global batch) does not divide by the number of processes.
        """
        if batch_size % self.world:
            raise InputError(f"the global batch size {batch_size} does not divide by the {self.world} processes of "
                             f"this launch: choose a batch size that is a multiple of {self.world}")

    def share(self, chunk: Sequence[int]) -> tuple[Sequence[int], float]:
        """This rank's examples of one global batch (indices ``chunk``) and its weight.

        Returns:
            ``(indices, weight)``: rank r takes ``chunk[r::world]``; ``weight`` = their number /
            ``len(chunk)``. An empty share becomes ``chunk[:1]`` with weight 0 (every rank must run
            forward and backward). One process: ``(chunk, 1.0)``.
        """
        if not self.distributed:
            return chunk, 1.0
        mine = list(chunk[self.rank :: self.world])
        self.weight = len(mine) / len(chunk)
        return (mine or list(chunk[:1])), self.weight

    def seed_step(self, seed: int, step: int) -> None:
        """Seed torch's generators (CPU and CUDA: dropout) from (seed, step, rank); no-op on one process."""
        if self.distributed:
            torch.manual_seed(int(np.random.SeedSequence([seed, step, self.rank]).generate_state(1)[0]))

    def reduce_step(self, params: Iterable[torch.Tensor], weight: float, loss: float, terms: dict[str, float],
                    tokens: int) -> tuple[float, dict[str, float], int]:
        """Average gradients and logged values over the global batch; one process: returns the inputs.

        Every ``p.grad`` (``p`` in ``params``, all on this process's device) becomes
        ``Σ_r weight_r · grad_r`` — the gradient of the global batch's mean loss — on every rank: one
        all-reduce (SUM) of a float64 vector ``[weight·loss, weight·terms..., tokens, has_grad...]``,
        then of the gradients flattened into fp32 buckets of at most :data:`BUCKET_ELEMENTS` elements,
        in the order of ``params`` (the same on every rank). A parameter without a gradient here but
        with one on another rank counts as zero here; one without a gradient anywhere keeps ``None``
        (AdamW skips it, as on one process). Call after ``backward()``, before ``Sparsifier.observe()``
        and clipping.

        Returns:
            ``(loss, terms, tokens)``: the weighted means of ``loss`` and of each term (same keys, in
            the same order on every rank), and the sum of ``tokens`` (real tokens of the batch).
        """
        if not self.distributed:
            return loss, terms, tokens
        import torch.distributed as dist

        params = list(params)
        keys = list(terms)
        if weight == 0:  # a placeholder example: nothing of it counts
            loss, terms, tokens = 0.0, dict.fromkeys(keys, 0.0), 0
        dev = params[0].device
        scalars = torch.tensor([weight * loss, *(weight * terms[k] for k in keys), tokens,
                                *(p.grad is not None for p in params)], dtype=torch.float64, device=dev)
        dist.all_reduce(scalars)
        head = scalars[: len(keys) + 2].tolist()
        has_grad = (scalars[len(keys) + 2 :] > 0).tolist()
        for bucket in _buckets(list(zip(params, has_grad))):
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                              for p, _ in bucket])
            flat.mul_(weight)
            dist.all_reduce(flat)
            offset = 0
            for p, anywhere in bucket:
                g = flat[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
                if not anywhere:
                    continue
                if p.grad is None:
                    p.grad = g.to(p.dtype, copy=True)
                else:
                    p.grad.copy_(g)
        return head[0], dict(zip(keys, head[1:-1])), int(round(head[-1]))

    @torch.no_grad()
    def broadcast_modules(self, modules: Iterable[nn.Module]) -> None:
        """Copy the main process's parameters and buffers to every rank (DDP does this once at the
        start); no-op on one process."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for module in modules:
            for t in module.state_dict().values():
                if t.dtype == torch.bool:  # gloo has no bool
                    tmp = t.to(torch.uint8)
                    dist.broadcast(tmp, src=0)
                    t.copy_(tmp.bool())
                else:
                    dist.broadcast(t, src=0)

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the main process only and return its result on every rank.

        The others wait for it; an exception of ``fn`` is raised on every rank (sent as the
        exception object; one that cannot be pickled becomes a ``RuntimeError`` with its text).
        One process: ``fn()``. The result must be picklable.
        """
        if not self.distributed:
            return fn()
        import torch.distributed as dist

        if self.is_main:
            try:
                result = fn()
            except BaseException as err:
                dist.broadcast_object_list([("error", _portable(err))], src=0)
                raise
            dist.broadcast_object_list([("ok", result)], src=0)
            return result
        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """The block runs on the main process first, then on the others (e.g. building a shared cache)."""
        if self.distributed and not self.is_main:
            self.barrier()
        yield
        if self.distributed and self.is_main:
            self.barrier()

    def barrier(self) -> None:
        """Wait for every rank; no-op on one process."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def _buckets(items: list[tuple[torch.Tensor, bool]]) -> list[list[tuple[torch.Tensor, bool]]]:
    out: list[list[tuple[torch.Tensor, bool]]] = [[]]
    size = 0
    for item in items:
        if out[-1] and size + item[0].numel() > BUCKET_ELEMENTS:
            out.append([])
            size = 0
        out[-1].append(item)
        size += item[0].numel()
    return [b for b in out if b]


def _portable(err: BaseException) -> BaseException:
    """``err`` if it survives the trip to the other ranks (``broadcast_object_list`` pickles it, and the
    receiver rebuilds it through ``__reduce_ex__``, as ``copy.deepcopy`` does), else a ``RuntimeError``
    with its text. (Nothing in the package unpickles bytes itself: tests/test_integrity.py.)"""
    try:
        copy.deepcopy(err)
        return err
    except Exception:  # noqa: BLE001 - any failure to rebuild it
        return RuntimeError(f"{type(err).__name__}: {err}")


@functools.cache
def context() -> Context:
    """This process's :class:`Context`, created once.

    Under a multi-process launch (:func:`launched_world_size` > 1) it creates the process group
    through ``accelerate.PartialState`` (CPU/gloo when CUDA is unavailable or ``ACCELERATE_USE_CPU``
    is set, else one GPU per process/NCCL).

    Raises:
        MissingDependencyError: a multi-process launch and accelerate is not installed.
    """
    world = launched_world_size()
    if world <= 1:
        return Context()
    try:
        from accelerate import PartialState
    except ImportError as err:
        raise MissingDependencyError(
            f"this process is one of {world} of a distributed launch, which needs Hugging Face accelerate: "
            "pip install 'sparsebert[ecosystem]' (or run a single process)") from err
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    return Context(state.process_index, state.num_processes, state.local_process_index, state.device)


def batch_mean(value: torch.Tensor) -> torch.Tensor:
    """The global batch's value of a per-share mean (weighted by :meth:`Context.share`'s weights); one
    process, or outside sparsebert's training loop (see :func:`global_denominator`): ``value`` itself. A
    collective: every rank must call it at the same point."""
    ctx = context()
    if not ctx.distributed or ctx.weight is None:
        return value
    import torch.distributed as dist

    total = value.detach().to(torch.float64) * ctx.weight
    dist.all_reduce(total)
    return total.to(value.dtype)


def global_denominator(count: torch.Tensor) -> torch.Tensor:
    """What a loss that is a sum over this rank's share divided by a count (real tokens, real
    attention pairs) must divide by so that the example-weighted mean over ranks
    (:meth:`Context.reduce_step`) is the one-process value ``Σ_r sum_r / Σ_r count_r``:
    ``(Σ_r count_r) · weight_r``, a scalar all-reduce (float64). One process, or a rank computing a
    placeholder example (weight 0): ``count`` itself. A collective: every rank must call it at the same point.
    Outside sparsebert's training loop (no :meth:`Context.share` yet, e.g. a transformers Trainer, whose DDP
    averages the per-rank losses) it returns ``count`` and communicates nothing.
    """
    ctx = context()
    if not ctx.distributed or ctx.weight is None:
        return count
    import torch.distributed as dist

    total = count.detach().to(torch.float64) * (ctx.weight > 0)  # a placeholder example counts nothing
    dist.all_reduce(total)
    return (total * ctx.weight).to(count.dtype) if ctx.weight > 0 else count


class NullLog:
    """The run log of a process that does not write (ranks other than the main one): drops records."""

    def log(self, event: str, **fields: Any) -> None:
        """Drop the record."""

    def tell(self) -> int:
        """0: nothing written."""
        return 0

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> "NullLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
