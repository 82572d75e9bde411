"""Output directories, atomic writes, run logs and environment records.

Every stage writes into a hidden staging directory beside the target and renames it into place
only when everything is written, so a crash never leaves a half-written output under the final
name. An existing output is replaced only with ``overwrite=True`` (``--overwrite``).

Writers of an output ``DIR/NAME`` hold ``DIR/.NAME.lock`` (:func:`output_lock`): a second run
into the same output fails at once, naming the pid that holds it. The lock is advisory
(``fcntl.flock``: it binds sparsebert processes only) and meant for local filesystems.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
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


class OutputLockedError(OSError):
    """Another process holds the lock of the output directory."""


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of output ``out``: ``fcntl.flock`` on ``.NAME.lock`` beside it.

    Non-blocking: fails at once when another process holds it. The lock file holds the pid of
    its holder and is removed on release (while still locked; a process that locked a removed
    file notices and retries on the new one). Once the lock is held, staging directories left
    by killed runs (``.NAME.partial-*``, ``.NAME.old-*``) are removed. The lock is advisory and
    for local filesystems (flock over NFS/SMB may be emulated or not shared between hosts); the
    kernel releases it when the holder dies, even by SIGKILL.

    Yields:
        The lock file path.
    Raises:
        OutputLockedError: naming ``out`` and the pid holding the lock.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(
                f"output {out} is in use by another run (pid {_lock_holder(path)}, lock {path})") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed this file between our open and flock: retry
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        for pattern in (".partial-*", ".old-*"):
            for stale in out.parent.glob(f".{glob.escape(out.name)}{pattern}"):
                shutil.rmtree(stale, ignore_errors=True)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def move_into_place(stage: Path, out: Path) -> None:
    """Rename the finished ``stage`` to ``out``, replacing an existing ``out`` (the caller checked
    that it may): the old one is first renamed aside, then removed."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.replace(out, trash)
        os.replace(stage, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(stage, out)


@contextlib.contextmanager
def staged_output_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory that replaces ``out`` atomically on success.

    On an exception the staging directory is removed and ``out`` is left untouched. The output's
    lock (:func:`output_lock`) is held throughout. (``finetune``/``prune`` use the resumable
    :class:`sparsebert.checkpointing.TrainingRun` instead.)

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False (checked before and after).
        OutputLockedError: another run writes ``out``.
    """
    out = check_output_dir(out, overwrite)
    with output_lock(out):
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        check_output_dir(out, overwrite)
        move_into_place(stage, out)


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

    Args:
        truncate_at: cut an existing file to this many bytes first (a resumed run drops the
            records written after its training state was saved; see :meth:`tell`).
    Raises:
        ValueError: ``truncate_at`` is beyond the end of the file (the log lost records).
    """

    def __init__(self, path: str | Path, truncate_at: int | None = None):
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")
        if truncate_at is not None:
            size = self.tell()
            if truncate_at > size:
                self._f.close()
                raise ValueError(f"{self.path}: {size} bytes, but the training state was saved at byte {truncate_at}")
            self._f.truncate(truncate_at)
        self._t0 = time.perf_counter()

    def tell(self) -> int:
        """Bytes in the file (every record is flushed): the position a resumed run cuts the log back to."""
        self._f.flush()
        return os.fstat(self._f.fileno()).st_size

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
