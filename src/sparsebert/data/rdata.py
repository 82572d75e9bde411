"""Read character vectors out of an installed R package's lazy-load data base, without R.

An installed R package keeps its data sets in ``data/Rdata.rdb`` (the objects, each one
serialised and compressed) and ``data/Rdata.rdx`` (the index: for every object name, the byte
offset and length of its record in the ``.rdb``). Both use R's serialisation format in its XDR
(big-endian) flavour, versions 2 and 3 (*R Internals*, section 1.8 "Serialization Formats").

This module implements only what plain data needs: ``NULL``, logical / integer / double /
character vectors, generic vectors (lists), pairlists (attributes), symbols and references to
them. Anything else (closures, environments, ALTREP objects, ...) raises :class:`RDataError`
naming the type code, so a package whose data changed shape fails loudly instead of being read
wrongly. It is used by :mod:`sparsebert.data.corpus` for the novels in the Debian package
``r-cran-janeaustenr``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from typing import Any

from sparsebert.errors import InputError

__all__ = ["RDataError", "unserialize", "read_rds", "lazyload_objects"]

# SEXP type codes (R Internals, "SEXPTYPEs") and the special codes of the serialiser.
_NILSXP, _SYMSXP, _LISTSXP = 0, 1, 2
_CHARSXP, _LGLSXP, _INTSXP, _REALSXP, _STRSXP, _VECSXP = 9, 10, 13, 14, 16, 19
_REFSXP, _NILVALUE_SXP = 255, 254
_NA_INTEGER = -(2 ** 31)


class RDataError(InputError):
    """An R serialisation stream cannot be read: bad header, truncated data or an unsupported
    type; the message names the source (file and object) and the byte offset."""


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where, self.refs = data, 0, where, []

    def fail(self, msg: str) -> RDataError:
        return RDataError(f"{self.where}: byte {self.pos}: {msg}")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated R data (wanted {n} bytes, {len(self.data) - self.pos} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            hi, lo = struct.unpack(">II", self.take(8))
            n = (hi << 32) | lo
        if n < 0:
            raise self.fail(f"negative length {n}")
        return n

    def item(self) -> Any:
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind in (_NILVALUE_SXP, _NILSXP):
            return None
        if kind == _REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            if not 1 <= idx <= len(self.refs):
                raise self.fail(f"bad reference index {idx}")
            return self.refs[idx - 1]
        if kind == _SYMSXP:
            name = self.item()  # a CHARSXP
            self.refs.append(name)
            return name
        if kind == _LISTSXP:  # pairlist: attributes, tag, car, cdr (iteratively along cdr)
            out: dict[str | None, Any] = {}
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                out[tag] = self.item()
                flags = self.int()
                kind = flags & 0xFF
                has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
                if kind in (_NILVALUE_SXP, _NILSXP):
                    return out
                if kind != _LISTSXP:
                    raise self.fail(f"pairlist ends in type {kind}, expected NULL")
        if kind == _CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            latin1 = bool(flags & (1 << 14)) and not flags & (1 << 15)  # LATIN1_MASK, UTF8_MASK levels
            raw = self.take(n)
            try:
                return raw.decode("latin-1" if latin1 else "utf-8")
            except UnicodeDecodeError as err:
                raise self.fail(f"string is not valid UTF-8 ({err.reason})") from err
        if kind in (_LGLSXP, _INTSXP):
            n = self.length()
            vals = list(struct.unpack(f">{n}i", self.take(4 * n)))
            value: Any = [None if v == _NA_INTEGER else (bool(v) if kind == _LGLSXP else v) for v in vals]
        elif kind == _REALSXP:
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif kind == _STRSXP:
            value = [self.item() for _ in range(self.length())]
        elif kind == _VECSXP:
            value = [self.item() for _ in range(self.length())]
        else:
            raise self.fail(f"unsupported R object type {kind} (only plain data vectors are read)")
        if has_attr:
            attrs = self.item()
            names = attrs.get("names") if isinstance(attrs, dict) else None
            if kind == _VECSXP and isinstance(names, list) and len(names) == len(value):
                return dict(zip(names, value))
        return value


def unserialize(data: bytes, where: str = "<R data>") -> Any:
    """Decode one uncompressed R serialisation stream (XDR format, version 2 or 3).

    Args:
        data: the stream, starting with ``b"X\\n"``.
        where: a name for error messages (file and object).

    Returns:
        ``None`` for ``NULL``; a ``list`` for an atomic vector (``str`` / ``int`` / ``float`` /
        ``bool`` items, ``None`` for ``NA``) or an unnamed list; a ``dict`` for a named list.

    Raises:
        RDataError: not XDR format, unsupported version or type, or truncated data.
    """
    r = _Reader(data, where)
    if r.take(2) != b"X\n":
        raise RDataError(f"{where}: not an R XDR serialisation stream (header {data[:2]!r})")
    version = r.int()
    r.int(), r.int()  # writer's R version, minimal reader version
    if version == 3:
        r.take(r.int())  # native encoding name
    elif version != 2:
        raise RDataError(f"{where}: R serialisation version {version} is not supported (2 or 3)")
    return r.item()


def read_rds(path) -> Any:
    """Read an ``.rds`` / ``.rdx`` file (gzip-, bzip2-, xz-compressed or plain) with :func:`unserialize`."""
    raw = open(path, "rb").read()
    for magic, opener in ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress), (b"\xfd7zXZ", lzma.decompress)):
        if raw.startswith(magic):
            raw = opener(raw)
            break
    return unserialize(raw, str(path))


def _decompress_record(rec: bytes, where: str) -> bytes:
    """One ``.rdb`` record: 4-byte big-endian uncompressed length, then (R >= 2.10) an optional
    type byte ``Z`` (zlib), ``2`` (bzip2), ``X`` (xz) or ``0`` (stored); no type byte means zlib."""
    if len(rec) < 5:
        raise RDataError(f"{where}: record of {len(rec)} bytes is too short")
    size = struct.unpack(">I", rec[:4])[0]
    kind, body = rec[4:5], rec[5:]
    if kind == b"Z":
        out = zlib.decompress(body)
    elif kind == b"2":
        out = bz2.decompress(body)
    elif kind == b"X":
        out = lzma.decompress(body)
    elif kind == b"0":
        out = body
    else:
        out = zlib.decompress(rec[4:])
    if len(out) != size:
        raise RDataError(f"{where}: record decompresses to {len(out)} bytes, header says {size}")
    return out


def lazyload_objects(rdx_path, rdb_path) -> dict[str, Any]:
    """All objects of an R lazy-load data base (``Rdata.rdx`` + ``Rdata.rdb``), by name.

    Returns:
        ``{object name: value}`` as decoded by :func:`unserialize`.

    Raises:
        RDataError: the index or a record cannot be read, naming the file and the object.
    """
    index = read_rds(rdx_path)
    if not isinstance(index, dict) or not isinstance(index.get("variables"), dict):
        raise RDataError(f"{rdx_path}: not a lazy-load index (no 'variables' list)")
    blob = open(rdb_path, "rb").read()
    out = {}
    for name, span in index["variables"].items():
        if not (isinstance(span, list) and len(span) == 2):
            raise RDataError(f"{rdx_path}: object {name!r}: bad (offset, length) entry {span!r}")
        start, length = int(span[0]), int(span[1])
        where = f"{rdb_path} (object {name!r} at byte {start})"
        if start < 0 or start + length > len(blob):
            raise RDataError(f"{where}: record runs past the end of the file ({len(blob)} bytes)")
        out[name] = unserialize(_decompress_record(blob[start:start + length], where), where)
    return out
