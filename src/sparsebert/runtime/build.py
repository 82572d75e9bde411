"""Just-in-time build of the C++ sparse kernels (``csrc/``) with torch's extension loader.

One extension module from ``csrc/spmm.cpp`` (fp32 CSR, and the Python bindings),
``csrc/spmm_int8.cpp`` (sparse int8, 1x4 blocks), ``csrc/spmm_int8_4x1.cpp`` (sparse int8, 4x1 blocks), ``csrc/engine.cpp`` (the whole-encoder engine) and the headers.
The shared library is compiled once per (every source and header, compiler flags, CPU flags, torch
version) with ``-O3 -march=native`` (or ``-march=x86-64-v3`` for the ``avx2`` build that tests force on
AVX-512 machines, :data:`ISAS`) and cached under ``$SPARSEBERT_CACHE/torch_extensions`` (default
``~/.cache/sparsebert``); it is compiled from copies of the sources in the build directory
(:func:`stage_sources`). When compilation is impossible (no compiler, no ninja, an unusual
platform) :func:`load_kernel` returns ``None`` with the reason in :func:`build_error`, and the
runtime falls back to torch kernels (CSR / dense).

Builds of one build directory are serialised by :func:`build_lock` (the ``filelock`` library, held
for the whole build and load): torch's own lock, ``BUILD_DIR/lock`` (``torch.utils.file_baton``,
an ``O_EXCL`` file that a killed build leaves behind, after which every later load would wait
forever), is then known to be stale whenever it exists, and is removed with a warning.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sparsebert.errors import SparsebertError
from sparsebert.io import atomic_path

_CSRC = Path(__file__).parent / "csrc"
#: compiled translation units (spmm.cpp holds the PYBIND11 module; engine.cpp the whole-encoder engine)
_SOURCES = (_CSRC / "spmm.cpp", _CSRC / "spmm_int8.cpp", _CSRC / "spmm_int8_4x1.cpp", _CSRC / "engine.cpp")
CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", "-DNDEBUG"]
#: instruction-set builds: ``native`` (``-march=native``: AVX-512 / VNNI / BF16 where the CPU has them) and
#: ``avx2`` (``-march=x86-64-v3``: AVX2 + FMA, no AVX-512), which tests force on AVX-512 machines
ISAS = ("native", "avx2")
_ISA_MARCH = {"native": "-march=native", "avx2": "-march=x86-64-v3"}
_lock = threading.Lock()
_state: dict = {}
#: how long a load waits for a build of the same build directory by another process (a build on one
#: slow core takes minutes)
BUILD_LOCK_TIMEOUT_S = 1800.0


class KernelBuildLockedError(SparsebertError, TimeoutError):
    """Another process held the build lock of the kernel's build directory for longer than
    :data:`BUILD_LOCK_TIMEOUT_S`; the message names the lock and how to clear it."""


def cache_dir() -> Path:
    """Root of sparsebert's on-disk caches (``$SPARSEBERT_CACHE`` or ``~/.cache/sparsebert``)."""
    root = os.environ.get("SPARSEBERT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "sparsebert"


def cpu_flags() -> list[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_files() -> list[Path]:
    """Every file the extension is built from (``csrc/*.cpp`` and ``csrc/*.h``), sorted: all of them
    are part of the build key, so editing any one (a header included) rebuilds."""
    return sorted(p for p in _CSRC.iterdir() if p.suffix in (".cpp", ".h"))


def resolve_isa(isa: str | None = None) -> str:
    """The build that runs: ``isa``, else ``$SPARSEBERT_ISA``, else ``native``; ``avx2`` is ``native`` on
    a CPU without AVX-512 (the native build already is the AVX2 code there).

    Raises:
        InputError: an ISA outside :data:`ISAS` (a ``ValueError``), naming where it came from.
    """
    from sparsebert.errors import InputError

    given = isa if isa is not None else os.environ.get("SPARSEBERT_ISA") or "native"
    if given not in ISAS:
        where = "isa" if isa is not None else "SPARSEBERT_ISA"
        raise InputError(f"{where}={given!r}: the kernel builds are {list(ISAS)}")
    if given == "avx2" and "avx512f" not in cpu_flags():
        return "native"
    return given


#: ``SPARSEBERT_SANITIZE=address``: build (into its own directory) with AddressSanitizer, for ``make asan``
SANITIZE_FLAGS = {"address": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]}


def sanitizer() -> str | None:
    """The sanitizer of this process's builds (``$SPARSEBERT_SANITIZE``: ``address``), or None.

    Raises:
        InputError: another value (a ``ValueError``).
    """
    from sparsebert.errors import InputError

    name = os.environ.get("SPARSEBERT_SANITIZE") or None
    if name is not None and name not in SANITIZE_FLAGS:
        raise InputError(f"SPARSEBERT_SANITIZE={name!r}: supported: {list(SANITIZE_FLAGS)}")
    return name


def cflags(isa: str = "native") -> list[str]:
    """Compiler flags of one ISA build (:data:`CFLAGS` with its ``-march``, plus the sanitizer's flags)."""
    san = sanitizer()
    return [_ISA_MARCH[isa] if f == "-march=native" else f for f in CFLAGS] + (SANITIZE_FLAGS[san] if san else [])


def _slot(isa: str) -> str:
    return "" if isa == "native" else f":{isa}"


def _build_key(isa: str = "native") -> str:
    import torch

    h = hashlib.sha256()
    for f in source_files():
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(" ".join(cflags(isa)).encode())
    h.update(" ".join(cpu_flags()).encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:12]


def build_lock_path(build_dir: Path) -> Path:
    """sparsebert's lock of ``build_dir`` (held by :func:`build_lock` around each build and load)."""
    return Path(build_dir) / "sparsebert.filelock"


@contextmanager
def build_lock(build_dir: Path, timeout: float | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of ``build_dir`` (waiting up to ``timeout`` seconds,
    :data:`BUILD_LOCK_TIMEOUT_S` by default, for another process's build) and remove a stale torch
    lock ``build_dir/lock`` left by a killed build (with a warning naming it).

    The lock (``build_dir/sparsebert.filelock``, ``flock`` on Unix) is released by the operating
    system when its holder dies, even by SIGKILL, so holding it proves that no other sparsebert
    process is building there.

    Yields:
        The lock file.
    Raises:
        KernelBuildLockedError: the lock stayed held for ``timeout`` seconds.
    """
    from filelock import FileLock, Timeout

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_lock_path(build_dir)
    timeout = BUILD_LOCK_TIMEOUT_S if timeout is None else timeout
    guard = FileLock(path)
    try:
        guard.acquire(timeout=0)
    except Timeout:
        warnings.warn(f"waiting up to {timeout:.0f} s for another process building the sparse kernel in {build_dir} "
                      f"(lock {path})", stacklevel=3)
        try:
            guard.acquire(timeout=timeout)
        except Timeout:
            raise KernelBuildLockedError(
                f"the sparse kernel build directory {build_dir} is still locked by another process after "
                f"{timeout:.0f} s (lock {path}): wait for that build to finish, or stop the process that holds "
                f"the lock (`fuser {path}`), or remove {build_dir}; SPARSEBERT_NO_EXTENSION=1 skips the kernel") from None
    try:
        baton = build_dir / "lock"  # torch.utils.cpp_extension._jit_compile's FileBaton
        if baton.exists():
            warnings.warn(f"removing stale kernel build lock {baton} (left by a build that was killed; "
                          "no process is building)", stacklevel=3)
            baton.unlink(missing_ok=True)
        yield path
    finally:
        guard.release()


def stage_sources(build_dir: Path) -> list[Path]:
    """Copy the kernel's sources (:func:`source_files`) into ``build_dir/src`` and return the
    translation units there.

    The build compiles these copies, so the build directory does not depend on where sparsebert is
    installed: torch's loader writes the source paths into ``build.ninja`` and rebuilds whenever
    they change, so two checkouts (or a git worktree) of the same sources would otherwise rebuild
    each other's library. A copy is rewritten only when its content differs (ninja rebuilds on a
    newer modification time); each write is atomic.

    Returns:
        ``build_dir/src/<name>`` for each translation unit (spmm.cpp, spmm_int8.cpp, spmm_int8_4x1.cpp, engine.cpp).
    """
    src_dir = Path(build_dir) / "src"
    for f in source_files():
        dst = src_dir / f.name
        data = f.read_bytes()
        if not dst.is_file() or dst.read_bytes() != data:
            with atomic_path(dst) as tmp:
                tmp.write_bytes(data)
    return [src_dir / s.name for s in _SOURCES]


def load_kernel(verbose: bool = False, isa: str | None = None):
    """The compiled extension module (``csr_linear``, ``int8_block_linear``, ``int8_quantize_tokens``,
    ``int8_isa``, the engine's ``Engine`` / ``engine_*``), or ``None`` if it cannot be built.

    Args:
        verbose: print the compiler's output.
        isa: which build (:data:`ISAS`, :func:`resolve_isa`; default ``$SPARSEBERT_ISA`` or ``native``).
    Disabled with ``SPARSEBERT_NO_EXTENSION=1``. Waits for a build of the same sources by another
    process (:func:`build_lock`).

    Raises:
        KernelBuildLockedError: another process held the build lock for :data:`BUILD_LOCK_TIMEOUT_S`.
        InputError: an unknown ``isa``.
    """
    isa = resolve_isa(isa)
    slot = _slot(isa)
    with _lock:
        if "module" + slot in _state:
            return _state["module" + slot]
        module = None
        if os.environ.get("SPARSEBERT_NO_EXTENSION") == "1":
            _state["error" + slot] = "disabled by SPARSEBERT_NO_EXTENSION=1"
        elif platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64", "aarch64"):
            _state["error" + slot] = f"no kernel build for {platform.system()}/{platform.machine()}"
        elif isa != "native" and platform.machine() not in ("x86_64", "AMD64"):
            _state["error" + slot] = f"no {isa} build on {platform.machine()}"
        else:
            try:
                from torch.utils.cpp_extension import load

                key = _build_key(isa)
                tag = ("spmm" if isa == "native" else f"spmm-{isa}") + (f"-{sanitizer()}" if sanitizer() else "")
                build_dir = cache_dir() / "torch_extensions" / f"{tag}_{key}"
                with build_lock(build_dir):
                    module = load(name=f"sparsebert_{tag.replace('-', '_')}_{key}",
                                  sources=[str(s) for s in stage_sources(build_dir)], extra_cflags=cflags(isa),
                                  extra_ldflags=["-fopenmp"] + (SANITIZE_FLAGS[sanitizer()][:1] if sanitizer() else []),
                                  build_directory=str(build_dir), verbose=verbose)
            except KernelBuildLockedError:
                raise  # not a reason to fall back silently: the user can clear it
            except Exception as err:  # compiler missing, ninja missing, headers missing, ...
                _state["error" + slot] = (f"{type(err).__name__}: "
                                          f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
                module = None
        _state["module" + slot] = module
        return module


def build_error(isa: str | None = None) -> str | None:
    """Why :func:`load_kernel` returned ``None`` for ``isa`` (``None`` if it was built or not tried yet)."""
    return _state.get("error" + _slot(resolve_isa(isa)))
