"""Mask bookkeeping and enforcement for gradual pruning.

Split after torch.ao.pruning / SparseML: the *schedule* says how sparse (``schedule.py``), the
*scorer* says which weights matter (``scorers/``), the *mask creator* turns scores into masks
(``masks.py``), and the :class:`Sparsifier` holds the masks and enforces them:

* **gradient masking** (SparseML's gradient-mask hooks): a hook on every target weight zeroes the
  gradient of pruned entries during the backward pass, so gradient clipping, the scorers and
  AdamW's moment estimates never see them;
* **optimizer state**: at every pruning event the AdamW moments (``exp_avg``, ``exp_avg_sq``) of
  the newly pruned entries are zeroed (:meth:`Sparsifier.bind_optimizer`), so a pruned weight's
  stale momentum cannot leak into anything;
* **weights**: pruned entries are set to +0.0 after every optimizer step (neither weight decay nor
  anything else can revive them), so the saved model holds exact zeros
  (Xu et al., NAACL 2021, §3; Zhu & Gupta 2017).

The masks follow a sparsity *pattern* (:mod:`sparsebert.pruning.patterns`): unstructured, R x C blocks
(``1x4`` for int8 VNNI kernels) or N:M.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sparsebert.pruning.masks import pattern_masks
from sparsebert.pruning.patterns import Pattern, check_pattern, check_pattern_sparsity
from sparsebert.pruning.schedule import CubicSchedule
from sparsebert.pruning.scorers import MagnitudeScorer, Scorer

Scope = Literal["per-matrix", "global"]


class Sparsifier:
    """Gradual pruning of a set of ``nn.Linear`` weights by any criterion.

    Args:
        targets: name -> ``nn.Linear`` (e.g. :func:`sparsebert.targets.prunable_linears`).
        schedule: a :class:`CubicSchedule`.
        scope: ``"per-matrix"`` (every matrix at s_t, the paper's setting) or ``"global"``
            (one ranking over all targets; total sparsity s_t).
        scorer: the criterion (:mod:`sparsebert.pruning.scorers`); magnitude by default (GMP).
        pattern: ``"unstructured"`` (default), ``"RxC"`` blocks or ``"N:M"``
            (:mod:`sparsebert.pruning.patterns`); an N:M pattern needs ``schedule.final_sparsity == 1 - N/M``
            and scope ``per-matrix``.
        keep_pruned: name -> bool ``[out, in]`` keep-mask whose pruned (False) entries stay pruned for the
            whole run (sparse transfer from a sparse upstream encoder: the student's zeros, Zafrir et al. 2021
            §3). The masks start from it, and no pruning event revives them; a schedule to a sparsity at or
            below its own never changes the mask, a higher one prunes further from it.

    Per optimizer step: ``loss.backward()`` (the hooks mask the gradients) -> :meth:`observe`
    (gradient-based scorers) -> clipping and ``optimizer.step()`` -> :meth:`step` with the number
    of completed steps. Call :meth:`close` to remove the gradient hooks.

    Raises:
        ValueError: empty targets or unknown scope.
        InputError: a bad pattern, a target the pattern does not tile (named with its shape), N:M with
            scope ``global`` or with another final sparsity than ``1 - N/M``, or a criterion that cannot
            score the pattern (:meth:`Scorer.check_pattern`).
    """

    def __init__(self, targets: dict[str, nn.Linear], schedule: CubicSchedule, scope: Scope = "per-matrix",
                 scorer: Scorer | None = None, pattern: str | Pattern = "unstructured",
                 keep_pruned: dict[str, torch.Tensor] | None = None):
        if not targets:
            raise ValueError("Sparsifier needs at least one target")
        if scope not in ("per-matrix", "global"):
            raise ValueError(f"scope must be 'per-matrix' or 'global', got {scope!r}")
        self.targets = dict(targets)
        self.schedule = schedule
        self.scope = scope
        self.scorer = scorer or MagnitudeScorer()
        self.pattern = check_pattern(pattern, {n: tuple(m.weight.shape) for n, m in self.targets.items()}, scope)
        check_pattern_sparsity(self.pattern, schedule.final_sparsity)
        self.scorer.check_pattern(self.targets, self.pattern)
        self.optimizer: torch.optim.Optimizer | None = None
        self.masks: dict[str, torch.Tensor] = {
            n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in self.targets.items()
        }
        self.current_sparsity = 0.0
        self.keep_pruned = None
        if keep_pruned is not None:
            if set(keep_pruned) != set(self.targets):
                raise ValueError(f"keep_pruned names {sorted(set(keep_pruned) ^ set(self.targets))} that differ from the targets")
            for n, m in keep_pruned.items():
                if tuple(m.shape) != tuple(self.targets[n].weight.shape):
                    raise ValueError(f"keep_pruned {n}: shape {tuple(m.shape)}, expected {tuple(self.targets[n].weight.shape)}")
            self.keep_pruned = {n: m.to(device=self.targets[n].weight.device, dtype=torch.bool).clone()
                                for n, m in keep_pruned.items()}
            self.masks = {n: m.clone() for n, m in self.keep_pruned.items()}
            pruned = sum(int((~m).sum()) for m in self.masks.values())
            self.current_sparsity = pruned / sum(m.numel() for m in self.masks.values())
            self.apply()
        self._hooks = [m.weight.register_hook(self._grad_hook(n)) for n, m in self.targets.items()]
        if schedule.initial_sparsity > 0 and schedule.start_step == 0:
            self.update_masks(schedule.initial_sparsity)

    def _grad_hook(self, name: str):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad.masked_fill(~self.masks[name], 0.0)

        return hook

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero this optimizer's per-parameter moments of pruned entries at every pruning event."""
        self.optimizer = optimizer

    def observe(self) -> None:
        """Feed the current (masked) gradients to the scorer; call after backward, before clipping."""
        if self.scorer.needs_grad:
            self.scorer.observe(self.targets, self.masks)

    @torch.no_grad()
    def update_masks(self, sparsity: float) -> None:
        """Recompute masks at ``sparsity`` from the scorer in the pattern, then apply them (and zero
        optimizer state)."""
        p = self.pattern
        if p.kind == "block":
            scores = self.scorer.block_scores(self.targets, self.masks, p.rows, p.cols)
        else:
            scores = self.scorer.scores(self.targets, self.masks)
        new = pattern_masks(p, scores, sparsity, self.masks, self.scope)
        if self.keep_pruned is not None:  # never revive a weight the sparse student came with
            new = {n: m & self.keep_pruned[n] for n, m in new.items()}
        self.scorer.after_prune(self.targets, self.masks, new)
        self.masks = new
        self.current_sparsity = max(sparsity, self.current_sparsity) if self.keep_pruned is not None else sparsity
        self.apply()
        self._zero_optimizer_state()

    @torch.no_grad()
    def _zero_optimizer_state(self) -> None:
        if self.optimizer is None:
            return
        for n, m in self.targets.items():
            state = self.optimizer.state.get(m.weight, {})
            for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                buf = state.get(key)
                if torch.is_tensor(buf) and buf.shape == m.weight.shape:
                    buf.masked_fill_(~self.masks[n], 0.0)

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

    def close(self) -> None:
        """Remove the gradient-masking hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def state_dict(self) -> dict:
        """``{"masks": {target: bool tensor (True = kept)}, "current_sparsity": float,
        "scorer": {name: tensor}}`` (the scorer's running state).

        The schedule is not part of the state: its position follows from the step count.
        """
        return {"masks": {n: m.detach().cpu().clone() for n, m in self.masks.items()},
                "current_sparsity": self.current_sparsity,
                "scorer": {k: v.detach().cpu().clone() for k, v in self.scorer.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore masks, current sparsity and scorer state from :meth:`state_dict`, then zero
        the pruned weights.

        Raises:
            ValueError: the targets or mask shapes differ from this sparsifier's, or the scorer
                state does not fit the scorer.
        """
        masks = state["masks"]
        if set(masks) != set(self.masks):
            raise ValueError(f"sparsifier state has targets {sorted(set(masks) ^ set(self.masks))} that differ")
        for n, m in masks.items():
            if tuple(m.shape) != tuple(self.masks[n].shape):
                raise ValueError(f"sparsifier mask {n}: shape {tuple(m.shape)}, expected {tuple(self.masks[n].shape)}")
        dev = next(iter(self.masks.values())).device
        self.masks = {n: masks[n].to(device=self.masks[n].device, dtype=torch.bool) for n in self.masks}
        self.current_sparsity = float(state["current_sparsity"])
        self.scorer.load_state_dict({k: v.to(dev) for k, v in state.get("scorer", {}).items()})
        self.apply()


#: The name of the magnitude-only sparsifier of earlier versions (same class).
GMPSparsifier = Sparsifier
