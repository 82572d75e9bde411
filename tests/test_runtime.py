"""The sparse inference runtime: kernels, per-matrix choice by measurement, cache, whole models."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from sparsebert.runtime import CSRKernelLinear, InferenceOnlyError, Int8BlockLinear, TorchCSRLinear, convert, target_modules
from sparsebert.runtime.build import load_kernel
from sparsebert.runtime.kernels import candidates
from sparsebert.targets import prunable_linears

NO_EXT = os.environ.get("SPARSEBERT_NO_EXTENSION") == "1"
needs_ext = pytest.mark.skipif(NO_EXT, reason="SPARSEBERT_NO_EXTENSION=1")


def sparse_linear(n_in: int, n_out: int, density: float, bias: bool = True, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    lin = nn.Linear(n_in, n_out, bias=bias)
    with torch.no_grad():
        lin.weight.mul_((torch.rand_like(lin.weight) < density).float())
    return lin.eval()


@needs_ext
def test_extension_builds():
    assert load_kernel() is not None


@needs_ext
@pytest.mark.parametrize("tile", [16, 32, 64, 128])
@pytest.mark.parametrize("tokens", [1, 5, 16, 77, 130])
def test_sbk_kernel_matches_dense(tile, tokens):
    lin = sparse_linear(96, 80, 0.1, seed=tokens)
    mod = CSRKernelLinear(lin.weight, lin.bias, tile=tile, rows=16)
    x = torch.randn(tokens, 96)
    with torch.no_grad():
        torch.testing.assert_close(mod(x), lin(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(mod.dense_weight(), lin.weight.detach() + 0.0)


@needs_ext
def test_sbk_kernel_edge_cases():
    # no bias, empty rows, all-zero matrix, 3-D input, non-contiguous input, > 32767 columns (uint16 indices)
    lin = sparse_linear(40, 24, 0.05, bias=False)
    with torch.no_grad():
        lin.weight[3:9] = 0
    x = torch.randn(3, 7, 80)[..., ::2]
    with torch.no_grad():
        torch.testing.assert_close(CSRKernelLinear(lin.weight, None, tile=32)(x), lin(x), atol=1e-5, rtol=1e-5)
        zero = nn.Linear(8, 4)
        zero.weight.zero_()
        torch.testing.assert_close(CSRKernelLinear(zero.weight, zero.bias)(torch.randn(5, 8)), zero(torch.randn(5, 8)))
        wide = sparse_linear(40_000, 3, 0.001, seed=1)
        xw = torch.randn(17, 40_000)
        torch.testing.assert_close(CSRKernelLinear(wide.weight, wide.bias, tile=16)(xw), wide(xw), atol=1e-4, rtol=1e-4)


def test_torch_csr_module_matches_dense():
    lin = sparse_linear(64, 48, 0.1)
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        torch.testing.assert_close(TorchCSRLinear(lin.weight, lin.bias)(x), lin(x), atol=1e-5, rtol=1e-5)


@needs_ext
def test_runtime_modules_are_inference_only():
    lin = sparse_linear(16, 8, 0.5)
    mod = CSRKernelLinear(lin.weight, lin.bias)
    with pytest.raises(InferenceOnlyError, match="no_grad"):
        mod(torch.randn(2, 16, requires_grad=True))
    with pytest.raises(ValueError, match="features"):
        with torch.no_grad():
            mod(torch.randn(2, 15))
    import copy

    clone = copy.deepcopy(mod)  # converted models can be copied
    x = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.equal(clone(x), mod(x))


def fixed_timer(times: dict[str, float]):
    """A timer that reports given seconds per kernel family (never measures)."""
    seen = []

    def timer(modules, x):
        seen.append(sorted(modules))
        return {label: times.get(label.split("[")[0], 1.0) for label in modules}

    timer.seen = seen
    return timer


def tiny_model(arch: str, tmp_path, sparsity: float = 0.9):
    from transformers import AutoModelForSequenceClassification

    from tiny import make_tiny_model

    from sparsebert.bench.synthetic import magnitude_prune_

    model = AutoModelForSequenceClassification.from_pretrained(make_tiny_model(tmp_path / arch, arch)).eval()
    magnitude_prune_(model, sparsity)  # exact count per matrix, like the pruning pipeline
    return model


def test_dense_is_kept_when_sparse_is_slower(tmp_path):
    model = tiny_model("bert", tmp_path)
    before = dict(prunable_linears(model))
    timer = fixed_timer({"dense": 1e-4, "sbk": 5e-4, "torch-csr": 9e-4})
    rep = convert(model, tokens=32, cache=False, timer=timer)
    assert rep.counts() == {"dense": 12}
    after = target_modules(model)
    assert all(after[k] is before[k] for k in before)  # the original nn.Linear stays
    assert all(type(m) is nn.Linear for m in after.values())
    assert all("dense" in labels for labels in timer.seen)


@needs_ext
def test_fastest_sparse_kernel_is_chosen_and_min_speedup_respected(tmp_path):
    model = tiny_model("bert", tmp_path)
    rep = convert(model, tokens=32, cache=False, timer=fixed_timer({"dense": 1e-3, "sbk": 2e-4, "torch-csr": 5e-4}))
    assert rep.counts() == {"sbk": 12}
    assert all(isinstance(m, CSRKernelLinear) for m in target_modules(model).values())
    model2 = tiny_model("bert", tmp_path / "b")
    rep2 = convert(model2, tokens=32, cache=False, min_speedup=10.0,
                   timer=fixed_timer({"dense": 1e-3, "sbk": 2e-4, "torch-csr": 5e-4}))
    assert rep2.counts() == {"dense": 12}  # 5x faster is not the 10x asked for


def cache_entries(path) -> dict:
    """The entries of the one machine in a kernel-choice cache file."""
    machines = json.loads(path.read_text())["machines"]
    assert len(machines) == 1
    return next(iter(machines.values()))


def test_choices_are_cached_and_reused(tmp_path):
    cache = tmp_path / "choices.json"
    model = tiny_model("bert", tmp_path)
    rep = convert(model, tokens=16, cache_path=cache, timer=fixed_timer({"dense": 1e-3, "torch-csr": 1e-4}),
                  families=("torch-csr",))
    assert rep.counts() == {"torch-csr": 12}
    # 12 matrices, 3 distinct signatures (hidden x hidden, hidden -> ffn, ffn -> hidden): measured once each
    assert sum(not m.cached for m in rep.matrices) == len(cache_entries(cache)) == 3
    timer = fixed_timer({"dense": 1e-5, "torch-csr": 1.0})  # would choose dense if it measured
    rep2 = convert(tiny_model("bert", tmp_path / "b"), tokens=16, cache_path=cache, timer=timer, families=("torch-csr",))
    assert rep2.counts() == {"torch-csr": 12} and all(m.cached for m in rep2.matrices) and timer.seen == []
    # another token count is another signature: measured again
    rep3 = convert(tiny_model("bert", tmp_path / "c"), tokens=64, cache_path=cache, timer=timer, families=("torch-csr",))
    assert rep3.counts() == {"dense": 12}
    # the report tells the cache file's choices from the ones measured (and shared) in this conversion
    assert (rep.from_cache, rep.timed, rep2.from_cache, rep2.timed, rep3.from_cache, rep3.timed) == (0, 3, 12, 0, 0, 3)
    assert rep2.to_dict()["cached"] == rep2.to_dict()["from_cache"] == 12 and rep.to_dict()["cached"] == 9
    # remeasure: the cached choices are ignored, every signature timed again and the new choice cached
    rep4 = convert(tiny_model("bert", tmp_path / "d"), tokens=16, cache_path=cache, timer=timer, families=("torch-csr",),
                   remeasure=True)
    assert rep4.counts() == {"dense": 12} and len(timer.seen) == 6 and (rep4.from_cache, rep4.timed) == (0, 3)
    assert rep4.remeasured and {e["kernel"] for e in cache_entries(cache).values()} == {"dense"}


def test_corrupt_cache_is_ignored(tmp_path):
    cache = tmp_path / "choices.json"
    cache.write_text("{not json")
    rep = convert(tiny_model("bert", tmp_path), tokens=8, cache_path=cache,
                  timer=fixed_timer({"dense": 1e-3, "torch-csr": 1e-4}), families=("torch-csr",))
    assert rep.counts() == {"torch-csr": 12}
    assert cache_entries(cache)


def test_second_load_reuses_cached_choices_without_timing(tmp_path, monkeypatch):
    """``sparsebert.load(path, runtime=True)`` times each distinct matrix once per machine; a second
    load of the same model (fresh objects, the cache re-read from disk) times nothing and gets the
    same kernels; int8 is a separate cache key."""
    from sparsebert import load
    from sparsebert.export import export_model

    monkeypatch.setenv("SPARSEBERT_CACHE", str(tmp_path / "cache"))  # the default cache location
    export_model(tiny_model("bert", tmp_path), tmp_path / "exp")
    from tiny import counting_time_candidates

    calls = counting_time_candidates(monkeypatch, {"dense": 1e-3, "sbk": 1e-4, "torch-csr": 2e-4, "sbk-int8": 5e-5})
    first = load(tmp_path / "exp", runtime=True, tokens=32)
    assert len(calls) == 3  # hidden x hidden, hidden -> ffn, ffn -> hidden
    assert not any("sbk-int8" in label for labels in calls for label in labels)  # int8 only when asked
    assert (tmp_path / "cache" / "kernel_choices.json").is_file()
    second = load(tmp_path / "exp", runtime=True, tokens=32)
    assert len(calls) == 3  # nothing timed again
    fastest = TorchCSRLinear if NO_EXT else CSRKernelLinear  # sbk needs the extension
    for m in (first, second):
        assert all(type(x) is fastest for x in target_modules(m).values())
    # int8 allowed: another signature, so measured once, then reused
    int8_first = load(tmp_path / "exp", runtime=True, tokens=32, int8=True)
    assert len(calls) == 6
    assert all(any(lb.startswith("sbk-int8") for lb in labels) for labels in calls[3:]) == (not NO_EXT)
    int8_second = load(tmp_path / "exp", runtime=True, tokens=32, int8=True)
    assert len(calls) == 6
    fastest = TorchCSRLinear if NO_EXT else Int8BlockLinear
    for m in (int8_first, int8_second):
        assert all(type(x) is fastest for x in target_modules(m).values())
    keys = list(cache_entries(tmp_path / "cache" / "kernel_choices.json"))
    assert sum("prec=int8" in k for k in keys) == 3 and sum("prec=fp32" in k for k in keys) == 3


def test_cache_keeps_other_machines_and_concurrent_entries(tmp_path):
    from sparsebert.runtime.conversion import CACHE_VERSION, _load_cache, _save_cache

    path = tmp_path / "choices.json"
    _save_cache(path, "machine-a", {"sig1": {"kernel": "dense", "times_ms": {"dense": 1.0}}})
    _save_cache(path, "machine-b", {"sig1": {"kernel": "sbk", "times_ms": {"dense": 1.0, "sbk": 0.5}}})
    # a second process of machine a wrote sig2 after the first had read the file: both kept
    _save_cache(path, "machine-a", {"sig2": {"kernel": "dense", "times_ms": {"dense": 2.0}}})
    assert set(_load_cache(path, "machine-a")) == {"sig1", "sig2"}
    assert _load_cache(path, "machine-b")["sig1"]["kernel"] == "sbk"
    assert json.loads(path.read_text())["version"] == CACHE_VERSION
    for i in range(20):  # bounded: the most recently written machines
        _save_cache(path, f"m{i}", {"s": {"kernel": "dense", "times_ms": {"dense": 1.0}}})
    assert len(json.loads(path.read_text())["machines"]) == 8 and _load_cache(path, "m19")
    path.write_text(json.dumps({"version": 1, "machine": "machine-a", "entries": {"x": {}}}))  # old layout
    assert _load_cache(path, "machine-a") == {}


def test_unavailable_extension_is_skipped_with_a_reason(monkeypatch):
    import sparsebert.runtime.build as build

    monkeypatch.setattr(build, "load_kernel", lambda verbose=False: None)
    monkeypatch.setattr(build, "build_error", lambda: "no compiler")
    cands, skipped = candidates(sparse_linear(16, 8, 0.1), tokens=4)
    assert "sbk" not in {c.family for c in cands} and "no compiler" in skipped["sbk"]
    assert {"dense", "torch-csr"} <= {c.family for c in cands}


def test_unknown_kernel_family():
    with pytest.raises(ValueError, match="unknown kernel"):
        candidates(sparse_linear(16, 8, 0.1), tokens=4, families=("cusparselt",))


def padded_batch(model, batch: int = 3, seq: int = 21):
    from sparsebert.export.onnx import dummy_inputs

    x = dummy_inputs(model, batch=batch, seq=seq, seed=7)
    assert (x["attention_mask"] == 0).any()  # real padding in the batch
    return x


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "mpnet", "electra"])
def test_runtime_logits_match_dense_with_padding(arch, tmp_path):
    model = tiny_model(arch, tmp_path)
    x = padded_batch(model)
    with torch.no_grad():
        ref = model(**x).logits
    sparse = tiny_model(arch, tmp_path / "copy")  # same seed -> same weights
    # every sparse module measured for real (small rounds), then forced: each family once
    for families in (None, ("torch-csr",)):
        m = tiny_model(arch, tmp_path / f"m{len(families or ())}")
        rep = convert(m, tokens=x["input_ids"].numel(), cache=False, rounds=2, families=families)
        assert len(rep.matrices) == 12
        with torch.no_grad():
            torch.testing.assert_close(m(**x).logits, ref, atol=1e-4, rtol=0)
    forced = fixed_timer({"dense": 1.0, "sbk": 1e-6, "torch-csr": 1e-3})
    rep = convert(sparse, tokens=8, cache=False, timer=forced)
    expected = "dense" if NO_EXT else "sbk"
    assert set(rep.counts()) == {expected}
    with torch.no_grad():
        torch.testing.assert_close(sparse(**x).logits, ref, atol=1e-4, rtol=0)


@needs_ext
def test_runtime_on_loaded_sparse_checkpoint(tmp_path):
    from sparsebert.export import export_model, load

    model = tiny_model("bert", tmp_path)
    export_model(model, tmp_path / "exp")
    x = padded_batch(model, batch=4, seq=33)
    fast = load(tmp_path / "exp", runtime=True, tokens=4 * 33, cache=False,
                timer=fixed_timer({"dense": 1.0, "sbk": 1e-6}))
    assert all(isinstance(m, CSRKernelLinear) for m in target_modules(fast).values())
    with torch.no_grad():
        torch.testing.assert_close(fast(**x).logits, model(**x).logits, atol=1e-4, rtol=0)


def test_mkl_module_matches_dense():
    from sparsebert.runtime.linear import MKLLinear, mkl_available

    if not mkl_available():
        pytest.skip("sparse_dot_mkl / MKL runtime not installed (optional: pip install 'sparsebert[mkl]')")
    lin = sparse_linear(64, 48, 0.1)
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        torch.testing.assert_close(MKLLinear(lin.weight, lin.bias)(x), lin(x), atol=1e-5, rtol=1e-5)
    cands, _ = candidates(lin, tokens=10, families=("mkl-csr",))
    assert "mkl-csr" in {c.family for c in cands}


@needs_ext
def test_sbk_non_temporal_stores_match_dense():
    lin = sparse_linear(64, 48, 0.1)  # 48 outputs: 16-aligned rows, streamed
    lin2 = sparse_linear(64, 40, 0.1)  # 40 outputs: unaligned rows, falls back to normal stores
    x = torch.randn(3, 37, 64)
    with torch.no_grad():
        for ln in (lin, lin2):
            for tile in (16, 128):
                mod = CSRKernelLinear(ln.weight, ln.bias, tile=tile, rows=0, nt=1)
                assert mod.label.endswith("nt=1,rows=0,tile=%d]" % tile)
                torch.testing.assert_close(mod(x), ln(x), atol=1e-5, rtol=1e-5)


@needs_ext
def test_sbk_recycled_output_buffers_are_fully_overwritten():
    lin = sparse_linear(32, 1040, 0.2)  # 1040 x 300 x 4 B > 1 MB: pooled output, 1040 = 65 x 16
    mod = CSRKernelLinear(lin.weight, lin.bias, tile=32, rows=64)
    with torch.no_grad():
        for seed in range(4):
            x = torch.randn(300, 32, generator=torch.Generator().manual_seed(seed))
            y = mod(x)
            torch.testing.assert_close(y, lin(x), atol=1e-5, rtol=1e-5)
            del y  # back to the pool, handed out again on the next call
        kept = [mod(torch.ones(300, 32)) for _ in range(6)]  # more live outputs than the pool keeps
        assert all(torch.equal(k, kept[0]) for k in kept)


def test_runtime_import_loads_no_training_module():
    """Inference (``sparsebert.runtime``, ``sparsebert.load``) imports neither the training stack nor data augmentation."""
    import subprocess
    import sys

    training = ("sparsebert.training", "sparsebert.stages.prune", "sparsebert.stages.finetune", "sparsebert.checkpointing",
                "sparsebert.data.augment", "sparsebert.distill", "sparsebert.recipe")
    for stmt in ("import sparsebert.runtime", "from sparsebert import load, AutoSparseModel"):
        r = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        loaded = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
        assert not {m for m in loaded if m.startswith(training)}, (stmt, sorted(loaded))


def test_time_calls_is_round_robin_within_budget():
    from sparsebert.timing import time_calls

    now, order = [0.0], []

    def clock():
        return now[0]

    def call(label, cost):
        def fn():
            order.append(label)
            now[0] += cost
        return fn

    times = time_calls({"a": call("a", 1.0), "b": call("b", 2.0)}, warmup=1, min_iters=2, max_iters=10, budget_s=7.0,
                       clock=clock)
    # warm-up a, b; then rounds of a, b (3 s each) until 7 s have passed: 3 rounds
    assert order == ["a", "b"] * 4 and times == {"a": [1.0] * 3, "b": [2.0] * 3}
    assert time_calls({"a": call("a", 1.0)}, warmup=0, min_iters=4, max_iters=5, budget_s=0.0, clock=clock) == {"a": [1.0] * 4}
    with pytest.raises(ValueError, match="min_iters"):
        time_calls({"a": call("a", 1.0)}, warmup=0, min_iters=3, max_iters=2, budget_s=1.0)
