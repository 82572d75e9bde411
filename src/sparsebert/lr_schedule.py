"""Learning-rate schedules of the training loop, and the check that pruning events can recover.

Three shapes, all with linear warm-up over the first ``warmup`` steps (factor of the peak rate,
for ``torch.optim.lr_scheduler.LambdaLR``; after ``t`` completed steps the next update uses
``factor(t)``):

* ``linear``: linear decay to 0 at the last step (BERT fine-tuning, Devlin et al. 2019; the
  SparseBERT reference);
* ``constant``: the peak rate after warm-up (the constant rate of the GMP reference recipe,
  Zhu & Gupta 2017, and of movement pruning's fixed-mask phase);
* ``rewind``: learning-rate rewinding per pruning stage — back to the peak at every pruning event,
  then linear decay to 0 at the next event, and after the last event to 0 at the last step
  (Renda et al., ICLR 2020; the cyclic schedule of oBERT, Kurtic et al. 2022, §4, and of
  Prune Once For All, Zafrir et al. 2021). Meant for few events (oBERT prunes every 2 epochs).

A pruning event taken where the rate is ~0 cannot be recovered from: the weights it removes are
gone and nothing moves afterwards. :func:`recoverable_end` finds the last step at which the rate
is still at least ``min_ratio`` of the peak, so the schedule's end can be moved there (events in
the warm-up are left alone: the rate rises after them).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from sparsebert.errors import InputError

LR_SCHEDULES = ("linear", "constant", "rewind")


def lr_factor_fn(kind: str, total_steps: int, warmup_steps: int = 0,
                 rewind_steps: Sequence[int] = ()) -> Callable[[int], float]:
    """The learning-rate factor (of the peak) after ``t`` completed steps.

    Args:
        kind: one of :data:`LR_SCHEDULES`.
        total_steps: number of optimizer steps of the run.
        warmup_steps: linear warm-up from 0 to the peak.
        rewind_steps: steps where ``rewind`` goes back to the peak (the pruning events).
    Raises:
        InputError (a ValueError): unknown ``kind`` or non-positive ``total_steps``.
    """
    if kind not in LR_SCHEDULES:
        raise InputError(f"unknown lr_schedule {kind!r}; choose one of {LR_SCHEDULES}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup = max(0, min(warmup_steps, total_steps - 1))
    starts = sorted({s for s in rewind_steps if warmup <= s < total_steps})

    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        if kind == "constant":
            return 1.0
        lo, hi = warmup, total_steps
        if kind == "rewind" and starts:
            i = bisect.bisect_right(starts, t)
            lo = starts[i - 1] if i else warmup
            hi = starts[i] if i < len(starts) else total_steps
        return max(0.0, (hi - t) / max(1, hi - lo))

    return factor


def recoverable_end(factor: Callable[[int], float], start_step: int, end_step: int, min_ratio: float) -> int:
    """The last step ``t <= end_step`` after which the learning rate is ``>= min_ratio`` of the peak.

    Returns ``end_step`` itself when it is fine.

    Raises:
        InputError (a ValueError): no step in ``(start_step, end_step]`` qualifies (the whole pruning
            window lies where the learning rate is below ``min_ratio``).
    """
    for t in range(end_step, start_step, -1):
        if factor(t) >= min_ratio:
            return t
    raise InputError(f"no pruning step in ({start_step}, {end_step}] has a learning rate >= {min_ratio} of the "
                     f"peak; move prune_end earlier or lower min_event_lr_ratio")
