"""Readers for the official GLUE ``glue_data`` TSV files, plus optional Hugging Face Hub loading.

The files are the ones written by GLUE's ``download_glue_data.py`` (Wang et al., *GLUE: A
Multi-Task Benchmark and Analysis Platform for Natural Language Understanding*, ICLR 2019).
They are tab-separated without any quoting: several official rows contain a field that
*starts* with an unbalanced ``"`` (RTE train index 2164, QNLI dev indices 694 and 3428, ...),
so a CSV reader with quoting on silently merges rows. Here every line is split on ``\\t``
by hand, which equals ``csv.QUOTE_NONE``, and every row is checked against the header.

Line numbers in messages and in :attr:`Example.source` are 1-based physical line numbers of
the file (the header, where there is one, is line 1).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sparsebert.errors import InputError, MissingDependencyError, SparsebertError

from .tasks import TaskSpec, get_task

__all__ = ["Example", "DataError", "read_glue_split", "load_split", "resolve_task_dir"]

# STS-B scores as written in the official files ("5.000", "0", "0.2", "3.800000").
_SCORE_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# How many offending rows a skip warning quotes.
_SKIP_QUOTE = 3


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled GLUE example.

    Attributes:
        text_a: first (or only) text, exactly as in the file (no stripping).
        text_b: second text for pair tasks, ``None`` for single-sentence tasks.
        label: class id (``int``, index into :attr:`TaskSpec.labels`) for classification,
            the gold score (``float``, STS-B: 0-5 similarity) for regression.
        source: where the row came from, ``"path:line"`` (1-based physical line), or
            ``"hf://datasets/<id>/<config>/<split>:<row>"`` (0-based row) for hub data.
    """

    text_a: str
    text_b: str | None
    label: int | float
    source: str


class DataError(SparsebertError, ValueError):
    """A data file (or hub split) does not have the expected layout or content.

    The message always starts with ``"<file>:<line>: "`` for a problem in one row, or
    ``"<file>: "`` for a whole-file problem (empty file, no data rows). The location is also
    available as the attributes :attr:`path` (str) and :attr:`line` (int or None).
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


def _error(path: str | Path, line: int | None, message: str) -> DataError:
    prefix = f"{path}: " if line is None else f"{path}:{line}: "
    return DataError(prefix + message, path=str(path), line=line)


def _canonical_split(task: TaskSpec, split: str) -> str:
    """Map ``validation*`` (hub naming) to ``dev*`` and check the split exists for the task."""
    if not isinstance(split, str):
        raise TypeError(f"split must be a string, got {type(split).__name__}")
    name = "dev" + split[len("validation"):] if split.startswith("validation") else split
    if name not in task.splits:
        raise InputError(
            f"unknown split {split!r} for GLUE task {task.name!r}; labelled splits: "
            f"{', '.join(task.splits)} (unlabelled test splits are not supported)"
        )
    return name


def resolve_task_dir(task: TaskSpec | str, data_dir: str | Path) -> Path:
    """Find the directory holding one task's TSV files.

    ``data_dir`` may be the ``glue_data`` root (``data_dir/MRPC/train.tsv``) or the task
    directory itself (``data_dir/train.tsv``). Under a root, the task directory is matched by
    its official name first (``"SST-2"``), then case-insensitively by official or registry
    name (``"sst-2"``, ``"sst2"``).

    Returns:
        The task directory (a :class:`~pathlib.Path`, not resolved to an absolute path).

    Raises:
        FileNotFoundError: ``data_dir`` does not exist, or neither layout is found; the
            message names the paths that were tried.
        ValueError: unknown task name (see :func:`get_task`).
    """
    spec = get_task(task)
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data directory does not exist (expected a glue_data "
                                f"root containing {spec.glue_dir}/, or the {spec.glue_dir} "
                                "directory itself)")
    exact = root / spec.glue_dir
    if exact.is_dir():
        return exact
    wanted = {spec.glue_dir.lower(), spec.name.lower()}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in wanted:
            return child
    if any((root / f"{s}.tsv").is_file() for s in spec.splits):
        return root
    raise FileNotFoundError(
        f"{root}: no GLUE {spec.glue_dir} data: expected {exact}/{spec.train_split}.tsv "
        f"(glue_data root) or {root}/{spec.train_split}.tsv (task directory); looked for "
        f"{', '.join(s + '.tsv' for s in spec.splits)}"
    )


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with only the line terminator removed (BOM dropped)."""
    lineno = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for raw in fh:
                lineno += 1
                if raw.endswith("\r\n"):
                    raw = raw[:-2]
                elif raw.endswith(("\n", "\r")):
                    raw = raw[:-1]
                yield lineno, raw
    except UnicodeDecodeError as exc:
        raise _error(path, _bad_utf8_line(path), f"not valid UTF-8 ({exc.reason})") from exc


def _bad_utf8_line(path: Path) -> int | None:
    """Physical line number of the first undecodable line (error path only)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return None


def _column_name(spec: TaskSpec, column: str) -> str:
    return repr(column) if spec.has_header else f"{column} (0-based, no header)"


def read_glue_split(
    task: TaskSpec | str,
    data_dir: str | Path,
    split: str,
    *,
    skip_malformed: bool = False,
) -> list[Example]:
    """Read one labelled split of a GLUE task from the official ``glue_data`` TSV layout.

    Args:
        task: a :class:`TaskSpec` or task name (``"mrpc"``, ``"SST-2"``, ...).
        data_dir: the ``glue_data`` root or the task directory (see :func:`resolve_task_dir`).
        split: ``"train"``, ``"dev"`` (MNLI: ``"dev_matched"``/``"dev_mismatched"``);
            ``"validation*"`` is accepted as an alias of ``"dev*"``. The file read is
            ``<task dir>/<split>.tsv``.
        skip_malformed: if True, rows with the wrong number of fields, blank lines and rows
            with a blank text are skipped with one :class:`UserWarning` giving the count and
            the first offending lines (for third-party copies such as the old QQP train file,
            which has rows with missing fields). Unknown labels and bad scores always raise.

    Returns:
        ``list[Example]`` in file order; ``len`` = number of data rows (header excluded).
        Labels are class ids (``int``) or STS-B scores (``float`` in [0, 5]).

    Raises:
        FileNotFoundError: missing directory or split file (message names the path and
            what was expected).
        DataError: the file is empty, has no data rows, lacks a required header column, a row
            has a different number of tab-separated fields than the header (or than the
            fixed 4 columns of CoLA), a text field is empty or whitespace-only, a label is
            not one of the task's labels, or an STS-B score is not a plain decimal in
            [0, 5]. Row problems read ``"<file>:<line>: ..."``.
        ValueError: unknown task or split.

    Source: GLUE (Wang et al., ICLR 2019); layouts of ``download_glue_data.py``'s
    ``glue_data`` (see :mod:`sparsebert.data.tasks` for the per-task columns and labels).
    """
    spec = get_task(task)
    split = _canonical_split(spec, split)
    path = resolve_task_dir(spec, data_dir) / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; expected the {split!r} split of GLUE {spec.glue_dir} "
            "in the glue_data TSV layout"
        )

    lines = _iter_lines(path)
    if spec.has_header:
        first = next(lines, None)
        needed = (*spec.text_columns, spec.label_column)
        if first is None:
            raise _error(path, None, f"empty file; expected a header with columns {list(needed)}")
        header = first[1].split("\t")
        n_fields = len(header)
        for column in needed:
            if column not in header:
                raise _error(path, 1, f"missing column {column!r}; header found: {header!r} "
                                      f"(GLUE {spec.glue_dir} needs {list(needed)})")
            if header.count(column) > 1:
                raise _error(path, 1, f"column {column!r} appears more than once in the "
                                      f"header {header!r}")
        text_idx = [header.index(c) for c in spec.text_columns]
        label_idx = header.index(spec.label_column)
    else:
        assert spec.num_columns is not None
        n_fields = spec.num_columns
        text_idx = [int(c) for c in spec.text_columns]
        label_idx = int(spec.label_column)

    label_ids = None if spec.labels is None else {s: i for i, s in enumerate(spec.labels)}
    examples: list[Example] = []
    skipped: list[str] = []
    n_skipped = 0
    blank_at: int | None = None  # first of a run of blank lines; fine only at end of file

    def malformed(lineno: int, message: str) -> None:
        nonlocal n_skipped
        if not skip_malformed:
            raise _error(path, lineno, message)
        n_skipped += 1
        if len(skipped) < _SKIP_QUOTE:
            skipped.append(f"{path}:{lineno}: {message}")

    for lineno, line in lines:
        if line == "":
            if blank_at is None:
                blank_at = lineno
            continue
        if blank_at is not None:
            for b in range(blank_at, lineno):
                malformed(b, "blank line inside the data")
            blank_at = None
        fields = line.split("\t")
        if len(fields) != n_fields:
            malformed(lineno, f"expected {n_fields} tab-separated fields, got {len(fields)}")
            continue
        texts = [fields[i] for i in text_idx]
        blank = [c for c, t in zip(spec.text_columns, texts) if not t.strip()]
        if blank:
            malformed(lineno, f"empty or whitespace-only text in column "
                              f"{_column_name(spec, blank[0])}")
            continue
        raw = fields[label_idx]
        label: int | float
        if label_ids is not None:
            if raw not in label_ids:
                raise _error(path, lineno, f"unknown label {raw!r} in column "
                                           f"{_column_name(spec, spec.label_column)}; allowed "
                                           f"labels for {spec.name}: {list(spec.labels or ())}")
            label = label_ids[raw]
        else:
            label = _parse_score(spec, path, lineno, raw)
        examples.append(Example(texts[0], texts[1] if len(texts) == 2 else None, label,
                                f"{path}:{lineno}"))

    if n_skipped:
        warnings.warn(f"{path}: skipped {n_skipped} malformed row(s), e.g. "
                      + "; ".join(skipped), UserWarning, stacklevel=2)
    if not examples:
        raise _error(path, None, "no data rows" + (" (header only)" if spec.has_header else "")
                     + (f" after skipping {n_skipped} malformed row(s)" if n_skipped else ""))
    return examples


def _parse_score(spec: TaskSpec, path: str | Path, lineno: int, raw: str) -> float:
    lo, hi = spec.label_range if spec.label_range is not None else (float("-inf"), float("inf"))
    if not _SCORE_RE.fullmatch(raw):
        raise _error(path, lineno, f"score {raw!r} in column {spec.label_column!r} is not a "
                                   f"plain decimal number (expected a float in [{lo:g}, {hi:g}])")
    value = float(raw)
    if not lo <= value <= hi:
        raise _error(path, lineno, f"score {raw!r} in column {spec.label_column!r} is outside "
                                   f"[{lo:g}, {hi:g}]")
    return value


def load_split(
    task: TaskSpec | str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    skip_malformed: bool = False,
) -> list[Example]:
    """Load one labelled split, from local ``glue_data`` files or from the Hugging Face Hub.

    For an own-data task (a :class:`~sparsebert.data.files.FileTaskSpec`, from ``--train`` /
    ``--dev``) this is :func:`~sparsebert.data.files.read_data_file` and ``data_dir`` is ignored.
    With ``data_dir`` this is :func:`read_glue_split`. Without it, the split is loaded with
    ``datasets.load_dataset(*task.hub_name, split=...)`` (``"dev"`` -> ``"validation"``,
    ``"dev_matched"`` -> ``"validation_matched"``, ...), and hub class ids are mapped to the
    same ids as the files use (MNLI's hub order entailment/neutral/contradiction is remapped
    to contradiction=0, entailment=1, neutral=2). ``datasets`` is imported lazily.

    Returns:
        ``list[Example]`` as :func:`read_glue_split` (hub sources are
        ``"hf://datasets/<id>/<config>/<split>:<0-based row>"``).

    Raises:
        MissingDependencyError: no ``data_dir`` and ``datasets`` is not installed (an
            ``ImportError``); the message says to pass ``--data-dir`` or
            ``pip install 'sparsebert[hub]'``.
        DataError: the hub split cannot be downloaded (no network and no cached copy); a hub
            row has a hidden (-1) or out-of-range label, a blank text, or the split is empty;
            plus everything :func:`read_glue_split` raises.
        FileNotFoundError, ValueError: as :func:`read_glue_split`.

    Source: GLUE (Wang et al., ICLR 2019); hub copy ``nyu-mll/glue`` (Hugging Face datasets).
    """
    spec = get_task(task)
    from .files import FileTaskSpec, read_data_file  # imported here: files imports this module

    if isinstance(spec, FileTaskSpec):
        return read_data_file(spec, split)
    if data_dir is not None:
        return read_glue_split(spec, data_dir, split, skip_malformed=skip_malformed)
    return _load_hub(spec, _canonical_split(spec, split))


def _load_hub(spec: TaskSpec, split: str) -> list[Example]:
    try:
        import datasets  # optional dependency, extra "hub"
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading GLUE {spec.name!r} without a data directory needs the optional "
            "'datasets' package (Hugging Face Hub). Either pass --data-dir pointing at a "
            "glue_data directory (data_dir=... in Python), or install it with "
            "`pip install 'sparsebert[hub]'`."
        ) from exc

    hub_id, config = spec.hub_name
    hub_split = "validation" + split[len("dev"):] if split.startswith("dev") else split
    where = f"hf://datasets/{hub_id}/{config}/{hub_split}"
    try:
        ds = datasets.load_dataset(hub_id, config, split=hub_split)
    except OSError as err:  # no network and no cached copy, or the hub refused
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise _error(where, None, f"cannot load it from the Hugging Face hub ({first}); "
                                  "pass --data-dir with a glue_data directory") from err

    id_map: list[int] | None = None
    if spec.labels is not None:
        order = spec.hub_label_order or spec.labels
        id_map = [spec.labels.index(s) for s in order]
        names = getattr(getattr(ds, "features", {}).get("label"), "names", None)
        if names is not None and len(names) != len(id_map):
            raise _error(where, None, f"hub label feature has {len(names)} classes {names}, "
                                      f"expected {len(id_map)} for {spec.name}")

    examples: list[Example] = []
    for row_no, row in enumerate(ds):
        texts = [row[c] for c in spec.hub_text_columns]
        for c, t in zip(spec.hub_text_columns, texts):
            if not isinstance(t, str) or not t.strip():
                raise _error(where, row_no, f"empty or whitespace-only text in column {c!r}")
        raw = row["label"]
        label: int | float
        if id_map is not None:
            if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < len(id_map):
                hint = " (labels are hidden in GLUE test splits)" if raw == -1 else ""
                raise _error(where, row_no, f"label {raw!r} is not a class id in "
                                            f"[0, {len(id_map)}){hint}")
            label = id_map[raw]
        else:
            label = float(raw)
            lo, hi = spec.label_range or (float("-inf"), float("inf"))
            if not lo <= label <= hi:
                raise _error(where, row_no, f"score {raw!r} is outside [{lo:g}, {hi:g}]")
        examples.append(Example(texts[0], texts[1] if len(texts) == 2 else None, label,
                                f"{where}:{row_no}"))
    if not examples:
        raise _error(where, None, "no rows in this split")
    return examples
