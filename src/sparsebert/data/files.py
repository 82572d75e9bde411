"""Your own data: a task made from a train and a dev file (CSV, TSV or JSON lines).

``--train FILE --dev FILE`` (recipe keys ``train`` / ``dev``) stand in for ``--task NAME
--data-dir DIR``. :func:`files_task` reads the train file once to find the kind of task and its
labels and returns a :class:`FileTaskSpec`, a :class:`~sparsebert.data.tasks.TaskSpec` whose
splits are the two files; :func:`sparsebert.data.load_split` reads them with :func:`read_data_file`,
and the rest of the pipeline (encoding, heads, metrics, evaluation) is the one GLUE tasks use.

Formats, chosen by the file's extension:

* ``.csv``: comma-separated with a header row; fields may be quoted (RFC 4180, Python's
  :mod:`csv` defaults), so a text may hold commas and line breaks.
* ``.tsv``: tab-separated with a header row, no quoting (``csv.QUOTE_NONE``, as GLUE's files;
  a ``"`` is an ordinary character). GLUE ``train.tsv`` files can be used as they are.
* ``.jsonl`` (or ``.ndjson``): one JSON object per line; texts are strings, labels strings or numbers.

Columns: ``text_column`` (default ``text``), an optional ``text_pair_column`` (sentence-pair
tasks) and ``label_column`` (default ``label``). Blank lines are skipped; a text that is empty
or whitespace-only is an error. Labels are stripped of surrounding whitespace.

Kind of task (``task_type``): ``classification``, ``regression``, or ``auto`` (the default):
regression when every train label is a number and at least one is not a whole number
(``3.8``), classification otherwise (``pos``/``neg``, ``0``/``1``/``2``, ``1.0``/``2.0``). Integer
ratings meant as scores need ``task_type="regression"``. Class labels are sorted (numerically when
every label is a number, else as text), so the ids do not depend on the order of the rows; they are
written to the model's ``config.json`` (``id2label`` / ``label2id``), where evaluation reads them
back. A dev label that the train file does not have is an error.

Metrics: classification reports accuracy (the main metric: finetune keeps its best checkpoint by
it), macro-averaged F1 and the Matthews correlation; regression reports Pearson (main), Spearman
and their mean (:func:`sparsebert.metrics.compute_metrics`).

Every problem in a file is a :class:`~sparsebert.data.glue.DataError` that starts with
``"<file>:<line>: "`` and names the column (and the option that chose it).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sparsebert.errors import InputError

from .glue import DataError, Example, _bad_utf8_line, _error
from .tasks import TaskSpec

__all__ = ["FileTaskSpec", "files_task", "read_data_file", "read_texts", "discover_labels", "recipe_task", "FORMATS",
           "DEFAULT_TEXT_COLUMN", "DEFAULT_LABEL_COLUMN"]

#: file extension -> format
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"

TaskType = Literal["auto", "classification", "regression"]

# The option that names each column, for messages.
_OPTIONS = {"text_a": "--text-column", "text_b": "--text-pair-column", "label": "--label-column"}


@dataclass(frozen=True)
class FileTaskSpec(TaskSpec):
    """A task read from the user's own files instead of a GLUE directory.

    The inherited fields keep their meaning: ``text_columns`` (one, or two for pairs) and
    ``label_column`` are the file's column names (JSON keys), ``labels`` the class labels in id
    order (``None``: regression), ``main_metric`` ``"accuracy"`` or ``"pearson"``; the splits are
    ``"train"`` and, when there is a dev file, ``"dev"``.

    Attributes:
        train_path: the train file (``None`` when only evaluating).
        dev_path: the dev file (``None``: no eval split).
    """

    train_path: str | None = None
    dev_path: str | None = None

    def path_of(self, split: str) -> str:
        """The file of ``split`` (``"train"`` or ``"dev"``; ``"validation"`` is ``"dev"``).

        Raises:
            InputError: another split, or a split this spec has no file for.
        """
        name = "dev" if split == "validation" else split
        path = {"train": self.train_path, "dev": self.dev_path}.get(name)
        if path is None:
            given = [s for s, p in (("train", self.train_path), ("dev", self.dev_path)) if p]
            raise InputError(f"task {self.name!r} has no {split!r} file; it has: {', '.join(given) or 'none'} "
                             "(give --train / --dev)")
        return path


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown file type {path.suffix or '(no extension)'!r}; "
                         f"use {', '.join(FORMATS)} (the extension chooses the format)")
    return fmt


def _check_file(path: Path, what: str) -> str:
    fmt = _format_of(path)
    if not path.exists():
        raise DataError(f"{path}: no such file (the {what} file)", path=str(path))
    if not path.is_file():
        raise DataError(f"{path}: not a file (the {what} file)", path=str(path))
    return fmt


def _col(name: str, role: str) -> str:
    return f"column {name!r} ({_OPTIONS[role]})"


def _iter_rows(path: Path, columns: dict[str, str], what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, {role: raw value})`` for every data row of ``path``; ``columns`` maps the roles
    ``text_a`` / ``text_b`` / ``label`` to column names. Raises DataError for layout problems."""
    fmt = _check_file(path, what)
    try:
        if fmt == "jsonl":
            yield from _iter_jsonl(path, columns)
        else:
            yield from _iter_delimited(path, columns, fmt)
    except UnicodeDecodeError as exc:
        raise _error(path, _bad_utf8_line(path), f"not valid UTF-8 ({exc.reason})") from exc


def _iter_delimited(path: Path, columns: dict[str, str], fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    kind = "comma" if fmt == "csv" else "tab"
    options = {"delimiter": ","} if fmt == "csv" else {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True, **options)
        start = 1
        try:
            header = next(reader, None)
            while header == []:  # blank lines before the header
                start = reader.line_num + 1
                header = next(reader, None)
            if header is None:
                raise _error(path, None, f"empty file; expected a header row with the columns "
                                         f"{list(columns.values())}")
            header = [h.strip() for h in header]
            for role, name in columns.items():
                if name not in header:
                    raise _error(path, start, f"missing {_col(name, role)}; columns found: {header}")
                if header.count(name) > 1:
                    raise _error(path, start, f"{_col(name, role)} appears more than once in the header {header}")
            index = {role: header.index(name) for role, name in columns.items()}
            while True:
                start = reader.line_num + 1
                fields = next(reader, None)
                if fields is None:
                    return
                if not fields:  # blank line
                    continue
                if len(fields) != len(header):
                    hint = " (a text with commas or line breaks must be in double quotes)" if fmt == "csv" else ""
                    raise _error(path, start, f"expected {len(header)} {kind}-separated fields as in the header, "
                                              f"got {len(fields)}{hint}")
                yield start, {role: fields[i] for role, i in index.items()}
        except csv.Error as exc:
            raise _error(path, start, f"not a valid {fmt.upper()} row ({exc})") from exc


def _iter_jsonl(path: Path, columns: dict[str, str]) -> Iterator[tuple[int, dict[str, Any]]]:
    seen = False
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            seen = True
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _error(path, lineno, f"not valid JSON at column {exc.colno} ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise _error(path, lineno, f"expected a JSON object per line, got {type(obj).__name__}")
            row = {}
            for role, name in columns.items():
                if name not in obj:
                    raise _error(path, lineno, f"missing {_col(name, role)}; keys found: {list(obj)}")
                row[role] = obj[name]
            yield lineno, row
    if not seen:
        raise _error(path, None, "empty file; expected one JSON object per line")


def _text(path: Path, lineno: int, value: Any, name: str, role: str) -> str:
    if not isinstance(value, str):
        raise _error(path, lineno, f"{_col(name, role)}: expected text, got {json.dumps(value)}")
    if not value.strip():
        raise _error(path, lineno, f"empty or whitespace-only text in {_col(name, role)}")
    return value


def _label_text(path: Path, lineno: int, value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _error(path, lineno, f"{_col(name, 'label')}: a label must be text or a number, "
                                   f"got {json.dumps(value)}")
    text = value.strip() if isinstance(value, str) else repr(value)
    if not text:
        raise _error(path, lineno, f"empty label in {_col(name, 'label')}")
    return text


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _columns(text_column: str, text_pair_column: str | None, label_column: str) -> dict[str, str]:
    columns = {"text_a": text_column, "label": label_column}
    if text_pair_column is not None:
        columns["text_b"] = text_pair_column
    names = list(columns.values())
    for role, name in columns.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"{_OPTIONS[role]}: a column name must be non-empty text, got {name!r}")
    if len(set(names)) < len(names):
        raise InputError(f"the text, text-pair and label columns must differ, got {names} "
                         "(--text-column, --text-pair-column, --label-column)")
    return columns


def read_texts(path: str | Path, *, text_column: str = DEFAULT_TEXT_COLUMN,
               text_pair_column: str | None = None) -> list[tuple[int, str, str | None]]:
    """The unlabelled texts of an input file (``sparsebert predict``): ``(line, text, pair or None)`` per row.

    Args:
        path: ``.csv``, ``.tsv`` or ``.jsonl`` (the formats of the module docstring; other columns are ignored).
        text_column, text_pair_column: column names (JSON keys).
    Raises:
        DataError: a missing file or column, an empty text, a malformed row (``file:line: ...``, naming the
            column and its option). InputError: an unknown extension, bad column names.
    """
    path = Path(path)
    columns = {"text_a": text_column}
    if text_pair_column is not None:
        columns["text_b"] = text_pair_column
    for role, name in columns.items():
        if not isinstance(name, str) or not name:
            raise InputError(f"{_OPTIONS[role]}: a column name must be non-empty text, got {name!r}")
    if text_pair_column == text_column:
        raise InputError(f"--text-column and --text-pair-column must differ, got {text_column!r} twice")
    out = []
    for lineno, row in _iter_rows(path, columns, "input"):
        a = _text(path, lineno, row["text_a"], text_column, "text_a")
        b = _text(path, lineno, row["text_b"], text_pair_column, "text_b") if text_pair_column else None
        out.append((lineno, a, b))
    if not out:
        raise _error(path, None, "no rows to predict (only a header or blank lines)")
    return out


def discover_labels(path: str | Path, *, text_column: str = DEFAULT_TEXT_COLUMN,
                    text_pair_column: str | None = None, label_column: str = DEFAULT_LABEL_COLUMN,
                    task_type: TaskType = "auto") -> tuple[str, ...] | None:
    """The class labels of a train file, sorted, or ``None`` for regression.

    Args:
        path: the train file (``.csv``, ``.tsv``, ``.jsonl``).
        text_column, text_pair_column, label_column: column names (JSON keys).
        task_type: ``auto`` (regression when every label is a number and one is not a whole
            number), ``classification`` or ``regression``.
    Returns:
        Sorted labels (numerically when all are numbers, else as text); ``None`` for regression.
    Raises:
        DataError: the file is missing, empty, has no data rows, lacks a column, has an empty text or
            label, a bad row, a non-numeric label for regression, or fewer than 2 classes
            (``"<file>:<line>: ..."``).
        InputError: unknown extension or task type, bad column names.
    """
    if task_type not in ("auto", "classification", "regression"):
        raise InputError(f"task type {task_type!r}: use auto, classification or regression (--task-type)")
    path = Path(path)
    columns = _columns(text_column, text_pair_column, label_column)
    first_line: dict[str, int] = {}
    for lineno, row in _iter_rows(path, columns, "train"):
        for role in ("text_a", "text_b"):
            if role in row:
                _text(path, lineno, row[role], columns[role], role)
        first_line.setdefault(_label_text(path, lineno, row["label"], label_column), lineno)
    if not first_line:
        raise _error(path, None, "no data rows")
    numbers = {label: _number(label) for label in first_line}
    numeric = all(v is not None for v in numbers.values())
    if task_type == "regression":
        bad = next((label for label, v in numbers.items() if v is None), None)
        if bad is not None:
            raise _error(path, first_line[bad], f"label {bad!r} in {_col(label_column, 'label')} is not a number "
                                                "(a regression task needs numeric labels)")
        return None
    if task_type == "auto" and numeric and not all(v.is_integer() for v in numbers.values()):
        return None
    labels = sorted(first_line, key=(lambda s: (numbers[s], s)) if numeric else None)
    if len(labels) < 2:
        raise _error(path, None, f"only one label ({labels[0]!r}) in {_col(label_column, 'label')}; "
                                 "classification needs at least 2")
    return tuple(labels)


_GENERIC_STEMS = frozenset({"train", "training", "dev", "valid", "validation", "eval", "test", "data"})


def _task_name(path: Path) -> str:
    """The file's stem, or its folder's name when the stem says only which split it is."""
    name = path.stem
    if name.lower() in _GENERIC_STEMS and path.resolve().parent.name:
        name = path.resolve().parent.name
    return name


def files_task(train: str | Path | None, dev: str | Path | None = None, *,
               text_column: str | None = None, text_pair_column: str | None = None,
               label_column: str | None = None, task_type: TaskType = "auto",
               labels: Sequence[str] | None = None, regression: bool | None = None) -> FileTaskSpec:
    """The task of a train and a dev file: columns, kind and labels (read from the train file).

    Args:
        train: the train file; its labels are the classes (see :func:`discover_labels`). May be
            ``None`` when ``labels`` or ``regression`` say what the model predicts (evaluation).
        dev: the dev file (the eval split ``"dev"``); ``None`` = no eval split.
        text_column, text_pair_column, label_column: column names (JSON keys); ``None`` = ``text`` /
            no pair / ``label``.
        task_type: ``auto`` | ``classification`` | ``regression`` (see the module docstring).
        labels: the class labels in id order (e.g. a saved model's ``id2label``), instead of
            discovering them from ``train``.
        regression: True = a regression task without reading ``train`` (a saved model's head).
    Returns:
        A :class:`FileTaskSpec` named ``custom:<train file stem>`` (or the dev file's; for a generic stem
        such as ``train`` the folder's name: ``tickets/train.csv`` is ``custom:tickets``).
    Raises:
        DataError: see :func:`discover_labels` (the train file is read once here; the dev file is
            read when its split is loaded).
        InputError: neither ``train`` nor ``labels``/``regression``; unknown extension (also of ``dev``);
            bad column names or task type.
    """
    text_column = text_column or DEFAULT_TEXT_COLUMN
    label_column = label_column or DEFAULT_LABEL_COLUMN
    _columns(text_column, text_pair_column, label_column)
    if dev is not None:
        _format_of(Path(dev))
    if regression or task_type == "regression" and labels is None and train is None:
        found = None
    elif labels is not None:
        found = tuple(str(s) for s in labels)
        if len(found) < 2 or len(set(found)) < len(found):
            raise InputError(f"class labels must be at least 2 distinct names, got {list(found)}")
    elif train is not None:
        found = discover_labels(train, text_column=text_column, text_pair_column=text_pair_column,
                                label_column=label_column, task_type=task_type)
    else:
        raise InputError("own data needs a train file (--train) to find the labels")
    stem = _task_name(Path(train if train is not None else dev or "data"))
    return FileTaskSpec(
        name=f"custom:{stem}", glue_dir=stem,
        text_columns=(text_column,) if text_pair_column is None else (text_column, text_pair_column),
        label_column=label_column, labels=found, main_metric="pearson" if found is None else "accuracy",
        eval_splits=("dev",) if dev is not None else (), hub_name=("local files", stem),
        train_path=None if train is None else str(train), dev_path=None if dev is None else str(dev),
    )


def read_data_file(spec: FileTaskSpec, split: str) -> list[Example]:
    """Read one split of an own-data task: every row as an :class:`Example`.

    Args:
        spec: from :func:`files_task`.
        split: ``"train"`` or ``"dev"`` (``"validation"`` is an alias of ``"dev"``).
    Returns:
        ``list[Example]`` in file order; labels are class ids (index into ``spec.labels``) or floats
        (regression); ``source`` is ``"<file>:<line>"``.
    Raises:
        DataError: missing or empty file, no data rows, a missing column (the columns found are
            listed), a row with another number of fields than the header, invalid JSON, an empty text
            or label, a label the train file does not have, a non-numeric regression label
            (``"<file>:<line>: ..."``).
        InputError: unknown split or extension.
    """
    path = Path(spec.path_of(split))
    what = "train" if str(path) == spec.train_path else "dev"
    roles = ("text_a", "text_b")[: len(spec.text_columns)]
    columns = {**dict(zip(roles, spec.text_columns)), "label": spec.label_column}
    label_ids = None if spec.labels is None else {s: i for i, s in enumerate(spec.labels)}
    examples = []
    for lineno, row in _iter_rows(path, columns, what):
        texts = [_text(path, lineno, row[r], columns[r], r) for r in roles]
        raw = _label_text(path, lineno, row["label"], spec.label_column)
        label: int | float
        if label_ids is None:
            value = _number(raw)
            if value is None:
                raise _error(path, lineno, f"label {raw!r} in {_col(spec.label_column, 'label')} is not a number "
                                           "(a regression task needs numeric labels)")
            label = value
        elif raw in label_ids:
            label = label_ids[raw]
        else:
            origin = f"the train file {spec.train_path}" if spec.train_path else "the model's labels"
            raise _error(path, lineno, f"label {raw!r} in {_col(spec.label_column, 'label')} is not one of "
                                       f"{origin}: {list(spec.labels or ())}")
        examples.append(Example(texts[0], texts[1] if len(texts) == 2 else None, label, f"{path}:{lineno}"))
    if not examples:
        raise _error(path, None, "no data rows" + ("" if FORMATS[path.suffix.lower()] == "jsonl" else " (header only)"))
    return examples


def recipe_task(recipe) -> TaskSpec:
    """The task a training recipe names: its GLUE ``task``, or the task of its ``train`` / ``dev`` files.

    Args:
        recipe: a :class:`~sparsebert.recipe.TrainRecipe` (``task``, ``train``, ``dev``, the column
            fields and ``task_type`` are read).
    Returns:
        A GLUE :class:`TaskSpec` or a :class:`FileTaskSpec` (the train file is read for its labels).
    Raises:
        InputError: unknown GLUE task; DataError: see :func:`files_task`.
    """
    if getattr(recipe, "train", None) is None:
        from .tasks import get_task

        return get_task(recipe.task)
    return files_task(recipe.train, recipe.dev, text_column=recipe.text_column,
                      text_pair_column=recipe.text_pair_column, label_column=recipe.label_column,
                      task_type=recipe.task_type)
