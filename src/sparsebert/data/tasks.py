"""The GLUE task registry: where each task lives on disk, what its columns and labels are.

Source: the GLUE benchmark, Wang, Singh, Michael, Hill, Levy & Bowman, *GLUE: A Multi-Task
Benchmark and Analysis Platform for Natural Language Understanding*, ICLR 2019, and the
``glue_data`` layout written by its official ``download_glue_data.py`` script. The label order
of the classification tasks is the one used by the reference BERT / Hugging Face ``run_glue``
processors (so ids agree with checkpoints fine-tuned by those scripts); in particular
``entailment`` is id 0 for RTE and QNLI, and MNLI is ``(contradiction, entailment, neutral)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sparsebert.errors import InputError

__all__ = ["TaskSpec", "TASKS", "get_task"]

_HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one GLUE task.

    Attributes:
        name: registry key, lower case (``"mrpc"``, ``"sst2"``, ``"stsb"``, ``"mnli"``, ...).
        glue_dir: directory of the task inside ``glue_data`` (``"MRPC"``, ``"SST-2"``, ``"STS-B"``).
        text_columns: header names of the one (single sentence) or two (pair) text columns.
            For header-less files (CoLA) these are 0-based positional indices written as
            strings (CoLA: ``("3",)``).
        label_column: header name of the label column (positional index as a string for
            header-less files; CoLA: ``"1"``).
        labels: label strings exactly as they appear in the files; the position in the tuple
            is the class id. ``None`` means regression (STS-B, float score).
        main_metric: key of :func:`sparsebert.metrics.compute_metrics` output used for model
            selection (``"mcc"``, ``"accuracy"``, ``"f1"``, ``"pearson"``).
        train_split: file stem of the training split (``"train"`` -> ``train.tsv``).
        eval_splits: file stems of the labelled evaluation splits (``("dev",)``; MNLI:
            ``("dev_matched", "dev_mismatched")``).
        hub_name: ``(dataset id, config)`` for ``datasets.load_dataset``; defaults to
            ``("nyu-mll/glue", name)``.
        has_header: whether the TSV files start with a header row (False only for CoLA).
        num_columns: required number of tab-separated fields per row for header-less files
            (CoLA: 4); ignored when ``has_header`` (the header fixes the count).
        label_range: for regression, the closed interval a score must lie in (STS-B:
            ``(0.0, 5.0)``); ``None`` = no bound.
        hub_text_columns: column names of the text fields in the hub dataset, same order
            as ``text_columns``.
        hub_label_order: for classification, the file label strings in the order of the hub
            dataset's class ids, when that order differs from ``labels`` (MNLI on the hub is
            entailment=0, neutral=1, contradiction=2). ``None`` = same order as ``labels``.
    """

    name: str
    glue_dir: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None
    main_metric: str
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("dev",)
    hub_name: tuple[str, str] = ("", "")
    has_header: bool = True
    num_columns: int | None = None
    hub_text_columns: tuple[str, ...] = ()
    hub_label_order: tuple[str, ...] | None = None
    label_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.hub_name or not self.hub_name[0]:
            object.__setattr__(self, "hub_name", (_HUB_DATASET, self.name))
        if not 1 <= len(self.text_columns) <= 2:
            raise ValueError(f"task {self.name!r}: text_columns must have 1 or 2 entries")
        if self.labels is not None and len(self.labels) < 2:
            raise ValueError(f"task {self.name!r}: a classification task needs >= 2 labels")
        if not self.has_header and self.num_columns is None:
            raise ValueError(f"task {self.name!r}: header-less layout needs num_columns")
        order = self.hub_label_order
        if order is not None and sorted(order) != sorted(self.labels or ()):
            raise ValueError(f"task {self.name!r}: hub_label_order must permute labels")

    @property
    def is_regression(self) -> bool:
        """True when the target is a real-valued score (STS-B), False for classification."""
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: the number of classes, or 1 for regression."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks (two text columns), False for single-sentence ones."""
        return len(self.text_columns) == 2

    @property
    def splits(self) -> tuple[str, ...]:
        """All labelled splits: ``(train_split, *eval_splits)``."""
        return (self.train_split, *self.eval_splits)


_ENTAIL2 = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        # CoLA (Warstadt et al., TACL 2019): no header; columns are
        # source, label (0/1), original judgement ("*" or empty), sentence.
        TaskSpec(
            name="cola", glue_dir="CoLA", text_columns=("3",), label_column="1",
            labels=("0", "1"), main_metric="mcc", has_header=False, num_columns=4,
            hub_text_columns=("sentence",),
        ),
        # SST-2 (Socher et al., EMNLP 2013): sentence<TAB>label.
        TaskSpec(
            name="sst2", glue_dir="SST-2", text_columns=("sentence",), label_column="label",
            labels=("0", "1"), main_metric="accuracy", hub_text_columns=("sentence",),
        ),
        # MRPC (Dolan & Brockett, IWP 2005): Quality, #1 ID, #2 ID, #1 String, #2 String.
        TaskSpec(
            name="mrpc", glue_dir="MRPC", text_columns=("#1 String", "#2 String"),
            label_column="Quality", labels=("0", "1"), main_metric="f1",
            hub_text_columns=("sentence1", "sentence2"),
        ),
        # STS-B (Cer et al., SemEval 2017): 10 columns, score in [0, 5] last.
        TaskSpec(
            name="stsb", glue_dir="STS-B", text_columns=("sentence1", "sentence2"),
            label_column="score", labels=None, main_metric="pearson", label_range=(0.0, 5.0),
            hub_text_columns=("sentence1", "sentence2"),
        ),
        # QQP (Iyer et al., 2017): id, qid1, qid2, question1, question2, is_duplicate.
        TaskSpec(
            name="qqp", glue_dir="QQP", text_columns=("question1", "question2"),
            label_column="is_duplicate", labels=("0", "1"), main_metric="f1",
            hub_text_columns=("question1", "question2"),
        ),
        # MNLI (Williams et al., NAACL 2018): sentence1, sentence2, gold_label among others.
        TaskSpec(
            name="mnli", glue_dir="MNLI", text_columns=("sentence1", "sentence2"),
            label_column="gold_label", labels=("contradiction", "entailment", "neutral"),
            main_metric="accuracy", eval_splits=("dev_matched", "dev_mismatched"),
            hub_text_columns=("premise", "hypothesis"),
            hub_label_order=("entailment", "neutral", "contradiction"),
        ),
        # QNLI (GLUE, from SQuAD v1.1): index, question, sentence, label.
        TaskSpec(
            name="qnli", glue_dir="QNLI", text_columns=("question", "sentence"),
            label_column="label", labels=_ENTAIL2, main_metric="accuracy",
            hub_text_columns=("question", "sentence"),
        ),
        # RTE (RTE1-3 + RTE5): index, sentence1, sentence2, label.
        TaskSpec(
            name="rte", glue_dir="RTE", text_columns=("sentence1", "sentence2"),
            label_column="label", labels=_ENTAIL2, main_metric="accuracy",
            hub_text_columns=("sentence1", "sentence2"),
        ),
    )
}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Look up a GLUE task by name.

    Matching is case-insensitive and ignores ``-``/``_``, so the ``glue_data`` directory
    names work too (``"SST-2"``, ``"sts-b"``, ``"CoLA"``). A :class:`TaskSpec` is returned
    unchanged.

    Raises:
        InputError: unknown task (a ``ValueError``); the message names it and lists the known tasks.
        TypeError: ``name`` is neither a string nor a TaskSpec.
    """
    if isinstance(name, TaskSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"task must be a task name or TaskSpec, got {type(name).__name__}")
    key = _normalize(name)
    if key in TASKS:
        return TASKS[key]
    raise InputError(f"unknown GLUE task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
