"""Mask creator: scores -> keep-masks, per matrix or by one global ranking, in a sparsity pattern.

The split of SparseML (scorer / mask creator / mask application / schedule) and torch.ao.pruning:
a *scorer* (:mod:`sparsebert.pruning.scorers`) says how much each weight matters, this module
turns scores into boolean keep-masks at a target sparsity, and the sparsifier applies them.

Masks are exact-count: a matrix with ``n`` weights at sparsity ``s`` has exactly ``round(s * n)``
zeros (ties broken by index), so the achieved sparsity is within ``1/n`` of the target. Weights
already pruned stay pruned (gradual pruning only grows sparsity, Zhu & Gupta 2017).

:func:`magnitude_mask` / :func:`global_magnitude_masks` are the magnitude criterion of
Han et al. (2015) as used by GMP and SparseBERT (Xu et al., NAACL 2021, §3).

Structured patterns (:mod:`sparsebert.pruning.patterns` defines them and their semantics): R x C blocks
(:func:`block_mask`, :func:`global_block_masks`: the same exact-count ranking over blocks) and N:M
(:func:`n_m_mask`: the capped ranking); :func:`pattern_masks` picks the creator of a pattern.
"""

from __future__ import annotations

import torch

from sparsebert.errors import InputError
from sparsebert.pruning.patterns import Pattern, check_pattern, parse_pattern


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def _ranked(scores: torch.Tensor, old_mask: torch.Tensor | None) -> torch.Tensor:
    s = scores.detach().float().flatten()
    if old_mask is not None:
        if old_mask.shape != scores.shape:
            raise ValueError(f"old_mask shape {tuple(old_mask.shape)} != weight shape {tuple(scores.shape)}")
        s = s.masked_fill(~old_mask.flatten(), float("-inf"))  # already pruned: always lowest
    return s


def _mask_from_scores(scores: torch.Tensor, num_pruned: int) -> torch.Tensor:
    mask = torch.ones_like(scores, dtype=torch.bool)
    if num_pruned > 0:
        idx = torch.topk(scores, num_pruned, largest=False, sorted=False).indices
        mask[idx] = False
    return mask


def score_mask(scores: torch.Tensor, sparsity: float, old_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep-mask of ``scores``' shape pruning exactly ``round(sparsity * numel)`` lowest scores.

    Args:
        scores: importance of each weight (higher = keep), e.g. ``[out_features, in_features]``.
        sparsity: fraction to prune, in [0, 1).
        old_mask: previous keep-mask (True = kept); its pruned entries are pruned first.
    Raises:
        ValueError: sparsity out of range, or ``old_mask`` of another shape.
    """
    _check_sparsity(sparsity)
    k = round(sparsity * scores.numel())
    return _mask_from_scores(_ranked(scores, old_mask), k).view(scores.shape)


def global_score_masks(scores: dict[str, torch.Tensor], sparsity: float,
                       old_masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Keep-masks from one ranking of all scores (total sparsity exact; per-matrix sparsity varies).

    Args:
        scores: name -> score tensor (higher = keep).
        sparsity: overall fraction to prune, in [0, 1).
        old_masks: name -> previous keep-mask (optional).
    Raises:
        ValueError: sparsity out of range, or an old mask of another shape.
    """
    _check_sparsity(sparsity)
    names = list(scores)
    flat = torch.cat([_ranked(scores[n], (old_masks or {}).get(n)) for n in names])
    mask = _mask_from_scores(flat, round(sparsity * flat.numel()))
    out, offset = {}, 0
    for n in names:
        numel = scores[n].numel()
        out[n] = mask[offset : offset + numel].view(scores[n].shape)
        offset += numel
    return out


def magnitude_mask(weight: torch.Tensor, sparsity: float, old_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the largest ``|w|``: :func:`score_mask` of ``weight.abs()`` (Han et al. 2015).

    Raises:
        ValueError: sparsity out of range, or ``old_mask`` of another shape.
    """
    return score_mask(weight.detach().abs(), sparsity, old_mask)


def global_magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float,
                           old_masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One global ranking of ``|w|`` across all matrices: :func:`global_score_masks`.

    Raises:
        ValueError: sparsity out of range.
    """
    return global_score_masks({n: w.detach().abs() for n, w in weights.items()}, sparsity, old_masks)


# --- blocks ---------------------------------------------------------------------------------------

def block_sum(scores: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Sum of ``scores`` ``[out, in]`` over R x C blocks: ``[out / R, in / C]`` (float32).

    Raises:
        InputError: a shape the block does not divide.
    """
    out_f, in_f = scores.shape
    if out_f % rows or in_f % cols:
        raise InputError(f"block {rows}x{cols} does not tile a matrix of shape {out_f}x{in_f}")
    return scores.detach().float().reshape(out_f // rows, rows, in_f // cols, cols).sum(dim=(1, 3))


def expand_blocks(block_mask: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Block mask ``[out / R, in / C]`` -> element mask ``[out, in]`` (each block's value repeated)."""
    return block_mask.repeat_interleave(rows, dim=0).repeat_interleave(cols, dim=1)


def block_kept(mask: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Keep-mask ``[out, in]`` -> block keep-mask ``[out / R, in / C]``: True only where every weight of the
    block is kept (a block with a pruned weight counts as pruned, so it stays pruned)."""
    out_f, in_f = mask.shape
    return mask.reshape(out_f // rows, rows, in_f // cols, cols).all(dim=3).all(dim=1)


def is_block_structured(mask: torch.Tensor, rows: int, cols: int) -> bool:
    """True when every R x C block of ``mask`` ``[out, in]`` is all kept or all pruned."""
    out_f, in_f = mask.shape
    b = mask.reshape(out_f // rows, rows, in_f // cols, cols)
    return bool(torch.all(b.all(dim=3).all(dim=1) == b.any(dim=3).any(dim=1)))


def block_mask(block_scores: torch.Tensor, sparsity: float, rows: int, cols: int,
               old_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep-mask ``[out, in]`` pruning exactly ``round(sparsity * n_blocks)`` R x C blocks (1x4: the int8 VNNI
    block of Prune Once For All, Zafrir et al. 2021, and DeepSparse).

    Args:
        block_scores: ``[out / R, in / C]``, one score per block (higher = keep).
        old_mask: previous keep-mask ``[out, in]``; blocks with a pruned weight are pruned first.
    Raises:
        ValueError: sparsity out of [0, 1) (as :func:`score_mask`).
    """
    old = None if old_mask is None else block_kept(old_mask, rows, cols)
    return expand_blocks(score_mask(block_scores, sparsity, old), rows, cols)


def global_block_masks(block_scores: dict[str, torch.Tensor], sparsity: float, rows: int, cols: int,
                       old_masks: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One ranking of every R x C block of every matrix: exactly ``round(sparsity * total_blocks)`` blocks
    pruned in all (per-matrix sparsity varies).

    Args:
        block_scores: name -> ``[out / R, in / C]`` block scores.
        old_masks: name -> previous element keep-mask ``[out, in]``.
    Raises:
        ValueError: sparsity out of [0, 1).
    """
    old = {n: block_kept(m, rows, cols) for n, m in (old_masks or {}).items()}
    masks = global_score_masks(block_scores, sparsity, old)
    return {n: expand_blocks(m, rows, cols) for n, m in masks.items()}


# --- N:M ------------------------------------------------------------------------------------------

def is_n_m(mask: torch.Tensor, n: int, m: int, exact: bool = True) -> bool:
    """True when every group of ``m`` consecutive weights along ``in_features`` of ``mask`` ``[out, in]`` keeps
    exactly ``n`` (``exact``) or at least ``n`` (not ``exact``: an intermediate mask of the schedule)."""
    kept = mask.reshape(-1, m).sum(dim=1)
    return bool(torch.all(kept == n)) if exact else bool(torch.all(kept >= n))


def n_m_mask(scores: torch.Tensor, sparsity: float, n: int, m: int,
             old_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep-mask ``[out, in]`` of ``round(sparsity * numel)`` pruned weights, at most ``m - n`` per group of ``m``
    consecutive weights along ``in_features`` (the capped ranking of :mod:`sparsebert.pruning.patterns`):
    each group offers its ``m - n`` lowest scores, the lowest of all offers are pruned. At
    ``sparsity = 1 - n/m`` every group keeps exactly ``n`` (N:M sparsity: Zhou et al., ICLR 2021;
    Mishra et al. 2021).

    Args:
        scores: ``[out, in]`` (higher = keep); ``in`` must be a multiple of ``m``.
        old_mask: previous keep-mask; its pruned weights are pruned first (up to the cap).
    Raises:
        ValueError: sparsity out of [0, 1), or ``old_mask`` of another shape.
        InputError: ``in_features`` not a multiple of ``m``, or sparsity above ``1 - n/m``.
    """
    _check_sparsity(sparsity)
    out_f, in_f = scores.shape
    if in_f % m:
        raise InputError(f"pattern '{n}:{m}' needs in_features divisible by {m}, got shape {out_f}x{in_f}")
    if sparsity > 1 - n / m + 1e-9:
        raise InputError(f"pattern '{n}:{m}' prunes at most {1 - n / m:g} of a matrix, asked for {sparsity}")
    groups = _ranked(scores, old_mask).view(-1, m)                       # [G, M], pruned = -inf
    cap = m - n
    order = torch.sort(groups, dim=1, stable=True).indices[:, :cap]      # [G, cap] lowest per group
    cand = groups.gather(1, order).flatten()                             # [G * cap]
    k = min(round(sparsity * scores.numel()), cand.numel())
    mask = torch.ones_like(groups, dtype=torch.bool)
    if k > 0:
        pick = torch.topk(cand, k, largest=False, sorted=False).indices
        group = torch.div(pick, cap, rounding_mode="floor")
        mask[group, order.flatten()[pick]] = False
    return mask.view(scores.shape)


# --- the mask creator of a pattern ----------------------------------------------------------------

def pattern_masks(pattern: str | Pattern, scores: dict[str, torch.Tensor], sparsity: float,
                  old_masks: dict[str, torch.Tensor], scope: str = "per-matrix") -> dict[str, torch.Tensor]:
    """Keep-masks ``{name: bool [out, in]}`` at ``sparsity`` in ``pattern`` (the mask creator of the sparsifier).

    Args:
        scores: name -> element scores ``[out, in]`` (unstructured, N:M) or block scores
            ``[out / R, in / C]`` (blocks; e.g. :func:`block_sum` of element scores).
        old_masks: name -> previous keep-mask ``[out, in]``.
        scope: ``per-matrix`` or ``global`` (one ranking of all weights / blocks).
    Raises:
        InputError: bad pattern, or N:M with scope ``global``.
        ValueError: sparsity out of [0, 1).
    """
    p = parse_pattern(pattern)
    if p.kind == "nm":
        check_pattern(p, {}, scope)
        return {name: n_m_mask(s, sparsity, p.n, p.m, old_masks.get(name)) for name, s in scores.items()}
    if p.kind == "block":
        if scope == "global":
            return global_block_masks(scores, sparsity, p.rows, p.cols, old_masks)
        return {name: block_mask(s, sparsity, p.rows, p.cols, old_masks.get(name)) for name, s in scores.items()}
    if scope == "global":
        return global_score_masks(scores, sparsity, old_masks)
    return {name: score_mask(s, sparsity, old_masks.get(name)) for name, s in scores.items()}
