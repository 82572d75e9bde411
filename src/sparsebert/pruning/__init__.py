"""Gradual pruning: schedule (how sparse), scorers (which weights), masks and patterns (which shapes of
zeros), sparsifier (enforcement).

Names are imported on first use (:func:`sparsebert._lazy.lazy_exports`), so the torch-free
:mod:`sparsebert.pruning.patterns` (what recipes validate ``pattern`` with) does not load torch.
"""

from sparsebert._lazy import lazy_exports

_LAZY = {
    **{n: "sparsebert.pruning.masks" for n in ("global_magnitude_masks", "global_score_masks", "magnitude_mask",
                                               "score_mask")},
    **{n: "sparsebert.pruning.patterns" for n in ("Pattern", "parse_pattern")},
    "CubicSchedule": "sparsebert.pruning.schedule",
    **{n: "sparsebert.pruning.scorers" for n in ("SCORERS", "make_scorer")},
    **{n: "sparsebert.pruning.sparsifier" for n in ("GMPSparsifier", "Sparsifier")},
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
