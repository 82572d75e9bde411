"""Tiny end-to-end finetune -> prune -> evaluate -> report with a random 2-layer BERT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification

from sparsebert import FinetuneRecipe, PruneRecipe, evaluate, finetune, prune, report_run
from sparsebert.targets import prunable_linears

WORDS = "the company said shares year percent new one two it was not good bad".split()


def write_sst2(root: Path, n_train: int = 96, n_dev: int = 32) -> Path:
    """A synthetic SST-2-layout task: label 1 iff the sentence contains 'good'."""
    import random

    rng = random.Random(0)
    d = root / "SST-2"
    d.mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            words = rng.choices(WORDS[:-3], k=rng.randint(3, 12))
            label = i % 2
            words.insert(rng.randint(0, len(words)), "good" if label else "bad")
            rows.append(f"{' '.join(words)}\t{label}")
        (d / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


FAST = dict(max_steps=12, batch_size=16, max_length=32, eval_every=6, learning_rate=1e-3, bf16=False)


@pytest.fixture(scope="module")
def pipeline(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    data = write_sst2(root / "glue")
    teacher = finetune(FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(root / "teacher"), **FAST))
    sparse = prune(PruneRecipe(teacher=str(root / "teacher"), student=str(tiny_bert), task="sst2", data_dir=str(data),
                               out=str(root / "sparse"), sparsity=0.95, pruning_events=5, **FAST))
    return root, data, teacher, sparse


def test_outputs_load_with_plain_transformers(pipeline):
    root, *_ = pipeline
    for name in ("teacher", "sparse"):
        d = root / name
        assert (d / "model.safetensors").is_file() and not list(d.glob("*.bin"))
        model = AutoModelForSequenceClassification.from_pretrained(d)
        assert model.config.num_labels == 2
        for f in ("summary.json", "recipe.yaml", "log.jsonl"):
            assert (d / f).is_file(), f


def test_final_sparsity_exact_and_rest_dense(pipeline):
    root, *_ = pipeline
    model = AutoModelForSequenceClassification.from_pretrained(root / "sparse")
    targets = prunable_linears(model)
    for name, lin in targets.items():
        s = float((lin.weight == 0).sum()) / lin.weight.numel()
        assert abs(s - 0.95) < 1e-3, (name, s)
        assert int((lin.bias == 0).sum()) == 0, f"{name} bias must stay dense"
    target_ids = {id(l.weight) for l in targets.values()}
    for name, p in model.named_parameters():
        if id(p) not in target_ids and p.numel() > 1:
            assert float((p == 0).float().mean()) < 0.5, f"{name} should be dense"


def test_summary_contents(pipeline):
    root, _, teacher, sparse = pipeline
    s = json.loads((root / "sparse" / "summary.json").read_text())
    assert s == json.loads(json.dumps(sparse, default=str))
    assert s["sparsity"]["targets"]["sparsity"] == pytest.approx(0.95, abs=1e-3)
    assert len(s["sparsity"]["matrices"]) == 12
    f = s["sparsity"]["flops_per_token"]
    assert f["linear_reduction"] == pytest.approx(20.0, rel=0.02)
    assert s["pruning_events"] == 5 and s["steps"] == 12
    assert "accuracy" in s["metrics"]["dev"] and s["wall_seconds"] > 0
    assert {"torch", "transformers", "sparsebert"} <= set(s["environment"])
    assert s["recipe"]["sparsity"] == 0.95
    assert yaml.safe_load((root / "sparse" / "recipe.yaml").read_text())["sparsity"] == 0.95
    # finetune keeps the best of its evaluations: best_step is the argmax of its eval history
    history = teacher["eval_history"]
    assert [h["step"] for h in history] == [6, 12]
    assert teacher["best_step"] == max(history, key=lambda h: h["score"])["step"]


def test_log_has_loss_terms_and_schedule(pipeline):
    root, *_ = pipeline
    recs = [json.loads(l) for l in (root / "sparse" / "log.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["event"] == "train"]
    # the default loss: KL·T² and the gold labels inside the prediction term (hardness 0.5)
    assert {"prediction", "hard", "share/prediction", "target_sparsity", "lr"} <= set(train[-1])
    assert "attention" not in train[-1] and "hidden" not in train[-1]
    sparsities = [r["target_sparsity"] for r in train]
    assert sparsities == sorted(sparsities) and sparsities[-1] == 0.95
    schedule = next(r for r in recs if r["event"] == "schedule")
    assert schedule["criterion"] == "magnitude" and schedule["end_step"] <= 12
    assert next(r for r in recs if r["event"] == "teacher_cache")["examples"] == 96
    assert sum(1 for r in recs if r["event"] == "eval") == 2


def test_evaluate_and_report_agree_with_summary(pipeline):
    root, data, _, sparse = pipeline
    metrics = evaluate(root / "sparse", "sst2", data, max_length=32)
    assert metrics["dev"]["accuracy"] == pytest.approx(sparse["metrics"]["dev"]["accuracy"], abs=1e-6)
    rep = report_run(root / "sparse", seq_len=32)
    assert rep["targets"]["nnz"] == sparse["sparsity"]["targets"]["nnz"]
    assert rep["targets"]["compression"] == pytest.approx(20.0, rel=0.02)


def test_failed_run_leaves_no_output(tiny_bert, tmp_path, monkeypatch):
    data = write_sst2(tmp_path / "glue")
    import importlib

    ft = importlib.import_module("sparsebert.stages.finetune")  # the module; `sparsebert.finetune` is the function

    def boom(**kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ft, "fit", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        finetune(FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(tmp_path / "t"), **FAST))
    assert not (tmp_path / "t").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.partial")]


def test_teacher_with_other_labels_is_rejected(pipeline, tiny_bert, tmp_path):
    root, data, *_ = pipeline
    with pytest.raises(ValueError, match="labels"):
        prune(PruneRecipe(teacher=str(root / "teacher"), student=str(tiny_bert), task="mnli", data_dir=str(data),
                          out=str(tmp_path / "x"), **FAST))


def test_demo_orchestration_with_tiny_model(tiny_bert, tmp_path):
    """run_demo end to end on a fake vaderSentiment sdist (the real one runs in `make demo`)."""
    from test_demo_data import FAKE, _fake_sdist, _lines

    from sparsebert.demo import run_demo

    sdist = _fake_sdist(tmp_path, _lines(FAKE))
    rows = run_demo(sdist, tmp_path / "demo", model=str(tiny_bert), n_train=24, n_dev=8, max_length=32,
                    teacher_epochs=1, prune_epochs=2, sha256=None, speed_budget_s=0.0)
    assert rows["sparse"]["target_sparsity"] == pytest.approx(0.95, abs=1e-3)
    speed = rows["speed"]  # the closing interleaved table: the student on the engine beside the dense teacher
    for batch in (1, 32):
        rates = speed["batches"][batch]["seq_per_s"]
        assert "student: engine" in rates and "teacher: dense-fp32" in rates and all(v > 0 for v in rates.values())
        best = speed["batches"][batch]["fastest_dense"]
        assert rates[best] == max(v for k, v in rates.items() if k.startswith("teacher: "))
    assert rows["teacher"]["target_sparsity"] < 0.01
    labels = [int(line.rsplit("\t", 1)[1]) for line in
              (tmp_path / "demo" / "data" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    floor, t, sp = rows["majority_class_accuracy"], rows["teacher"]["accuracy"], rows["sparse"]["accuracy"]
    assert floor == max(labels.count(0), labels.count(1)) / len(labels)
    assert rows["gain_retention"] == pytest.approx((sp - floor) / max(t - floor, 1e-9))
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_demo(sdist, tmp_path / "demo", model=str(tiny_bert), sha256=None)


def test_teacher_label_order_is_checked(pipeline):
    from transformers import AutoConfig

    from sparsebert.data.tasks import get_task
    from sparsebert.models import check_head_labels

    root, *_ = pipeline
    cfg = AutoConfig.from_pretrained(root / "teacher")
    check_head_labels("t", cfg, get_task("sst2"))  # as written by finetune: passes
    cfg.id2label = {0: "1", 1: "0"}  # same names, swapped ids
    with pytest.raises(ValueError, match="by id"):
        check_head_labels("t", cfg, get_task("sst2"))
    cfg.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    with pytest.warns(UserWarning, match="unnamed"):
        check_head_labels("t", cfg, get_task("sst2"))


def test_prune_resolves_the_task_once_and_reads_each_split_once(tiny_bert, tmp_path, monkeypatch):
    """One stage looks the task name up once (begin_stage) and passes the TaskSpec down; the training
    and dev files are each read once."""
    import sparsebert.data.glue as glue
    import sparsebert.data.tasks as tasks

    data = write_sst2(tmp_path / "glue", n_train=32, n_dev=16)
    finetune(FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(tmp_path / "t"), **FAST))
    lookups, reads = [], []
    real_norm, real_read = tasks._normalize, glue.read_glue_split
    monkeypatch.setattr(tasks, "_normalize", lambda name: lookups.append(name) or real_norm(name))
    monkeypatch.setattr(glue, "read_glue_split", lambda spec, d, split, **kw: reads.append(split) or real_read(spec, d, split, **kw))
    prune(PruneRecipe(teacher=str(tmp_path / "t"), student=str(tiny_bert), task="sst2", data_dir=str(data),
                      out=str(tmp_path / "s"), sparsity=0.5, **FAST))
    assert lookups == ["sst2"], lookups
    assert sorted(reads) == ["dev", "train"], reads
