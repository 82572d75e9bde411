"""Sparsity patterns: which shapes of zeros the mask creator may produce.

A weight of ``nn.Linear`` has shape ``[out_features, in_features]`` (``y = x Wᵀ``: row ``o`` holds the
weights of output ``o``; column ``i`` multiplies input feature ``i``). Three kinds of pattern:

``unstructured``
    any weight may be pruned (:mod:`sparsebert.pruning.masks`; the default).

``RxC`` blocks, e.g. ``1x4``
    the matrix is tiled into blocks of R consecutive **rows** (output features) by C consecutive
    **columns** (input features); a block is kept or pruned whole. ``1x4`` = 1 output row x 4
    consecutive input features: the 4 int8 weights that one VNNI ``vpdpbusd`` lane multiplies with 4
    consecutive int8 inputs and accumulates into one int32, so an all-zero block is one skipped
    dot-product step. It is the block of Prune Once For All (Zafrir et al., 2021) and of DeepSparse's
    int8 sparse kernels (SparseML's ``FourBlockMaskCreator`` groups 4 along the input-channel
    dimension, dim 1 of a torch Linear weight). ``4x1`` tiles along the output features instead.

    A block's score is the **sum** of its elements' scores. All blocks of a run have the same size,
    so the sum ranks blocks exactly as the mean would (SparseML's default) within a matrix and in a
    global ranking; the sum is chosen because it is the quantity the criteria estimate for removing
    the whole block: the L1 norm for magnitude, the first-order loss change (which adds over
    weights) for movement and Taylor, and for the Optimal BERT Surgeon the joint saliency of the
    block (``OBSScorer.block_scores``, which reduces to the sum when the Fisher is diagonal).
    Exact count: ``round(s * n_blocks)`` blocks are pruned per matrix (scope ``per-matrix``) or over
    all matrices (scope ``global``, one ranking of every block), so the element sparsity is within
    ``1 / n_blocks`` of s. A block with any pruned weight counts as pruned (already-pruned blocks
    stay pruned: gradual pruning only grows sparsity). Shapes must divide: out_features by R and
    in_features by C.

``N:M``, e.g. ``2:4``
    in every group of M consecutive weights along ``in_features`` (a row, as in NVIDIA Ampere's
    2:4 sparse tensor cores: Mishra et al., *Accelerating Sparse Deep Neural Networks*, 2021; Zhou et
    al., *Learning N:M Fine-grained Structured Sparse Neural Networks*, ICLR 2021) exactly N weights
    are kept at the end of pruning. The pattern fixes the final sparsity, ``s_f = 1 - N/M``: a recipe
    that leaves ``sparsity`` out gets it from the pattern, one that gives another value is an error.
    On the way there the cubic schedule's s_t is met with an exact count, ``round(s_t * numel)``
    weights per matrix, chosen by a *capped ranking*: the lowest-scored weights of the matrix, but
    at most ``M - N`` per group (each group offers its ``M - N`` lowest weights as candidates, and the
    ``round(s_t * numel)`` lowest candidates are pruned: the greedy choice, which gives the lowest total
    score of any pruned set of that size under the per-group cap). At s_t = s_f the count equals ``groups * (M - N)`` and the cap forces
    exactly ``M - N`` pruned, i.e. exactly N kept, in every group. Each group prunes its own weights
    by construction, so a *global* ranking is rejected: scope ``global`` with an N:M pattern is an
    :class:`~sparsebert.errors.InputError` (every matrix ends at the same 1 - N/M anyway).

Every criterion works with every pattern; the Optimal BERT Surgeon scores blocks by their joint
saliency and accepts only block shapes it can score exactly against its Fisher blocks
(:class:`~sparsebert.pruning.scorers.OBSScorer`, an InputError otherwise). This module parses and
validates patterns and needs no torch (recipes import it); the mask creators are in
:mod:`sparsebert.pruning.masks` (:func:`~sparsebert.pruning.masks.pattern_masks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sparsebert.errors import InputError

UNSTRUCTURED = "unstructured"
_BLOCK = re.compile(r"^(\d+)x(\d+)$")
_NM = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class Pattern:
    """A parsed sparsity pattern (:func:`parse_pattern`).

    Attributes:
        kind: ``"unstructured"``, ``"block"`` or ``"nm"``.
        rows, cols: block shape R x C (``kind == "block"``); 1 x 1 otherwise.
        n, m: keep N of every M (``kind == "nm"``); 0 otherwise.
    """

    kind: Literal["unstructured", "block", "nm"]
    rows: int = 1
    cols: int = 1
    n: int = 0
    m: int = 0

    @property
    def text(self) -> str:
        """The canonical spelling: ``unstructured``, ``1x4``, ``2:4``."""
        if self.kind == "block":
            return f"{self.rows}x{self.cols}"
        if self.kind == "nm":
            return f"{self.n}:{self.m}"
        return UNSTRUCTURED

    @property
    def final_sparsity(self) -> float | None:
        """The sparsity the pattern fixes: ``1 - N/M`` for N:M, None for the others."""
        return 1.0 - self.n / self.m if self.kind == "nm" else None

    def __str__(self) -> str:
        return self.text


def parse_pattern(text: str | Pattern) -> Pattern:
    """Parse ``unstructured``, ``RxC`` (R, C >= 1) or ``N:M`` (1 <= N < M).

    Raises:
        InputError: anything else, naming the value and the accepted forms.
    """
    if isinstance(text, Pattern):
        return text
    s = str(text).strip().lower()
    if s == UNSTRUCTURED:
        return Pattern(UNSTRUCTURED)
    if (b := _BLOCK.match(s)) and int(b[1]) >= 1 and int(b[2]) >= 1:
        return Pattern("block", rows=int(b[1]), cols=int(b[2]))
    if (nm := _NM.match(s)) and 1 <= int(nm[1]) < int(nm[2]):
        return Pattern("nm", n=int(nm[1]), m=int(nm[2]))
    raise InputError(f"pattern {text!r} is not a sparsity pattern: use 'unstructured', blocks 'RxC' of R output "
                     f"rows by C input columns with R, C >= 1 (e.g. '1x4', '4x1'), or 'N:M' keeping N of every M "
                     f"consecutive weights with 1 <= N < M (e.g. '2:4', '1:8')")


def check_pattern(pattern: str | Pattern, shapes: dict[str, tuple[int, ...]], scope: str = "per-matrix") -> Pattern:
    """Check that ``pattern`` can tile every matrix and goes with ``scope``; return it parsed.

    Args:
        shapes: matrix name -> weight shape ``[out_features, in_features]``.
    Raises:
        InputError: bad pattern text, a matrix whose shape the blocks / groups do not divide (named with
            its shape), or an N:M pattern with scope ``global``.
    """
    p = parse_pattern(pattern)
    if p.kind == "nm" and scope == "global":
        raise InputError(f"pattern {p.text!r} keeps {p.n} of every {p.m} weights in each group, so every matrix "
                         f"ends at sparsity {p.final_sparsity:g} whatever the ranking: scope 'global' does not "
                         f"apply to N:M patterns; use scope 'per-matrix'")
    if p.kind == UNSTRUCTURED:
        return p
    rows, cols = (p.rows, p.cols) if p.kind == "block" else (1, p.m)
    for name, shape in shapes.items():
        if len(shape) != 2 or shape[0] % rows or shape[1] % cols:
            need = (f"out_features divisible by {rows} and in_features by {cols}" if p.kind == "block"
                    else f"in_features divisible by {cols}")
            raise InputError(f"pattern {p.text!r} needs {need}, but matrix {name!r} has shape "
                             f"{'x'.join(map(str, shape))}")
    return p


def check_pattern_sparsity(pattern: str | Pattern, sparsity: float) -> None:
    """An N:M pattern fixes the final sparsity at ``1 - N/M``; any other pattern takes any sparsity.

    Raises:
        InputError: an N:M pattern with another sparsity (naming both and the value to use).
    """
    p = parse_pattern(pattern)
    if p.kind == "nm" and abs(sparsity - p.final_sparsity) > 1e-9:
        raise InputError(f"pattern {p.text!r} keeps {p.n} of every {p.m} weights, i.e. sparsity "
                         f"{p.final_sparsity!r}, but sparsity is {sparsity!r}: set sparsity to "
                         f"{p.final_sparsity!r} or leave it out (it then follows from the pattern)")
