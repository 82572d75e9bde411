"""Official GLUE evaluation metrics, computed with scikit-learn and SciPy.

Per task (Wang et al., *GLUE: A Multi-Task Benchmark and Analysis Platform for Natural
Language Understanding*, ICLR 2019, Table 1; key names as in the reference Hugging Face
``run_glue`` / ``glue_compute_metrics``):

* CoLA: Matthews correlation coefficient (Matthews, 1975) -> ``{"mcc"}``
* SST-2, QNLI, RTE, MNLI (each of matched/mismatched): accuracy -> ``{"accuracy"}``
* MRPC, QQP: accuracy and F1 of the positive class (paraphrase / duplicate, id 1)
  -> ``{"accuracy", "f1", "acc_and_f1"}`` where ``acc_and_f1 = (accuracy + f1) / 2``
* STS-B: Pearson and Spearman rank correlation -> ``{"pearson", "spearman", "corr"}`` where
  ``corr = (pearson + spearman) / 2``
* own data (:mod:`sparsebert.data.files`): classification -> ``{"accuracy", "macro_f1", "mcc"}``
  (F1 averaged over the classes with equal weight; multi-class MCC, Gorodkin 2004), regression as STS-B

All values are fractions (``0.873``, not ``87.3``); correlations lie in [-1, 1], accuracy and
F1 in [0, 1].
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .data.files import FileTaskSpec
from .data.tasks import TaskSpec, get_task

__all__ = ["compute_metrics", "main_metric"]

_PAIR_F1_TASKS = frozenset({"mrpc", "qqp"})


def _as_1d(name: str, values: Any) -> np.ndarray:
    if hasattr(values, "detach"):  # torch.Tensor (any device) without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        hint = (" (for logits of shape (N, C) pass argmax over the last axis; for a regression "
                "head of shape (N, 1) squeeze it)") if arr.ndim == 2 else ""
        raise ValueError(f"{name} must have shape (N,), got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one example")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _class_ids(name: str, arr: np.ndarray, num_labels: int) -> np.ndarray:
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer class ids, got non-integer floats "
                             "(pass argmax of the logits, not probabilities)")
    ids = arr.astype(np.int64)
    bad = (ids < 0) | (ids >= num_labels)
    if bad.any():
        raise ValueError(f"{name} has class id {ids[bad][0]} outside [0, {num_labels})")
    return ids


def _correlation(kind: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    from scipy import stats

    if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
        warnings.warn(f"{kind} correlation is undefined for a constant input; reporting 0.0 "
                      "(as sklearn does for an undefined Matthews correlation)",
                      RuntimeWarning, stacklevel=3)
        return 0.0
    fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
    return float(fn(predictions, labels).statistic)


def compute_metrics(task: TaskSpec | str, predictions: Any, labels: Any) -> dict[str, float]:
    """Compute the official GLUE metrics of one task.

    Args:
        task: a :class:`~sparsebert.data.TaskSpec` or task name.
        predictions: shape ``(N,)``: predicted class ids for classification (ints, or
            integer-valued floats, in ``[0, num_labels)``), predicted scores (floats, STS-B
            0-5 scale, any finite value accepted) for regression. NumPy arrays, lists and
            torch tensors are accepted.
        labels: shape ``(N,)``: gold class ids / gold scores, as in :class:`Example.label`.

    Returns:
        Plain Python floats, fractions not percent. CoLA ``{"mcc"}`` (Matthews correlation,
        sklearn ``matthews_corrcoef``; 0.0 when undefined, e.g. constant predictions);
        SST-2/QNLI/RTE/MNLI ``{"accuracy"}``; MRPC/QQP ``{"accuracy", "f1", "acc_and_f1"}``
        (binary F1 of class 1, 0.0 when undefined); own-data classification (a
        :class:`~sparsebert.data.files.FileTaskSpec`) ``{"accuracy", "macro_f1", "mcc"}`` (macro F1: the mean F1
        of the classes that occur in the labels or the predictions, sklearn's default); STS-B and own-data regression ``{"pearson", "spearman", "corr"}``
        (SciPy ``pearsonr``/``spearmanr``; ``corr`` is their mean; a correlation with a
        constant input is undefined and reported as 0.0 with a ``RuntimeWarning``).

    Raises:
        ValueError: unknown task; inputs not 1-D, empty, of different lengths, non-numeric
            or non-finite; class ids out of range or non-integer; regression with N < 2.

    Source: metric choice per task from GLUE (Wang et al., ICLR 2019, Table 1); MCC:
    Matthews (1975), as in Warstadt et al. (TACL 2019) for CoLA; F1 of the positive class
    for MRPC/QQP; Pearson/Spearman for STS-B (Cer et al., SemEval 2017).
    """
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    spec = get_task(task)
    preds = _as_1d("predictions", predictions)
    gold = _as_1d("labels", labels)
    if preds.shape != gold.shape:
        raise ValueError(f"predictions and labels differ in shape: {preds.shape} vs {gold.shape}")

    if spec.is_regression:
        if preds.size < 2:
            raise ValueError("correlations need at least 2 examples, got 1")
        p, g = preds.astype(np.float64), gold.astype(np.float64)
        pearson = _correlation("pearson", p, g)
        spearman = _correlation("spearman", p, g)
        return {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}

    p = _class_ids("predictions", preds, spec.num_labels)
    g = _class_ids("labels", gold, spec.num_labels)
    if isinstance(spec, FileTaskSpec):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="A single label was found")
            mcc = float(matthews_corrcoef(g, p))
        return {"accuracy": float(accuracy_score(g, p)),
                "macro_f1": float(f1_score(g, p, average="macro", zero_division=0.0)),
                "mcc": mcc}
    if spec.main_metric == "mcc":
        with warnings.catch_warnings():
            # sklearn warns when only one class occurs; the MCC is then 0.0 by definition.
            warnings.filterwarnings("ignore", message="A single label was found")
            return {"mcc": float(matthews_corrcoef(g, p))}
    accuracy = float(accuracy_score(g, p))
    if spec.name in _PAIR_F1_TASKS:
        f1 = float(f1_score(g, p, labels=[0, 1], pos_label=1, average="binary",
                            zero_division=0.0))
        return {"accuracy": accuracy, "f1": f1, "acc_and_f1": (accuracy + f1) / 2}
    return {"accuracy": accuracy}


def main_metric(task: TaskSpec | str, metrics: Mapping[str, float]) -> float:
    """Return the task's headline metric (:attr:`TaskSpec.main_metric`) from ``metrics``.

    CoLA ``mcc``, SST-2/QNLI/RTE/MNLI ``accuracy``, MRPC/QQP ``f1``, STS-B ``pearson``.

    Args:
        task: a :class:`~sparsebert.data.TaskSpec` or task name.
        metrics: output of :func:`compute_metrics` (extra keys are ignored).

    Returns:
        The value as a plain float.

    Raises:
        ValueError: unknown task, or ``metrics`` lacks the main metric (message lists the
            keys present).

    Source: GLUE (Wang et al., ICLR 2019) metrics; for the two-metric tasks the headline is
    F1 for MRPC/QQP (as reported by the GLUE leaderboard and BERT, Devlin et al. 2019) and
    Pearson for STS-B (listed first by GLUE).
    """
    spec = get_task(task)
    if spec.main_metric not in metrics:
        raise ValueError(f"metrics for {spec.name!r} lack the main metric "
                         f"{spec.main_metric!r}; keys present: {sorted(metrics)}")
    return float(metrics[spec.main_metric])


def predictions(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """``[N]`` predictions from ``[N, C]`` logits: class ids (argmax over ``C``) for classification,
    the single output (``C`` = 1) for regression."""
    return logits[:, 0] if task.is_regression else logits.argmax(-1)
