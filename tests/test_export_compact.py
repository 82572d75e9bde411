"""The compact checkpoint's size options: fp16 / int8 embedding tables and int8 4x1-block matrices.

Round trips of tiny models within the stated logit tolerances, the engine built from the stored int8 blocks
(the same values as the int8 engine of the source model), the size summary, and truncated or lying parts
refused with an error that names them."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sparsebert.export.checkpoint import (
    WEIGHTS,
    SparseCheckpointError,
    embedding_tables,
    export_model,
    load,
    read_header,
)
from sparsebert.export.format import SparseFormatError, decode, decode_dense, encode, encode_dense, int8_4x1_from_parts
from sparsebert.runtime.build import load_kernel

#: stated logit tolerances of a loaded checkpoint against its source model, relative to max |logit|:
#: fp16 embedding tables (rounding <= 2^-11 per entry), and int8 (embedding tables or 4x1 blocks; the engine's
#: int8 tolerance, tests/test_engine.py)
FP16_EMBEDDINGS_RTOL = 2e-3
INT8_RTOL = 0.02


def _model(model_type: str = "bert", seed: int = 0):
    from test_engine import _model as tiny

    from sparsebert.bench.synthetic import magnitude_prune_

    model = tiny(model_type, sparsity=0.0, seed=seed)
    magnitude_prune_(model, 0.9, "4x1")
    return model


def _inputs(seed: int = 12):
    from test_engine import _batch

    ids, mask, _ = _batch(3, 21, lens=[21, 9, 14], seed=seed)
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, x):
    with torch.no_grad():
        return model(**x).logits


@pytest.mark.parametrize("model_type", ["bert", "mpnet", "distilbert"])
@pytest.mark.parametrize("embeddings,layout,rtol", [("fp32", "auto", 0.0), ("fp16", "auto", FP16_EMBEDDINGS_RTOL),
                                                    ("int8", "auto", INT8_RTOL), ("fp16", "int8-4x1", INT8_RTOL),
                                                    ("int8", "int8-4x1", INT8_RTOL)])
def test_round_trip_within_the_stated_tolerance(tmp_path, model_type, embeddings, layout, rtol):
    model = _model(model_type)
    s = export_model(model, tmp_path / "e", embeddings=embeddings, layout=layout)
    assert s["format_version"] == ("1" if (embeddings, layout) == ("fp32", "auto") else "2")
    x = _inputs()
    ref = _logits(model, x)
    got = _logits(load(tmp_path / "e"), x)
    err = float((got - ref).abs().max())
    assert err <= rtol * float(ref.abs().max()), err
    if rtol:
        assert err > 0  # lossy: the comparison means something
    tables = {t["param"] for t in s["embedding_tables"]["tables"]}
    assert tables == (set() if embeddings == "fp32" else set(embedding_tables(model)))
    assert s["targets"]["layouts"]["int8-4x1"] == (s["targets"]["count"] if layout == "int8-4x1" else 0)


def test_sizes_in_the_summary(tmp_path):
    model = _model()
    sizes = {}
    for emb, layout in (("fp32", "auto"), ("fp16", "auto"), ("int8", "auto"), ("int8", "int8-4x1")):
        s = export_model(model, tmp_path / f"{emb}-{layout}", embeddings=emb, layout=layout)
        ck, e = s["checkpoint"], s["embedding_tables"]
        assert ck["sparse_file_bytes"] == (tmp_path / f"{emb}-{layout}" / WEIGHTS).stat().st_size
        assert sum(ck["parts_bytes"].values()) == ck["sparse_file_bytes"] and ck["parts_bytes"]["header"] > 0
        assert ck["dense_fp32_bytes"] == sum(4 * t.numel() for t in model.state_dict().values() if t.is_floating_point()) + \
            sum(t.numel() * t.element_size() for t in model.state_dict().values() if not t.is_floating_point())
        assert ck["ratio_vs_dense_fp32"] == pytest.approx(ck["dense_fp32_bytes"] / ck["sparse_file_bytes"])
        dense_tables = sum(4 * model.state_dict()[n].numel() for n in embedding_tables(model))
        if emb == "fp16":
            assert e["stored_bytes"] * 2 == e["dense_bytes"] == dense_tables
        if emb == "int8":
            rows = sum(model.state_dict()[n].shape[0] for n in embedding_tables(model))
            assert e["stored_bytes"] == dense_tables // 4 + 4 * rows
        sizes[(emb, layout)] = ck["sparse_file_bytes"]
    assert sizes[("fp32", "auto")] > sizes[("fp16", "auto")] > sizes[("int8", "auto")] > sizes[("int8", "int8-4x1")]


@pytest.mark.parametrize("embeddings,layout", [("fp16", "auto"), ("int8", "int8-4x1"), ("fp32", "int8-4x1")])
def test_storage_estimate_equals_what_export_writes(tmp_path, embeddings, layout):
    from sparsebert.export.report import storage_estimate

    model = _model()
    est = storage_estimate(model, "fp32", layout, embeddings)
    s = export_model(model, tmp_path / "e", embeddings=embeddings, layout=layout)
    assert est["targets_compressed_bytes"] == s["targets"]["compressed_bytes"]
    assert est["checkpoint_sparse_bytes"] == s["targets"]["compressed_bytes"] + s["other_tensors_bytes"]


def test_bad_options_are_refused(tmp_path):
    from sparsebert.errors import InputError

    with pytest.raises(InputError, match="embeddings must be one of"):
        export_model(_model(), tmp_path / "e", embeddings="int4")
    with pytest.raises(InputError, match="layout must be one of"):
        export_model(_model(), tmp_path / "e", layout="int4-4x1")


# ------------------------------------------------------------------------------------------------
# The engine reads the stored int8 blocks and the decoded tables


@pytest.mark.skipif(load_kernel() is None, reason="the native extension cannot be built here")
@pytest.mark.parametrize("embeddings", ["fp16", "int8"])
def test_engine_from_int8_blocks_matches_the_int8_engine_of_the_model(tmp_path, embeddings):
    """int8-4x1 parts go to the int8 4x1 kernel as stored: the engine equals the int8 engine built from the
    source model (same quantisation) fed the same decoded embedding tables; the fp32 engine of the checkpoint
    equals sparsebert.load of it."""
    import sparsebert
    from sparsebert.engine import FP32_LOGIT_ATOL, EncoderEngine
    from sparsebert.export.checkpoint import load_engine

    model = _model("mpnet")
    export_model(model, tmp_path / "e", embeddings=embeddings, layout="int8-4x1")
    engine = load_engine(tmp_path / "e", int8=True)
    assert engine.report.counts() == {"int8-4x1": 8}
    x = _inputs()
    loaded = load(tmp_path / "e")  # the dense reconstruction: dequantised matrices, decoded tables
    source = _model("mpnet")
    with torch.no_grad():  # the source model with the stored tables, its matrices unquantised
        for name in embedding_tables(source):
            source.get_parameter(name).copy_(loaded.get_parameter(name))
    ref = EncoderEngine(source, int8=True)(**x).logits
    torch.testing.assert_close(engine(**x).logits, ref, atol=1e-5, rtol=0)
    err = (engine(**x).logits - _logits(model, x)).abs().max()
    assert err <= INT8_RTOL * _logits(model, x).abs().max()
    fp32 = sparsebert.load(tmp_path / "e", engine=True)
    assert fp32.report.counts() == {"4x1": 8}
    torch.testing.assert_close(fp32(**x).logits, _logits(loaded, x), atol=FP32_LOGIT_ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------
# Truncated or lying parts: refused with a clear error


def _rewrite(file, mutate) -> None:
    """Rewrite a checkpoint after ``mutate(tensors, manifest)``; part shapes / dtypes recorded anew so that
    only the cross-checks against the matrix or table shape can catch the lie (load with verify=False)."""
    meta, manifest = read_header(file)
    tensors = load_file(str(file))
    mutate(tensors, manifest)
    for section in ("sparse", "quantized"):
        for name, info in manifest.get(section, {}).items():
            kind = info.get("layout", info.get("encoding"))
            for part, pinfo in info["parts"].items():
                t = tensors[f"{name}::{kind}.{part}"]
                pinfo["shape"], pinfo["dtype"] = list(t.shape), str(t.dtype).replace("torch.", "")
    save_file(tensors, str(file), metadata={**meta, "manifest": json.dumps(manifest, sort_keys=True)})


def _word(tensors, enc):
    return next(k for k in tensors if "word_embeddings.weight::" + enc + ".values" in k)


def test_truncated_file_is_refused(tmp_path):
    export_model(_model(), tmp_path / "e", embeddings="int8", layout="int8-4x1")
    file = tmp_path / "e" / WEIGHTS
    raw = file.read_bytes()
    file.write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(SparseCheckpointError, match="truncated or corrupt|not a readable safetensors file") as err:
        load(tmp_path / "e")
    assert str(file) in str(err.value)


@pytest.mark.parametrize("mutate,message", [
    # an int8 embedding table one row short (its row scales too)
    (lambda t, m: t.update({k: t[k][:-1].clone() for k in t if "word_embeddings.weight::int8." in k}),
     r"word_embeddings.weight: values is int8 \[96, 48\], expected int8 \[97, 48\]"),
    # row scales that lie about their length
    (lambda t, m: t.update({k: t[k][:-2].clone() for k in t if "word_embeddings.weight::int8.scale" in k}),
     r"word_embeddings.weight: scale is float32 \[95\], expected float32 \[97\]"),
    # a negative row scale
    (lambda t, m: t.update({k: -t[k] for k in t if "position_embeddings.weight::int8.scale" in k}),
     "position_embeddings.weight: scale holds a negative"),
    # an int8 value outside [-127, 127]
    (lambda t, m: t.__getitem__(_word(t, "int8")).view(-1).__setitem__(0, -128), "values hold -128"),
    # an int8-4x1 matrix whose scales are shorter than its rows
    (lambda t, m: t.update({k: t[k][:4].clone() for k in t if k.endswith("query.weight::int8-4x1.scale")}),
     r"query.weight: scale is float32 \[4\], expected float32 \[48\]"),
    # a block column outside the matrix
    (lambda t, m: t.__getitem__(next(k for k in t if k.endswith("::int8-4x1.col"))).view(torch.int16).__setitem__(0, 999),
     "column index out of range"),
    # block row pointers that claim one block more than stored
    (lambda t, m: t.__getitem__(next(k for k in t if k.endswith("::int8-4x1.row_ptr"))).__setitem__(-1, 10**6),
     "row_ptr must rise monotonically"),
    # a table whose manifest shape lies about the model (the parts agree with the lie)
    (lambda t, m: (t.update({_word(t, "int8"): t[_word(t, "int8")][:50].clone(),
                             _word(t, "int8").replace("values", "scale"):
                                 t[_word(t, "int8").replace("values", "scale")][:50].clone()}),
                   m["quantized"]["bert.embeddings.word_embeddings.weight"].__setitem__("shape", [50, 48])),
     r"weights do not fit|is stored as \[50, 48\]"),
])
def test_lying_parts_are_refused_naming_them(tmp_path, mutate, message):
    from sparsebert.export.checkpoint import load_engine

    export_model(_model(), tmp_path / "e", embeddings="int8", layout="int8-4x1")
    _rewrite(tmp_path / "e" / WEIGHTS, mutate)
    with pytest.raises(SparseCheckpointError, match=message):
        load(tmp_path / "e", verify=False)
    if load_kernel() is not None:
        with pytest.raises(SparseCheckpointError, match=message):
            load_engine(tmp_path / "e", verify=False, int8=True)
    with pytest.raises(SparseCheckpointError):  # with the hashes checked, the edit is caught anyway
        load(tmp_path / "e")


def test_format_level_checks():
    w = torch.zeros(8, 6)
    w[0:4, 1] = torch.tensor([1.0, -2.0, 3.0, 0.5])
    w[4:8, 5] = 0.25
    enc = encode(w, layout="int8-4x1")
    assert enc.layout == "int8-4x1" and enc.nnz == 8 and enc.parts["values"].dtype == torch.int8
    rp, col, q, scale = int8_4x1_from_parts("w", (8, 6), enc.nnz, enc.parts)
    assert rp.tolist() == [0, 1, 2] and col.tolist() == [1, 5] and q.shape == (2, 4)
    back = decode("w", "int8-4x1", (8, 6), torch.float32, enc.nnz, enc.parts)
    assert ((back - w).abs() <= scale[:, None] / 2 + 1e-7).all() and torch.equal(back != 0, w != 0)
    assert encode(torch.ones(6, 3), layout="int8-4x1").layout in ("csr", "bitmask")  # rows not a multiple of 4
    with pytest.raises(SparseFormatError, match="missing part"):
        int8_4x1_from_parts("w", (8, 6), enc.nnz, {k: v for k, v in enc.parts.items() if k != "scale"})
    with pytest.raises(SparseFormatError, match="not 4 x blocks"):
        int8_4x1_from_parts("w", (8, 6), 7, enc.parts)
    emb = torch.randn(5, 3)
    parts = encode_dense(emb, "int8")
    back = decode_dense("e", "int8", [5, 3], torch.float32, parts)
    assert (back - emb).abs().max() <= emb.abs().amax(dim=1).max() / 127 / 2 + 1e-6
    with pytest.raises(SparseFormatError, match="unknown encoding"):
        decode_dense("e", "int4", [5, 3], torch.float32, parts)
    with pytest.raises(SparseFormatError, match=r"values is float16 \[5, 3\], expected int8"):
        decode_dense("e", "int8", [5, 3], torch.float32, {**parts, "values": emb.half()})

