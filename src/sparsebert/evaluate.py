"""Stage 4 — evaluation: official GLUE dev metrics of any saved model directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sparsebert.data.encode import encode_examples
from sparsebert.data.glue import load_split
from sparsebert.data.tasks import get_task
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.training import device, evaluate_features, split_logits


def evaluate(
    model_dir: str | Path,
    task: str,
    data_dir: str | Path | None = None,
    splits: list[str] | None = None,
    max_length: int = 128,
    batch_size: int = 128,
    max_examples: int | None = None,
    bf16: bool = False,
) -> dict[str, dict[str, float]]:
    """Evaluate a fine-tuned/pruned model on ``task``'s eval splits.

    Args:
        model_dir: a ``from_pretrained`` directory whose head matches the task's labels.
        splits: default the task's eval splits (MNLI: dev_matched and dev_mismatched).
        bf16: bf16 autocast (default off: fp32 numbers for reporting).
    Returns:
        ``{split: {metric: value}}`` with official GLUE metrics (fractions, not percent).
    Raises:
        ModelNotFoundError, DataError, ValueError (head / labels mismatch).
    """
    spec, model, pad_token_id, eval_sets = _load(model_dir, task, data_dir, splits, max_length, max_examples)
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


def _load(model_dir, task, data_dir, splits, max_length, max_examples):
    """(task spec, model in eval mode on the device, pad token id, {split: encoded features})."""
    spec = get_task(task)
    tokenizer = load_tokenizer(str(model_dir))
    model = load_for_task(str(model_dir), spec, require_head=True).to(device()).eval()
    eval_sets = {}
    for split in splits or list(spec.eval_splits):
        examples = load_split(spec, split, data_dir)
        if max_examples:
            examples = examples[:max_examples]
        eval_sets[split] = encode_examples(tokenizer, examples, max_length, spec.is_regression)
    return spec, model, tokenizer.pad_token_id, eval_sets
