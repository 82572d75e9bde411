"""The cubic sparsity schedule of gradual magnitude pruning (GMP).

Zhu & Gupta, *To prune, or not to prune* (2017), Eq. 1:

    s_t = s_f + (s_0 - s_f) * (1 - (t - t_0) / (n Δt))^3      for t_0 <= t <= t_0 + n Δt

With s_0 = 0 and t_0 = 0 this is the form SparseBERT uses, s_t = s_f (1 - (1 - t/T)^3)
(Xu et al., NAACL 2021, §4.1). Pruning happens at ``n`` events spaced Δt steps apart; the
last event, at ``end_step``, reaches s_f exactly.

With s_0 > 0 the first event is a one-shot jump to s_0 at t_0 (the oBERT recipes start gradual
pruning with a one-shot step to 70 %, Kurtic et al. 2022, §4; with t_0 = 0 the sparsifier applies
it before the first step). Steps before t_0 are dense warm-up; steps after ``end_step`` train with
fixed masks (recovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CubicSchedule:
    """Target sparsity per optimizer step (Zhu & Gupta 2017, Eq. 1).

    Args:
        final_sparsity: s_f in [0, 1).
        initial_sparsity: s_0 in [0, s_f], applied at ``start_step``.
        start_step: t_0, the step of the first (initial) mask.
        end_step: t_0 + n Δt, the step at which s_f is reached (> start_step).
        num_events: n, number of pruning events between start and end (>= 1). When there are
            fewer steps than events, every step is an event.

    Raises:
        ValueError: any argument out of range.
    """

    final_sparsity: float
    initial_sparsity: float = 0.0
    start_step: int = 0
    end_step: int = 1
    num_events: int = 100
    _events: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not 0.0 <= self.final_sparsity < 1.0:
            raise ValueError(f"final_sparsity must be in [0, 1), got {self.final_sparsity}")
        if not 0.0 <= self.initial_sparsity <= self.final_sparsity:
            raise ValueError(
                f"initial_sparsity must be in [0, final_sparsity={self.final_sparsity}], got {self.initial_sparsity}"
            )
        if self.start_step < 0 or self.end_step <= self.start_step:
            raise ValueError(f"need 0 <= start_step < end_step, got {self.start_step}, {self.end_step}")
        if self.num_events < 1:
            raise ValueError(f"num_events must be >= 1, got {self.num_events}")
        span = self.end_step - self.start_step
        n = min(self.num_events, span)
        events = {self.start_step + round(k * span / n) for k in range(1, n + 1)}
        if self.initial_sparsity > 0 and self.start_step > 0:
            events.add(self.start_step)  # the one-shot jump to s_0
        object.__setattr__(self, "_events", frozenset(events))

    def sparsity_at(self, step: int) -> float:
        """s_t for optimizer step ``step``: 0 before t_0 (dense warm-up), s_0 at t_0, s_f after the end."""
        if step < self.start_step:
            return 0.0
        if step == self.start_step:
            return self.initial_sparsity
        if step >= self.end_step:
            return self.final_sparsity
        frac = (step - self.start_step) / (self.end_step - self.start_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - frac) ** 3

    def is_event(self, step: int) -> bool:
        """Whether masks are recomputed after optimizer step ``step``."""
        return step in self._events

    @property
    def event_steps(self) -> list[int]:
        """All event steps in increasing order (the last one is ``end_step``; the first is
        ``start_step`` when s_0 > 0 and t_0 > 0)."""
        return sorted(self._events)
