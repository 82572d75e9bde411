"""The bi-encoder head (Sentence-BERT) on a tiny random BERT: finetune, prune (students and teachers), sparse
transfer, reload + evaluate, predict, and the errors of a single-text task."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sparsebert import FinetuneRecipe, PruneRecipe, evaluate, finetune, prune
from sparsebert.biencoder import HEAD_FILE, BiEncoder, BiEncoderError, load_biencoder
from sparsebert.embeddings import sentence_embeddings
from sparsebert.errors import InputError
from sparsebert.metrics import compute_metrics
from sparsebert.recipe import RecipeError, build_recipe
from sparsebert.targets import prunable_linears

WORDS = "the company said shares year percent new one two it was not good bad more than his her".split()
FAST = dict(max_steps=8, batch_size=16, max_length=24, eval_every=4, learning_rate=1e-3, bf16=False, threads=1)


def _pairs(rng: random.Random, n: int) -> list[tuple[str, str, float]]:
    """(a, b, overlap in [0, 1]): b keeps a share of a's words and replaces the rest."""
    out = []
    for _ in range(n):
        a = rng.choices(WORDS, k=rng.randint(4, 9))
        keep = rng.random()
        b = [w if rng.random() < keep else rng.choice(WORDS) for w in a]
        rng.shuffle(b)
        out.append((" ".join(a), " ".join(b), sum(x == y for x, y in zip(sorted(a), sorted(b))) / len(a)))
    return out


def write_stsb(root: Path, n_train: int = 64, n_dev: int = 24) -> Path:
    """An STS-B-layout task (10 columns, score 0-5): the score is 5 x the word overlap of the pair."""
    rng = random.Random(3)
    d = root / "STS-B"
    d.mkdir(parents=True)
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [head] + [f"{i}\tmain-news\tf\t2012\t{i:04d}\tnone\tnone\t{a}\t{b}\t{5 * s:.3f}"
                         for i, (a, b, s) in enumerate(_pairs(rng, n))]
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_mrpc(root: Path, n_train: int = 64, n_dev: int = 24) -> Path:
    """An MRPC-layout task: label 1 (paraphrase) iff the pair overlaps by more than half."""
    rng = random.Random(4)
    d = root / "MRPC"
    d.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + [
            f"{int(s > 0.5)}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, s) in enumerate(_pairs(rng, n))]
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _dev(path: Path) -> tuple[list[str], list[str], list[float]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    if path.parent.name == "STS-B":
        return [r[7] for r in rows], [r[8] for r in rows], [float(r[9]) for r in rows]
    return [r[3] for r in rows], [r[4] for r in rows], [int(r[0]) for r in rows]


def _manual_metrics(run: Path, data: Path, task: str, max_length: int = 24) -> dict[str, float]:
    """The dev metrics computed by hand: each text embedded on its own (embeddings.sentence_embeddings, mean
    pooling), cosine or W [u; v; |u - v|], then sparsebert.metrics."""
    from transformers import AutoModel, AutoTokenizer
    from safetensors.torch import load_file

    encoder, tok = AutoModel.from_pretrained(run), AutoTokenizer.from_pretrained(run)
    a, b, gold = _dev(data / {"stsb": "STS-B", "mrpc": "MRPC"}[task] / "dev.tsv")
    u = sentence_embeddings(encoder, tok, a, max_length=max_length)
    v = sentence_embeddings(encoder, tok, b, max_length=max_length)
    if task == "stsb":
        pred = torch.nn.functional.cosine_similarity(u, v, dim=-1).numpy()
    else:
        head = load_file(str(run / HEAD_FILE))
        pred = (torch.cat([u, v, (u - v).abs()], -1) @ head["weight"].T + head["bias"]).argmax(-1).numpy()
    return compute_metrics(task, pred, np.array(gold))


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("bi")
    data = write_mrpc(write_stsb(root / "glue"))
    out = {"root": root, "data": data}
    for task in ("stsb", "mrpc"):
        out[f"{task}_teacher"] = finetune(FinetuneRecipe(
            model=str(tiny_bert), task=task, data_dir=str(data), out=str(root / f"{task}_teacher"), head="bi-encoder",
            **FAST))
        out[f"{task}_student"] = prune(PruneRecipe(
            teacher=str(root / f"{task}_teacher"), student=str(tiny_bert), task=task, data_dir=str(data),
            out=str(root / f"{task}_sparse"), head="bi-encoder", sparsity=0.9, pruning_events=4, **FAST))
    return out


@pytest.mark.parametrize("task", ["stsb", "mrpc"])
def test_finetune_metrics_are_those_of_separately_encoded_texts(runs, task):
    run = runs["root"] / f"{task}_teacher"
    summary = runs[f"{task}_teacher"]
    manual = _manual_metrics(run, runs["data"], task)
    for k, v in manual.items():
        assert summary["metrics"]["dev"][k] == pytest.approx(v, abs=1e-5), k
    config = json.loads((run / "config.json").read_text())
    assert config["sparsebert_head"] == "bi-encoder" and config["sparsebert_head_pooling"] == "mean"
    assert config["architectures"] == ["BertModel"]  # a plain encoder directory (export, engine)
    if task == "stsb":
        assert config["sparsebert_label_scale"] == 5.0 and config["problem_type"] == "regression"
        assert not (run / HEAD_FILE).exists()
    else:
        assert "sparsebert_label_scale" not in config and config["id2label"] == {"0": "0", "1": "1"}
        assert (run / HEAD_FILE).is_file()
    assert summary["recipe"]["head"] == "bi-encoder" and summary["recipe"]["pooling"] == "mean"
    assert "load_biencoder" in (run / "README.md").read_text()


@pytest.mark.parametrize("task", ["stsb", "mrpc"])
def test_reload_and_evaluate_give_the_same_metrics(runs, task):
    for name, key in ((f"{task}_teacher", f"{task}_teacher"), (f"{task}_sparse", f"{task}_student")):
        run = runs["root"] / name
        got = evaluate(run, task, runs["data"])  # max length from the run's recipe
        want = runs[key]["metrics"]["dev"]
        assert got["dev"] == pytest.approx(want, abs=1e-6), name
        model = load_biencoder(run)  # no task: labels, scale and head from the directory
        assert isinstance(model, BiEncoder) and model.regression == (task == "stsb")


def test_regression_loss_is_mse_of_cosine_to_scaled_label(runs):
    model = load_biencoder(runs["root"] / "stsb_teacher")
    assert model.label_scale == 5.0
    labels = torch.tensor([5.0, 2.5, 0.0])
    assert torch.equal(model.targets(labels), torch.tensor([1.0, 0.5, 0.0]))


@pytest.mark.parametrize("task", ["stsb", "mrpc"])
def test_prune_bi_encoder_student_reaches_exact_sparsity(runs, task):
    run = runs["root"] / f"{task}_sparse"
    summary = runs[f"{task}_student"]
    model = load_biencoder(run)
    for name, lin in prunable_linears(model).items():
        assert float((lin.weight == 0).float().mean()) == pytest.approx(0.9, abs=1e-3), name
    assert summary["sparsity"]["targets"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    recs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["event"] == "train"]
    assert {"prediction", "hard"} <= set(train[-1])  # teacher's output distilled, gold labels mixed in (hardness)
    assert next(r for r in recs if r["event"] == "teacher_cache")["examples"] == 64
    for k, v in _manual_metrics(run, runs["data"], task).items():
        assert summary["metrics"]["dev"][k] == pytest.approx(v, abs=1e-5), k
    if task == "stsb":
        assert json.loads((run / "config.json").read_text())["sparsebert_label_scale"] == 5.0


def test_sparse_transfer_keeps_the_student_zeros(runs, tmp_path):
    sparse = runs["root"] / "stsb_sparse"
    zeros = {n: (lin.weight == 0) for n, lin in prunable_linears(load_biencoder(sparse)).items()}
    prune(PruneRecipe(teacher=str(runs["root"] / "stsb_teacher"), student=str(sparse), task="stsb",
                      data_dir=str(runs["data"]), out=str(tmp_path / "transfer"), head="bi-encoder", sparsity=0.9,
                      sparse_transfer=True, **FAST))
    after = prunable_linears(load_biencoder(tmp_path / "transfer"))
    for name, z in zeros.items():
        assert bool((after[name].weight[z] == 0).all()), name
        assert float((after[name].weight == 0).float().mean()) == pytest.approx(0.9, abs=1e-3)


class Crash(Exception):
    pass


def test_prune_resumes_a_bi_encoder(runs, tiny_bert, tmp_path, monkeypatch):
    """A run that dies after step 6 continues from its state of step 4 and ends bit-exact with an uninterrupted one."""
    from safetensors.torch import load_file

    from sparsebert.io import JsonlLogger

    kw = dict(teacher=str(runs["root"] / "stsb_teacher"), student=str(tiny_bert), task="stsb",
              data_dir=str(runs["data"]), head="bi-encoder", sparsity=0.9, pruning_events=4, save_every=4,
              log_every=1, **FAST)
    whole = prune(PruneRecipe(out=str(tmp_path / "whole"), **kw))
    real = JsonlLogger.log

    def log(self, event, **fields):
        if event == "train" and fields.get("step") == 6:
            raise Crash("simulated crash at step 6")
        real(self, event, **fields)

    with monkeypatch.context() as m:
        m.setattr(JsonlLogger, "log", log)
        with pytest.raises(Crash):
            prune(PruneRecipe(out=str(tmp_path / "cut"), **kw))
    resumed = prune(PruneRecipe(out=str(tmp_path / "cut"), **kw))
    assert resumed["metrics"]["dev"] == whole["metrics"]["dev"]
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    events = [json.loads(line)["event"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert events.count("resume") == 1


def test_predict_scores_pairs(runs, tmp_path):
    from sparsebert.predict import predict

    a, b, _ = _dev(runs["data"] / "STS-B" / "dev.tsv")
    inp = tmp_path / "pairs.jsonl"
    inp.write_text("".join(json.dumps({"text": x, "pair": y}) + "\n" for x, y in zip(a[:6], b[:6])), encoding="utf-8")
    run = runs["root"] / "stsb_teacher"
    rows = predict(run, inp, text_pair_column="pair", max_length=24, engine="off")["rows"]
    model = load_biencoder(run).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run)
    u, v = (sentence_embeddings(model.encoder, tok, t[:6], max_length=24) for t in (a, b))
    cos = torch.nn.functional.cosine_similarity(u, v, dim=-1)
    assert [r["score"] for r in rows] == pytest.approx(cos.tolist(), abs=1e-5)
    assert [r["scaled_score"] for r in rows] == pytest.approx((5 * cos).tolist(), abs=1e-4)
    rows = predict(runs["root"] / "mrpc_teacher", inp, text_pair_column="pair", max_length=24, engine="off")["rows"]
    assert {"line", "label", "score", "probabilities"} <= set(rows[0]) and rows[0]["label"] in ("0", "1")
    with pytest.raises(InputError, match="--text-pair-column"):
        predict(run, inp, max_length=24, engine="off")


def test_single_text_task_is_refused(tiny_bert, tmp_path):
    with pytest.raises(RecipeError, match="--head bi-encoder.*sentence-pair.*sst2"):
        build_recipe(FinetuneRecipe, None, from_command_line=True, model=str(tiny_bert), task="sst2",
                     out=str(tmp_path / "x"), head="bi-encoder")
    with pytest.raises(RecipeError, match="--text-pair-column"):
        build_recipe(FinetuneRecipe, None, model=str(tiny_bert), train="t.csv", dev="d.csv",
                     out=str(tmp_path / "x"), head="bi-encoder")
    with pytest.raises(RecipeError, match="hidden_weight"):
        build_recipe(PruneRecipe, None, student="s", teacher="t", task="stsb", out=str(tmp_path / "x"),
                     head="bi-encoder", hidden_weight=1.0)
    from sparsebert.data.tasks import get_task

    with pytest.raises(BiEncoderError, match="sentence-pair"):
        load_biencoder(tiny_bert, get_task("sst2"))


def test_cli_head_flag(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from sparsebert.cli import app

    res = CliRunner().invoke(app, ["finetune", "--model", str(tiny_bert), "--task", "sst2", "--out",
                                   str(tmp_path / "x"), "--head", "bi-encoder"])
    assert res.exit_code == 2 and "--head bi-encoder" in res.output and "sentence-pair" in res.output


def test_heads_must_match(runs, tiny_bert, tmp_path):
    """A cross-encoder run cannot be a bi-encoder's teacher, nor a bi-encoder a cross-encoder's."""
    root, data = runs["root"], runs["data"]
    with pytest.raises(ValueError, match="bi-encoder"):  # the bi-encoder teacher of a cross-encoder student
        prune(PruneRecipe(teacher=str(root / "stsb_teacher"), student=str(tiny_bert), task="stsb",
                          data_dir=str(data), out=str(tmp_path / "a"), **FAST))
    finetune(FinetuneRecipe(model=str(tiny_bert), task="stsb", data_dir=str(data), out=str(tmp_path / "cross"),
                            **{**FAST, "max_steps": 1}))
    with pytest.raises(BiEncoderError, match="not a bi-encoder"):
        prune(PruneRecipe(teacher=str(tmp_path / "cross"), student=str(tiny_bert), task="stsb", data_dir=str(data),
                          out=str(tmp_path / "b"), head="bi-encoder", **FAST))


def test_sparse_export_of_a_bi_encoder_evaluates_the_same(runs, tmp_path):
    """`sparsebert export` takes a bi-encoder run as a plain encoder; evaluate recognises the export (its config
    says bi-encoder). A classification export lacks the head side file, and says so by name."""
    from sparsebert.export.checkpoint import export_run

    root, data = runs["root"], runs["data"]
    export_run(root / "stsb_sparse", tmp_path / "stsb_export")
    got = evaluate(tmp_path / "stsb_export", "stsb", data)
    assert got["dev"] == pytest.approx(runs["stsb_student"]["metrics"]["dev"], abs=1e-5)
    export_run(root / "mrpc_sparse", tmp_path / "mrpc_export")
    with pytest.raises(BiEncoderError, match=HEAD_FILE):
        evaluate(tmp_path / "mrpc_export", "mrpc", data)
