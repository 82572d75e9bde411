"""Compact sparse checkpoints: encodings, bit-exact round trips, rejection of corrupt files, ONNX."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sparsebert.cli import app
from sparsebert.export import SparseCheckpointError, export_model, load, load_state_dict
from sparsebert.export.checkpoint import WEIGHTS
from sparsebert.export.format import SparseFormatError, decode, encode, layout_bytes
from sparsebert.targets import prunable_linears, qualified_names

runner = CliRunner()


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns (fp32 -> int32), so comparisons are bit for bit."""
    return t.contiguous().view(torch.int32)


def prune_(model, sparsity: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in prunable_linears(model).values():
            keep = (torch.rand(lin.weight.shape, generator=g) >= sparsity).to(lin.weight.dtype)
            lin.weight.mul_(keep)  # like the sparsifier: negative pruned weights become -0.0


@pytest.fixture
def pruned(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    prune_(model, 0.9)
    return model


def random_sparse(rows: int, cols: int, density: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g)
    return w * (torch.rand(rows, cols, generator=g) < density)


# --- format ----------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 70), density=st.floats(0.0, 1.0),
       layout=st.sampled_from(["csr", "bitmask", "auto"]), seed=st.integers(0, 10_000))
def test_encode_decode_is_bit_exact(rows, cols, density, layout, seed):
    w = random_sparse(rows, cols, density, seed)
    enc = encode(w, layout=layout)
    back = decode("w", enc.layout, enc.shape, enc.dtype, enc.nnz, enc.parts)
    assert torch.equal(bits(back), bits(w + 0.0))
    assert enc.nbytes == layout_bytes(enc.layout, rows, cols, enc.nnz, 4)


def test_auto_layout_picks_the_smaller_and_csr_meets_the_size_target():
    w95 = random_sparse(768, 768, 0.05)
    w50 = random_sparse(768, 768, 0.5)
    assert encode(w95).layout == "csr"
    assert encode(w50).layout == "bitmask"
    dense_fp32 = 768 * 768 * 4
    assert dense_fp32 / encode(w95, values="fp32").nbytes >= 12
    assert dense_fp32 / encode(w95, values="fp16").nbytes >= 19


def test_wide_matrix_uses_int32_columns():
    w = random_sparse(2, 70_000, 0.01)
    enc = encode(w, layout="csr")
    assert enc.parts["col"].dtype == torch.int32
    assert torch.equal(decode("w", "csr", enc.shape, enc.dtype, enc.nnz, enc.parts), w + 0.0)


def test_16_bit_values_round_like_a_cast():
    w = random_sparse(16, 24, 0.3)
    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        enc = encode(w, values=name)
        assert enc.parts["values"].dtype == dt
        back = decode("w", enc.layout, enc.shape, enc.dtype, enc.nnz, enc.parts)
        assert back.dtype == torch.float32
        assert torch.equal(back, w.to(dt).float() + 0.0)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(col=torch.full_like(p["col"], 999)), "column index out of range"),
    (lambda p: p.update(row_ptr=p["row_ptr"].flip(0)), "row_ptr"),
    (lambda p: p.update(values=p["values"][:-1]), "values has shape"),
    (lambda p: p.pop("col"), "missing part"),
])
def test_decode_rejects_inconsistent_csr(mutate, message):
    enc = encode(random_sparse(8, 12, 0.4), layout="csr")
    parts = dict(enc.parts)
    mutate(parts)
    with pytest.raises(SparseFormatError, match=message) as err:
        decode("layer.0.query.weight", "csr", enc.shape, enc.dtype, enc.nnz, parts)
    assert "layer.0.query.weight" in str(err.value)


def test_decode_rejects_bitmask_with_wrong_popcount():
    enc = encode(random_sparse(8, 12, 0.4), layout="bitmask")
    with pytest.raises(SparseFormatError, match="set bits"):
        decode("w", "bitmask", enc.shape, enc.dtype, enc.nnz + 1,
               {**enc.parts, "values": torch.zeros(enc.nnz + 1)})


# --- checkpoints -----------------------------------------------------------------------------------

def test_export_load_round_trip_is_bit_exact(pruned, tiny_bert, tmp_path):
    # lossless: fp32 values (the default) and fp32 embedding tables (the default is fp16: tests/test_export_compact.py)
    summary = export_model(pruned, tmp_path / "exp", source=tiny_bert, embeddings="fp32")
    assert (tmp_path / "exp" / WEIGHTS).is_file() and (tmp_path / "exp" / "config.json").is_file()
    assert (tmp_path / "exp" / "vocab.txt").is_file()  # tokenizer files travel along
    assert not (tmp_path / "exp" / "model.safetensors").exists()
    loaded = load(tmp_path / "exp")
    assert type(loaded) is type(pruned)
    a, b = pruned.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    targets = set(qualified_names(pruned).values())
    assert len(targets) == 12 and summary["targets"]["count"] == 12
    for k in a:
        if a[k].is_floating_point():
            # pruned entries: -0.0 comes back as +0.0 (IEEE-equal); every other bit is identical
            assert torch.equal(bits(b[k]), bits(a[k] + 0.0)), k
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.equal(a[k], b[k]), k
    x = {"input_ids": torch.randint(0, pruned.config.vocab_size, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}
    with torch.no_grad():
        assert torch.equal(pruned(**x).logits, loaded(**x).logits)


def test_exported_matrices_are_smaller_and_sizes_are_reported(pruned, tmp_path):
    s32 = export_model(pruned, tmp_path / "fp32")
    s16 = export_model(pruned, tmp_path / "fp16", values="fp16")
    t32, t16 = s32["targets"], s16["targets"]
    assert t32["compressed_bytes"] < t32["dense_fp32_bytes"]
    assert t16["compressed_bytes"] < t32["compressed_bytes"]
    assert s32["checkpoint"]["sparse_file_bytes"] == (tmp_path / "fp32" / WEIGHTS).stat().st_size
    on_disk = json.loads((tmp_path / "fp32" / "sparse_export.json").read_text())
    assert on_disk["content_sha256"] == s32["content_sha256"]


def test_fp16_values_load_as_rounded_weights(pruned, tmp_path):
    export_model(pruned, tmp_path / "e", values="fp16")
    loaded = load(tmp_path / "e")
    for name, lin in prunable_linears(pruned).items():
        other = prunable_linears(loaded)[name]
        assert torch.equal(other.weight, lin.weight.half().float()), name


def test_existing_output_is_refused_without_overwrite(pruned, tmp_path):
    from sparsebert.io import OutputExistsError

    export_model(pruned, tmp_path / "e")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_model(pruned, tmp_path / "e")
    export_model(pruned, tmp_path / "e", overwrite=True)


def _header(file: Path) -> tuple[int, dict]:
    raw = file.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return n, json.loads(raw[8:8 + n])


def _rewrite_header(file: Path, header: dict) -> None:
    raw = file.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    body = raw[8 + n:]
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    file.write_bytes(struct.pack("<Q", len(new)) + new + body)


def test_flipped_byte_is_rejected_naming_the_tensor(pruned, tmp_path):
    export_model(pruned, tmp_path / "e")
    file = tmp_path / "e" / WEIGHTS
    n, header = _header(file)
    key = next(k for k in header if k.endswith("::csr.values") or k.endswith("::bitmask.values"))
    start = header[key]["data_offsets"][0]
    raw = bytearray(file.read_bytes())
    raw[8 + n + start] ^= 0x01
    file.write_bytes(bytes(raw))
    with pytest.raises(SparseCheckpointError, match="sha256 mismatch") as err:
        load(tmp_path / "e")
    assert key in str(err.value) and str(file) in str(err.value)


def test_truncated_file_is_rejected(pruned, tmp_path):
    export_model(pruned, tmp_path / "e")
    file = tmp_path / "e" / WEIGHTS
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(SparseCheckpointError, match="truncated|corrupt|readable") as err:
        load(tmp_path / "e")
    assert str(file) in str(err.value)


def test_export_has_its_own_manifest_not_the_sources(pruned, tiny_bert, tmp_path):
    from sparsebert.integrity import MANIFEST, read_manifest, write_manifest

    src = tmp_path / "run"
    shutil.copytree(tiny_bert, src)
    write_manifest(src)  # lists model.safetensors, which an export does not carry
    export_model(pruned, tmp_path / "e", source=src)
    files = read_manifest(tmp_path / "e")
    assert set(files) == {p.name for p in (tmp_path / "e").iterdir()} - {MANIFEST}
    assert WEIGHTS in files and "model.safetensors" not in files
    load(tmp_path / "e")


@pytest.mark.parametrize("manifest", [True, False])
def test_deleted_weights_file_is_rejected(pruned, tmp_path, manifest):
    from sparsebert.integrity import MANIFEST

    export_model(pruned, tmp_path / "e")
    if not manifest:
        (tmp_path / "e" / MANIFEST).unlink()  # an export written before manifests
    (tmp_path / "e" / WEIGHTS).unlink()
    with pytest.raises(SparseCheckpointError, match="not found") as err:
        load(tmp_path / "e")
    assert str(tmp_path / "e" / WEIGHTS) in str(err.value)


def test_deleted_config_is_rejected(pruned, tmp_path):
    from sparsebert.integrity import MANIFEST, CorruptCheckpointError

    export_model(pruned, tmp_path / "e")
    (tmp_path / "e" / "config.json").unlink()
    with pytest.raises(CorruptCheckpointError, match=f"config.json: missing \\(listed in {MANIFEST}\\)"):
        load(tmp_path / "e")
    (tmp_path / "e" / MANIFEST).unlink()
    with pytest.raises(SparseCheckpointError, match="no config.json"):
        load(tmp_path / "e")


def test_edited_side_file_is_rejected_by_the_manifest(pruned, tiny_bert, tmp_path):
    from sparsebert.integrity import CorruptCheckpointError

    export_model(pruned, tmp_path / "e", source=tiny_bert)
    vocab = tmp_path / "e" / "vocab.txt"
    vocab.write_text(vocab.read_text().replace("the\n", "teh\n"))
    with pytest.raises(CorruptCheckpointError) as err:
        load(tmp_path / "e")
    assert str(err.value).startswith(f"{vocab}: sha256 differs")


def _tensors_and_metadata(file):
    """Every stored tensor of a safetensors file and its metadata (to re-save an edited copy)."""
    from safetensors import safe_open

    with safe_open(str(file), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_deleted_tensor_is_rejected_naming_it(pruned, tmp_path):
    """A part listed in the manifest but absent from the file (re-saved without it)."""
    from safetensors.torch import save_file

    export_model(pruned, tmp_path / "e")
    file = tmp_path / "e" / WEIGHTS
    tensors, meta = _tensors_and_metadata(file)
    for key in (next(k for k in tensors if "::" in k), next(k for k in tensors if "::" not in k)):
        kept = {k: v for k, v in tensors.items() if k != key}
        save_file(kept, str(file), metadata=meta)
        with pytest.raises(SparseCheckpointError, match="listed in the manifest is missing") as err:
            load(tmp_path / "e")
        assert repr(key) in str(err.value) and str(file) in str(err.value)


def test_wrong_shape_in_manifest_is_rejected(pruned, tmp_path):
    export_model(pruned, tmp_path / "e", layout="csr")
    file = tmp_path / "e" / WEIGHTS
    _, header = _header(file)
    manifest = json.loads(header["__metadata__"]["manifest"])
    name = next(iter(manifest["sparse"]))
    manifest["sparse"][name]["shape"] = [manifest["sparse"][name]["shape"][0] + 1, manifest["sparse"][name]["shape"][1]]
    header["__metadata__"]["manifest"] = json.dumps(manifest, sort_keys=True)
    _rewrite_header(file, header)
    with pytest.raises(SparseCheckpointError, match="content_sha256"):
        load(tmp_path / "e")
    # ... and with the content hash recomputed too, the shapes themselves are checked
    from sparsebert.export.checkpoint import _content_hash

    header["__metadata__"]["content_sha256"] = _content_hash(manifest)
    _rewrite_header(file, header)
    with pytest.raises(SparseCheckpointError, match="row_ptr") as err:
        load_state_dict(tmp_path / "e")
    assert name in str(err.value)


def test_tensor_with_wrong_shape_is_rejected(pruned, tmp_path):
    """A stored part whose shape disagrees with the manifest (e.g. a re-saved, edited file)."""
    from safetensors.torch import save_file

    export_model(pruned, tmp_path / "e")
    file = tmp_path / "e" / WEIGHTS
    tensors, meta = _tensors_and_metadata(file)
    key = next(k for k in tensors if k.endswith(".values"))
    tensors[key] = tensors[key][:-1].clone()
    save_file(tensors, str(file), metadata=meta)
    with pytest.raises(SparseCheckpointError, match="manifest says") as err:
        load(tmp_path / "e")
    assert key in str(err.value)


def test_not_a_sparse_checkpoint(tiny_bert, tmp_path):
    with pytest.raises(SparseCheckpointError, match="not found"):
        load(tiny_bert)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "x" / WEIGHTS))
    with pytest.raises(SparseCheckpointError, match="not a sparsebert sparse checkpoint"):
        load(tmp_path / "x")


# --- CLI -------------------------------------------------------------------------------------------

def test_cli_export_report_and_onnx(pruned, tmp_path):
    pruned.save_pretrained(tmp_path / "run")
    r = runner.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    assert "compressed" in r.output
    r = runner.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(app, ["report", str(tmp_path / "exp")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "checkpoint: dense -> sparse" in r.output and "target matrices: dense fp32 -> compressed" in r.output
    r = runner.invoke(app, ["report", str(tmp_path / "exp"), "--json", "-"])
    assert r.exit_code == 0, r.output
    assert abs(json.loads(r.stdout)["targets"]["sparsity"] - 0.9) < 0.02
    r = runner.invoke(app, ["report", str(tmp_path / "run"), "--json", "-"])
    assert r.exit_code == 0, r.output
    storage = json.loads(r.stdout)["storage"]
    assert storage["targets_compressed_bytes"] < storage["targets_dense_fp32_bytes"]
    r = runner.invoke(app, ["export", str(tmp_path / "exp"), "--format", "onnx", "--out", str(tmp_path / "onnx")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "onnx" / "model.onnx").is_file() and "matches torch" in r.output
    r = runner.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "z"), "--values", "fp8"])
    assert r.exit_code == 2 and "fp8" in r.output
    r = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "z")])
    assert r.exit_code == 2 and "nope" in r.output


def test_cli_load_of_corrupt_checkpoint_exits_2(pruned, tmp_path):
    export_model(pruned, tmp_path / "e")
    file = tmp_path / "e" / WEIGHTS
    file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])
    r = runner.invoke(app, ["report", str(tmp_path / "e")])
    assert r.exit_code == 2 and "error:" in r.output and WEIGHTS in r.output


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "mpnet", "electra"])
def test_onnx_export_matches_torch(arch, tmp_path):
    import onnxruntime  # noqa: F401  (installed by the test extras)
    from transformers import AutoModelForSequenceClassification

    from sparsebert.export.onnx import check_onnx, dummy_inputs, export_onnx, ort_session
    from tiny import make_tiny_model

    model = AutoModelForSequenceClassification.from_pretrained(make_tiny_model(tmp_path / arch, arch)).eval()
    prune_(model, 0.8)
    file = export_onnx(model, tmp_path / "m.onnx")
    assert check_onnx(model, file) < 1e-4
    # dynamic axes: another batch and length than at export
    x = dummy_inputs(model, batch=4, seq=31, seed=3)
    sess = ort_session(file, threads=1)
    got = sess.run(None, {i.name: x[i.name].numpy() for i in sess.get_inputs()})[0]
    with torch.no_grad():
        ref = model(**x).logits.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_storage_estimate_equals_what_export_writes(pruned, tmp_path):
    from sparsebert.export.report import storage_estimate

    for values in ("fp32", "bf16"):
        est = storage_estimate(pruned, values)
        s = export_model(pruned, tmp_path / values, values=values)
        assert est["targets_compressed_bytes"] == s["targets"]["compressed_bytes"]
        assert est["targets_dense_fp32_bytes"] == s["targets"]["dense_fp32_bytes"]
        assert est["checkpoint_sparse_bytes"] == s["targets"]["compressed_bytes"] + s["other_tensors_bytes"]


def test_runtime_only_arguments_without_runtime_are_refused(pruned, tmp_path):
    from sparsebert.errors import InputError

    export_model(pruned, tmp_path / "e")
    with pytest.raises(InputError, match=r"int8, attention need runtime=True"):
        load(tmp_path / "e", runtime=False, int8=True, attention="eager")
    with pytest.raises(InputError, match=r"tokens need runtime=True"):
        load(tmp_path / "e", tokens=32)
    assert load(tmp_path / "e", verify=False) is not None  # load's own arguments are fine
