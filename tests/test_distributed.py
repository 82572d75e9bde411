"""Data-parallel training (sparsebert.distributed): 2 CPU processes (gloo) under `accelerate launch` against 1 process.

The two-process runs are started as ``python -m accelerate.commands.launch --config_file <MULTI_GPU, 2
processes> tests/distributed_worker.py prune ...`` with CUDA hidden: ``accelerate launch --multi_gpu`` is
torchrun underneath, and without a GPU sparsebert's processes form a gloo group on the CPU (``accelerate
launch --cpu`` starts only one process unless it is given an MPI hostfile). Three launches of 2 processes,
~45 s on 2 busy cores; deselect with ``-m "not distributed"``.

Tolerance: the two-process gradient is 0.5·g_0 + 0.5·g_1 (3-example batches: 2/3 and 1/3) where one
process sums the 16 examples in one kernel, and each share is padded to its own longest example: the
same sums in another float order. Measured over these 30 steps (AdamW, lr 1e-3, full distillation with
normalised terms, PLATON scores, 80 % sparsity): logged loss terms within 2e-7 of max(1, |value|),
weights within 1.2e-7, masks identical. The test allows 1e-5 (of max(1, |value|) for the loss terms,
absolute for the weights): ~50x the rounding seen, and ~100x below what a real error moves (a missing or
wrong reduction, a lost example or a different mask changes weights by about the learning rate, 1e-3, per
step). Masks must be identical, and every rank must hold bit-identical weights and masks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from sparsebert import FinetuneRecipe, PruneRecipe, finetune, prune
from sparsebert.distributed import Context, context
from sparsebert.errors import InputError, MissingDependencyError
from test_pipeline import write_sst2
from tiny import make_tiny_model

TESTS = Path(__file__).parent
RTOL = 1e-5

# 51 examples, batch 16: every epoch ends with a 3-example batch, split 2 / 1 between the ranks.
PRUNE = dict(task="sst2", sparsity=0.8, pruning_events=6, criterion="taylor", max_steps=30, batch_size=16,
             max_length=32, eval_every=10, log_every=1, save_every=10, learning_rate=1e-3, bf16=False, threads=1,
             attention_weight=1.0, hidden_weight=1.0, normalize_terms=True, prediction_only_from=0.5)

ACCELERATE_CONFIG = dict(compute_environment="LOCAL_MACHINE", distributed_type="MULTI_GPU", num_machines=1,
                         num_processes=2, machine_rank=0, main_process_port=0, mixed_precision="no",
                         dynamo_backend="no", gpu_ids="all", use_cpu=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Dropout-free tiny BERT (dropout draws differ between 1 and 2 processes), data, teacher, recipe file, and
    the one-process reference run."""
    pytest.importorskip("accelerate")
    root = tmp_path_factory.mktemp("dist")
    model = make_tiny_model(root / "bert")
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(cfg))
    data = write_sst2(root / "glue", 51, 16)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.cuda, "is_available", lambda: False)
        teacher = finetune(FinetuneRecipe(
            model=str(model), task="sst2", data_dir=str(data), out=str(root / "teacher"), max_steps=40, batch_size=16,
            max_length=32, learning_rate=3e-3, eval_every=10, bf16=False, threads=1, save_every=None))
        assert teacher["metrics"]["dev"]["accuracy"] > 0.6  # a teacher with something to distil
        recipe = dict(PRUNE, teacher=str(root / "teacher"), student=str(model), data_dir=str(data))
        prune(PruneRecipe(**recipe, out=str(root / "ref")))
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (root / "accelerate.yaml").write_text(yaml.safe_dump(ACCELERATE_CONFIG))
    return root


def launch(root: Path, out: Path, **env) -> subprocess.CompletedProcess:
    """`accelerate launch` of 2 CPU processes running `sparsebert prune --recipe ... --out out`."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(root / "accelerate.yaml"),
           str(TESTS / "distributed_worker.py"), "prune", "--recipe", str(root / "recipe.yaml"), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def train_records(out: Path) -> list[dict]:
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in recs if r["event"] == "train"]


@pytest.mark.distributed
def test_two_processes_match_one_and_resume(setup, tmp_path):
    root, out, dump = setup, tmp_path / "sparse", tmp_path / "dump"
    dump.mkdir()
    clean = launch(root, tmp_path / "clean")  # uninterrupted, for the bit-exact resume
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]

    died = launch(root, out, SPARSEBERT_TEST_DIE_AT="13")  # rank 1 dies after step 13: the last state is step 10
    assert died.returncode != 0, died.stdout + died.stderr
    assert not out.exists()
    assert [p.name for p in (tmp_path / ".sparse.partial" / "states").glob("state-*")] == ["state-00000010"]

    resumed = launch(root, out, SPARSEBERT_TEST_DUMP=str(dump))  # the same command continues the partial run
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["state"]) for r in log if r["event"] == "resume"] == [(10, "state-00000010")]

    # resumed == uninterrupted, bit for bit (same number of processes and threads, CPU)
    weights_sha = [json.loads((d / "MANIFEST.json").read_text())["files"]["model.safetensors"]["sha256"]
                   for d in (out, tmp_path / "clean")]
    assert weights_sha[0] == weights_sha[1]
    strip = lambda recs: [{k: v for k, v in r.items() if k != "time"} for r in recs]  # noqa: E731
    assert strip(train_records(out)) == strip(train_records(tmp_path / "clean"))

    # per-step log against one process: the same steps, learning rates, schedule and token counts; the
    # same losses up to rounding
    ref, got = train_records(root / "ref"), train_records(out)
    assert [r["step"] for r in got] == list(range(1, 31))
    worst = 0.0
    for a, b in zip(ref, got):
        assert a.keys() == b.keys()
        for k in a:
            if k in ("time",) or k.startswith("share/"):  # shares: the mean of the per-rank shares
                continue
            if isinstance(a[k], float):
                worst = max(worst, abs(a[k] - b[k]) / max(1.0, abs(a[k])))
            else:
                assert a[k] == b[k], (a["step"], k)
    print(f"max relative difference of the logged loss terms, 1 vs 2 processes: {worst:.3g}")  # shown with -s
    assert worst <= RTOL
    evals = [[{k: v for k, v in json.loads(line).items() if k != "time"} for line in (d / "log.jsonl").read_text().splitlines()
              if '"event": "eval"' in line] for d in (root / "ref", out)]
    assert len(evals[0]) == 3 and evals[0] == evals[1]  # evaluated on every rank, logged once

    # every rank: bit-identical weights and masks; the output is rank 0's; masks and weights as one process's
    ranks = [load_file(dump / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    saved, one = load_file(out / "model.safetensors"), load_file(root / "ref" / "model.safetensors")
    trained = {k[len("model."):]: v for k, v in ranks[0].items() if k.startswith("model.")}
    assert all(torch.equal(saved[k], trained[k]) for k in saved)
    masks = {k[len("mask."):]: v.bool() for k, v in ranks[0].items() if k.startswith("mask.")}
    assert len(masks) == 12
    for name, mask in masks.items():
        assert torch.equal(one[name] != 0, mask), name  # pruned entries of the one-process run are its zeros
        assert abs(float(mask.float().mean()) - 0.2) < 1e-3
    diff = max(float((saved[k] - one[k]).abs().max()) for k in one)
    print(f"max weight difference, 1 vs 2 processes: {diff:.3g}")
    assert diff <= RTOL


def test_shares_weights_and_errors(monkeypatch):
    """Every rank's share of a global batch, its weight, the batch-size check, the missing-accelerate error."""
    chunk = list(range(100, 116))
    assert Context().share(chunk) == (chunk, 1.0)
    assert [Context(r, 2).share(chunk) for r in (0, 1)] == [(chunk[0::2], 0.5), (chunk[1::2], 0.5)]
    assert [Context(r, 2).share([7, 8, 9]) for r in (0, 1)] == [([7, 9], 2 / 3), ([8], 1 / 3)]
    assert Context(1, 2).share([7]) == ([7], 0.0)  # empty share: a placeholder example with weight 0
    Context(0, 4).check_global_batch(16)
    with pytest.raises(InputError, match=r"global batch size 16 does not divide by the 3 processes"):
        Context(0, 3).check_global_batch(16)
    assert Context().reduce_step([], 1.0, 0.5, {"a": 1.0}, 7) == (0.5, {"a": 1.0}, 7)  # one process: untouched

    state = torch.get_rng_state()
    draws = []
    for rank in (1, 1, 0):
        Context(rank, 2).seed_step(42, 5)
        draws.append(torch.rand(4))
    torch.set_rng_state(state)
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])

    assert context() is context() and not context().distributed  # no launch here
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "accelerate", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"one of 2 .*sparsebert\[ecosystem\]"):
        context.__wrapped__()
