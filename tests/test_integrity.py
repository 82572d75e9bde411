"""Safe loading of local model directories: manifests verified first, pickle never loaded.

A finetune-style run directory (tiny model + tokenizer + ``MANIFEST.json``) is damaged in each
way a crash, a bad copy or a tamperer would; every loader must name the file and refuse.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsebert.data.tasks import get_task
from sparsebert.integrity import MANIFEST, CorruptCheckpointError, write_manifest
from sparsebert.models import UnsafeCheckpointError, check_local_model, load_for_task, load_tokenizer

SST2 = get_task("sst2")
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def run_template(tiny_bert, tmp_path_factory) -> Path:
    """A run directory as finetune writes it: fine-tuned head with named labels, tokenizer, manifest."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sparsebert.models import label_config

    out = tmp_path_factory.mktemp("integrity") / "run"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, **label_config(SST2))
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    (out / "summary.json").write_text(json.dumps({"stage": "finetune", "task": "sst2"}))
    write_manifest(out)
    return out


@pytest.fixture
def run(run_template, tmp_path) -> Path:
    return Path(shutil.copytree(run_template, tmp_path / "run"))


def _load(path: Path):
    return load_for_task(str(path), SST2, require_head=True)


def test_intact_run_and_directory_without_manifest_load(run, tiny_bert):
    assert _load(run).config.id2label == {0: "0", 1: "1"}
    assert load_tokenizer(str(run)).pad_token_id == 0
    assert not (tiny_bert / MANIFEST).exists()  # e.g. a pip-installed hub model: no manifest, still loads
    load_for_task(str(tiny_bert), SST2)
    assert check_local_model(run) == {"use_safetensors": True}


def test_hub_ids_are_left_to_transformers():
    assert check_local_model("bert-base-uncased") == {} and check_local_model("org/model") == {}


def test_truncated_weights(run):
    file = run / WEIGHTS
    file.write_bytes(file.read_bytes()[:-1000])
    with pytest.raises(CorruptCheckpointError, match="truncated") as err:
        _load(run)
    assert str(err.value).startswith(f"{file}: ")


def test_flipped_byte_same_size(run):
    file = run / WEIGHTS
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    file.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError) as err:
        _load(run)
    assert str(err.value) == f"{file}: sha256 differs from {MANIFEST} (corrupted or altered)"


@pytest.mark.parametrize("name", [WEIGHTS, "config.json", "tokenizer_config.json", "summary.json"])
def test_deleted_file(run, name):
    (run / name).unlink()
    with pytest.raises(CorruptCheckpointError) as err:
        _load(run)
    assert str(err.value) == f"{run / name}: missing (listed in {MANIFEST})"


def test_tokenizer_load_checks_tokenizer_files_not_weights(run):
    (run / WEIGHTS).write_bytes(b"x")
    load_tokenizer(str(run))  # weights are checked by the model load
    (run / "tokenizer.json").write_text("{}")
    with pytest.raises(CorruptCheckpointError, match="tokenizer.json"):
        load_tokenizer(str(run))


@pytest.mark.parametrize("content", ["{not json", '{"format": "other", "files": {}}', '{"format": "sparsebert-manifest"}',
                                     '["files"]'])
def test_corrupt_manifest(run, content):
    (run / MANIFEST).write_text(content)
    with pytest.raises(CorruptCheckpointError) as err:
        _load(run)
    assert str(err.value).startswith(f"{run / MANIFEST}: not a valid manifest")


def test_edited_config_is_caught(run):
    cfg = json.loads((run / "config.json").read_text())
    cfg["id2label"] = {"0": "1", "1": "0"}
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CorruptCheckpointError, match="config.json: .* bytes|config.json: sha256"):
        _load(run)


# --- pickle is refused, not unpickled -------------------------------------------------------------

class _Payload:
    """Unpickling this object creates ``marker`` (stands for any code an attacker would run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_pickle(marker: Path) -> bytes:
    buf = io.BytesIO()
    pickle.dump({"bert.embeddings.word_embeddings.weight": _Payload(marker)}, buf)
    return buf.getvalue()


def test_payload_is_live(tmp_path):
    """Control: the payload does run code when unpickled (so the refusal tests mean something)."""
    marker = tmp_path / "control"
    fh = pickle.loads(_evil_pickle(marker))["bert.embeddings.word_embeddings.weight"]
    fh.close()
    assert marker.exists()


@pytest.fixture
def pickle_run(run, tmp_path) -> tuple[Path, Path]:
    """The run with its safetensors replaced by a malicious ``pytorch_model.bin`` (manifest rewritten)."""
    marker = tmp_path / "PWNED"
    (run / WEIGHTS).unlink()
    (run / "pytorch_model.bin").write_bytes(_evil_pickle(marker))
    write_manifest(run)  # the manifest matches: the file is what the author wrote, still not loaded
    return run, marker


def test_pickle_checkpoint_is_refused_by_load_for_task(pickle_run):
    run, marker = pickle_run
    with pytest.raises(UnsafeCheckpointError) as err:
        _load(run)
    assert str(err.value).startswith(f"{run / 'pytorch_model.bin'}: pickle-based checkpoint refused: convert to safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "weights.pth", "pytorch_model-00001-of-00002.bin"])
def test_other_pickle_files_without_manifest_are_refused(run, tmp_path, name):
    marker = tmp_path / "PWNED"
    (run / WEIGHTS).unlink()
    (run / MANIFEST).unlink()
    (run / name).write_bytes(_evil_pickle(marker))
    with pytest.raises(UnsafeCheckpointError, match=f"{name}: pickle-based checkpoint refused"):
        _load(run)
    assert not marker.exists()


def test_pickle_checkpoint_is_refused_by_every_loader(pickle_run):
    from sparsebert.cli import app
    from sparsebert.data.augment import Augmenter
    from sparsebert.export.checkpoint import export_run, load_any
    from sparsebert.report import report_run

    run, marker = pickle_run
    for load in (load_any, report_run, Augmenter):
        with pytest.raises(UnsafeCheckpointError, match="pickle-based checkpoint refused"):
            load(str(run))
    with pytest.raises(UnsafeCheckpointError):
        export_run(run, run.parent / "export")
    for args in (["evaluate", str(run), "--data-dir", str(run)], ["report", str(run)],
                 ["export", str(run), "--out", str(run.parent / "export")]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and "pickle-based checkpoint refused: convert to safetensors" in r.output, r.output
    assert not marker.exists() and not (run.parent / "export").exists()


def test_safetensors_beside_a_pickle_loads_the_safetensors(run, tmp_path):
    marker = tmp_path / "PWNED"
    (run / "pytorch_model.bin").write_bytes(_evil_pickle(marker))
    os.remove(run / MANIFEST)
    _load(run)
    assert not marker.exists()


def test_directory_without_weights(run):
    (run / WEIGHTS).unlink()
    (run / MANIFEST).unlink()
    from sparsebert.models import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no model weights"):
        _load(run)


def test_src_never_unpickles():
    """No torch.load / pickle.load in the package; torch.load would need weights_only=True."""
    import re

    import sparsebert

    root = Path(sparsebert.__file__).parent
    for f in root.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{f}: {m.group(0)}"
        assert not re.search(r"\bpickle\.loads?\(|\bdill\.|\bjoblib\.load\(", text), f
