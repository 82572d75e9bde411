"""Unlabelled text for task-agnostic distillation: :func:`load_text` reads documents (paragraphs).

Accepted sources (see :func:`load_text`):

* a ``.txt`` file: paragraphs separated by blank lines; a file without any blank line has one
  paragraph per line. The lines of a paragraph are joined with single spaces.
* a ``.jsonl`` file: one JSON object per line with a string field ``"text"`` (other fields are
  ignored; blank lines are skipped). This is the format of the built corpus.
* a directory: every ``*.txt`` / ``*.jsonl`` below it (recursively, hidden files skipped), in
  sorted path order; other files are ignored. (For the built corpus use ``"general"``, not its
  folder: the folder holds ``general.jsonl`` *and* the per-source files, so documents would repeat.)
* ``"general"``: the general English corpus built by ``make corpus``
  (:mod:`sparsebert.data.corpus`), i.e. ``.cache/corpus/general/general.jsonl``;
  ``"general:austen,foldoc"`` picks sources by name, ``"general:all"`` takes every source
  (the ``gcide`` and ``wordnet`` gloss dictionaries included).
* ``"hf:<dataset>[:<config>[:<split>]]"``: a Hugging Face dataset's ``"text"`` column via the
  ``datasets`` library (imported only then; needs a network or its local cache), e.g.
  ``"hf:wikitext:wikitext-103-raw-v1"``; the split defaults to ``train``.
* a list or tuple of any of these, read in order and concatenated.

The built corpus is looked for in ``$SPARSEBERT_CORPUS_DIR`` if set, else in
``.cache/corpus/general`` under the current directory, else under the source checkout this
package was installed from.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from sparsebert.errors import MissingDependencyError

from .decontam import DEFAULT_MIN_WORDS, SentenceMatcher
from .glue import DataError

__all__ = ["load_text", "read_text_file", "general_corpus_dir", "TEXT_SUFFIXES"]

log = logging.getLogger(__name__)

#: file types :func:`load_text` reads (by extension, case-insensitive)
TEXT_SUFFIXES = (".txt", ".jsonl")
GENERAL = "general"
_BLANK = re.compile(r"\n[ \t\f\v]*\n")
_WS = re.compile(r"\s+")
_WIKITEXT_HEADING = re.compile(r"^\s*=+ .* =+\s*$")


def _error(path, message: str, line: int | None = None) -> DataError:
    prefix = f"{path}: " if line is None else f"{path}:{line}: "
    return DataError(prefix + message, path=str(path), line=line)


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text of a file (a leading BOM dropped), refusing binary data."""
    if not data:
        raise _error(path, "empty file (0 bytes); expected UTF-8 text")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _error(path, f"binary file: NUL byte at byte offset {nul}; expected UTF-8 text",
                     line=data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _error(path, f"not UTF-8 text: invalid byte 0x{data[err.start]:02x} at byte offset "
                           f"{err.start} ({err.reason})", line=data.count(b"\n", 0, err.start) + 1) from None
    return text[1:] if text.startswith("\ufeff") else text


def _txt_documents(path: Path, text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _BLANK.search(text.strip()):
        pieces = _BLANK.split(text)
    else:
        pieces = text.split("\n")
    return [doc for doc in (_WS.sub(" ", p).strip() for p in pieces) if doc]


def _jsonl_documents(path: Path, text: str) -> list[str]:
    docs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _error(path, f"invalid JSON at column {err.colno}: {err.msg}", line=lineno) from None
        if not isinstance(obj, dict):
            raise _error(path, f"expected a JSON object with a \"text\" field, got {type(obj).__name__}", line=lineno)
        if "text" not in obj:
            raise _error(path, f"no \"text\" field (fields: {', '.join(sorted(obj)) or 'none'})", line=lineno)
        value = obj["text"]
        if not isinstance(value, str):
            raise _error(path, f"field \"text\" must be a string, got {type(value).__name__}", line=lineno)
        if value.strip():
            docs.append(value.strip())
    return docs


def read_text_file(path: str | Path) -> list[str]:
    """The documents of one ``.txt`` or ``.jsonl`` file (see the module docstring for the formats).

    Returns:
        Non-empty paragraphs (``str``, stripped), in file order.

    Raises:
        DataError: unknown extension (the message lists :data:`TEXT_SUFFIXES`); missing file;
            empty file or no text in it; binary data (NUL byte or invalid UTF-8: byte offset and
            line); a bad JSON line, a non-object line, or a missing / non-string ``"text"``
            (``file:line``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise _error(path, f"unknown file type {path.suffix or '(no extension)'!r}; accepted: "
                           f"{', '.join(TEXT_SUFFIXES)} files, a directory of them, 'general' or 'hf:<dataset>'")
    if not path.is_file():
        raise _error(path, "no such file" if not path.exists() else "not a file")
    text = _decode(path, path.read_bytes())
    docs = _txt_documents(path, text) if suffix == ".txt" else _jsonl_documents(path, text)
    if not docs:
        raise _error(path, "no text: the file holds only white space" if suffix == ".txt"
                     else "no text: no line with a non-empty \"text\" field")
    return docs


def _directory_documents(path: Path) -> list[str]:
    files = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise _error(path, f"directory holds no text file (accepted: {', '.join('*' + s for s in TEXT_SUFFIXES)}, "
                           "searched recursively)")
    docs = []
    for f in files:
        docs.extend(read_text_file(f))
    return docs


def general_corpus_dir() -> Path:
    """Where the built general corpus is (it may not exist): ``$SPARSEBERT_CORPUS_DIR``, else
    ``./.cache/corpus/general`` if it exists, else ``.cache/corpus/general`` in the source checkout."""
    env = os.environ.get("SPARSEBERT_CORPUS_DIR")
    if env:
        return Path(env)
    here = Path(".cache/corpus/general")
    if here.is_dir():
        return here
    checkout = Path(__file__).resolve().parents[3] / ".cache" / "corpus" / "general"
    return checkout if checkout.is_dir() else here


def _general_documents(spec: str) -> list[str]:
    root = general_corpus_dir()
    _, _, names = spec.partition(":")
    if not (root / "general.jsonl").is_file():
        raise _error(root / "general.jsonl", "the general corpus is not built: run `make corpus` in the "
                     "sparsebert checkout (or python -m sparsebert.data.corpus), or set SPARSEBERT_CORPUS_DIR "
                     "to the folder holding general.jsonl")
    if not names:
        return read_text_file(root / "general.jsonl")
    try:
        sources = [s["name"] for s in json.loads((root / "PROVENANCE.json").read_text(encoding="utf-8"))["sources"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _error(root / "PROVENANCE.json", f"cannot list the corpus sources ({err}); rebuild with `make corpus`")
    wanted = sources if names.strip() == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in sources]
    if unknown or not wanted:
        raise DataError(f"{spec!r}: unknown corpus source(s) {unknown}; built sources: {', '.join(sources)} "
                        "(or 'all')", path=str(root))
    docs = []
    for name in wanted:
        docs.extend(read_text_file(root / f"{name}.jsonl"))
    return docs


def _hub_documents(spec: str) -> list[str]:
    parts = spec.split(":")[1:]
    if not parts or not parts[0] or len(parts) > 3:
        raise DataError(f"{spec!r}: expected hf:<dataset>[:<config>[:<split>]], e.g. hf:wikitext:wikitext-103-raw-v1")
    dataset, config, split = parts[0], (parts[1] if len(parts) > 1 and parts[1] else None), \
        (parts[2] if len(parts) > 2 and parts[2] else "train")
    try:
        import datasets
    except ImportError as err:
        raise MissingDependencyError(f"{spec!r} needs the 'datasets' library (pip install datasets) and a network "
                                     f"or its local cache; or give a .txt / .jsonl file, a directory or 'general'") from err
    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as err:  # offline (ConnectionError, OfflineModeIsEnabled), unknown dataset, bad config ...
        raise DataError(f"{spec!r}: cannot load the Hugging Face dataset {dataset!r} (config {config!r}, split "
                        f"{split!r}): {type(err).__name__}: {err}. Offline, use a local .txt / .jsonl file or "
                        f"'general' (make corpus)") from err
    if "text" not in ds.column_names:
        raise DataError(f"{spec!r}: the dataset has no 'text' column (columns: {', '.join(ds.column_names)})")
    docs = []
    for value in ds["text"]:
        if isinstance(value, str) and value.strip() and not _WIKITEXT_HEADING.match(value):
            docs.append(_WS.sub(" ", value).strip())
    if not docs:
        raise DataError(f"{spec!r}: no non-empty text in split {split!r}")
    return docs


def _one_source(source) -> list[str]:
    if isinstance(source, str) and (source == GENERAL or source.startswith(GENERAL + ":")):
        return _general_documents(source)
    if isinstance(source, str) and source.startswith("hf:"):
        return _hub_documents(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_text: a source is a path, 'general[:names]', 'hf:<dataset>' or a list of them; "
                        f"got {type(source).__name__}")
    path = Path(source)
    if path.is_dir():
        return _directory_documents(path)
    return read_text_file(path)


def load_text(source, *, exclude: Iterable[str] | None = None, min_words: int = DEFAULT_MIN_WORDS) -> list[str]:
    """Read unlabelled documents (paragraphs) for task-agnostic distillation.

    Args:
        source: a ``.txt`` / ``.jsonl`` file, a directory, ``"general"`` (or
            ``"general:<source>,..."`` / ``"general:all"``), ``"hf:<dataset>[:<config>[:<split>]]"``,
            or a list / tuple of these (see the module docstring for each).
        exclude: sentences whose documents are dropped: a document is dropped when it contains
            one of them (normalised contiguous word match, :class:`~sparsebert.data.decontam.SentenceMatcher`),
            e.g. the train sentences of the task a result is published on
            (:func:`sparsebert.data.corpus.glue_sentences`). The number dropped is logged at INFO.
        min_words: sentences of ``exclude`` shorter than this (normalised words) are ignored, as
            they would match ordinary prose by chance.

    Returns:
        The documents, ``list[str]``, each a non-empty, stripped paragraph (characters, not
        tokens: no length limit is applied), in source order.

    Raises:
        DataError: a file problem (see :func:`read_text_file`), a directory without text files,
            the general corpus not built (the message says to run ``make corpus``), an unknown
            corpus source name, a hub dataset that cannot be loaded or has no ``text`` column.
        MissingDependencyError: ``hf:`` without the ``datasets`` library.
        TypeError: a source of another type.
    """
    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    if not sources:
        raise DataError("load_text: no source given (an empty list)")
    docs: list[str] = []
    for src in sources:
        docs.extend(_one_source(src))
    if exclude is not None:
        matcher = SentenceMatcher(exclude, min_words=min_words)
        kept = [d for d in docs if matcher.find(d) is None]
        log.info("load_text: %d of %d documents dropped: they contain one of %d excluded sentences "
                 "(%d shorter than %d words ignored)", len(docs) - len(kept), len(docs), len(matcher),
                 matcher.n_ignored, min_words)
        docs = kept
    return docs
