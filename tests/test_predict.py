"""`sparsebert predict` on a real TSV (SST-2 dev sentences) with a small pruned classifier: labels and
probabilities as the transformers model gives them, on the engine and on the fallback path (a missing
compiler falls back with a notice), embeddings, and clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import GLUE, needs_glue
from sparsebert.cli import app
from tiny import make_tiny_model

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    """A tiny BERT sentiment classifier (random weights, 90 % of every encoder matrix zero) with labels."""
    from transformers import AutoModelForSequenceClassification

    d = make_tiny_model(tmp_path_factory.mktemp("clf"), "bert", layers=2, hidden=32, heads=4)
    model = AutoModelForSequenceClassification.from_pretrained(
        d, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and ".layer." in name:
                p.normal_(0, 0.3).mul_((torch.rand_like(p) > 0.9).float())
            elif p.dim() == 2:
                p.normal_(0, 0.3)
        # centre the head on sentence-like input so that both labels occur (the checks below say something)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(d)
        words = "the film was not a good one and the actors are new but it is more than that".split()
        texts = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
        logits = model.eval()(**tok(texts, padding=True, return_tensors="pt")).logits
        model.classifier.bias[1] -= float((logits[:, 1] - logits[:, 0]).median())
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def sst2_tsv(tmp_path_factory) -> Path:
    """The first 40 sentences of the real SST-2 dev set, as a user's TSV (column "sentence")."""
    if not GLUE.is_dir():
        pytest.skip(f"real GLUE data not found at {GLUE}")
    lines = (GLUE / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:41]
    path = tmp_path_factory.mktemp("in") / "reviews.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reference(model_dir: Path, texts: list[str]) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**enc).logits, -1)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@needs_glue
@pytest.mark.parametrize("engine", ["on", "off"])
def test_predict_a_real_tsv_matches_the_model(classifier, sst2_tsv, tmp_path, engine):
    out = tmp_path / "pred.jsonl"
    r = invoke("predict", classifier, "--input", sst2_tsv, "--text-column", "sentence", "--json", out,
               "--max-length", "64", "--batch-size", "7", "--engine", engine)
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    texts = [ln.split("\t")[0] for ln in sst2_tsv.read_text(encoding="utf-8").splitlines()[1:]]
    assert [row["line"] for row in rows] == list(range(2, 42))  # input order kept despite batching by length
    ref = _reference(classifier, texts)
    got = torch.tensor([[row["probabilities"]["negative"], row["probabilities"]["positive"]] for row in rows])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    assert [row["label"] for row in rows] == [["negative", "positive"][int(k)] for k in ref.argmax(-1)]
    assert len({row["label"] for row in rows}) == 2  # the check says something: both labels occur
    assert "sequences/s" in r.output


@needs_glue
def test_missing_compiler_falls_back_with_a_notice(classifier, sst2_tsv, tmp_path, monkeypatch):
    import sparsebert.runtime.build as build

    monkeypatch.setattr(build, "_state", {"module": None, "error": "no C++ compiler (test)"})
    out = tmp_path / "pred.jsonl"
    r = invoke("predict", classifier, "--input", sst2_tsv, "--text-column", "sentence", "--json", out,
               "--max-length", "64")
    assert r.exit_code == 0, r.output
    assert "notice: the native engine does not cover this model" in r.output and "no C++ compiler (test)" in r.output
    assert "sparse runtime" in r.output and len(_rows(out)) == 40
    r = invoke("predict", classifier, "--input", sst2_tsv, "--text-column", "sentence", "--engine", "on")
    assert r.exit_code == 2 and "no C++ compiler (test)" in r.output


@needs_glue
def test_embeddings_are_the_normalised_mean_of_the_last_hidden_states(classifier, sst2_tsv, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "emb.jsonl"
    r = invoke("predict", classifier, "--input", sst2_tsv, "--text-column", "sentence", "--json", out,
               "--embeddings", "--max-length", "64")
    assert r.exit_code == 0, r.output
    got = torch.tensor([row["embedding"] for row in _rows(out)])
    texts = [ln.split("\t")[0] for ln in sst2_tsv.read_text(encoding="utf-8").splitlines()[1:]]
    tok = AutoTokenizer.from_pretrained(classifier)
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        h = AutoModel.from_pretrained(classifier).eval()(**enc).last_hidden_state
    m = enc["attention_mask"][..., None].float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_bad_inputs_are_one_line_errors(classifier, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text,other\nfine film,1\n,2\n", encoding="utf-8")
    r = invoke("predict", classifier, "--input", src)
    assert r.exit_code == 2 and f"{src}:3: empty or whitespace-only text in column 'text' (--text-column)" in r.output
    r = invoke("predict", classifier, "--input", src, "--text-column", "review")
    assert r.exit_code == 2 and "missing column 'review' (--text-column)" in r.output
    good = tmp_path / "ok.jsonl"
    good.write_text('{"text": "fine film"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n", encoding="utf-8")
    r = invoke("predict", classifier, "--input", good, "--json", out)
    assert r.exit_code == 2 and "--overwrite" in r.output and out.read_text() == "keep me\n"
    r = invoke("predict", classifier, "--input", good, "--engine", "maybe")
    assert r.exit_code == 2 and "--engine must be one of" in r.output
    r = invoke("predict", tmp_path / "nowhere", "--input", good)
    assert r.exit_code == 2 and "nowhere" in r.output and len(r.output.strip().splitlines()) == 1
    r = invoke("predict", classifier, "--input", good)  # printed to stdout
    assert r.exit_code == 0 and json.loads(r.stdout.strip().splitlines()[-1])["line"] == 1


def test_max_length_defaults_to_what_the_model_was_trained_with(classifier, tmp_path):
    """Without --max-length, predict truncates at the run's recorded max length (its recipe.yaml, as evaluate
    reads it), and at 128 where the run recorded none; --help says so."""
    import shutil

    from sparsebert.predict import predict

    src = tmp_path / "in.jsonl"
    long_text = " ".join(["the film was not a good one and the actors are new"] * 30)  # > 128 tokens
    src.write_text(json.dumps({"text": long_text}) + "\n" + json.dumps({"text": "fine film"}) + "\n", encoding="utf-8")
    assert predict(classifier, src)["max_length"] == 128  # no recipe.yaml: the stated fallback
    trained = tmp_path / "trained"
    shutil.copytree(classifier, trained)
    (trained / "recipe.yaml").write_text("max_length: 16\n", encoding="utf-8")
    res = predict(trained, src)
    assert res["max_length"] == 16
    assert res["rows"] == predict(trained, src, max_length=16)["rows"]
    assert res["rows"] != predict(trained, src, max_length=128)["rows"]  # the long text is cut differently
    assert predict(trained, src, max_length=64)["max_length"] == 64  # an explicit value wins
    out = tmp_path / "cli.jsonl"
    r = invoke("predict", trained, "--input", src, "--json", out)
    assert r.exit_code == 0, r.output
    assert [row["probabilities"] for row in _rows(out)] == [row["probabilities"] for row in res["rows"]]
    r = invoke("predict", "--help")
    assert "trained with" in r.output and "128" in r.output
