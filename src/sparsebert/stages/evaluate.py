"""Stage 4 — evaluation: official GLUE dev metrics, or own-data metrics, of any saved model directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sparsebert.data.encode import encode_examples
from sparsebert.data.files import files_task
from sparsebert.data.glue import load_split
from sparsebert.data.tasks import TaskSpec, get_task
from sparsebert.errors import InputError
from sparsebert.io import read_json
from sparsebert.models import load_tokenizer, resolve_model
from sparsebert.training import device, evaluate_features, split_logits


def eval_task(
    model_dir: str | Path,
    task: str | TaskSpec | None = None,
    *,
    dev: str | Path | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
) -> TaskSpec:
    """The task to evaluate ``model_dir`` on.

    * ``task`` given: that GLUE task (or the :class:`TaskSpec` itself).
    * ``dev`` given: that file, with the classes of the model's ``config.json`` (``id2label`` in id
      order; ``problem_type`` regression or one output = regression) and the columns given here, else
      those of the run's ``recipe.yaml``, else ``text`` / ``label``.
    * neither: the run's own data when its ``recipe.yaml`` has ``train`` (its ``dev`` file and columns),
      else the GLUE task of its ``summary.json``.

    Returns:
        A GLUE :class:`TaskSpec` or a :class:`~sparsebert.data.files.FileTaskSpec`.
    Raises:
        InputError: both ``task`` and ``dev``; nothing says the task (no ``summary.json``, no own data);
            unknown task; bad column names or file extension.
        ModelNotFoundError: ``model_dir`` holds no model (own data: its labels are read).
    """
    if task is not None and dev is not None:
        raise InputError(f"give either a GLUE task ({task if isinstance(task, str) else task.name!r}) or a dev file "
                         f"({dev}), not both")
    if task is not None:
        return get_task(task)
    model_dir = Path(model_dir)
    recipe_file = model_dir / "recipe.yaml"
    from sparsebert.recipe import load_yaml

    recipe = load_yaml(recipe_file) if recipe_file.is_file() else {}
    train = recipe.get("train")
    if dev is None and train is None:
        summary = model_dir / "summary.json"
        if not summary.is_file():
            raise InputError(f"{model_dir}: no summary.json; pass --task (GLUE) or --dev (your own file)")
        return get_task(read_json(summary)["task"])
    if dev is None:
        dev = recipe.get("dev")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_model(str(model_dir)))
    regression = getattr(config, "problem_type", None) == "regression" or config.num_labels == 1
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    labels = None if regression else [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    return files_task(train, dev, text_column=text_column or recipe.get("text_column"),
                      text_pair_column=text_pair_column or recipe.get("text_pair_column"),
                      label_column=label_column or recipe.get("label_column"),
                      labels=labels, regression=regression)


#: the max length of a model whose run recorded none (no ``recipe.yaml``)
DEFAULT_MAX_LENGTH = 128


def trained_settings(model_dir: str | Path) -> dict[str, int | str | None]:
    """What ``model_dir`` was trained with, as evaluation needs it: ``{"max_length": ..., "pooling": ...}``
    from its ``recipe.yaml`` (written beside every finetune / prune output); pooling from ``config.json``
    (``sparsebert_pooling``) first, which a sparse export keeps. None where neither says.

    Raises:
        RecipeError: an unreadable ``recipe.yaml`` (names the file, line and column).
    """
    from sparsebert.pooling import CONFIG_KEY
    from sparsebert.recipe import load_yaml

    model_dir = Path(model_dir)
    recipe = load_yaml(model_dir / "recipe.yaml") if (model_dir / "recipe.yaml").is_file() else {}
    config = model_dir / "config.json"
    pooling = read_json(config).get(CONFIG_KEY) if config.is_file() else None
    max_length = recipe.get("max_length")
    return {"max_length": int(max_length) if isinstance(max_length, int) else None,
            "pooling": pooling or recipe.get("pooling")}


def evaluate(
    model_dir: str | Path,
    task: str | TaskSpec | None = None,
    data_dir: str | Path | None = None,
    splits: list[str] | None = None,
    max_length: int | None = None,
    batch_size: int = 128,
    max_examples: int | None = None,
    bf16: bool = False,
    *,
    dev: str | Path | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    pooling: str | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate a fine-tuned/pruned model on ``task``'s eval splits, or on your own dev file.

    Args:
        model_dir: a ``from_pretrained`` directory whose head matches the task's labels.
        task: a GLUE task name or a :class:`TaskSpec`; None = the run's own task (see :func:`eval_task`:
            its own-data dev file, or the GLUE task of its ``summary.json``).
        data_dir: ``glue_data`` root or task directory (GLUE tasks; None = hub).
        splits: default the task's eval splits (MNLI: dev_matched and dev_mismatched; own data: dev).
        max_length: tokens per example; None = what the run was trained with (:func:`trained_settings`),
            else :data:`DEFAULT_MAX_LENGTH`.
        bf16: bf16 autocast (default off: fp32 numbers for reporting).
        dev: your own file (``.csv``, ``.tsv``, ``.jsonl``) instead of ``task``; labels as the model's.
        text_column, text_pair_column, label_column: its columns (default: the run's recipe, else
            ``text`` / none / ``label``).
        pooling: ``cls`` or ``mean``; None = what the run was trained with (its config, else its recipe,
            else ``cls``).
    Returns:
        ``{split: {metric: value}}`` with official GLUE metrics (fractions, not percent); own data:
        accuracy, macro_f1, mcc (classification) or pearson, spearman, corr (regression).
    Raises:
        ModelNotFoundError, DataError, InputError, ValueError (head / labels mismatch).
    """
    task = eval_task(model_dir, task, dev=dev, text_column=text_column, text_pair_column=text_pair_column,
                     label_column=label_column)
    trained = trained_settings(model_dir)
    max_length = max_length or trained["max_length"] or DEFAULT_MAX_LENGTH
    spec, model, pad_token_id, eval_sets = _load(model_dir, task, data_dir, splits, max_length, max_examples,
                                                 pooling=pooling or trained["pooling"])
    with torch.inference_mode():
        return evaluate_features(model, spec, eval_sets, batch_size, pad_token_id, bf16)


def eval_logits(
    model_dir: str | Path,
    task: str,
    data_dir: str | Path | None = None,
    splits: list[str] | None = None,
    max_length: int = 128,
    batch_size: int = 128,
    max_examples: int | None = None,
    bf16: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The logits behind :func:`evaluate` (same loading, encoding and batching), e.g. for a paired test of two
    models on the same examples.

    Returns:
        ``{split: (logits [N, num_labels] float32 ([N, 1] for regression), labels [N])}`` in the split's order.
    Raises:
        ModelNotFoundError, DataError, ValueError (head / labels mismatch).
    """
    spec, model, pad_token_id, eval_sets = _load(model_dir, task, data_dir, splits, max_length, max_examples)
    with torch.inference_mode():
        return split_logits(model, eval_sets, batch_size, pad_token_id, bf16)


def _load(model_dir, task, data_dir, splits, max_length, max_examples, pooling=None):
    """(task spec, model in eval mode on the device, pad token id, {split: encoded features}); a saved bi-encoder
    (``config.json``: ``sparsebert_head: bi-encoder``) is rebuilt as one and its pairs encoded text by text."""
    from sparsebert.biencoder import load_model, saved_head

    spec = get_task(task)
    tokenizer = load_tokenizer(str(model_dir))
    head = saved_head(model_dir)
    model = load_model(str(model_dir), spec, head, require_head=True, pooling=pooling).to(device()).eval()
    eval_sets = {}
    for split in splits or list(spec.eval_splits):
        examples = load_split(spec, split, data_dir)
        if max_examples:
            examples = examples[:max_examples]
        eval_sets[split] = encode_examples(tokenizer, examples, max_length, spec.is_regression, head=head)
    return spec, model, tokenizer.pad_token_id, eval_sets
