"""Pruning criteria (scorers): which weights matter. One file per criterion, one registry line each.

=============  ===========================================================  ==========================
name           score (higher = keep)                                        source
=============  ===========================================================  ==========================
magnitude      ``|w|``                                                      Han et al. 2015; GMP
movement       ``-Σ_t g_t ⊙ w_t``                                           Sanh et al., NeurIPS 2020
taylor         ``Ī ⊙ U`` of ``|w ⊙ g|`` (moving average x uncertainty)     PLATON, Zhang et al. ICML 2022
obs            ``w² / (2 [F⁻¹]_ii)``, block Fisher, OBS weight update        oBERT, Kurtic et al. EMNLP 2022
=============  ===========================================================  ==========================
"""

from __future__ import annotations

from sparsebert.pruning.scorers.base import GradientScorer, Scorer
from sparsebert.pruning.scorers.magnitude import MagnitudeScorer
from sparsebert.pruning.scorers.movement import MovementScorer
from sparsebert.pruning.scorers.obs import OBSScorer
from sparsebert.pruning.scorers.taylor import TaylorScorer

#: criterion name -> scorer class (keyword options: see each class).
SCORERS: dict[str, type[Scorer]] = {
    MagnitudeScorer.name: MagnitudeScorer,
    MovementScorer.name: MovementScorer,
    TaylorScorer.name: TaylorScorer,
    OBSScorer.name: OBSScorer,
}


def make_scorer(criterion: str, **options) -> Scorer:
    """A scorer by name (:data:`SCORERS`) with its options.

    Raises:
        ValueError: unknown criterion, or options the scorer rejects.
    """
    try:
        cls = SCORERS[criterion]
    except KeyError:
        raise ValueError(f"unknown pruning criterion {criterion!r}; choose one of {sorted(SCORERS)}") from None
    return cls(**options)


__all__ = ["SCORERS", "GradientScorer", "MagnitudeScorer", "MovementScorer", "OBSScorer", "Scorer",
           "TaylorScorer", "make_scorer"]
