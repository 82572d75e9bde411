"""The one timing loop behind every speed measurement of sparsebert.

Used by the sparse runtime to choose a kernel per matrix
(:func:`sparsebert.runtime.kernels.time_candidates`), by ``sparsebert bench`` for each path
(:mod:`sparsebert.bench.run`) and by the DeepSparse worker (:mod:`sparsebert.bench.deepsparse_worker`).
Standard library only, and no sparsebert import: the DeepSparse worker runs in DeepSparse's own
venv, where sparsebert and torch are not installed, and loads this file by its path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def time_calls(calls: Mapping[str, Callable[[], object]], *, warmup: int, min_iters: int, max_iters: int,
               budget_s: float, sync: Callable[[], None] = lambda: None,
               clock: Callable[[], float] = time.perf_counter, rotate: bool = False) -> dict[str, list[float]]:
    """Seconds per call of every callable in ``calls``, measured round-robin.

    Each callable is first called ``warmup`` times, untimed. Then come rounds of one timed call
    of each callable in turn (so that drift in machine load hits all of them alike), until
    ``max_iters`` rounds are done or, once ``min_iters`` rounds are done, ``budget_s`` seconds
    have passed since the first timed round began. With ``rotate``, round ``r`` starts at the
    ``r``-th callable (mod their count) and wraps around, so that every callable takes every
    position in a round in turn and none is always the first (or last) after a pause
    (``sparsebert bench`` times all paths of a batch size this way).

    Args:
        calls: label -> a callable without arguments (its result is ignored).
        warmup: untimed calls of each callable first (>= 0).
        min_iters: timed rounds at least (>= 1).
        max_iters: timed rounds at most (>= ``min_iters``).
        budget_s: seconds after which no round is started once ``min_iters`` are done (>= 0).
        sync: called after every call, before the clock is read (e.g. ``torch.cuda.synchronize``).
        clock: seconds, monotonic (``time.perf_counter``; tests pass a fake one).
        rotate: rotate the order of the callables from round to round (default: the same order).
    Returns:
        label -> seconds of each timed call, in order (the same count for every label).
    Raises:
        ValueError: ``warmup`` < 0, ``min_iters`` < 1, ``max_iters`` < ``min_iters`` or ``budget_s`` < 0.
    """
    if warmup < 0 or min_iters < 1 or max_iters < min_iters or budget_s < 0:
        raise ValueError(f"time_calls needs warmup >= 0, 1 <= min_iters <= max_iters and budget_s >= 0; "
                         f"got warmup={warmup}, min_iters={min_iters}, max_iters={max_iters}, budget_s={budget_s}")
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    sync()
    times: dict[str, list[float]] = {label: [] for label in calls}
    start = clock()
    rounds = 0
    items = list(calls.items())
    while rounds < max_iters and (rounds < min_iters or clock() - start < budget_s):
        k = rounds % len(items) if rotate and items else 0
        for label, fn in items[k:] + items[:k]:
            t0 = clock()
            fn()
            sync()
            times[label].append(clock() - t0)
        rounds += 1
    return times
