"""Train/eval features for a stage: read the splits, subsample, tokenise.

Validation happens here, before any training: a bad file fails on its line, an empty split or
a subsample larger than the data fails by name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sparsebert.data.encode import encode_examples
from sparsebert.data.glue import Example, load_split
from sparsebert.data.tasks import TaskSpec
from sparsebert.errors import InputError
from sparsebert.preflight import check_data
from sparsebert.recipe import TrainRecipe


@dataclass
class TaskData:
    """Encoded splits of one task: ``train`` features and ``{split: features}`` for evaluation."""

    train: list[dict]
    eval_sets: dict[str, list[dict]]
    pad_token_id: int


def subsample(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    """A fixed-seed sample of ``n`` examples (all of them when ``n`` is None or >= len)."""
    if n is None or n >= len(examples):
        return examples
    idx = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in idx]


def load_eval_sets(task: TaskSpec, recipe: TrainRecipe, tokenizer) -> dict[str, list[dict]]:
    """Encoded eval splits (first ``max_eval_examples`` of each)."""
    out = {}
    for split in task.eval_splits:
        examples = load_split(task, split, recipe.data_dir)
        check_data(task, split, examples, str(recipe.data_dir or "hub"))
        if recipe.max_eval_examples:
            examples = examples[: recipe.max_eval_examples]
        out[split] = encode_examples(tokenizer, examples, recipe.max_length, task.is_regression, head=recipe.head)
    return out


def load_task_data(task: TaskSpec, recipe: TrainRecipe, tokenizer, train_examples: list[Example] | None = None,
                   train_features: list[dict] | None = None) -> TaskData:
    """Read, subsample and encode the train split and the eval splits of ``task``.

    Args:
        train_examples: use these instead of the task's train split (e.g. augmented data).
        train_features: ``train_examples`` already encoded with ``tokenizer`` and ``recipe.max_length``
            (one feature per example, same order), so they are not tokenised twice.
    Raises:
        ValueError: ``train_features`` without ``train_examples``, or of another length.
        DataError / FileNotFoundError: from the readers, naming file and line.
        PreflightError: an empty split or a label outside the task's label set (file:line).
        InputError: the tokenizer has no pad token (a ``ValueError``).
    """
    if tokenizer.pad_token_id is None:
        raise InputError(f"tokenizer {tokenizer.name_or_path!r} has no pad token")
    examples = train_examples if train_examples is not None else load_split(task, task.train_split, recipe.data_dir)
    check_data(task, task.train_split, examples, str(recipe.data_dir or "hub"))
    if train_features is not None:
        if train_examples is None or len(train_features) != len(train_examples):
            raise ValueError(f"train_features ({len(train_features):,}) must encode train_examples "
                             f"({'none' if train_examples is None else f'{len(train_examples):,}'}) one to one")
        train = subsample(train_features, recipe.max_train_examples, recipe.seed)  # same indices as the examples
    else:
        examples = subsample(examples, recipe.max_train_examples, recipe.seed)
        train = encode_examples(tokenizer, examples, recipe.max_length, task.is_regression, head=recipe.head)
    return TaskData(train, load_eval_sets(task, recipe, tokenizer), tokenizer.pad_token_id)
