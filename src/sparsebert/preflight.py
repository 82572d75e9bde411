"""Checks run before any training, so a bad input fails in seconds with one line, not after hours.

Each check raises :class:`PreflightError` (a ``ValueError``, so the CLI prints ``error: ...`` and
exits 2) with a one-line message naming the file, field or value. Checks that already exist
elsewhere are reused, not repeated: recipe field ranges (:mod:`sparsebert.recipe`), data rows
with ``file:line`` (:mod:`sparsebert.data.glue`), teacher/student vocabulary and layer mapping
(:func:`sparsebert.stages.prune.check_pair`), head labels (:func:`sparsebert.models.check_head_labels`),
the output-directory rule (:func:`sparsebert.io.check_output_dir`). This module adds what they do
not cover: disk space, labels of examples that did not come from the readers (augmented data,
Python callers), empty splits, the usable sequence length of every model (RoBERTa-style position
ids included), the teacher and student heads agreeing with each other, and a sparsity given
outside a recipe. Stages call :func:`check_data` (from :mod:`sparsebert.data.taskdata`) and
:func:`check_models`.
"""

from __future__ import annotations

import math
import numbers
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from sparsebert.data.glue import Example
from sparsebert.data.tasks import TaskSpec
from sparsebert.errors import SparsebertError

MB = 1e6
# Position ids of these families start at pad_token_id + 1 (RoBERTa's create_position_ids_from_input_ids).
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet")


class PreflightError(SparsebertError, ValueError):
    """An input that would make training fail or produce garbage; the message names what and where."""


def check_disk_space(out_dir: str | Path, need_bytes: int) -> int:
    """Check that the file system of ``out_dir`` has ``need_bytes`` free.

    ``out_dir`` need not exist: the nearest existing parent is measured (that is where the
    staging directory and the output will be written).

    Returns:
        Free bytes.
    Raises:
        PreflightError: less free space than ``need_bytes`` (message in MB, naming both paths).
    """
    out_dir = Path(out_dir)
    probe = out_dir.absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise PreflightError(f"{out_dir}: needs about {need_bytes / MB:.1f} MB on disk, "
                             f"{free / MB:.1f} MB free at {probe}")
    return free


def estimate_checkpoint_bytes(model: nn.Module, with_optimizer: bool = True) -> int:
    """Bytes a saved ``model`` (fp32) takes; with ``with_optimizer``, a resumable training state.

    Weights are 4 bytes per parameter; a training state adds AdamW's two fp32 moments
    (8 bytes per parameter) and one byte (bool) per weight of the pruned target matrices.
    Tokenizer and JSON files are ignored (kilobytes to a few MB).

    Returns:
        Estimated bytes (an int).
    """
    n = sum(p.numel() for p in model.parameters())
    if not with_optimizer:
        return 4 * n
    from sparsebert.targets import UnsupportedArchitectureError, prunable_linears

    try:
        masks = sum(lin.weight.numel() for lin in prunable_linears(model).values())
    except UnsupportedArchitectureError:
        masks = 0
    return 3 * 4 * n + masks


def _where(example, i: int, source: str) -> str:
    return getattr(example, "source", None) or f"{source}[{i}]"


def check_labels(task: TaskSpec, examples: Sequence[Example], source: str) -> None:
    """Every label is a class id of ``task`` (an ``int`` in ``[0, num_labels)``), or, for
    regression, a finite float inside ``task.label_range`` when there is one.

    The readers already check rows of GLUE files; this is for examples from elsewhere
    (augmented data, lists passed from Python).

    Args:
        source: names the examples in the message when an example has no ``source``
            (``"<source>[<index>]"``); :class:`Example` carries ``"path:line"``.
    Raises:
        PreflightError: naming the first offending example (``file:line`` or index) and its label.
    """
    for i, ex in enumerate(examples):
        label = ex.label
        if task.is_regression:
            lo, hi = task.label_range or (-math.inf, math.inf)
            ok = isinstance(label, numbers.Real) and not isinstance(label, bool) and math.isfinite(label) and lo <= label <= hi
            if not ok:
                raise PreflightError(f"{_where(ex, i, source)}: label {label!r} is not a finite score in "
                                     f"[{lo:g}, {hi:g}] for task {task.name}")
        elif isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < task.num_labels:
            raise PreflightError(f"{_where(ex, i, source)}: label {label!r} is not a class id of task {task.name} "
                                 f"(0..{task.num_labels - 1} for {list(task.labels)})")


def check_not_empty(split_name: str, examples: Sequence, source: str) -> None:
    """Raise :class:`PreflightError` if ``examples`` is empty (e.g. after subsampling or filtering)."""
    if len(examples) == 0:
        raise PreflightError(f"{source}: split {split_name!r} has no examples")


def max_positions(model_config) -> int | None:
    """The longest input (tokens, specials included) ``model_config``'s position embeddings allow.

    ``max_position_embeddings``, less ``pad_token_id + 1`` (2 for the usual pad id 1) for the
    RoBERTa family and MPNet, whose position ids start after the padding index. None when the
    config has no position limit.
    """
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit is None:
        return None
    pad = getattr(model_config, "pad_token_id", None)
    if pad is not None and getattr(model_config, "model_type", "") in _OFFSET_POSITIONS:
        limit -= pad + 1
    return limit


def check_max_length(max_length: int, model_config, who: str) -> None:
    """``max_length`` must fit ``who``'s position embeddings (see :func:`max_positions`).

    Raises:
        PreflightError: naming ``max_length``, the model and its limit.
    """
    limit = max_positions(model_config)
    if limit is not None and max_length > limit:
        raw = model_config.max_position_embeddings
        note = "" if raw == limit else f" (max_position_embeddings {raw} minus the padding offset)"
        raise PreflightError(f"max_length {max_length} exceeds the {who}'s limit of {limit} tokens{note}")


def _name(config, who: str) -> str:
    path = getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "")
    return f"{who} {path}" if path else who


def check_label_sets(teacher_config, student_config, task: TaskSpec) -> None:
    """The teacher's head and the student's head both predict ``task``'s labels, in the task's order.

    Both go through :func:`sparsebert.models.check_head_labels` (same number of outputs, same
    names by id; generic ``LABEL_i`` names warn). ``student_config`` is the config of the
    student *as loaded for the task* (:func:`sparsebert.models.load_for_task` gives it the task's head).

    Raises:
        PreflightError: naming the model, its labels and the task's.
    """
    from sparsebert.models import check_head_labels

    for who, config in (("teacher", teacher_config), ("student", student_config)):
        try:
            check_head_labels(_name(config, who), config, task)
        except PreflightError:
            raise
        except ValueError as err:
            raise PreflightError(str(err)) from None


def check_sparsity(value, field: str) -> float:
    """A sparsity is a finite number in [0, 1) (1.0 would prune every weight of the targets).

    Returns:
        ``value`` as a float.
    Raises:
        PreflightError: naming ``field`` and the value.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value < 1.0
    if not ok:
        raise PreflightError(f"{field}: sparsity must be a number in [0, 1) (1.0 would remove every weight), "
                             f"got {value!r}")
    return float(value)


def check_data(task: TaskSpec, split: str, examples: Sequence[Example], source: str) -> None:
    """A split read for training or evaluation: not empty, every label valid for ``task``.

    Raises:
        PreflightError: naming the split / the first offending example (file:line).
    """
    check_not_empty(split, examples, source)
    check_labels(task, examples, source)


# Above this peak lr, a BERT-base-wide student lost most of its accuracy early in pruning (results/mpnet_sst2.md).
WIDE_STUDENT_HIDDEN, WIDE_STUDENT_MAX_LR = 768, 5e-5


def check_learning_rate(learning_rate: float, sparsity: float, student_config) -> str | None:
    """Warn (``UserWarning``) when a student of hidden size >= 768 is pruned to >= 50 % sparsity at a
    peak learning rate above 5e-5.

    The default recipe's 1e-4 suits MiniLM-L6 (hidden 384); MPNet-base (768) pruned to 95 % with it
    fell to SST-2 dev 57.8 by step 500 (58 % sparsity), where 3e-5, the SparseBERT paper's BERT-base
    rate (Xu et al. 2021, §4.1), kept 85.6 (results/mpnet_sst2.md). A warning, not an error: the
    evidence is one model, one task and one step of two runs.

    Returns:
        The warning's text, or None when nothing was warned.
    """
    hidden = getattr(student_config, "hidden_size", 0) or 0
    if hidden < WIDE_STUDENT_HIDDEN or sparsity < 0.5 or learning_rate <= WIDE_STUDENT_MAX_LR:
        return None
    msg = (f"learning_rate {learning_rate:g} with a student of hidden size {hidden} at sparsity {sparsity:g}: "
           f"MPNet-base (hidden 768) pruned to 95 % at 1e-4 fell to SST-2 dev 57.8 by step 500 where 3e-5 kept 85.6 "
           f"(results/mpnet_sst2.md); the paper's BERT-base rate is 3e-5 (--learning-rate 3e-5)")
    warnings.warn(msg, UserWarning, stacklevel=2)
    return msg


def check_obs_gradients(event_steps: Sequence[int], num_grads: int) -> str | None:
    """Warn (``UserWarning``) when the pruning events of an ``obs`` run are closer than ``num_grads`` steps.

    The Optimal BERT Surgeon (Kurtic et al. 2022, §3; :mod:`sparsebert.pruning.scorers.obs`) builds each event's
    empirical Fisher from the training gradients since the previous event, up to ``num_grads`` of them. Events
    ``g`` steps apart give it only ``g`` gradients: a Fisher of rank ``g`` per block, its inverse mostly the
    dampening prior (magnitude-like scores). oBERT uses 1,024 gradients per event. Nothing is refused: a short
    run may choose this.

    Args:
        event_steps: the optimizer steps of the pruning events (:class:`~sparsebert.pruning.schedule.CubicSchedule`).
        num_grads: ``obs_num_grads``.
    Returns:
        The warning's text, or None when every event gets its ``num_grads`` gradients.
    """
    if not event_steps:
        return None
    gaps = [b - a for a, b in zip([0, *event_steps[:-1]], event_steps)]
    fewest = min(gaps)
    if fewest >= num_grads:
        return None
    window = event_steps[-1] - event_steps[0] + fewest
    msg = (f"criterion obs: pruning events {fewest} steps apart give an event's Fisher {fewest} of its {num_grads} "
           f"gradients (obs_num_grads); --pruning-events {max(1, window // num_grads)} or fewer over this window gives "
           f"each event all of them (oBERT: 1,024 gradients per event)")
    warnings.warn(msg, UserWarning, stacklevel=2)
    return msg


def check_models(recipe, task: TaskSpec, student: nn.Module, teacher: nn.Module | None = None) -> None:
    """The models of a stage, once loaded and before the first step.

    ``max_length`` fits every model's positions; teacher and student agree with the task's label
    set; a wide student pruned at a learning rate that hurt MPNet-base is warned about
    (:func:`check_learning_rate`); the output's file system has room for a resumable state of
    ``student`` (:func:`estimate_checkpoint_bytes`). Vocabulary and layer mapping are checked by
    :func:`sparsebert.stages.prune.check_pair`.

    Raises:
        PreflightError: the first failing check.
    """
    check_max_length(recipe.max_length, student.config, "student" if teacher is not None else "model")
    if teacher is not None:
        check_max_length(recipe.max_length, teacher.config, "teacher")
        check_label_sets(teacher.config, student.config, task)
    if getattr(recipe, "sparsity", 0):
        check_learning_rate(recipe.learning_rate, recipe.sparsity, student.config)
    check_disk_space(recipe.out, estimate_checkpoint_bytes(student, with_optimizer=True))
