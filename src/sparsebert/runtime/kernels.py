"""The candidate kernels for one pruned matrix, and how to time them.

:func:`candidates` lists what can run a given weight on a given device (with the reason for
each kernel left out); :func:`time_candidates` measures them on the real shape, interleaved
round by round so that drift in machine load hits every candidate alike, and returns the
median time of each. The dense candidate is the original ``nn.Linear``: a sparse kernel is
used only when it is measured faster.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.runtime.linear import (
    CSRKernelLinear,
    MKLLinear,
    SemiStructuredLinear,
    TorchBSRLinear,
    TorchCSRLinear,
    block_fill,
    is_2_4,
    mkl_available,
)
from sparsebert.timing import time_calls

DENSE = "dense"
#: kernel families, in the order they are listed in reports
FAMILIES = ("dense", "sbk", "torch-csr", "torch-bsr", "mkl-csr", "2:4")
SBK_TILES = (16, 32, 64, 128)
SBK_ROWS = (16, 64, 0)  # 0: all rows of a token tile in one task
NT_MIN_BYTES = 8 << 20  # output size from which non-temporal stores are also tried
BSR_BLOCKS = (4, 8, 16, 32)
#: a BSR layout is offered only when it stores at most this many entries per non-zero
MAX_BSR_FILL = 2.0


@dataclass(frozen=True)
class Candidate:
    """One way to run a matrix: a kernel family, its parameters, and how to build the module."""

    family: str
    params: tuple[tuple[str, int], ...] = ()
    build: Callable[[nn.Linear], nn.Module] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    @property
    def label(self) -> str:
        if not self.params:
            return self.family
        return f"{self.family}[{','.join(f'{k}={v}' for k, v in self.params)}]"


def _sbk_tiles(tokens: int) -> tuple[int, ...]:
    # Tiles much wider than the token count only compute padding.
    keep = tuple(t for t in SBK_TILES if t <= max(16, 2 * tokens))
    return keep or (16,)


def check_families(families: tuple[str, ...] | None) -> set[str]:
    """The kernel families to consider: ``families`` (all of :data:`FAMILIES` when None) and ``dense``.

    Raises:
        InputError: an unknown family (a ``ValueError``), naming it and the known ones.
    """
    wanted = set(families or FAMILIES) | {DENSE}
    unknown = wanted - set(FAMILIES)
    if unknown:
        raise InputError(f"unknown kernel famil{'y' if len(unknown) == 1 else 'ies'} {sorted(unknown)}; known: {list(FAMILIES)}")
    return wanted


def candidates(linear: nn.Linear, tokens: int, families: tuple[str, ...] | None = None) -> tuple[list[Candidate], dict[str, str]]:
    """Kernels that can run ``linear`` for ``tokens`` rows of input on its device.

    Args:
        linear: the pruned ``nn.Linear`` (its weight holds exact zeros).
        tokens: batch x sequence length the choice is made for.
        families: restrict to these kernel families (``dense`` is always included).
    Returns:
        ``(candidates, skipped)``; ``skipped`` maps a family to why it was not offered.
    Raises:
        InputError: an unknown family (a ``ValueError``).
    """
    from sparsebert.runtime.build import build_error, load_kernel

    wanted = check_families(families)
    w, b = linear.weight.detach(), (None if linear.bias is None else linear.bias.detach())
    device, dtype = w.device.type, w.dtype
    out: list[Candidate] = [Candidate(DENSE, (), lambda lin: lin)]
    skipped: dict[str, str] = {}

    def offer(family: str, reason: str | None, make: Callable[[], list[Candidate]]) -> None:
        if family not in wanted:
            return
        if reason:
            skipped[family] = reason
        else:
            out.extend(make())

    sbk_reason = None
    if device != "cpu":
        sbk_reason = "CPU only"
    elif dtype != torch.float32:
        sbk_reason = f"fp32 only (weight is {dtype})"
    elif load_kernel() is None:
        sbk_reason = f"extension not built: {build_error()}"
    # non-temporal output stores only pay when the output is far larger than the caches
    nts = (0, 1) if tokens * linear.out_features * 4 >= NT_MIN_BYTES else (0,)
    offer("sbk", sbk_reason, lambda: [
        Candidate("sbk", (("tile", t), ("rows", r)) + ((("nt", 1),) if nt else ()),
                  lambda lin, t=t, r=r, nt=nt: CSRKernelLinear(w, b, tile=t, rows=r, nt=nt))
        for t in _sbk_tiles(tokens) for r in SBK_ROWS for nt in nts])
    offer("torch-csr", None, lambda: [Candidate("torch-csr", (), lambda lin: TorchCSRLinear(w, b))])
    fills = {bs: block_fill(w, bs) for bs in BSR_BLOCKS}
    blocky = [bs for bs, f in fills.items() if f <= MAX_BSR_FILL]
    offer("torch-bsr", None if blocky else f"pattern not blocky (fill {min(fills.values()):.1f}x at best)", lambda: [
        Candidate("torch-bsr", (("block", bs),), lambda lin, bs=bs: TorchBSRLinear(w, b, block=bs)) for bs in blocky])
    mkl_reason = None
    if device != "cpu":
        mkl_reason = "CPU only"
    elif not mkl_available():
        mkl_reason = "sparse_dot_mkl not installed (pip install 'sparsebert[mkl]')"
    offer("mkl-csr", mkl_reason, lambda: [Candidate("mkl-csr", (), lambda lin: MKLLinear(w, b))])
    s24_reason = None
    if device != "cuda":
        s24_reason = "CUDA only"
    elif dtype not in (torch.float16, torch.bfloat16):
        s24_reason = "fp16/bf16 only"
    elif not is_2_4(w):
        s24_reason = "pattern is not 2:4"
    offer("2:4", s24_reason, lambda: [Candidate("2:4", (), lambda lin: SemiStructuredLinear(w, b))])
    return out, skipped


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_candidates(modules: dict[str, nn.Module], x: torch.Tensor, rounds: int = 15, warmup: int = 2,
                    budget_s: float = 3.0, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median seconds per call of each module on ``x``, measured round-robin
    (:func:`sparsebert.timing.time_calls`).

    Args:
        modules: label -> module computing ``[tokens, in] -> [tokens, out]``.
        x: the input (real token count and width).
        rounds: timed calls per module (at most; at least 3).
        warmup: untimed calls per module first.
        budget_s: no further round once 3 rounds are done and ``budget_s`` seconds have passed
            (large token counts).
    Returns:
        label -> median seconds per call.
    """
    calls = {label: (lambda m=m: m(x)) for label, m in modules.items()}
    with torch.no_grad():
        times = time_calls(calls, warmup=warmup, min_iters=3, max_iters=max(3, rounds), budget_s=budget_s,
                           sync=lambda: _sync(x.device), clock=clock)
    return {k: statistics.median(v) for k, v in times.items()}
