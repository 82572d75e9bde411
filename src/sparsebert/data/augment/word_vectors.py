"""Word vectors from a GloVe text file: the optional embedding space of the neighbour path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsebert.errors import InputError

from ..glue import _error, _iter_lines


@dataclass
class WordVectors:
    """Word vectors read from a text file.

    Attributes:
        words: the words, in file order (first occurrence of a duplicate kept).
        vectors: ``[len(words), dim]`` float32.
        path: the file they came from.
    """

    words: list[str]
    vectors: np.ndarray
    path: str = ""
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def lookup(self, word: str) -> int | None:
        """Row of ``word`` (exact spelling first, then lower case), or None."""
        i = self.index.get(word)
        return self.index.get(word.lower()) if i is None else i


def read_word_vectors(path: str | Path, max_words: int | None = None) -> WordVectors:
    """Read a GloVe text file: one ``word v1 v2 ... vd`` line per word, single spaces.

    A first line of exactly two integers (the word2vec text header ``count dim``) is skipped.
    The dimension d is fixed by the first vector line; a trailing space on a line is allowed.

    Args:
        path: the ``.txt`` file (e.g. ``glove.6B.300d.txt``, Pennington et al., EMNLP 2014).
        max_words: read only the first ``max_words`` vectors (GloVe files are ordered by
            frequency), to bound memory; None = all.
    Returns:
        :class:`WordVectors` (``vectors`` float32, ``[n, d]``).
    Raises:
        FileNotFoundError: no such file.
        DataError: ``"<file>:<line>: ..."`` for a blank line, a line with a different number
            of values than d, a value that is not a finite number, or invalid UTF-8;
            ``"<file>: ..."`` for a file with no vectors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word-vector file not found (expected GloVe text format)")
    if max_words is not None and max_words < 1:
        raise InputError(f"max_words must be >= 1, got {max_words}")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    for lineno, line in _iter_lines(path):
        line = line.rstrip(" ")
        if not line:
            raise _error(path, lineno, "blank line; expected 'word v1 v2 ... vd' (GloVe text format)")
        fields = line.split(" ")
        if lineno == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            continue  # word2vec text header "count dim"
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise _error(path, lineno, "expected a word followed by its vector (GloVe text format)")
        if len(fields) != dim + 1:
            raise _error(path, lineno, f"expected a word and {dim} numbers (the dimension of the first "
                                       f"vector), got {len(fields) - 1} values")
        try:
            vec = np.array(fields[1:], dtype=np.float32)
        except ValueError:
            bad = next(v for v in fields[1:] if not _is_float(v))
            raise _error(path, lineno, f"value {bad!r} of word {fields[0]!r} is not a number") from None
        if not np.isfinite(vec).all():
            raise _error(path, lineno, f"vector of word {fields[0]!r} is not finite")
        words.append(fields[0])
        rows.append(vec)
        if max_words is not None and len(words) >= max_words:
            break
    if not words:
        raise _error(path, None, "no word vectors (empty file)")
    return WordVectors(words, np.stack(rows), str(path))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
