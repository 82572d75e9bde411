"""Mask creator: scores -> keep-masks, per matrix or by one global ranking.

The split of SparseML (scorer / mask creator / mask application / schedule) and torch.ao.pruning:
a *scorer* (:mod:`sparsebert.pruning.scorers`) says how much each weight matters, this module
turns scores into boolean keep-masks at a target sparsity, and the sparsifier applies them.

Masks are exact-count: a matrix with ``n`` weights at sparsity ``s`` has exactly ``round(s * n)``
zeros (ties broken by index), so the achieved sparsity is within ``1/n`` of the target. Weights
already pruned stay pruned (gradual pruning only grows sparsity, Zhu & Gupta 2017).

:func:`magnitude_mask` / :func:`global_magnitude_masks` are the magnitude criterion of
Han et al. (2015) as used by GMP and SparseBERT (Xu et al., NAACL 2021, §3).
"""

from __future__ import annotations

import torch


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
