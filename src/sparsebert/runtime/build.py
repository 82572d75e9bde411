"""Just-in-time build of the C++ sparse kernels (``csrc/``) with torch's extension loader.

One extension module from ``csrc/spmm.cpp`` (fp32 CSR, and the Python bindings),
``csrc/spmm_int8.cpp`` (sparse int8) and ``csrc/common.h``. The shared library is compiled once per
(every source and header, compiler flags, CPU flags, torch version) with
``-O3 -march=native`` and cached under ``$SPARSEBERT_CACHE/torch_extensions`` (default
``~/.cache/sparsebert``). When compilation is impossible (no compiler, no ninja, an unusual
platform) :func:`load_kernel` returns ``None`` with the reason in :func:`build_error`, and the
runtime falls back to torch kernels (CSR / dense).
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from pathlib import Path

_CSRC = Path(__file__).parent / "csrc"
#: compiled translation units (spmm.cpp holds the PYBIND11 module)
_SOURCES = (_CSRC / "spmm.cpp", _CSRC / "spmm_int8.cpp")
CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", "-DNDEBUG"]
_lock = threading.Lock()
_state: dict = {}


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


def _build_key() -> str:
    import torch

    h = hashlib.sha256()
    for f in source_files():
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(" ".join(CFLAGS).encode())
    h.update(" ".join(cpu_flags()).encode())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:12]


def load_kernel(verbose: bool = False):
    """The compiled extension module (``csr_linear``, ``int8_block_linear``, ``int8_quantize_tokens``,
    ``int8_isa``), or ``None`` if it cannot be built.

    Disabled with ``SPARSEBERT_NO_EXTENSION=1``.
    """
    with _lock:
        if "module" in _state:
            return _state["module"]
        module = None
        if os.environ.get("SPARSEBERT_NO_EXTENSION") == "1":
            _state["error"] = "disabled by SPARSEBERT_NO_EXTENSION=1"
        elif platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64", "aarch64"):
            _state["error"] = f"no kernel build for {platform.system()}/{platform.machine()}"
        else:
            try:
                from torch.utils.cpp_extension import load

                key = _build_key()
                build_dir = cache_dir() / "torch_extensions" / f"spmm_{key}"
                build_dir.mkdir(parents=True, exist_ok=True)
                module = load(name=f"sparsebert_spmm_{key}", sources=[str(s) for s in _SOURCES], extra_cflags=CFLAGS,
                              extra_ldflags=["-fopenmp"], build_directory=str(build_dir), verbose=verbose)
            except Exception as err:  # compiler missing, ninja missing, headers missing, ...
                _state["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
                module = None
        _state["module"] = module
        return module


def build_error() -> str | None:
    """Why :func:`load_kernel` returned ``None`` (``None`` if it was built or not tried yet)."""
    return _state.get("error")
