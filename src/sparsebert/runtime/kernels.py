"""The candidate kernels for one pruned matrix, and how to time them.

:func:`candidates` lists what can run a given weight on a given device (with the reason for
each kernel left out); :func:`time_candidates` measures them on the real shape, interleaved
round by round so that drift in machine load hits every candidate alike, and returns the
median time of each. The dense candidate is the original ``nn.Linear``: a sparse kernel is
used only when it is measured faster.

int8 kernels (:data:`INT8_FAMILIES`) change the numerics, so they are never offered by default:
only with ``int8=True`` (:func:`sparsebert.runtime.convert`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.runtime.int8 import INT8_TILES, MAX_IN_FEATURES, Int8BlockLinear
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
#: kernel families with the model's own numerics, in the order they are listed in reports (the default)
FAMILIES = ("dense", "sbk", "torch-csr", "torch-bsr", "mkl-csr", "2:4")
#: int8 kernel families (sparsebert.runtime.int8), offered only with ``int8=True``
INT8_FAMILIES = ("sbk-int8",)
INT8_ROWS = (16, 64, 0)
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


def _int8_tiles(tokens: int) -> tuple[int, ...]:
    keep = tuple(t for t in INT8_TILES if t <= max(8, 2 * tokens))
    return keep or (8,)


def check_families(families: tuple[str, ...] | None, int8: bool = False) -> set[str]:
    """The kernel families to consider: ``families`` (all of :data:`FAMILIES` when None) and ``dense``,
    plus :data:`INT8_FAMILIES` with ``int8``.

    Raises:
        InputError: an unknown family, or an int8 family without ``int8=True`` (a ``ValueError``),
            naming it and the known ones.
    """
    given = set(families or FAMILIES)
    unknown = given - set(FAMILIES) - set(INT8_FAMILIES)
    if unknown:
        raise InputError(f"unknown kernel famil{'y' if len(unknown) == 1 else 'ies'} {sorted(unknown)}; "
                         f"known: {list(FAMILIES + INT8_FAMILIES)}")
    if not int8 and given & set(INT8_FAMILIES):
        raise InputError(f"kernel famil{'y' if len(given & set(INT8_FAMILIES)) == 1 else 'ies'} "
                         f"{sorted(given & set(INT8_FAMILIES))} quantise to int8 and change the numerics: "
                         "pass int8=True to allow them")
    return given | {DENSE} | (set(INT8_FAMILIES) if int8 else set())


def candidates(linear: nn.Linear, tokens: int, families: tuple[str, ...] | None = None,
               int8: bool = False) -> tuple[list[Candidate], dict[str, str]]:
    """Kernels that can run ``linear`` for ``tokens`` rows of input on its device.

    Args:
        linear: the pruned ``nn.Linear`` (its weight holds exact zeros).
        tokens: batch x sequence length the choice is made for.
        families: restrict to these kernel families (``dense`` is always included).
        int8: also offer the int8 kernels (:data:`INT8_FAMILIES`; they change the numerics).
    Returns:
        ``(candidates, skipped)``; ``skipped`` maps a family to why it was not offered.
    Raises:
        InputError: an unknown family, or an int8 family without ``int8`` (a ``ValueError``).
    """
    from sparsebert.runtime.build import build_error, load_kernel

    wanted = check_families(families, int8)
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
    i8_reason = None
    if device != "cpu":
        i8_reason = "CPU only"
    elif load_kernel() is None:
        i8_reason = f"extension not built: {build_error()} (the torch reference is exact but slower than dense)"
    elif linear.in_features > MAX_IN_FEATURES:
        i8_reason = f"in_features {linear.in_features} > {MAX_IN_FEATURES} could overflow the int32 accumulator"
    elif not torch.isfinite(w).all():
        i8_reason = "weight holds inf/NaN"
    offer("sbk-int8", i8_reason, lambda: [
        Candidate("sbk-int8", (("tile", t), ("rows", r)), lambda lin, t=t, r=r: Int8BlockLinear(w, b, tile=t, rows=r))
        for t in _int8_tiles(tokens) for r in INT8_ROWS])
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
