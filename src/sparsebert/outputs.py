"""What every stage writes into its (staging) output directory."""

from __future__ import annotations

import time
from pathlib import Path

from torch import nn

from sparsebert.io import write_json_atomic, write_text_atomic
from sparsebert.modelcard import write_model_card
from sparsebert.recipe import TrainRecipe, recipe_yaml
from sparsebert.report import sparsity_report


def write_run(stage: str | Path, model: nn.Module, tokenizer, recipe: TrainRecipe, summary: dict, t_start: float) -> dict:
    """Save model (safetensors) + tokenizer, ``recipe.yaml``, ``summary.json`` and the ``README.md``
    model card (:func:`sparsebert.modelcard.write_model_card`).

    Adds ``sparsity`` (see :func:`sparsebert.report.sparsity_report`), ``recipe`` and
    ``wall_seconds`` (since ``t_start``, a ``time.time()``) to ``summary``.

    Returns:
        The completed summary.
    """
    stage = Path(stage)
    model.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    write_text_atomic(stage / "recipe.yaml", recipe_yaml(recipe))
    summary = {
        **summary,
        "sparsity": sparsity_report(model, recipe.max_length),
        "recipe": recipe.model_dump(mode="json"),
        "wall_seconds": time.time() - t_start,
    }
    write_json_atomic(stage / "summary.json", summary)
    write_model_card(stage, name=Path(recipe.out).name, summary=summary)
    return summary
