"""Gradual pruning: schedule (how sparse), scorers (which weights), masks, sparsifier (enforcement)."""

from sparsebert.pruning.masks import global_magnitude_masks, global_score_masks, magnitude_mask, score_mask
from sparsebert.pruning.schedule import CubicSchedule
from sparsebert.pruning.scorers import SCORERS, make_scorer
from sparsebert.pruning.sparsifier import GMPSparsifier, Sparsifier

__all__ = ["SCORERS", "CubicSchedule", "GMPSparsifier", "Sparsifier", "global_magnitude_masks",
           "global_score_masks", "magnitude_mask", "make_scorer", "score_mask"]
