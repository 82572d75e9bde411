"""Magnitude criterion |w| (Han et al. 2015), the one of GMP (Zhu & Gupta 2017) and SparseBERT (§3)."""

from __future__ import annotations

from sparsebert.pruning.scorers.base import Scorer


class MagnitudeScorer(Scorer):
    """Score = ``|w|``. Stateless; needs no gradients."""

    name = "magnitude"

    def scores(self, targets, masks):
        return {n: lin.weight.detach().abs().float() for n, lin in targets.items()}
