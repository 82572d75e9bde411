"""Experiment grids: reproduce the SparseBERT / S4 comparisons with one command (`sparsebert experiment`).

spec (YAML → :class:`ExperimentSpec`) → grid (cells → stage recipes) → runner (resumable,
parallel cells) → s4 (throughput of sparse vs small dense vs teacher) → report (results.json,
Markdown, plots).
"""

from sparsebert.experiment.grid import Cell, cell_recipe, expand_grid
from sparsebert.experiment.runner import run_experiment
from sparsebert.experiment.spec import ExperimentSpec, SpecError, load_spec

__all__ = ["Cell", "ExperimentSpec", "SpecError", "cell_recipe", "expand_grid", "load_spec", "run_experiment"]
