"""Output directories, atomic writes, run logs and environment records.

Every stage writes into a hidden staging directory beside the target and renames it into place
only when everything is written, so a crash never leaves a half-written output under the final
name. An existing output is replaced only with ``overwrite=True`` (``--overwrite``).

Writers of an output ``DIR/NAME`` hold its lock (:func:`output_lock`): a second run into the
same output fails at once, naming the pid that holds it (recorded in ``DIR/.NAME.lock``). The
lock is advisory (the ``filelock`` library: ``flock`` on Unix, ``msvcrt.locking`` on Windows; it
binds sparsebert processes only) and meant for local filesystems.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparsebert.errors import InputError, SparsebertError


class OutputExistsError(SparsebertError, FileExistsError):
    """The output directory exists and ``overwrite`` was not given."""


class OutputNotADirectoryError(SparsebertError, NotADirectoryError):
    """The output path exists and is a file."""


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early if ``out`` exists (and is non-empty) without ``overwrite``.

    Raises:
        OutputExistsError: naming the directory and the ``--overwrite`` flag.
        OutputNotADirectoryError: ``out`` exists and is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputNotADirectoryError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output directory {out} already exists; pass --overwrite to replace it")
    return out


class OutputLockedError(SparsebertError, OSError):
    """Another process holds the lock of the output directory."""


#: How long a second run waits for the holder's pid to appear before it reports "pid unknown"
#: (the holder is between taking the lock and recording its pid, or between removing it and
#: releasing the lock). With a pid recorded, a second run fails at once.
_PID_WAIT_S = 1.0


def _lock_holder(path: Path) -> str | None:
    """The pid recorded in ``path``, or None when there is none (yet)."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of output ``out``.

    Two files beside ``out``: ``.NAME.filelock``, locked through the ``filelock`` library
    (``flock`` on Unix, ``msvcrt.locking`` on Windows), and ``.NAME.lock``, which records the
    pid of the holder for the error message of a second run (a separate file, because a
    contender may truncate the locked one and Windows forbids reading a locked byte range).
    Non-blocking: a second run fails at once when the pid is recorded (within
    ``_PID_WAIT_S`` = 1 s otherwise). Both files are removed on release, the lock file while
    still locked (filelock >= 3.20.4 ignores a lock taken on a removed file and retries on the
    new one). Once the lock is held, staging directories left by killed runs
    (``.NAME.partial-*``, ``.NAME.old-*``) are removed. The lock is advisory and for local
    filesystems (locks over NFS/SMB may be emulated or not shared between hosts); the operating
    system releases it when the holder dies, even by SIGKILL.

    Yields:
        The pid file ``DIR/.NAME.lock`` (holds ``"<pid>\\n"`` while the lock is held).
    Raises:
        OutputLockedError: naming ``out``, the pid holding the lock (``unknown`` when none was
            recorded) and the pid file.
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    guard_path = out.parent / f".{out.name}.filelock"
    guard = FileLock(guard_path, timeout=0)
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        try:
            guard.acquire()
            break
        except Timeout:
            holder = _lock_holder(path)
            if holder is None and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise OutputLockedError(
                f"output {out} is in use by another run (pid {holder or 'unknown'}, lock {path})") from None
    try:
        write_text_atomic(path, f"{os.getpid()}\n")
        for pattern in (".partial-*", ".old-*"):
            for stale in out.parent.glob(f".{glob.escape(out.name)}{pattern}"):
                shutil.rmtree(stale, ignore_errors=True)
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # Windows: an open file cannot be removed; filelock removes it on release
                guard_path.unlink(missing_ok=True)
        finally:
            guard.release()


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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (same directory, so the final rename is atomic): the caller
    writes it, and on a normal exit it is fsync'ed and renamed onto ``path`` (``os.replace``); on an
    exception it is removed and ``path`` is left as it was. The parent directory is created.

    Yields:
        The temporary file's path (``DIR/.NAME.XXXX.tmp``; it exists, empty).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file.

    Raises:
        FileNotFoundError: naming the path.
        InputError: invalid JSON, naming the path, line and column (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from err


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
    """Versions and machine facts recorded in every ``summary.json`` and ``augment.json`` (benchmarks
    add CPU model, flags and load: :func:`sparsebert.bench.run.bench_environment`)."""
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
        "cpu": cpu_label(),
    }


def cpu_label() -> str:
    """The CPU named beside every figure: model name and its widest vector ISA, e.g. ``AMD EPYC (AVX-512 VNNI,
    BF16)`` or ``AMD EPYC (AVX2)`` (``/proc/cpuinfo``; training time and speed depend on both)."""
    from sparsebert.runtime.build import cpu_flags, cpu_model

    flags = cpu_flags()
    if "avx512f" in flags:
        isa = "AVX-512" + (" VNNI" if "avx512_vnni" in flags else "") + (", BF16" if "avx512_bf16" in flags else "") \
              + (", AMX" if "amx_tile" in flags else "")
    else:
        isa = "AVX2" if "avx2" in flags else "no AVX2"
    return f"{cpu_model()} ({isa})"


def invoked_command() -> str | None:
    """The command line of this process when it is the ``sparsebert`` CLI (the script or
    ``python -m sparsebert``), quoted for a shell; ``None`` otherwise (tests, a Python caller)."""
    argv = list(sys.argv)
    if not argv:
        return None
    head = Path(argv[0])
    if head.name == "sparsebert" or (head.name == "__main__.py" and head.parent.name == "sparsebert"):
        return shlex.join(["sparsebert", *argv[1:]])
    return None
