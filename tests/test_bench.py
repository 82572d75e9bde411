"""``sparsebert bench``: every path runs on a tiny model, ratios and outputs are written."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from sparsebert.bench.run import _ratios, PathResult
from sparsebert.bench.synthetic import magnitude_prune_, synthetic_model
from sparsebert.cli import app
from sparsebert.targets import prunable_linears

runner = CliRunner()


def test_bench_cli_writes_json_and_markdown(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    args = ["bench", str(tmp_path / "run"), "--batch", "1", "--batch", "3", "--seq", "12", "--warmup", "0",
            "--min-iters", "2", "--max-iters", "2", "--threads", "1", "--out", str(tmp_path / "res" / "tiny")]
    for p in ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime"):
        args += ["--path", p]
    r = runner.invoke(app, args, env={"SPARSEBERT_KERNEL_CACHE": str(tmp_path / "choices.json")})
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res" / "tiny.json").read_text())
    md = (tmp_path / "res" / "tiny.md").read_text()
    assert res["command"].startswith(f"sparsebert bench {tmp_path / 'run'} ") and "--batch 3" in res["command"]
    assert set(res["results"]) == {"1", "3"}
    for rows in res["results"].values():
        by = {row["path"]: row for row in rows}
        assert set(by) == {"dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime"}
        for row in rows:
            assert row["skipped"] is None, row
            assert len(row["times_ms"]) == 2 and row["median_ms"] > 0 and row["vs_best_dense"] > 0
        assert by["dense-fp32"]["vs_dense_fp32"] == 1.0
        assert by["sparse-runtime"]["max_abs_diff"] < 1e-4 and by["onnxruntime-fp32"]["max_abs_diff"] < 1e-4
        assert by["sparse-runtime"]["uses_sparsity"] and not by["dense-bf16"]["uses_sparsity"]
    assert any("ignore sparsity" in w or "ignores sparsity" in w for w in res["warnings"])
    assert "## batch 1 x 12 tokens" in md and "sparse-runtime" in md and res["environment"]["threads"] >= 1
    assert any(row["what"].startswith("target matrices") for row in res["sizes"])
    assert not (tmp_path / "choices.json").exists()  # bench measures kernel choices afresh, caches nothing
    conv = res["conversions"]["12"]
    # 3 distinct shapes, each measured once in this run, the other 9 matrices reuse those measurements
    assert len(conv["matrices"]) == 12 and sum(not m["cached"] for m in conv["matrices"]) == 3


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


def test_ratios_against_dense_and_best_dense():
    rows = [PathResult("dense-fp32", 1, 8, False, median_ms=100.0), PathResult("dense-bf16", 1, 8, False, median_ms=40.0),
            PathResult("sparse-runtime", 1, 8, True, median_ms=20.0), PathResult("deepsparse", 1, 8, True, skipped="x")]
    _ratios(rows)
    assert rows[2].vs_dense_fp32 == 5.0 and rows[2].vs_best_dense == 2.0 and rows[2].extra["best_dense"] == "dense-bf16"
    assert rows[1].vs_best_dense == 1.0 and rows[3].vs_best_dense is None


def test_bench_sparse_runtime_runs_sparse_kernels(tiny_bert, tmp_path, monkeypatch):
    """With the kernel choice forced to a sparse kernel (timing on a tiny model is noise), the
    sparse-runtime row really runs converted matrices and its logits still match dense fp32."""
    from transformers import AutoModelForSequenceClassification

    import importlib

    conv_mod = importlib.import_module("sparsebert.runtime.convert")  # the module, not the function re-exported

    def sparse_wins(modules, x):  # every non-dense candidate "measures" 10x faster than dense
        return {label: (1e-3 if label == "dense" else 1e-4) for label in modules}

    monkeypatch.setattr(conv_mod, "time_candidates", lambda modules, x, rounds=15: sparse_wins(modules, x))
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    # The tiny model's default init (std 0.02) gives logits ~1e-3, which even an all-zero kernel output
    # moves by < 1e-3; larger weights make the logits O(1), so a 1e-4 tolerance can catch a wrong kernel.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[1] ** -0.5 * 3)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    args = ["bench", str(tmp_path / "run"), "--batch", "2", "--seq", "12", "--warmup", "0", "--min-iters", "2",
            "--max-iters", "2", "--threads", "1", "--path", "dense-fp32", "--path", "sparse-runtime",
            "--out", str(tmp_path / "res" / "tiny")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res" / "tiny.json").read_text())
    kernels = [m["kernel"] for m in res["conversions"]["24"]["matrices"]]
    assert len(kernels) == 12 and all(k != "dense" for k in kernels), kernels
    by = {row["path"]: row for row in res["results"]["2"]}
    assert by["sparse-runtime"]["max_abs_diff"] < 1e-4
    assert by["sparse-runtime"]["note"].startswith("kernels: ") and "dense" not in by["sparse-runtime"]["note"]
