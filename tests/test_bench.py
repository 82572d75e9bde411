"""``sparsebert bench``: every path runs on a tiny model, ratios and outputs are written."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import sparsebert.bench.run as bench_run
from sparsebert.bench.render import markdown
from sparsebert.bench.run import PathResult, _ratios
from sparsebert.bench.synthetic import magnitude_prune_, synthetic_model
from sparsebert.cli import app
from sparsebert.errors import InputError
from sparsebert.pruning.masks import is_block_structured, is_n_m
from sparsebert.targets import prunable_linears
from sparsebert.timing import time_calls

runner = CliRunner()


@pytest.fixture(autouse=True)
def _own_kernel_cache(tmp_path, monkeypatch):
    """bench reads and writes the kernel-choice cache: every test gets its own file (never the user's
    ~/.cache, and never another test's choices)."""
    monkeypatch.setenv("SPARSEBERT_KERNEL_CACHE", str(tmp_path / "kernel_choices.json"))


def test_bench_cli_writes_json_and_markdown(tiny_bert, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    args = ["bench", str(tmp_path / "run"), "--batch-size", "1", "--batch-size", "3", "--max-length", "12",
            "--warmup", "0", "--min-iters", "2", "--max-iters", "2", "--threads", "1",
            "--json", str(tmp_path / "res" / "tiny.json")]
    for p in ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime"):
        args += ["--path", p]
    groups = []

    def spy(calls, **kw):  # the real timing loop, recording what was timed together
        groups.append((list(calls), kw))
        return time_calls(calls, **kw)

    monkeypatch.setattr(bench_run, "time_calls", spy)
    r = runner.invoke(app, args, env={"SPARSEBERT_KERNEL_CACHE": str(tmp_path / "choices.json")})
    assert r.exit_code == 0, r.output
    # one interleaved group per batch size: every path plus the linears-free model, rotating order,
    # budget per path x callables
    assert len(groups) == 2
    for labels, kw in groups:
        assert labels == ["dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime", "linears-free"]
        assert kw["rotate"] is True and kw["min_iters"] == 2 and kw["budget_s"] == 20.0 * 6
    res = json.loads((tmp_path / "res" / "tiny.json").read_text())
    md = (tmp_path / "res" / "tiny.md").read_text()
    assert res["command"].startswith(f"sparsebert bench {tmp_path / 'run'} ") and "--batch-size 3" in res["command"]
    assert set(res["results"]) == {"1", "3"}
    for rows in res["results"].values():
        by = {row["path"]: row for row in rows}
        assert set(by) == {"dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime"}
        for row in rows:
            assert row["skipped"] is None and row["status"] == "ok", row
            assert len(row["times_ms"]) == 2 and row["median_ms"] > 0 and row["vs_best_dense"] > 0
            assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["timing"].startswith("interleaved")
            assert row["x_linears_free"] == pytest.approx(row["median_ms"] / res["summary"][str(rows[0]["batch"])]["limit"]["nonlinear_ms"])
        assert by["dense-fp32"]["vs_torch_fp32"] == 1.0
        summ = res["summary"][str(rows[0]["batch"])]
        fastest_fp32 = min((by[p] for p in ("dense-fp32", "onnxruntime-fp32")), key=lambda x: x["median_ms"])
        fastest_dense = min((row for row in rows if not row["uses_sparsity"]), key=lambda x: x["median_ms"])
        assert summ["reference_fp32"]["path"] == fastest_fp32["path"] and fastest_fp32["vs_fp32"] == 1.0
        assert summ["reference_best_dense"]["path"] == fastest_dense["path"] and fastest_dense["vs_best_dense"] == 1.0
        assert summ["dense_not_measured"] == [] and summ["timing"]["rounds"] == 2
        assert f"vs fp32 ({fastest_fp32['path']})" in md and f"best dense = **{fastest_dense['path']}**" in md
        assert by["sparse-runtime"]["max_abs_diff"] < 1e-4 and by["onnxruntime-fp32"]["max_abs_diff"] < 1e-4
        assert by["sparse-runtime"]["uses_sparsity"] and not by["dense-bf16"]["uses_sparsity"]
    assert any("ignore sparsity" in w or "ignores sparsity" in w for w in res["warnings"])
    assert "## batch 1 x 12 tokens" in md and "sparse-runtime" in md and res["environment"]["threads"] >= 1
    assert any(row["what"].startswith("target matrices") for row in res["sizes"])
    assert (tmp_path / "choices.json").is_file()  # the choices measured in this run are cached for the next
    conv = res["conversions"]["12"]
    # 3 distinct shapes, each measured once in this run, the other 9 matrices reuse those measurements
    assert len(conv["matrices"]) == 12 and sum(not m["cached"] for m in conv["matrices"]) == 3
    assert (conv["source"], conv["timed"], conv["from_cache"]) == ("measured", 3, 0) and conv["seconds"] >= 0
    assert res["conversions_int8"] == {} and res["settings"]["kernel_choices"] == "cache"
    assert "Sparse runtime conversion (sparse-runtime): " in md and "measured in this run: 3 distinct shapes timed" in md


def test_bench_needs_exactly_one_model(tmp_path):
    r = runner.invoke(app, ["bench"])
    assert r.exit_code == 2 and "--synthetic" in r.output
    r = runner.invoke(app, ["bench", "--synthetic", "gpt-9"])
    assert r.exit_code == 2 and "gpt-9" in r.output
    r = runner.invoke(app, ["bench", str(tmp_path), "--path", "dense-fp32"])
    assert r.exit_code == 2 and "config.json" in r.output


def test_synthetic_model_is_pruned_exactly():
    m = synthetic_model("minilm", 0.95)
    for lin in prunable_linears(m).values():
        assert int((lin.weight == 0).sum()) == round(0.95 * lin.weight.numel())
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune_(m, 1.0)


def test_synthetic_model_in_blocks_and_n_m_patterns():
    """bench --synthetic --pattern: 1x4 blocks and 2:4 groups with the exact count, bad patterns named."""
    m = synthetic_model("minilm", 0.95, pattern="1x4")
    for lin in prunable_linears(m).values():
        keep = lin.weight != 0  # random weights: a kept weight is non-zero
        assert is_block_structured(keep, 1, 4)
        assert int((~keep).sum()) == 4 * round(0.95 * lin.weight.numel() / 4)
    m = synthetic_model("minilm", 0.5, pattern="2:4")
    for lin in prunable_linears(m).values():
        assert is_n_m(lin.weight != 0, 2, 4)
    with pytest.raises(InputError, match="2:4"):
        synthetic_model("minilm", 0.95, pattern="2:4")
    with pytest.raises(InputError, match="divisible"):
        synthetic_model("minilm", 0.9, pattern="1x5")
    r = CliRunner().invoke(app, ["bench", "nowhere", "--pattern", "1x4"])
    assert r.exit_code == 2 and "--pattern" in r.output


def test_ratios_reference_the_fastest_fp32_and_the_best_dense_path():
    """"vs fp32" is against the fastest fp32 path (not torch eager), "vs best dense" against the fastest
    dense path of any precision; a requested dense path that failed is listed, a sparse one is not."""
    rows = [PathResult("dense-fp32", 1, 8, False, median_ms=100.0),
            PathResult("onnxruntime-opt-fp32", 1, 8, False, median_ms=50.0),
            PathResult("openvino-fp32", 1, 8, False, status="failed", skipped="failed: RuntimeError: boom"),
            PathResult("onnxruntime-int8", 1, 8, False, median_ms=40.0),
            PathResult("sparse-runtime", 1, 8, True, median_ms=20.0),
            PathResult("deepsparse", 1, 8, True, status="skipped", skipped="not installed: DeepSparse")]
    refs = _ratios(rows)
    assert refs["reference_fp32"] == {"path": "onnxruntime-opt-fp32", "median_ms": 50.0}
    assert refs["reference_best_dense"] == {"path": "onnxruntime-int8", "median_ms": 40.0}
    assert refs["dense_not_measured"] == [{"path": "openvino-fp32", "reason": "failed: RuntimeError: boom"}]
    sp = rows[4]
    assert (sp.vs_fp32, sp.vs_best_dense, sp.vs_torch_fp32) == (2.5, 2.0, 5.0)
    assert rows[1].vs_fp32 == 1.0 and rows[0].vs_fp32 == 0.5 and rows[3].vs_best_dense == 1.0
    assert rows[2].vs_fp32 is None and rows[5].vs_best_dense is None
    assert "cuda_reference_fp32" not in refs  # no CUDA rows, no CUDA references
    warns = bench_run._warnings(rows, refs, 1, 8, None)
    assert any("best dense = onnxruntime-int8 among the dense paths measured" in w and "openvino-fp32" in w
               for w in warns)
    assert not any("NOT pay" in w for w in warns)
    # the int8 sparse runtime is a sparse path: rated against both references, never one of them
    slow = PathResult("sparse-runtime-int8", 1, 8, True, median_ms=80.0)
    refs = _ratios(rows + [slow])
    assert refs["reference_best_dense"]["path"] == "onnxruntime-int8" and (slow.vs_fp32, slow.vs_best_dense) == (0.625, 0.5)
    warns = bench_run._warnings(rows + [slow], refs, 1, 8, None)
    # the fp32 sparse runtime pays (2x): the slow int8 path's warning says so instead of "does NOT pay"
    assert not any("NOT pay" in w for w in warns)
    assert ("batch 1 x 8: sparse-runtime-int8 is 2.00x slower than onnxruntime-int8; sparsity pays on "
            "sparse-runtime (2.00x faster than onnxruntime-int8)") in warns
    # no sparse path pays: the verdict
    alone = [r for r in rows if r.path != "sparse-runtime"] + [slow]
    warns = bench_run._warnings(alone, _ratios(alone), 1, 8, None)
    assert [w for w in warns if "pay" in w] == [
        "batch 1 x 8: sparsity does NOT pay: sparse-runtime-int8 is 2.00x slower than onnxruntime-int8"]


def test_deepsparse_python_given_but_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSEBERT_DEEPSPARSE_PYTHON", raising=False)
    with pytest.raises(InputError, match="--deepsparse-python .*nope.*no such file"):
        bench_run.find_deepsparse_python(tmp_path / "nope")
    monkeypatch.setenv("SPARSEBERT_DEEPSPARSE_PYTHON", str(tmp_path / "gone"))
    with pytest.raises(InputError, match=r"\$SPARSEBERT_DEEPSPARSE_PYTHON .*gone"):
        bench_run.find_deepsparse_python()
    py = tmp_path / "python"
    py.write_text("")
    assert bench_run.find_deepsparse_python(py) == py  # an explicit file wins over the variable


def test_time_calls_rotates_the_order_when_asked():
    now, order = [0.0], []

    def call(label):
        def fn():
            order.append(label)
            now[0] += 1.0
        return fn

    calls = {k: call(k) for k in "abc"}
    times = time_calls(calls, warmup=0, min_iters=4, max_iters=4, budget_s=0.0, clock=lambda: now[0], rotate=True)
    assert "".join(order) == "abc" "bca" "cab" "abc"  # every label takes every position in a round in turn
    assert times == {k: [1.0] * 4 for k in "abc"}


def test_bench_rejects_bad_settings(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    with pytest.raises(InputError, match=r"\[0\]"):
        bench_run.bench_model(model, batches=(0,), seq=8)
    with pytest.raises(InputError, match="seq must be >= 1; got 0"):
        bench_run.bench_model(model, batches=(1,), seq=0)
    with pytest.raises(InputError, match="min_iters=3, max_iters=2"):
        bench_run.bench_model(model, batches=(1,), seq=8, min_iters=3, max_iters=2)
    with pytest.raises(InputError, match="openvino-fp64"):
        bench_run.bench_model(model, batches=(1,), seq=8, paths=("openvino-fp64",))
    with pytest.raises(InputError, match=r"unknown path\(s\) \['sparse-runtime-int4'\].*'sparse-runtime-int8'"):
        bench_run.bench_model(model, batches=(1,), seq=8, paths=("sparse-runtime-int4",))
    with pytest.raises(InputError, match="sbk-int16"):
        bench_run.bench_model(model, batches=(1,), seq=8, paths=("sparse-runtime-int8",), families=("sbk-int16",))


def test_sparse_runtime_int8_is_a_default_sparse_path_and_listed_by_the_cli():
    assert "sparse-runtime-int8" in bench_run.CPU_PATHS and "sparse-runtime-int8" not in bench_run.DENSE_PATHS
    assert "sparse-runtime-int8" not in bench_run.FP32_PATHS
    r = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert r.exit_code == 0 and "sparse-runtime-int8" in r.output and "--remeasure-kernels" in r.output, r.output


def test_missing_packages_are_skipped_with_warnings(tiny_bert, tmp_path, monkeypatch):
    """No openvino / nncf: both OpenVINO paths are ⚠ rows with what to install, they are in the
    warnings, and "best dense" says it was computed without them."""
    import sys

    from transformers import AutoModelForSequenceClassification

    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    monkeypatch.setitem(sys.modules, "nncf", None)
    monkeypatch.setattr(bench_run, "find_deepsparse_python", lambda explicit=None: None)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    res = bench_run.bench_model(model, batches=(1,), seq=8, threads=1, warmup=0, min_iters=2, max_iters=2,
                                budget_s=0.0, paths=("dense-fp32", "openvino-fp32", "openvino-int8", "deepsparse"))
    by = {r["path"]: r for r in res["results"]["1"]}
    for p in ("openvino-fp32", "openvino-int8"):
        assert by[p]["status"] == "skipped" and by[p]["median_ms"] is None
        assert "not installed: openvino" in by[p]["skipped"] and "sparsebert[bench]" in by[p]["skipped"]
        assert any(w.startswith(f"{p} skipped (batch 1): not installed: openvino") for w in res["warnings"])
    assert by["deepsparse"]["status"] == "skipped" and any(w.startswith("deepsparse skipped") for w in res["warnings"])
    summ = res["summary"]["1"]
    assert summ["reference_best_dense"]["path"] == "dense-fp32"
    assert [m["path"] for m in summ["dense_not_measured"]] == ["openvino-fp32", "openvino-int8"]
    md = markdown({"command": "c", **res})
    assert "| ⚠ openvino-fp32 | — |" in md and "| ⚠ openvino-int8 | — |" in md and "| ⚠ deepsparse | — |" in md
    assert "⚠ best dense is the best of the dense paths *measured*; requested but not measured: openvino-fp32" in md
    assert "- ⚠ openvino-fp32 skipped (batch 1)" in md


def test_failing_paths_are_reported_and_the_others_timed(tiny_bert, monkeypatch):
    """A path that raises while built and one that raises in the middle of the interleaved timing are
    both FAILED rows and warnings; the other paths keep their rounds."""
    from transformers import AutoModelForSequenceClassification

    real = bench_run.PathRunners.runner

    def runner(self, path, inputs):
        if path == "dense-bf16":
            raise RuntimeError("no bf16 today")
        call, logits_of, note = real(self, path, inputs)
        if path != "dynamic-int8":
            return call, logits_of, note
        n = [0]

        def flaky():  # the check call passes, the 3rd call (2nd timed round) raises
            n[0] += 1
            if n[0] == 3:
                raise RuntimeError("lost the kernel")
            return call()
        return flaky, logits_of, note

    monkeypatch.setattr(bench_run.PathRunners, "runner", runner)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    res = bench_run.bench_model(model, batches=(2,), seq=8, threads=1, warmup=0, min_iters=3, max_iters=3,
                                budget_s=0.0, paths=("dense-fp32", "dense-bf16", "dynamic-int8"))
    by = {r["path"]: r for r in res["results"]["2"]}
    assert by["dense-bf16"]["status"] == "failed" and "no bf16 today" in by["dense-bf16"]["skipped"]
    assert by["dynamic-int8"]["status"] == "failed" and by["dynamic-int8"]["times_ms"] == []
    assert "failed while timed: RuntimeError: lost the kernel" in by["dynamic-int8"]["skipped"]
    assert len(by["dense-fp32"]["times_ms"]) == 3 and by["dense-fp32"]["vs_best_dense"] == 1.0
    assert any(w.startswith("dense-bf16 FAILED (batch 2): RuntimeError: no bf16 today") for w in res["warnings"])
    assert any(w.startswith("dynamic-int8 FAILED (batch 2)") for w in res["warnings"])
    assert any("requested but not measured: dense-bf16, dynamic-int8" in w for w in res["warnings"])
    md = markdown({"command": "c", **res})
    assert "| ⚠ dense-bf16 | — |" in md and "⚠ failed: RuntimeError: no bf16 today" in md


def test_bench_sparse_runtime_runs_sparse_kernels(tiny_bert, tmp_path, monkeypatch):
    """With the kernel choice forced to a sparse kernel (timing on a tiny model is noise), the
    sparse-runtime row really runs converted matrices and its logits still match dense fp32."""
    from transformers import AutoModelForSequenceClassification

    import importlib

    conv_mod = importlib.import_module("sparsebert.runtime.conversion")  # the module of the function `sparsebert.runtime.convert`

    def sparse_wins(modules, x):  # every non-dense candidate "measures" 10x faster than dense
        return {label: (1e-3 if label == "dense" else 1e-4) for label in modules}

    monkeypatch.setattr(conv_mod, "time_candidates", lambda modules, x, rounds=15: sparse_wins(modules, x))
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    _o1_weights_(model)  # logits O(1), so a 1e-4 tolerance can catch a wrong kernel
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    args = ["bench", str(tmp_path / "run"), "--batch-size", "2", "--max-length", "12", "--warmup", "0",
            "--min-iters", "2", "--max-iters", "2", "--threads", "1", "--path", "dense-fp32", "--path", "sparse-runtime",
            "--json", str(tmp_path / "res" / "tiny.json")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res" / "tiny.json").read_text())
    kernels = [m["kernel"] for m in res["conversions"]["24"]["matrices"]]
    assert len(kernels) == 12 and all(k != "dense" for k in kernels), kernels
    by = {row["path"]: row for row in res["results"]["2"]}
    assert by["sparse-runtime"]["max_abs_diff"] < 1e-4
    assert by["sparse-runtime"]["note"].startswith("kernels: ") and "dense" not in by["sparse-runtime"]["note"]


def _o1_weights_(model) -> None:
    """The tiny model's default init (std 0.02) gives logits ~1e-3, which even an all-zero kernel output
    moves by < 1e-3; weights N(0, 9/fan_in) make the logits O(1), so a tolerance can catch a wrong kernel."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[1] ** -0.5 * 3)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def test_bench_reuses_cached_kernel_choices_unless_remeasured(tiny_bert, tmp_path, monkeypatch):
    """The first bench times each distinct matrix once per sparse runtime path (fp32, int8) and caches the
    choices; a second bench of the same model (same cache) times no kernel candidate and says the choices
    came from the cache; ``--remeasure-kernels`` times them all again. The int8 path really runs the
    sparse-int8 kernel where it "measures" fastest: its note names it and the ISA, logits within 3 %."""
    from transformers import AutoModelForSequenceClassification

    from sparsebert.runtime.build import load_kernel

    has_int8 = load_kernel() is not None  # sbk-int8 is offered only with the compiled extension
    cache = tmp_path / "cache" / "kernel_choices.json"
    monkeypatch.setenv("SPARSEBERT_KERNEL_CACHE", str(cache))
    from tiny import counting_time_candidates

    calls = counting_time_candidates(monkeypatch, {"dense": 1e-3, "sbk": 2e-4, "torch-csr": 3e-4, "sbk-int8": 1e-4})
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    _o1_weights_(model)
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    base = ["bench", str(tmp_path / "run"), "--batch-size", "2", "--max-length", "8", "--warmup", "0", "--min-iters", "1",
            "--max-iters", "1", "--threads", "1", "--no-sizes", "--path", "dense-fp32", "--path", "sparse-runtime",
            "--path", "sparse-runtime-int8"]

    def bench(name: str, *extra: str) -> tuple[dict, str]:
        r = runner.invoke(app, base + ["--json", str(tmp_path / f"{name}.json")] + list(extra))
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / f"{name}.json").read_text()), (tmp_path / f"{name}.md").read_text()

    res, md = bench("first")
    assert len(calls) == 6  # 3 distinct shapes x (fp32, int8)
    assert [any(lb.startswith("sbk-int8") for lb in labels) for labels in calls].count(True) == (3 if has_int8 else 0)
    assert cache.is_file()
    for key in ("conversions", "conversions_int8"):
        conv = res[key]["16"]
        assert (conv["source"], conv["timed"], conv["from_cache"], conv["remeasured"]) == ("measured", 3, 0, False)
    by = {r["path"]: r for r in res["results"]["2"]}
    int8_row = by["sparse-runtime-int8"]
    assert int8_row["status"] == "ok" and int8_row["uses_sparsity"] and int8_row["vs_best_dense"] > 0
    assert int8_row["vs_fp32"] > 0 and res["summary"]["2"]["reference_best_dense"]["path"] == "dense-fp32"
    if has_int8:
        isa = res["conversions_int8"]["16"]["int8_isa"]
        assert int8_row["note"] == f"kernels: sbk-int8 x12; int8 SIMD path {isa}" and isa != "torch-reference"
        assert by["sparse-runtime"]["note"] == "kernels: sbk x12"
        assert by["sparse-runtime"]["max_abs_diff"] < 1e-4
        with torch.no_grad():
            scale = float(model(**bench_run.make_inputs(model, 2, 8)).logits.abs().max())
        # int8 changes the numerics (> 0), within 3 % of the largest logit (as tests/test_runtime_int8.py)
        assert scale > 0.1 and 0 < int8_row["max_abs_diff"] <= 0.03 * scale, (int8_row["max_abs_diff"], scale)
    assert "**sparse runtime: " in md and "**sparse runtime int8: " in md and "the best dense path (dense-fp32)" in md
    assert md.count("measured in this run: 3 distinct shapes timed") == 2

    res, md = bench("second")
    assert len(calls) == 6  # nothing timed again
    for key in ("conversions", "conversions_int8"):
        conv = res[key]["16"]
        assert (conv["source"], conv["timed"], conv["from_cache"]) == ("cache", 0, 12)
        assert all(m["cached"] for m in conv["matrices"])
    assert md.count("all 12 kernel choices from the kernel-choice cache") == 2
    assert {r["path"]: r["note"] for r in res["results"]["2"]} == {r["path"]: r["note"] for r in by.values()}

    res, md = bench("third", "--remeasure-kernels")
    assert len(calls) == 12  # every distinct shape timed again, for both paths
    for key in ("conversions", "conversions_int8"):
        conv = res[key]["16"]
        assert (conv["source"], conv["timed"], conv["from_cache"], conv["remeasured"]) == ("measured", 3, 0, True)
    assert "--remeasure-kernels" in res["command"] and res["settings"]["kernel_choices"] == "remeasured"
    assert md.count("measured in this run (--remeasure-kernels)") == 2
