"""Mask bookkeeping and enforcement for gradual magnitude pruning.

Split after torch.ao.pruning / SparseML: the *schedule* says how sparse (``schedule.py``), the
*criterion* says which weights (``magnitude.py``), and the :class:`GMPSparsifier` holds the
masks and applies them. Masks are enforced by zeroing the weights in place after every
optimizer step, so neither AdamW's moment estimates nor its decoupled weight decay can revive a
pruned weight: pruned weights stay exactly 0.0 (Xu et al., NAACL 2021, §3; Zhu & Gupta 2017).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sparsebert.pruning.magnitude import global_magnitude_masks, magnitude_mask
from sparsebert.pruning.schedule import CubicSchedule

Scope = Literal["per-matrix", "global"]


class GMPSparsifier:
    """Gradual magnitude pruning of a set of ``nn.Linear`` weights.

    Args:
        targets: name -> ``nn.Linear`` (e.g. :func:`sparsebert.targets.prunable_linears`).
        schedule: a :class:`CubicSchedule`.
        scope: ``"per-matrix"`` (every matrix at s_t, the paper's setting) or ``"global"``
            (one ranking over all targets; total sparsity s_t).

    Call :meth:`step` after every optimizer step with the number of completed steps.

    Raises:
        ValueError: empty targets or unknown scope.
    """

    def __init__(self, targets: dict[str, nn.Linear], schedule: CubicSchedule, scope: Scope = "per-matrix"):
        if not targets:
            raise ValueError("GMPSparsifier needs at least one target")
        if scope not in ("per-matrix", "global"):
            raise ValueError(f"scope must be 'per-matrix' or 'global', got {scope!r}")
        self.targets = dict(targets)
        self.schedule = schedule
        self.scope = scope
        self.masks: dict[str, torch.Tensor] = {
            n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in self.targets.items()
        }
        self.current_sparsity = 0.0
        if schedule.initial_sparsity > 0 and schedule.start_step == 0:
            self.update_masks(schedule.initial_sparsity)

    @torch.no_grad()
    def update_masks(self, sparsity: float) -> None:
        """Recompute masks at ``sparsity`` from current magnitudes, then apply them."""
        weights = {n: m.weight for n, m in self.targets.items()}
        if self.scope == "global":
            self.masks = global_magnitude_masks(weights, sparsity, self.masks)
        else:
            self.masks = {n: magnitude_mask(w, sparsity, self.masks[n]) for n, w in weights.items()}
        self.current_sparsity = sparsity
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight in place (call after each optimizer step)."""
        for n, m in self.targets.items():  # masked_fill, not mul: a pruned weight is +0.0, never -0.0
            m.weight.masked_fill_(~self.masks[n], 0.0)

    def step(self, completed_steps: int) -> bool:
        """Enforce masks after optimizer step ``completed_steps``; prune further on event steps.

        Returns:
            True when this step was a pruning event.
        """
        event = self.schedule.is_event(completed_steps)
        if event:
            self.update_masks(self.schedule.sparsity_at(completed_steps))
        else:
            self.apply()
        return event

    def sparsity(self) -> dict[str, float]:
        """Achieved fraction of zeros per target (read from the weights themselves)."""
        return {n: float((m.weight == 0).sum()) / m.weight.numel() for n, m in self.targets.items()}

    def state_dict(self) -> dict:
        """``{"masks": {target: bool tensor (True = kept)}, "current_sparsity": float}``.

        The schedule is not part of the state: its position follows from the step count.
        """
        return {"masks": {n: m.detach().cpu().clone() for n, m in self.masks.items()},
                "current_sparsity": self.current_sparsity}

    def load_state_dict(self, state: dict) -> None:
        """Restore masks and current sparsity from :meth:`state_dict`, then zero the pruned weights.

        Raises:
            ValueError: the targets or mask shapes differ from this sparsifier's.
        """
        masks = state["masks"]
        if set(masks) != set(self.masks):
            raise ValueError(f"sparsifier state has targets {sorted(set(masks) ^ set(self.masks))} that differ")
        for n, m in masks.items():
            if tuple(m.shape) != tuple(self.masks[n].shape):
                raise ValueError(f"sparsifier mask {n}: shape {tuple(m.shape)}, expected {tuple(self.masks[n].shape)}")
        self.masks = {n: masks[n].to(device=self.masks[n].device, dtype=torch.bool) for n in self.masks}
        self.current_sparsity = float(state["current_sparsity"])
        self.apply()
