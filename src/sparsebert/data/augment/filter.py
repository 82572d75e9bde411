"""Label-consistency filtering of augmented copies by the teacher (``prune --augment-filter``).

TinyBERT's word replacement (p = 0.4 of the candidate words) can change what a text means — a
paraphrase pair with 40 % of its content words swapped is often no longer a paraphrase — while
the copy keeps the original's gold label. On MRPC the fine-tuned teacher calls 42 % of the
augmented copies "paraphrase" against 66 % of their copied gold labels (README, augmentation), so
distilling on all copies moves the student's targets towards the other class.

``teacher-agrees`` keeps every original example and only the copies on which the teacher still
agrees with the copied gold label: the filter of generated training data by a classifier trained on
the original data in LAMBADA (Anaby-Tavor et al., *Do Not Have Enough Data? Deep Learning to the
Rescue!*, AAAI 2020, §3, "filter synthesized data"), with the teacher as that classifier.

- classification: a copy is kept when the teacher's arg-max class equals its gold label;
- regression (STS-B): when ``|teacher score - gold score|`` is at most the teacher's own mean
  absolute error on the original examples (so a copy is kept when the teacher scores it no worse
  than it scores the real training data on average; no extra knob).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparsebert.errors import InputError

#: values of ``PruneRecipe.augment_filter``
AUGMENT_FILTERS = ("none", "teacher-agrees")


def _shares(values: np.ndarray, num_classes: int) -> list[float]:
    if values.size == 0:
        return [0.0] * num_classes
    return [round(float(x), 4) for x in np.bincount(values, minlength=num_classes) / values.size]


def teacher_agreement(logits: np.ndarray, labels: Sequence[int | float], n_original: int,
                      regression: bool) -> tuple[np.ndarray, dict]:
    """Which training examples ``teacher-agrees`` keeps (module docstring), and the label statistics.

    Args:
        logits: ``[N, C]`` teacher logits of every training example (``C = 1`` for regression),
            the ``n_original`` originals first, then the augmented copies (the order of
            :func:`sparsebert.data.augment.load_augmented`).
        labels: ``[N]`` gold labels (class ids, or scores for regression; copies carry their
            original's).
        n_original: how many of the first examples are originals (always kept).
        regression: the task is a regression (``C = 1``).
    Returns:
        ``(keep, stats)``: ``keep`` a ``[N]`` bool array; ``stats`` a JSON-able dict with the counts
        (``originals``, ``copies``, ``kept_copies``, ``kept_share``) and, for classification, the
        share of each class among the teacher's predictions and the gold labels of the originals,
        the copies and the kept copies (``teacher_class_share`` / ``gold_class_share``); for
        regression the ``tolerance`` and the teacher's mean absolute error on originals and copies.
    Raises:
        InputError: shapes that do not fit (``logits`` not ``[N, C]``, ``labels`` not ``[N]``,
            ``n_original`` outside ``[0, N]``, ``C != 1`` for regression).
    """
    logits = np.asarray(logits, dtype=np.float64)
    gold = np.asarray(labels, dtype=np.float64 if regression else np.int64)
    n = len(gold)
    if logits.ndim != 2 or logits.shape[0] != n:
        raise InputError(f"augment filter: logits of shape {logits.shape} for {n} labels (expected [{n}, C])")
    if not 0 <= n_original <= n:
        raise InputError(f"augment filter: n_original={n_original} outside [0, {n}]")
    if regression and logits.shape[1] != 1:
        raise InputError(f"augment filter: regression needs one logit per example, got {logits.shape[1]}")
    is_copy = np.arange(n) >= n_original
    stats: dict = {"filter": "teacher-agrees", "originals": int(n_original), "copies": int(is_copy.sum())}
    if regression:
        err = np.abs(logits[:, 0] - gold)
        tolerance = float(err[~is_copy].mean()) if n_original else 0.0
        agree = err <= tolerance
        stats.update(tolerance=round(tolerance, 4),
                     teacher_mae={"originals": round(tolerance, 4),
                                  "copies": round(float(err[is_copy].mean()), 4) if is_copy.any() else None})
    else:
        pred = logits.argmax(axis=1)
        agree = pred == gold
        c = logits.shape[1]
        kept_copy = is_copy & agree
        stats["teacher_class_share"] = {"originals": _shares(pred[~is_copy], c), "copies": _shares(pred[is_copy], c),
                                        "kept_copies": _shares(pred[kept_copy], c)}
        stats["gold_class_share"] = {"originals": _shares(gold[~is_copy], c), "copies": _shares(gold[is_copy], c),
                                     "kept_copies": _shares(gold[kept_copy], c)}
        stats["teacher_agrees_with_gold"] = {
            "originals": round(float(agree[~is_copy].mean()), 4) if n_original else None,
            "copies": round(float(agree[is_copy].mean()), 4) if is_copy.any() else None}
    keep = ~is_copy | agree
    stats["kept_copies"] = int((keep & is_copy).sum())
    stats["kept_share"] = round(stats["kept_copies"] / stats["copies"], 4) if stats["copies"] else None
    return keep, stats
