"""Entries of a dictd data base (the ``.index`` + ``.dict[.dz]`` pair that ``dict-*`` packages ship).

The ``.index`` file has one line per headword: ``headword<TAB>offset<TAB>length``, where offset
and length (bytes into the uncompressed ``.dict``) are written in base 64 with the alphabet
``A-Z a-z 0-9 + /`` (most significant digit first). Several headwords may point at the same
entry; each entry is returned once, in file order. The ``00-database-*`` entries (the data base's
own name, URL, info) are skipped. A ``.dict.dz`` is dictzip, which is gzip-compatible.
"""

from __future__ import annotations

import gzip

from sparsebert.errors import InputError

__all__ = ["DictdError", "dictd_entries"]

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


class DictdError(InputError):
    """A dictd index line is malformed or points outside the data; the message names file and line."""


def _b64(text: str, where: str) -> int:
    value = 0
    for ch in text:
        if ch not in _B64:
            raise DictdError(f"{where}: {text!r} is not a dictd base-64 number")
        value = value * 64 + _B64[ch]
    return value


def dictd_entries(index: bytes, data: bytes, name: str = "<dictd>") -> list[tuple[str, str]]:
    """All entries of a dictd data base.

    Args:
        index: the ``.index`` file's bytes (UTF-8).
        data: the ``.dict`` or ``.dict.dz`` file's bytes (gzip is detected).
        name: the data base's name for error messages.

    Returns:
        ``[(headword, entry text)]`` in order of the entries in the data file; the headword is the
        first index line pointing at the entry; the text is the raw entry (UTF-8), first line
        included.

    Raises:
        DictdError: a malformed index line, or a span past the end of the data.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    spans: dict[tuple[int, int], str] = {}
    for lineno, line in enumerate(index.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        where = f"{name}.index:{lineno}"
        if len(parts) < 3:
            raise DictdError(f"{where}: expected headword<TAB>offset<TAB>length, got {line[:80]!r}")
        head = parts[0]
        if head.startswith("00-database") or head.startswith("00database"):
            continue
        start, length = _b64(parts[1], where), _b64(parts[2], where)
        if start + length > len(data):
            raise DictdError(f"{where}: entry {head!r} spans bytes {start}..{start + length}, past the end "
                             f"of the data ({len(data)} bytes)")
        spans.setdefault((start, length), head)
    return [(head, data[s:s + n].decode("utf-8", errors="replace")) for (s, n), head in sorted(spans.items())]
