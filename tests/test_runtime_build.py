"""The kernel build's lock (sparsebert.runtime.build): a stale torch lock left by a killed build is
removed, a build in progress elsewhere is waited for, within a timeout. No compiler is run: torch's
build and import steps are replaced, its FileBaton logic (where the stale lock hung) is real."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch.utils.cpp_extension as cpp_extension
from torch.utils.file_baton import FileBaton

import sparsebert.runtime.build as build


@pytest.fixture
def fake_compile(tmp_path, monkeypatch):
    """A fresh build state with the cache under tmp_path, and torch's compile/import replaced: a
    FileBaton wait (what hung forever on a stale lock) fails the test instead of hanging. Yields the
    build directory load_kernel will use."""
    monkeypatch.setenv("SPARSEBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPARSEBERT_NO_EXTENSION", raising=False)
    monkeypatch.setattr(build, "_state", {})
    sentinel = object()
    built = []
    monkeypatch.setattr(cpp_extension, "_write_ninja_file_and_build_library", lambda **kw: built.append(kw))
    monkeypatch.setattr(cpp_extension, "_import_module_from_library", lambda *a, **kw: sentinel)

    def no_wait(self):
        raise AssertionError(f"torch would wait forever on {self.lock_file_path}")

    monkeypatch.setattr(FileBaton, "wait", no_wait)
    build_dir = build.cache_dir() / "torch_extensions" / f"spmm_{build._build_key()}"
    return build_dir, sentinel


def test_stale_torch_lock_is_removed_with_a_warning(fake_compile):
    build_dir, sentinel = fake_compile
    build_dir.mkdir(parents=True)
    (build_dir / "lock").touch()  # left by a build that was killed
    with pytest.warns(UserWarning, match=f"stale kernel build lock {build_dir / 'lock'}"):
        assert build.load_kernel() is sentinel
    assert build.build_error() is None
    assert not (build_dir / "lock").exists()


def test_build_without_stale_lock_does_not_warn(fake_compile, recwarn):
    build_dir, sentinel = fake_compile
    assert build.load_kernel() is sentinel
    assert not [w for w in recwarn if "lock" in str(w.message)]


def test_held_build_lock_times_out_with_a_clear_error(fake_compile, monkeypatch):
    from filelock import FileLock

    build_dir, _ = fake_compile
    build_dir.mkdir(parents=True)
    monkeypatch.setattr(build, "BUILD_LOCK_TIMEOUT_S", 0.2)
    with FileLock(build.build_lock_path(build_dir)):  # another process is building (or hung)
        with pytest.warns(UserWarning, match="waiting"), pytest.raises(build.KernelBuildLockedError) as err:
            build.load_kernel()
    msg = str(err.value)
    assert str(build.build_lock_path(build_dir)) in msg and f"remove {build_dir}" in msg
    assert "module" not in build._state  # not cached as a failure: the next call tries again


def test_waits_for_a_build_in_progress(fake_compile):
    from filelock import FileLock

    build_dir, sentinel = fake_compile
    build_dir.mkdir(parents=True)
    other = FileLock(build.build_lock_path(build_dir), thread_local=False)  # released by the thread below
    other.acquire()
    (build_dir / "lock").touch()  # the other build's torch lock, removed when it finishes

    def finish():
        time.sleep(0.3)
        (build_dir / "lock").unlink()
        other.release()

    t = threading.Thread(target=finish)
    t.start()
    try:
        with pytest.warns(UserWarning, match="waiting") as record:
            assert build.load_kernel() is sentinel
    finally:
        t.join()
    assert not [w for w in record if "stale" in str(w.message)]


def test_compiles_copies_of_the_sources_inside_the_build_directory(fake_compile, monkeypatch):
    """build.ninja names the source paths: compiling copies kept in the build directory lets two
    checkouts of the same sources share one library instead of rebuilding each other's."""
    build_dir, sentinel = fake_compile
    seen = []
    monkeypatch.setattr(cpp_extension, "_write_ninja_file_and_build_library", lambda **kw: seen.append(kw["sources"]))
    assert build.load_kernel() is sentinel
    assert seen == [[str(build_dir / "src" / f) for f in ("spmm.cpp", "spmm_int8.cpp", "spmm_int8_4x1.cpp", "engine.cpp")]]
    for f in build.source_files():  # headers too, for the #include "common.h"
        assert (build_dir / "src" / f.name).read_bytes() == f.read_bytes()


def test_staged_sources_are_rewritten_only_when_they_differ(tmp_path):
    """ninja rebuilds on a newer modification time: an identical copy must be left untouched."""
    first = build.stage_sources(tmp_path)
    spmm = tmp_path / "src" / "spmm.cpp"
    os.utime(spmm, (1_000_000, 1_000_000))
    assert build.stage_sources(tmp_path) == first and spmm.stat().st_mtime == 1_000_000
    spmm.write_text("// edited by hand\n")
    build.stage_sources(tmp_path)
    assert spmm.read_bytes() == (build._CSRC / "spmm.cpp").read_bytes()
    assert not list((tmp_path / "src").glob(".*.tmp"))
