"""File integrity: sha256 manifests written beside saved models and training states.

Every output directory (a run, a resumable training state) ends with ``MANIFEST.json``::

    {"format": "sparsebert-manifest", "version": 1,
     "files": {"model.safetensors": {"sha256": "…", "bytes": 90868376}, …}}

written last, so a directory whose manifest is missing or disagrees with its files is
incomplete or corrupt. :func:`verify_manifest` checks sizes first (a truncated file fails at
once) and then hashes, and names the file that differs. There is no silent partial load.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sparsebert.errors import SparsebertError

MANIFEST = "MANIFEST.json"
_FORMAT = "sparsebert-manifest"


class CorruptCheckpointError(SparsebertError, ValueError):
    """A saved file is missing, truncated or altered; the message names the file."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: str | Path, exclude: tuple[str, ...] = ()) -> Path:
    """Hash every regular file under ``directory`` (recursively) into ``directory/MANIFEST.json``.

    Args:
        exclude: relative paths left out (e.g. an append-only log that changes later).
    Returns:
        The manifest path. The manifest itself is written atomically.
    """
    from sparsebert.io import write_json_atomic

    directory = Path(directory)
    files = {}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if not p.is_file() or rel == MANIFEST or rel in exclude or p.name.startswith("."):
            continue
        files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    path = directory / MANIFEST
    write_json_atomic(path, {"format": _FORMAT, "version": 1, "files": files})
    return path


def read_manifest(directory: str | Path) -> dict[str, dict] | None:
    """The ``files`` table of ``directory/MANIFEST.json``, or None when there is no manifest.

    Raises:
        CorruptCheckpointError: the manifest exists but is not a valid manifest.
    """
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("format") != _FORMAT or not isinstance(files, dict):
            raise KeyError("format")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CorruptCheckpointError(f"{path}: not a valid manifest ({type(err).__name__}: {err})") from None
    return files


def verify_manifest(directory: str | Path, required: bool = False, only: tuple[str, ...] | None = None) -> bool:
    """Check every file listed in ``directory/MANIFEST.json`` against its size and sha256.

    Args:
        required: raise when there is no manifest (training states); otherwise return False
            (directories not written by sparsebert, e.g. a hub model).
        only: check just these relative paths (they must be listed).
    Returns:
        True when a manifest was found and every file matched.
    Raises:
        CorruptCheckpointError: naming the missing, truncated or altered file.
    """
    directory = Path(directory)
    files = read_manifest(directory)
    if files is None:
        if required:
            raise CorruptCheckpointError(f"{directory / MANIFEST}: missing (incomplete or foreign checkpoint)")
        return False
    names = list(files) if only is None else list(only)
    for rel in names:
        if rel not in files:
            raise CorruptCheckpointError(f"{directory / rel}: not listed in {MANIFEST}")
        entry, path = files[rel], directory / rel
        if not path.is_file():
            raise CorruptCheckpointError(f"{path}: missing (listed in {MANIFEST})")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise CorruptCheckpointError(f"{path}: {size} bytes, manifest says {entry['bytes']} (truncated or altered)")
        if sha256_file(path) != entry["sha256"]:
            raise CorruptCheckpointError(f"{path}: sha256 differs from {MANIFEST} (corrupted or altered)")
    return True
