"""The scorer interface: how much each prunable weight matters (higher = keep).

After SparseML's split (scorer / mask creator / mask application / schedule): a scorer only
produces scores; :mod:`sparsebert.pruning.masks` turns them into masks and
:class:`~sparsebert.pruning.sparsifier.Sparsifier` applies them. A scorer that needs gradients
accumulates them in :meth:`Scorer.observe`, called once per optimizer step after the backward
pass (gradients of pruned weights are already masked to 0) and before clipping. Its running
state belongs to the resumable training state (:meth:`state_dict`, tensors only).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebert.pruning.masks import block_sum
from sparsebert.pruning.patterns import Pattern


class Scorer:
    """Base class of pruning criteria.

    Subclasses set :attr:`name` and implement :meth:`scores`; gradient-based ones also
    :meth:`observe`, and may change the kept weights after a pruning event (:meth:`after_prune`,
    the OBS weight update).
    """

    name: str = ""
    #: True when :meth:`observe` needs ``weight.grad``.
    needs_grad: bool = False

    def observe(self, targets: dict[str, nn.Linear], masks: dict[str, torch.Tensor]) -> None:
        """Accumulate statistics from the current gradients (``targets[n].weight.grad``)."""

    def scores(self, targets: dict[str, nn.Linear], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Importance of every weight: name -> tensor of the weight's shape ``[out, in]``."""
        raise NotImplementedError

    def block_scores(self, targets: dict[str, nn.Linear], masks: dict[str, torch.Tensor], rows: int,
                     cols: int) -> dict[str, torch.Tensor]:
        """Importance of every R x C block (the block patterns of :mod:`sparsebert.pruning.patterns`):
        name -> ``[out / R, in / C]``. By default the sum of :meth:`scores` over the block (the L1 norm
        for magnitude, the additive first-order loss change for movement and Taylor).

        Raises:
            InputError: a shape the block does not divide.
        """
        return {n: block_sum(s, rows, cols) for n, s in self.scores(targets, masks).items()}

    def check_pattern(self, targets: dict[str, nn.Linear], pattern: Pattern) -> None:
        """Raise :class:`~sparsebert.errors.InputError` when this criterion cannot score ``pattern`` on
        ``targets`` (checked once, before training). Every pattern is fine for element-wise criteria."""

    def after_prune(self, targets: dict[str, nn.Linear], old_masks: dict[str, torch.Tensor],
                    new_masks: dict[str, torch.Tensor]) -> None:
        """Called after the masks of a pruning event are computed, before they are applied."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The running state as named tensors (empty for stateless criteria)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            ValueError: unexpected keys.
        """
        if state:
            raise ValueError(f"{self.name} scorer has no state, got keys {sorted(state)[:3]}")


class GradientScorer(Scorer):
    """Base of criteria that accumulate one or more tensors per target from gradients.

    Before the first observed gradient (a one-shot event at step 0) there is nothing to rank
    by, so :meth:`scores` falls back to the magnitude ``|w|``.
    """

    needs_grad = True
    #: Names of the per-target accumulators, e.g. ``("movement",)``.
    buffers: tuple[str, ...] = ()

    def __init__(self):
        self.state: dict[str, torch.Tensor] = {}
        self.steps = 0

    def _buffer(self, kind: str, name: str, like: torch.Tensor) -> torch.Tensor:
        key = f"{kind}.{name}"
        if key not in self.state:
            self.state[key] = torch.zeros_like(like, dtype=torch.float32)
        return self.state[key]

    def observe(self, targets, masks) -> None:
        for name, lin in targets.items():
            if lin.weight.grad is not None:
                self.update(name, lin.weight.detach().float(), lin.weight.grad.detach().float())
        self.steps += 1

    def update(self, name: str, weight: torch.Tensor, grad: torch.Tensor) -> None:
        """Fold one gradient ``grad`` of target ``name`` (same shape as ``weight``) into the state."""
        raise NotImplementedError

    def scores(self, targets, masks):
        if self.steps == 0:
            return {n: lin.weight.detach().abs().float() for n, lin in targets.items()}
        return {n: self.score(n, lin.weight.detach().float()) for n, lin in targets.items()}

    def score(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """Score of target ``name`` from its accumulated state."""
        raise NotImplementedError

    def state_dict(self):
        return {**{k: v.clone() for k, v in self.state.items()}, "steps": torch.tensor([self.steps])}

    def load_state_dict(self, state):
        state = dict(state)
        steps = state.pop("steps", None)
        bad = [k for k in state if k.split(".", 1)[0] not in self.buffers]
        if bad or steps is None:
            raise ValueError(f"{self.name} scorer state: unexpected keys {bad[:3]} or no 'steps'")
        self.state = {k: v.float().clone() for k, v in state.items()}
        self.steps = int(steps.reshape(-1)[0])
