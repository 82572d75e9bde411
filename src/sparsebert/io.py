"""Output directories, atomic writes, run logs and environment records.

Every stage writes into a hidden staging directory beside the target and renames it into place
only when everything is written, so a crash never leaves a half-written output under the final
name. An existing output is replaced only with ``overwrite=True`` (``--overwrite``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputExistsError(FileExistsError):
    """The output directory exists and ``overwrite`` was not given."""


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early if ``out`` exists (and is non-empty) without ``overwrite``.

    Raises:
        OutputExistsError: naming the directory and the ``--overwrite`` flag.
        NotADirectoryError: ``out`` exists and is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output directory {out} already exists; pass --overwrite to replace it")
    return out


@contextlib.contextmanager
def staged_output_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory that replaces ``out`` atomically on success.

    On an exception the staging directory is removed and ``out`` is left untouched.

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False (checked before and after).
    """
    out = check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    check_output_dir(out, overwrite)
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(out, trash)
        os.replace(stage, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(stage, out)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: invalid JSON, naming the path, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from err


class JsonlLogger:
    """Append-only JSON-lines run log (one object per line, flushed per record).

    Each record gets ``time`` (seconds since the logger was created) besides its own fields.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")
        self._t0 = time.perf_counter()

    def log(self, event: str, **fields: Any) -> None:
        """Write one record ``{"event": event, "time": s, **fields}``."""
        rec = {"event": event, "time": round(time.perf_counter() - self._t0, 3), **fields}
        self._f.write(json.dumps(rec, default=float) + "\n")
        self._f.flush()

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded in every ``summary.json``."""
    import torch
    import transformers

    import sparsebert

    return {
        "sparsebert": sparsebert.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
