"""``sparsebert bench``'s dense engines (ONNX Runtime optimised / int8, OpenVINO fp32 / int8) and the
physical limit (linears-free model), on a small random BERT. Nothing here asserts on speed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsebert.bench import engines
from sparsebert.bench.limits import ZeroLinear, linears_free_model, physical_limit
from sparsebert.bench.run import bench_model, make_inputs
from sparsebert.bench.synthetic import magnitude_prune_
from sparsebert.flops import encoder_flops_per_token
from sparsebert.targets import prunable_linears

# Int8 logits against torch fp32, as a fraction of the largest |logit|: ONNX Runtime's dynamic
# quantisation (activations quantised per call) stays within 5 % on this model (measured ~1 %);
# OpenVINO's static PTQ, calibrated on 8 random-token inputs, within 20 % (measured ~10 %). An
# output that ignores its input, or all zeros, is off by ~100 %.
ORT_INT8_TOL = 0.05
OV_INT8_TOL = 0.20


@pytest.fixture(scope="module")
def model():
    """2 layers, hidden 64, 4 heads; weights N(0, 1/fan_in) so the logits are O(1); 90 % sparse."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     vocab_size=200, max_position_embeddings=64)
    m = BertForSequenceClassification(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * p.shape[1] ** -0.5)
    magnitude_prune_(m, 0.9)
    return m


def _ref(model, inputs) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs).logits.numpy()


def _ort(file, inputs) -> np.ndarray:
    from sparsebert.export.onnx import ort_session

    sess = ort_session(file, threads=1)
    return sess.run(None, {i.name: inputs[i.name].numpy() for i in sess.get_inputs()})[0]


def test_ort_optimiser_fuses_and_int8_quantises(model, tmp_path):
    pytest.importorskip("onnxruntime")
    from sparsebert.export.onnx import export_onnx

    inputs = make_inputs(model, 3, 12)
    ref = _ref(model, inputs)
    eager = export_onnx(engines.eager_copy(model), tmp_path / "eager.onnx")
    fused = engines.ort_optimize(eager, tmp_path / "opt.onnx", model.config)
    ops = engines.op_counts(tmp_path / "opt.onnx")
    # one fused attention per layer, the residual+LayerNorm pairs as SkipLayerNormalization, bias+GELU fused
    assert fused["Attention"] == ops["Attention"] == 2, fused
    assert fused["SkipLayerNormalization"] == ops["SkipLayerNormalization"] == 4
    assert fused["BiasGelu"] == ops["BiasGelu"] == 2 and fused.get("EmbedLayerNormalization") == 1
    assert "Softmax" not in ops  # the attention subgraph is gone
    assert np.abs(_ort(tmp_path / "opt.onnx", inputs) - ref).max() < 1e-4

    q = engines.ort_quantize(tmp_path / "opt.onnx", tmp_path / "int8.onnx")
    qops = engines.op_counts(tmp_path / "int8.onnx")
    assert q.get("QAttention") == 2 and (q.get("MatMulInteger", 0) + q.get("DynamicQuantizeMatMul", 0)) >= 4, q
    assert "Attention" not in qops  # every fused attention became QAttention
    diff = np.abs(_ort(tmp_path / "int8.onnx", inputs) - ref).max()
    assert 1e-6 < diff <= ORT_INT8_TOL * np.abs(ref).max(), diff  # really int8, and close


def test_openvino_fp32_and_int8(model, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from sparsebert.export.onnx import export_onnx

    inputs = make_inputs(model, 2, 12)
    ref = _ref(model, inputs)
    ov_model = engines.openvino_read(export_onnx(model, tmp_path / "m.onnx"))
    feeds = {i.get_any_name(): inputs[i.get_any_name()].numpy() for i in ov_model.inputs}
    shapes = {k: v.shape for k, v in feeds.items()}
    req, precision = engines.openvino_compile(ov_model, shapes, threads=1, precision="f32")
    req.infer(feeds)
    assert precision == "f32" and np.abs(req.get_output_tensor(0).data - ref).max() < 1e-4

    calib = [{k: v.numpy() for k, v in make_inputs(model, 1, 12, seed=100 + i).items() if k in feeds} for i in range(4)]
    q, method = engines.openvino_int8(ov_model, calib)
    assert method.startswith("NNCF post-training quantisation") and "4 synthetic calibration inputs" in method
    assert sum(op.get_type_name() == "FakeQuantize" for op in q.get_ops()) >= 8  # activations and weights quantised
    req, _ = engines.openvino_compile(q, shapes, threads=1, precision=None)
    req.infer(feeds)
    diff = np.abs(req.get_output_tensor(0).data - ref).max()
    assert 1e-6 < diff <= OV_INT8_TOL * np.abs(ref).max(), diff


def test_require_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(engines.NotInstalled, match=r"not installed: openvino \(pip install 'sparsebert\[bench\]'\)"):
        engines.require("openvino")
    assert engines.int8_kernel_note(["avx2", "fma"]) == "AVX2 u8s8 kernels (no VNNI on this CPU)"
    assert engines.int8_kernel_note(["avx2", "avx512_vnni"]) == "CPU has VNNI"


def test_linears_free_model_stubs_exactly_the_targets(model):
    free = linears_free_model(model)
    stubs = {n for n, m in free.named_modules() if isinstance(m, ZeroLinear)}
    targets = {n for n, m in model.named_modules() if any(m is t for t in prunable_linears(model).values())}
    assert stubs == targets and len(stubs) == 12
    assert all(isinstance(t, torch.nn.Linear) for t in prunable_linears(model).values())  # original untouched
    assert isinstance(free.classifier, torch.nn.Linear) and isinstance(free.bert.pooler.dense, torch.nn.Linear)
    inputs = make_inputs(model, 3, 12)
    with torch.no_grad():
        out = free(**inputs).logits
        x = torch.randn(3, 12, 64)
        assert free.bert.encoder.layer[0].attention.self.query(x).eq(0).all()
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_physical_limit_numbers(model):
    lim = physical_limit(model, 12, [2.0, 1.0, 3.0], torch_fp32_ms=10.0, path_ms={"dense-fp32": 10.0, "x": 1.0})
    fl = encoder_flops_per_token(model, 12)
    assert lim["flops"]["linear_reduction"] == pytest.approx(fl["linear_reduction"], rel=1e-3)
    assert lim["flops"]["total_reduction"] == pytest.approx(fl["total_reduction"], rel=1e-3)
    assert 9.0 < lim["flops"]["linear_reduction"] < 11.0 and lim["flops"]["total_reduction"] < lim["flops"]["linear_reduction"]
    assert lim["nonlinear_ms"] == 2.0 and lim["nonlinear_share_of_torch_fp32"] == 0.2
    assert lim["ideal_sparse_ms_torch"] == pytest.approx(2.0 + 8.0 / fl["linear_reduction"])
    assert lim["x_linears_free"] == {"dense-fp32": 5.0, "x": 0.5}
    with pytest.raises(ValueError, match="at least one timed call"):
        physical_limit(model, 12, [], None, {})


def test_bench_runs_every_dense_baseline(model, tmp_path, monkeypatch):
    """All new paths in one bench run: logits checked against torch fp32, fusion counts in the note,
    references named, the physical limit filled in."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import sparsebert.bench.run as bench_run

    monkeypatch.setattr(bench_run, "CALIBRATION_INPUTS", 4)
    paths = ("dense-fp32", "onnxruntime-fp32", "onnxruntime-opt-fp32", "onnxruntime-int8", "openvino-fp32",
             "openvino-int8")
    res = bench_model(model, batches=(2,), seq=12, threads=1, warmup=0, min_iters=2, max_iters=2, budget_s=0.0,
                      paths=paths, workdir=tmp_path)
    rows = res["results"]["2"]
    by = {r["path"]: r for r in rows}
    assert [r["path"] for r in rows] == list(paths)
    assert all(r["status"] == "ok" and len(r["times_ms"]) == 2 for r in rows), [r["skipped"] for r in rows]
    scale = np.abs(_ref(model, make_inputs(model, 2, 12))).max()
    for p in ("onnxruntime-fp32", "onnxruntime-opt-fp32", "openvino-fp32"):
        assert by[p]["max_abs_diff"] < 1e-4, p
    assert by["onnxruntime-int8"]["max_abs_diff"] <= ORT_INT8_TOL * scale
    assert by["openvino-int8"]["max_abs_diff"] <= OV_INT8_TOL * scale
    assert "Attention x2" in by["onnxruntime-opt-fp32"]["note"] and "SkipLayerNormalization x4" in by["onnxruntime-opt-fp32"]["note"]
    assert "QAttention x2" in by["onnxruntime-int8"]["note"] and "VNNI" in by["onnxruntime-int8"]["note"]
    assert "post-training quantisation" in by["openvino-int8"]["note"] and "precision f32" in by["openvino-fp32"]["note"]
    summ = res["summary"]["2"]
    fp32 = min((by[p] for p in paths if p in bench_run.FP32_PATHS), key=lambda r: r["median_ms"])
    best = min(rows, key=lambda r: r["median_ms"])
    assert summ["reference_fp32"]["path"] == fp32["path"] and summ["reference_best_dense"]["path"] == best["path"]
    assert summ["timing"]["interleaved"] == list(paths) + ["linears-free"]
    lim = summ["limit"]
    assert lim["nonlinear_ms"] > 0 and set(lim["x_linears_free"]) == set(paths)
    assert not any("fused no" in w for w in res["warnings"])
    assert (tmp_path / "model-ort-opt.onnx").is_file() and (tmp_path / "model-ort-int8.onnx").is_file()


def test_mean_pooled_model_through_onnxruntime_and_openvino(model, tmp_path):
    """A mean-pooled head (sparsebert.pooling: hooks, no weights of its own) survives the ONNX export,
    ORT's transformer optimiser and OpenVINO, padding included: the engines read the masked mean, not
    [CLS] (a dropped hook would silently give the [CLS] model's logits)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    import copy

    from sparsebert.export.onnx import export_onnx
    from sparsebert.pooling import apply_pooling

    mean = apply_pooling(copy.deepcopy(model), "mean").eval()
    inputs = make_inputs(mean, 3, 12)
    inputs["attention_mask"][1, 7:] = 0  # padded rows: the mean must skip them
    inputs["attention_mask"][2, 3:] = 0
    ref, cls_ref = _ref(mean, inputs), _ref(model, inputs)
    assert np.abs(ref - cls_ref).max() > 1e-3  # the pooling changes the logits, so the checks below can fail
    plain = export_onnx(mean, tmp_path / "mean.onnx")
    assert np.abs(_ort(plain, inputs) - ref).max() < 1e-4
    engines.ort_optimize(export_onnx(engines.eager_copy(mean), tmp_path / "eager.onnx"), tmp_path / "opt.onnx",
                         mean.config)
    assert np.abs(_ort(tmp_path / "opt.onnx", inputs) - ref).max() < 1e-4
    ov_model = engines.openvino_read(plain)
    feeds = {i.get_any_name(): inputs[i.get_any_name()].numpy() for i in ov_model.inputs}
    req, _ = engines.openvino_compile(ov_model, {k: v.shape for k, v in feeds.items()}, threads=1, precision="f32")
    req.infer(feeds)
    assert np.abs(req.get_output_tensor(0).data - ref).max() < 1e-4
