"""Resumable training: crash + resume == uninterrupted (bit-exact), state integrity, lock, recipe checks."""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sparsebert import FinetuneRecipe, PruneRecipe, finetune, prune
from sparsebert.checkpointing import ResumeError
from sparsebert.integrity import CorruptCheckpointError
from sparsebert.io import JsonlLogger, OutputLockedError, output_lock
from test_pipeline import write_sst2

FAST = dict(max_steps=24, batch_size=16, max_length=32, eval_every=6, log_every=1, learning_rate=1e-3, bf16=False,
            threads=1, save_every=5)


class Crash(RuntimeError):
    """The simulated crash."""


@pytest.fixture(scope="module", autouse=True)
def _cpu_only():
    """Bit-exact resume is promised on CPU (CUDA kernels need not be deterministic): pin these runs to it."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: False)
        m.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


@pytest.fixture(scope="module")
def setup(tiny_bert, tmp_path_factory):
    """Data and a fine-tuned teacher (uninterrupted: the finetune reference)."""
    root = tmp_path_factory.mktemp("resume")
    data = write_sst2(root / "glue", 64, 16)
    teacher = root / "teacher"
    finetune(FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(teacher), **FAST))
    return root, data, teacher


def ft_recipe(tiny_bert, data, out, **kw) -> FinetuneRecipe:
    return FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(out), **{**FAST, **kw})


def pr_recipe(tiny_bert, data, teacher, out, **kw) -> PruneRecipe:
    return PruneRecipe(teacher=str(teacher), student=str(tiny_bert), task="sst2", data_dir=str(data), out=str(out),
                       sparsity=0.9, pruning_events=6, **{**FAST, **kw})  # events at steps 4, 8, ..., 24


def crash_at(monkeypatch, step: int):
    """Raise :class:`Crash` when the train record of ``step`` is logged (right after that optimizer step)."""
    real = JsonlLogger.log

    def log(self, event, **fields):
        if event == "train" and fields.get("step") == step:
            raise Crash(f"simulated crash at step {step}")
        real(self, event, **fields)

    monkeypatch.setattr(JsonlLogger, "log", log)


def partial(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def state_steps(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (partial(out) / "states").glob("state-*"))


def records(out: Path) -> list[dict]:
    """Log records without their wall-clock time."""
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "wall_seconds")} for r in recs]


def assert_same_run(a: Path, b: Path):
    """Bit-identical weights (sha256 of model.safetensors), same metrics, same train/eval records."""
    ma, mb = (json.loads((d / "MANIFEST.json").read_text())["files"] for d in (a, b))
    assert ma["model.safetensors"]["sha256"] == mb["model.safetensors"]["sha256"]
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("metrics", "eval_history", "steps"):
        assert sa[key] == sb[key], key
    ra = [r for r in records(a) if r["event"] in ("train", "eval")]
    rb = [r for r in records(b) if r["event"] in ("train", "eval")]
    assert ra == rb  # no record lost or duplicated by the resume


def test_finetune_crash_and_resume_is_bit_exact(crashed, setup, tiny_bert, monkeypatch):
    _, data, teacher = setup
    out, _ = crashed
    assert not out.exists() and state_steps(out) == [10]  # newest state only; staging kept for the resume
    ft = importlib.import_module("sparsebert.stages.finetune")
    real_write = ft.write_run

    def write_then_crash(stage, *args):
        real_write(stage, *args)
        raise Crash("simulated crash while writing the outputs")

    with monkeypatch.context() as m:  # the second crash comes after the last step: resumed from the final state
        m.setattr(ft, "write_run", write_then_crash)
        with pytest.raises(Crash):
            finetune(ft_recipe(tiny_bert, data, out, save_every=7))  # save_every may change between runs
    assert state_steps(out) == [24]
    summary = finetune(ft_recipe(tiny_bert, data, out, resume=True))
    assert_same_run(teacher, out)
    assert summary["best_step"] == json.loads((teacher / "summary.json").read_text())["best_step"]
    assert [r["step"] for r in records(out) if r["event"] == "resume"] == [10, 24]
    assert not partial(out).exists() and not (out.parent / f".{out.name}.lock").exists()
    assert "states/" not in (out / "MANIFEST.json").read_text()


def test_prune_crash_and_resume_across_pruning_events(setup, tiny_bert, tmp_path, monkeypatch):
    root, data, teacher = setup
    ref = prune(pr_recipe(tiny_bert, data, teacher, tmp_path / "ref"))
    out = tmp_path / "s"
    ckpt = importlib.import_module("sparsebert.checkpointing")
    real_manifest = ckpt.write_manifest

    def crash_in_save(directory, *args, **kw):  # the state of step 15 is half-written when the run dies
        if ".tmp-00000015-" in str(directory):
            raise Crash("simulated crash while saving the state of step 15")
        return real_manifest(directory, *args, **kw)

    for crash, saved in ((13, [10]), ("save", [10]), (19, [15])):  # events at 12 and 16 are replayed on resume
        with monkeypatch.context() as m:
            if crash == "save":
                m.setattr(ckpt, "write_manifest", crash_in_save)
            else:
                crash_at(m, crash)
            with pytest.raises(Crash):
                prune(pr_recipe(tiny_bert, data, teacher, out))
        assert state_steps(out) == saved
        assert bool(list((partial(out) / "states").glob(".tmp-*"))) == (crash == "save")
    resumed = prune(pr_recipe(tiny_bert, data, teacher, out))
    assert_same_run(tmp_path / "ref", out)
    assert resumed["sparsity"]["targets"] == ref["sparsity"]["targets"]
    recs = records(out)
    assert [r["event"] for r in recs].count("schedule") == 1 and [r["event"] for r in recs].count("start") == 1


def test_killed_cli_runs_resume_bit_exact(setup, tiny_bert, tmp_path):
    """SIGKILL `sparsebert prune` at random points (seeded), re-run, repeat: same weights as one clean run."""
    root, data, teacher = setup
    rng = random.Random(7)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}

    def command(out: Path, *extra) -> list[str]:
        return [sys.executable, "-m", "sparsebert.cli", "prune", "--teacher", str(teacher), "--student",
                str(tiny_bert), "--task", "sst2", "--data-dir", str(data), "--out", str(out), "--sparsity", "0.9",
                "--pruning-events", "20", "--max-steps", "120", "--batch-size", "8", "--max-length", "32",
                "--eval-every", "40", "--learning-rate", "1e-3", "--no-bf16", "--threads", "1", "--save-every", "10", *extra]

    def start(out: Path, *extra) -> subprocess.Popen:
        log = open(tmp_path / "console.log", "ab")
        return subprocess.Popen(command(out, *extra), env=env, stdout=log, stderr=subprocess.STDOUT)

    ref = tmp_path / "ref"
    ref_proc = start(ref)  # the uninterrupted run, alongside
    out = tmp_path / "s"
    kills, newest = 0, 0
    for attempt in range(4):
        proc = start(out)
        deadline = time.monotonic() + 60
        if attempt == 0:  # anywhere: loading, training or saving; meanwhile the lock shuts out a second run
            while not (partial(out) / "log.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            with pytest.raises(OutputLockedError, match=rf"{out}.*pid {proc.pid}"):
                prune(pr_recipe(tiny_bert, data, teacher, out))
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # after a newer state appeared, so that every kill loses some work and some is kept
            while proc.poll() is None and time.monotonic() < deadline and max(state_steps(out), default=0) <= newest:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        newest = max(state_steps(out), default=0)
        print(f"attempt {attempt}: exit {proc.returncode}, newest state at step {newest}")  # shown with -s
    assert kills >= 3 and not out.exists() and newest > 0
    assert start(out, "--resume").wait(timeout=120) == 0, (tmp_path / "console.log").read_text()
    assert ref_proc.wait(timeout=120) == 0, (tmp_path / "console.log").read_text()
    assert_same_run(ref, out)
    assert sum(r["event"] == "resume" for r in records(out)) >= 2


@pytest.fixture
def crashed(setup, tiny_bert, tmp_path, monkeypatch):
    """A finetune run into tmp_path/c killed by an exception at step 13 (state at step 10)."""
    _, data, _ = setup
    out = tmp_path / "c"
    with monkeypatch.context() as m:
        crash_at(m, 13)
        with pytest.raises(Crash):
            finetune(ft_recipe(tiny_bert, data, out))
    return out, partial(out) / "states" / "state-00000010"


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corrupt_state_fails_naming_the_file(crashed, setup, tiny_bert, damage):
    out, state = crashed
    _, data, _ = setup
    name = {"truncate": "model.safetensors", "flip": "optimizer.safetensors", "delete": "rng.safetensors",
            "manifest": "MANIFEST.json"}[damage]
    f = state / name
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:-7])
    elif damage == "flip":
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        f.write_bytes(bytes(raw))
    else:
        f.unlink()
    with pytest.raises(CorruptCheckpointError, match=rf"{state / name}.*--overwrite"):
        finetune(ft_recipe(tiny_bert, data, out))
    assert state.is_dir() and not out.exists()  # nothing loaded, nothing discarded
    finetune(ft_recipe(tiny_bert, data, out, overwrite=True))  # --overwrite starts over
    assert (out / "MANIFEST.json").is_file() and not partial(out).exists()


def test_corrupt_state_cli_error_is_one_line(crashed, setup, tiny_bert):
    from typer.testing import CliRunner

    from sparsebert.cli import app

    out, state = crashed
    _, data, _ = setup
    (state / "state.json").write_text("{}")
    r = CliRunner().invoke(app, ["finetune", "--model", str(tiny_bert), "--task", "sst2", "--data-dir", str(data),
                                 "--out", str(out), "--max-steps", "24", "--no-bf16"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert str(state / "state.json") in r.output


def test_changed_recipe_refuses_partial_run(crashed, setup, tiny_bert):
    out, state = crashed
    _, data, _ = setup
    with pytest.raises(ResumeError, match=r"learning_rate: 0\.001 -> 0\.002.*--overwrite"):
        finetune(ft_recipe(tiny_bert, data, out, learning_rate=2e-3))
    assert state.is_dir()
    with pytest.raises(ValueError, match="exclude each other"):
        ft_recipe(tiny_bert, data, out, resume=True, overwrite=True)
    finetune(ft_recipe(tiny_bert, data, out, learning_rate=2e-3, overwrite=True))
    assert json.loads((out / "summary.json").read_text())["recipe"]["learning_rate"] == 2e-3


def test_resume_flag_needs_a_partial_run(setup, tiny_bert, tmp_path):
    _, data, _ = setup
    with pytest.raises(ResumeError, match="nothing to resume"):
        finetune(ft_recipe(tiny_bert, data, tmp_path / "n", resume=True))
    assert list(tmp_path.iterdir()) == []


def test_lock_refuses_second_run_and_stale_staging_is_cleaned(setup, tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from sparsebert.cli import app

    _, data, _ = setup
    out = tmp_path / "l"
    with output_lock(out) as lock:
        assert lock == tmp_path / ".l.lock" and lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLockedError, match=rf"output {out} is in use by another run \(pid {os.getpid()}"):
            finetune(ft_recipe(tiny_bert, data, out))
        r = CliRunner().invoke(app, ["finetune", "--model", str(tiny_bert), "--task", "sst2", "--data-dir", str(data),
                                     "--out", str(out), "--max-steps", "2", "--no-bf16"])
        assert r.exit_code == 2 and "in use by another run" in r.output and len(r.output.strip().splitlines()) == 1
    stale = [tmp_path / ".l.partial-k1x2", tmp_path / ".l.old-123-456"]
    for d in stale:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    (tmp_path / ".other.partial-zz").mkdir()  # another output's: kept
    finetune(ft_recipe(tiny_bert, data, out, max_steps=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-zz", "l"]


def test_sparsifier_state_roundtrip():
    from torch import nn

    from sparsebert.pruning import CubicSchedule, GMPSparsifier

    torch.manual_seed(0)
    lin = {"a": nn.Linear(8, 8), "b": nn.Linear(8, 4)}
    sp = GMPSparsifier(lin, CubicSchedule(0.5, end_step=4, num_events=2))
    sp.step(2)
    state = sp.state_dict()
    other = GMPSparsifier({k: nn.Linear(v.in_features, v.out_features) for k, v in lin.items()},
                          CubicSchedule(0.5, end_step=4, num_events=2))
    other.load_state_dict(state)
    assert other.current_sparsity == sp.current_sparsity
    assert all(torch.equal(other.masks[k], sp.masks[k]) for k in lin)
    assert all(bool((other.targets[k].weight[~sp.masks[k]] == 0).all()) for k in lin)
    with pytest.raises(ValueError, match="differ"):
        other.load_state_dict({"masks": {"a": state["masks"]["a"]}, "current_sparsity": 0.5})
