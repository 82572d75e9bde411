"""Magnitude pruning masks: keep the largest |w|, per matrix or by one global ranking.

Han et al. (2015) magnitude criterion as used by GMP (Zhu & Gupta 2017) and SparseBERT
(Xu et al., NAACL 2021, §3). Masks are exact-count: a matrix with ``n`` weights at sparsity
``s`` has exactly ``round(s * n)`` zeros (ties broken by index), so the achieved sparsity is
within ``1/n`` of the target. Weights already pruned stay pruned (sparsity only grows).
"""

from __future__ import annotations

import torch


def _scores(weight: torch.Tensor, old_mask: torch.Tensor | None) -> torch.Tensor:
    s = weight.detach().abs().float().flatten()
    if old_mask is not None:
        s = s.masked_fill(~old_mask.flatten(), -1.0)  # already pruned: always lowest
    return s


def _mask_from_scores(scores: torch.Tensor, num_pruned: int) -> torch.Tensor:
    mask = torch.ones_like(scores, dtype=torch.bool)
    if num_pruned > 0:
        idx = torch.topk(scores, num_pruned, largest=False, sorted=False).indices
        mask[idx] = False
    return mask


def magnitude_mask(weight: torch.Tensor, sparsity: float, old_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean keep-mask of ``weight``'s shape with exactly ``round(sparsity * numel)`` False.

    Args:
        weight: any shape, e.g. ``[out_features, in_features]``.
        sparsity: fraction of weights to prune, in [0, 1).
        old_mask: previous keep-mask; its pruned entries are pruned first.
    Raises:
        ValueError: sparsity out of range, or old_mask of another shape.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if old_mask is not None and old_mask.shape != weight.shape:
        raise ValueError(f"old_mask shape {tuple(old_mask.shape)} != weight shape {tuple(weight.shape)}")
    k = round(sparsity * weight.numel())
    return _mask_from_scores(_scores(weight, old_mask), k).view_as(weight)


def global_magnitude_masks(
    weights: dict[str, torch.Tensor], sparsity: float, old_masks: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Keep-masks from one ranking of |w| across all matrices (total sparsity exact; per-matrix varies).

    Args:
        weights: name -> weight tensor.
        sparsity: overall fraction to prune, in [0, 1).
        old_masks: name -> previous keep-mask (optional).
    Raises:
        ValueError: sparsity out of range.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    names = list(weights)
    flat = torch.cat([_scores(weights[n], (old_masks or {}).get(n)) for n in names])
    mask = _mask_from_scores(flat, round(sparsity * flat.numel()))
    out, offset = {}, 0
    for n in names:
        numel = weights[n].numel()
        out[n] = mask[offset : offset + numel].view_as(weights[n])
        offset += numel
    return out
