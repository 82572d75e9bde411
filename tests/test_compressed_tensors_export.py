"""``sparsebert export --format compressed-tensors``: the sparse-bitmask format of the compressed-tensors
library, written by the library and read back by the library, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sparsebert.bench.synthetic import magnitude_prune_
from sparsebert.cli import app

pytest.importorskip("compressed_tensors")

runner = CliRunner()


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns of a float tensor (fp32 -> int32), so equality is bit for bit."""
    return t.contiguous().view(torch.int32) if t.dtype == torch.float32 else t


@pytest.fixture(scope="module")
def pruned_run(tiny_bert, tmp_path_factory):
    """A tiny BERT classifier magnitude-pruned to 90 %, saved as a run directory; and its state dict."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    magnitude_prune_(model, 0.9)
    run = tmp_path_factory.mktemp("ct") / "run"
    model.save_pretrained(run, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(run)
    return run, {k: v.clone() for k, v in model.state_dict().items()}, model


@pytest.fixture(scope="module")
def exported(pruned_run, tmp_path_factory):
    from sparsebert.export.compressed_tensors import export_compressed_tensors_run

    run, _, _ = pruned_run
    out = tmp_path_factory.mktemp("ct-out") / "ct"
    summary = export_compressed_tensors_run(run, out)
    return out, summary


def decompress_with_library(path: Path):
    """What a compressed-tensors user does: build the model from config.json, then ModelCompressor.decompress."""
    from compressed_tensors import ModelCompressor
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    compressor = ModelCompressor.from_pretrained(str(path))
    assert compressor is not None and compressor.sparsity_config.format == "sparse-bitmask"
    compressor.decompress(str(path), model)
    return model.eval()


def targets(model) -> list[str]:
    from sparsebert.targets import qualified_names

    return sorted(p.removesuffix(".weight") for p in qualified_names(model).values())


def test_library_decompresses_every_weight_bit_for_bit(pruned_run, exported):
    _, original, _ = pruned_run
    out, _ = exported
    got = decompress_with_library(out).state_dict()
    assert set(got) == set(original)
    for name, ref in original.items():
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        assert torch.equal(bits(got[name]), bits(ref)), f"{name} differs after decompression"


def test_decompressed_model_gives_the_same_logits(pruned_run, exported):
    _, _, model = pruned_run
    out, _ = exported
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
        got = decompress_with_library(out)(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, ref)


def test_pruned_matrices_are_stored_compressed(pruned_run, exported):
    from safetensors import safe_open

    run, original, model = pruned_run
    out, summary = exported
    names = targets(model)
    assert len(names) == 12
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        for t in names:
            assert f"{t}.weight" not in keys, f"{t} stored dense"
            parts = {p: f.get_tensor(f"{t}.{p}") for p in ("shape", "compressed", "bitmask", "row_offsets")}
            dense = original[f"{t}.weight"]
            assert parts["shape"].tolist() == list(dense.shape)
            assert parts["compressed"].numel() == int((dense != 0).sum())
            assert parts["bitmask"].dtype == torch.uint8
            assert parts["bitmask"].shape == (dense.shape[0], (dense.shape[1] + 7) // 8)
            stored = sum(p.numel() * p.element_size() for p in parts.values())
            assert stored < 0.3 * dense.numel() * dense.element_size(), (t, stored)
        assert "classifier.weight" in keys and "bert.embeddings.word_embeddings.weight" in keys  # dense, as before
    config = json.loads((out / "config.json").read_text())
    qc = config["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["sparsity_config"]["format"] == "sparse-bitmask"
    assert sorted(qc["sparsity_config"]["targets"]) == names
    assert summary["targets"]["count"] == 12 and summary["targets"]["ratio"] > 3
    assert (out / "model.safetensors").stat().st_size < (run / "model.safetensors").stat().st_size


def test_side_files_card_and_manifest(pruned_run, exported):
    from huggingface_hub import ModelCard

    from sparsebert.integrity import read_manifest, verify_manifest

    run, _, _ = pruned_run
    out, summary = exported
    tokenizer_files = [p.name for p in run.iterdir() if p.name.startswith("tokenizer") or p.name == "vocab.txt"]
    assert "tokenizer_config.json" in tokenizer_files
    for f in [*tokenizer_files, "README.md", "compressed_tensors_export.json"]:
        assert (out / f).is_file(), f
    assert verify_manifest(out, required=True) and "README.md" in read_manifest(out)
    card = ModelCard.load(out / "README.md")
    sb = card.data.to_dict()["sparsebert"]
    assert sb["export"]["format"] == "compressed-tensors sparse-bitmask"
    assert sb["target_nonzeros"] == summary["targets"]["nnz"] and "compressed-tensors" in card.data.tags
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".ct.")]  # no staging leftovers


def test_sparsebert_loader_uses_the_library(pruned_run, exported):
    from sparsebert.export.compressed_tensors import load_compressed_tensors

    _, original, _ = pruned_run
    out, _ = exported
    model = load_compressed_tensors(out)
    assert "quantization_config" not in model.config.to_dict()
    got = model.state_dict()
    assert all(torch.equal(bits(got[k]), bits(v)) for k, v in original.items())


def test_cli_export_refuses_existing_output_and_overwrites_with_flag(pruned_run, tmp_path):
    run, _, _ = pruned_run
    out = tmp_path / "ct"
    r = runner.invoke(app, ["export", str(run), "--format", "compressed-tensors", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sparse-bitmask" in r.output
    before = (out / "model.safetensors").read_bytes()
    r = runner.invoke(app, ["export", str(run), "--format", "compressed-tensors", "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert (out / "model.safetensors").read_bytes() == before
    r = runner.invoke(app, ["export", str(run), "--format", "compressed-tensors", "--out", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct"]


def test_cli_not_a_model_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["export", str(tmp_path / "empty"), "--format", "compressed-tensors", "--out",
                            str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a model directory" in r.output and str(tmp_path / "empty") in r.output
    assert not (tmp_path / "o").exists()


def test_missing_library_is_a_clear_error(pruned_run, tmp_path, monkeypatch):
    import importlib.util

    run, _, _ = pruned_run
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "compressed_tensors" else real(name, *a))
    r = runner.invoke(app, ["export", str(run), "--format", "compressed-tensors", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "compressed-tensors" in r.output and "sparsebert[ecosystem]" in r.output
    assert not (tmp_path / "o").exists()


def test_library_without_the_bitmask_compressor_is_a_clear_error(pruned_run, tmp_path, monkeypatch):
    from compressed_tensors.compressors import BaseCompressor

    from sparsebert.errors import MissingDependencyError
    from sparsebert.export.compressed_tensors import export_compressed_tensors_run

    def gone(name):
        raise KeyError(name)

    monkeypatch.setattr(BaseCompressor, "get_value_from_registry", staticmethod(gone))
    run, _, _ = pruned_run
    with pytest.raises(MissingDependencyError, match=r"no 'sparse-bitmask' compressor.*<0\.14"):
        export_compressed_tensors_run(run, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_failure_mid_export_leaves_nothing(pruned_run, tmp_path, monkeypatch):
    from compressed_tensors import ModelCompressor

    from sparsebert.export.compressed_tensors import export_compressed_tensors_run

    def boom(self, save_directory):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ModelCompressor, "update_config", boom)
    run, _, _ = pruned_run
    with pytest.raises(RuntimeError, match="disk full"):
        export_compressed_tensors_run(run, tmp_path / "o")
    assert list(tmp_path.iterdir()) == []
