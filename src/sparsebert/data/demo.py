"""The embedded demo data set: human-rated Rotten Tomatoes snippets as an SST-2-style task.

Source: the ``vaderSentiment==3.3.2`` source distribution on PyPI ships, inside
``additional_resources/hutto_ICWSM_2014.tar.gz``, the ground truth of Hutto & Gilbert,
*VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media Text*,
ICWSM 2014: ``movieReviewSnippets_GroundTruth.txt`` holds 10,605 Rotten Tomatoes review
snippets (the sentence-level movie data of Pang & Lee, 2005, the same source as SST), each
with the mean of about 20 human ratings on a -4 (most negative) .. +4 (most positive) scale,
as ``id<TAB>mean_rating<TAB>text`` lines (CRLF line ends, no trailing newline).

:func:`write_demo_glue` turns it into a binary task in the SST-2 ``glue_data`` layout so that
the normal reader (:func:`sparsebert.data.read_glue_split` with task ``"sst2"``) loads it.
Nothing is extracted to disk: the nested tarballs are read in memory.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import tarfile
from pathlib import Path

from sparsebert.errors import InputError
from sparsebert.io import OutputExistsError, write_text_atomic

from .glue import DataError

__all__ = ["DEMO_SDIST_SHA256", "read_movie_snippets", "write_demo_glue",
           "DEMO_INNER_TARBALL", "DEMO_SNIPPETS_MEMBER"]

#: sha256 of ``vaderSentiment-3.3.2.tar.gz`` as published on PyPI.
DEMO_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
#: Member of the sdist that holds the ICWSM 2014 resources.
DEMO_INNER_TARBALL = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
#: Member of the inner tarball with the movie-review ground truth.
DEMO_SNIPPETS_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

_RATING_MIN, _RATING_MAX = -4.0, 4.0
# Characters that would break a TSV row or a line: tab, CR/LF and the other line breaks
# that str.splitlines() honours.
_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_DEFAULT_DEV_FRACTION = 0.1
_MAX_MEMBER_BYTES = 64 * 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_member(tar: tarfile.TarFile, name: str, where: str) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise DataError(f"{where}: member {name!r} not found", path=where) from None
    if not info.isfile():
        raise DataError(f"{where}: member {name!r} is not a regular file", path=where)
    if info.size > _MAX_MEMBER_BYTES:
        raise DataError(f"{where}: member {name!r} is {info.size} bytes, more than the "
                        f"{_MAX_MEMBER_BYTES} allowed", path=where)
    fh = tar.extractfile(info)
    assert fh is not None
    return fh.read()


def read_movie_snippets(
    sdist: str | Path, *, sha256: str | None = DEMO_SDIST_SHA256
) -> list[tuple[str, float]]:
    """Read the 10,605 rated movie-review snippets from the vaderSentiment 3.3.2 sdist.

    Args:
        sdist: path to ``vaderSentiment-3.3.2.tar.gz`` (``pip download --no-deps
            --no-binary :all: vaderSentiment==3.3.2``).
        sha256: expected sha256 (hex) of the sdist, checked before anything is parsed;
            ``None`` skips the check (only for tests with synthetic archives).

    Returns:
        ``[(text, mean_rating), ...]`` in file order; ``mean_rating`` is a float in
        [-4, 4] (mean human rating, negative = negative sentiment); ``text`` is as in the
        file, without the line terminator.

    Raises:
        FileNotFoundError: ``sdist`` does not exist.
        InputError: the sha256 does not match (a ``ValueError``; the message names the file and both hashes).
        DataError: an archive member is missing or not a file, the snippets file is not
            UTF-8, or a line is malformed (not 3 tab-separated fields, rating not a finite
            number in [-4, 4], empty text); the message starts with
            ``"<sdist>!<inner tarball>!<member>:<line>: "``.
        tarfile.TarError: the file is not a (gzip) tar archive.
    """
    path = Path(sdist)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected vaderSentiment-3.3.2.tar.gz "
                                "(pip download --no-deps --no-binary :all: vaderSentiment==3.3.2)")
    if sha256 is not None:
        actual = _sha256(path)
        if actual != sha256.lower():
            raise InputError(f"{path}: sha256 mismatch: expected {sha256.lower()}, got {actual}")

    with tarfile.open(path, mode="r:*") as outer:
        inner_bytes = _read_member(outer, DEMO_INNER_TARBALL, str(path))
    inner_where = f"{path}!{DEMO_INNER_TARBALL}"
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:*") as inner:
        raw = _read_member(inner, DEMO_SNIPPETS_MEMBER, inner_where)
    where = f"{inner_where}!{DEMO_SNIPPETS_MEMBER}"

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}:{line}: not valid UTF-8 ({exc.reason})",
                        path=where, line=line) from exc

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line, it does not start a new one
    rows: list[tuple[str, float]] = []
    for lineno, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]

        def bad(message: str, lineno: int = lineno) -> DataError:
            return DataError(f"{where}:{lineno}: {message}", path=where, line=lineno)

        fields = line.split("\t")
        if len(fields) != 3:
            raise bad(f"expected 3 tab-separated fields (id, mean_rating, text), "
                      f"got {len(fields)}")
        _, rating_s, snippet = fields
        try:
            rating = float(rating_s)
        except ValueError:
            raise bad(f"rating {rating_s!r} is not a number") from None
        if not math.isfinite(rating) or not _RATING_MIN <= rating <= _RATING_MAX:
            raise bad(f"rating {rating_s!r} is outside [{_RATING_MIN:g}, {_RATING_MAX:g}]")
        if not snippet.strip():
            raise bad("empty or whitespace-only text")
        rows.append((snippet, rating))
    if not rows:
        raise DataError(f"{where}: no snippets", path=where)
    return rows


def _sanitize(text: str) -> str:
    return _BREAKS.sub(" ", text).strip()


def _shuffle_key(seed: int, text: str) -> bytes:
    # Order by a keyed hash: the split depends only on the seed and the texts, and is the
    # same on every Python/NumPy version and platform.
    return hashlib.sha256(f"{seed}\x00{text}".encode("utf-8")).digest()


def _write_tsv_atomic(path: Path, rows: list[tuple[str, int]]) -> None:
    write_text_atomic(path, "sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))


def write_demo_glue(
    sdist: str | Path,
    out_dir: str | Path,
    *,
    n_train: int | None = 2000,
    n_dev: int | None = 500,
    seed: int = 0,
    overwrite: bool = False,
    sha256: str | None = DEMO_SDIST_SHA256,
) -> Path:
    """Write the movie snippets as a binary SST-2-style task: ``out_dir/SST-2/{train,dev}.tsv``.

    Labels: 1 if the mean rating is > 0, 0 if < 0; snippets rated exactly 0 are dropped
    (37 in the real file), and so are repeated texts after the first occurrence (2 in the
    real file), so that no sentence is in both train and dev. Texts get tabs and line breaks
    replaced by spaces. The snippets are ordered by ``sha256(f"{seed}\\0{text}")``; the first
    ``n_dev`` form dev and the next ``n_train`` train, so the split is a deterministic
    function of ``seed`` (independent of Python/NumPy versions), and dev is the same for a
    given seed whatever ``n_train`` is. Each file is written atomically (temporary file in
    the same directory, then ``os.replace``) with the header ``sentence<TAB>label``.

    Args:
        sdist: path to ``vaderSentiment-3.3.2.tar.gz`` (see :func:`read_movie_snippets`).
        out_dir: the ``glue_data``-style root to create; created if missing.
        n_train: training rows; ``None`` = all that remain after dev.
        n_dev: dev rows; ``None`` = 10 % of the usable snippets (rounded, at least 1).
        seed: shuffling seed.
        overwrite: replace an existing ``out_dir/SST-2`` (its train/dev files only).
        sha256: expected sha256 of the sdist (``None`` skips the check; tests only).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path` (pass it as ``data_dir`` with task ``"sst2"``).

    Raises:
        OutputExistsError: ``out_dir/SST-2`` exists and ``overwrite`` is False (a ``FileExistsError``).
        InputError: negative or too large ``n_train``/``n_dev`` (more than there are usable
            snippets), or a sha256 mismatch.
        FileNotFoundError, DataError: as :func:`read_movie_snippets`.
    """
    for name, value in (("n_train", n_train), ("n_dev", n_dev)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise InputError(f"{name} must be a positive int or None, got {value!r}")
    root = Path(out_dir)
    task_dir = root / "SST-2"
    if task_dir.exists() and not overwrite:
        raise OutputExistsError(f"{task_dir}: already exists; pass overwrite=True (--overwrite) "
                              "to replace it")

    seen: set[str] = set()
    usable: list[tuple[str, int]] = []
    for text, rating in read_movie_snippets(sdist, sha256=sha256):
        clean = _sanitize(text)
        if rating == 0 or not clean or clean in seen:
            continue
        seen.add(clean)
        usable.append((clean, 1 if rating > 0 else 0))

    total = len(usable)
    dev_n = n_dev if n_dev is not None else max(1, round(_DEFAULT_DEV_FRACTION * total))
    train_n = n_train if n_train is not None else total - dev_n
    if dev_n + train_n > total or train_n < 1:
        raise InputError(f"n_train={n_train} + n_dev={n_dev} needs {dev_n + train_n} snippets, "
                         f"but only {total} usable ones exist (nonzero rating, distinct text)")

    usable.sort(key=lambda row: _shuffle_key(seed, row[0]))
    dev_rows, train_rows = usable[:dev_n], usable[dev_n:dev_n + train_n]

    task_dir.mkdir(parents=True, exist_ok=True)
    _write_tsv_atomic(task_dir / "train.tsv", train_rows)
    _write_tsv_atomic(task_dir / "dev.tsv", dev_rows)
    return root
