"""Gradual magnitude pruning: schedule (how sparse), criterion (which weights), sparsifier (masks)."""

from sparsebert.pruning.magnitude import global_magnitude_masks, magnitude_mask
from sparsebert.pruning.schedule import CubicSchedule
from sparsebert.pruning.sparsifier import GMPSparsifier

__all__ = ["CubicSchedule", "GMPSparsifier", "global_magnitude_masks", "magnitude_mask"]
