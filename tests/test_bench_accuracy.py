"""``sparsebert bench --task``: each path's dev metric, checked against ``sparsebert.evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsebert.bench.accuracy import INT8_TOLERANCE_POINTS, EvalData, accuracy_result, load_eval_data
from sparsebert.bench.render import markdown
from sparsebert.bench.run import bench_model
from sparsebert.cli import app
from sparsebert.data.tasks import get_task
from sparsebert.errors import InputError
from test_pipeline import write_sst2

runner = CliRunner()
SEQ = 16  # shorter than some synthetic sentences: truncation must match evaluate's
CHEAP = ("dense-fp32", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime", "sparse-runtime-int8")


@pytest.fixture(autouse=True)
def _own_kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBERT_KERNEL_CACHE", str(tmp_path / "kernel_choices.json"))


@pytest.fixture(scope="module")
def sst2_model(tiny_bert, tmp_path_factory):
    """A 90 %-sparse tiny BERT with an SST-2 head (random), its tokenizer, and a 37-example dev set."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sparsebert.bench.synthetic import magnitude_prune_
    from sparsebert.models import label_config

    root = tmp_path_factory.mktemp("acc")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, **label_config(get_task("sst2"))).eval()
    magnitude_prune_(model, 0.9)
    model.save_pretrained(root / "run")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(root / "run")
    return root / "run", write_sst2(root / "glue", n_train=4, n_dev=37)


def test_dev_metric_per_path_matches_evaluate(sst2_model):
    from transformers import AutoModelForSequenceClassification

    from sparsebert.stages.evaluate import evaluate

    run, glue = sst2_model
    data = load_eval_data(run, "sst2", glue, max_length=SEQ)
    assert data.at_max_length["dev"] > 0  # some examples are truncated
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    res = bench_model(model, batches=(5,), seq=SEQ, threads=1, paths=(*CHEAP, "deepsparse"), eval_data=data,
                      timing=False)
    acc = res["accuracy"]
    by = {r["path"]: r for r in acc["paths"]}
    assert list(by) == [*CHEAP, "deepsparse"], acc["paths"]
    assert all(by[p]["status"] == "ok" for p in CHEAP), acc["paths"]
    assert by["deepsparse"]["status"] == "skipped" and "own process" in by["deepsparse"]["reason"]
    assert any(w.startswith("accuracy: deepsparse has no dev metric") for w in res["warnings"])
    # the reference is what sparsebert.evaluate reports (dynamic padding, length-sorted batches of 128)
    assert by["dense-fp32"]["metrics"] == evaluate(run, "sst2", glue, max_length=SEQ)
    assert acc["examples"] == {"dev": 37} and acc["batch"] == 5 and acc["seq"] == SEQ  # 37 = 7 x 5 + 2 (filled rows)
    assert by["dense-fp32"]["agreement_dense_fp32"] == {"dev": 1.0}
    assert by["dense-fp32"]["vs_dense_fp32_points"] == {"dev": {"accuracy": 0.0}}
    for path in ("onnxruntime-fp32", "sparse-runtime"):  # fp32 paths: same logits, same predictions
        assert by[path]["max_abs_diff_logits"]["dev"] < 1e-4 and by[path]["agreement_dense_fp32"]["dev"] == 1.0
    assert by["sparse-runtime"]["vs_sparse_runtime_points"] == {"dev": {"accuracy": 0.0}}
    int8 = by["sparse-runtime-int8"]
    assert int8["max_abs_diff_logits"]["dev"] < 0.1 and 0.0 <= int8["agreement_dense_fp32"]["dev"] <= 1.0
    check = acc["int8_check"]
    assert check["metric"] == "accuracy" and check["tolerance_points"] == INT8_TOLERANCE_POINTS
    conv = res["conversions_int8"][str(5 * SEQ)]["counts"]
    assert check["int8_matrices"] == conv.get("sbk-int8", 0) and check["matrices"] == sum(conv.values()) == 12
    if check["int8_matrices"]:  # int8 kernels ran: the logits differ a little from fp32's
        assert int8["max_abs_diff_logits"]["dev"] > 0
    else:  # without the compiled extension no int8 kernel competes, and the check says so
        assert any("chose no int8 kernel" in w for w in res["warnings"])
    assert check["delta_points"] == pytest.approx(int8["vs_sparse_runtime_points"]["dev"]["accuracy"])
    # nothing timed; the paths were built and checked on the random inputs
    rows = res["results"]["5"]
    assert all(r["times_ms"] == [] for r in rows) and res["settings"]["timed"] is False
    assert not any("best dense" in w for w in res["warnings"])  # no timing, no reference paths to warn about
    by_build = {r["path"]: r for r in rows}
    assert all(by_build[p]["status"] == "ok" for p in CHEAP)
    md = markdown({"command": "x", **res})
    assert "## dev metric per path: sst2 (dev 37 examples" in md and "Timing not measured" in md
    assert "**sparse-int8 check: sparse-runtime-int8 (" in md and "accuracy on dev is" in md and "median ms" not in md
    assert "⚠ deepsparse" in md and by_build["deepsparse"]["skipped"] == "not run: timing off (--no-timing)"


def test_bench_cli_task_times_and_evaluates(sst2_model, tmp_path):
    run, glue = sst2_model
    args = ["bench", str(run), "--task", "sst2", "--data-dir", str(glue), "--max-eval-examples", "11",
            "--batch-size", "1", "--batch-size", "4", "--max-length", str(SEQ), "--threads", "1", "--warmup", "0",
            "--min-iters", "1",
            "--max-iters", "1", "--no-sizes", "--path", "dense-fp32", "--path", "sparse-runtime",
            "--json", str(tmp_path / "res.json")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "res.json").read_text())
    md = (tmp_path / "res.md").read_text()
    acc = res["accuracy"]
    assert acc["batch"] == 4 and acc["examples"] == {"dev": 11} and "--task sst2" in res["command"]
    by = {row["path"]: row for row in acc["paths"]}
    assert by["sparse-runtime"]["agreement_dense_fp32"] == {"dev": 1.0}
    assert acc["int8_check"] is None  # no int8 path ran
    for rows in res["results"].values():  # timed as before, after the dev set ran through the same callables
        timed = {row["path"]: row for row in rows if row["median_ms"]}
        assert set(timed) == {"dense-fp32", "sparse-runtime"} and timed["sparse-runtime"]["max_abs_diff"] < 1e-4
    assert "median ms" in md and "| sparse-runtime | " in md and "## dev metric per path" in md
    assert f"the model was trained" not in md.lower() and "dev metric per path" in r.output


@pytest.mark.parametrize("extra, message", [
    (["--task", "nope", "--data-dir", "DATA"], "unknown GLUE task 'nope'"),
    (["--task", "sst2", "--data-dir", "MISSING"], "data directory does not exist"),
    (["--task", "rte", "--data-dir", "DATA"], "RTE"),  # the glue dir has no RTE/
    (["--data-dir", "DATA"], "go with --task"),
    (["--no-timing"], "go with --task"),
])
def test_bench_task_errors_are_clear(sst2_model, tmp_path, extra, message):
    run, glue = sst2_model
    extra = [str(glue) if a == "DATA" else str(tmp_path / "missing") if a == "MISSING" else a for a in extra]
    r = runner.invoke(app, ["bench", str(run), "--max-length", str(SEQ), "--path", "dense-fp32", "--no-sizes", *extra])
    assert r.exit_code == 2 and message in r.output, r.output


def test_a_model_without_head_or_without_data_is_refused(tiny_bert, sst2_model):
    from transformers import AutoModel, AutoModelForSequenceClassification

    run, glue = sst2_model
    data = load_eval_data(run, "sst2", glue, max_length=SEQ)
    with pytest.raises(InputError, match="not a sequence-classification model"):
        bench_model(AutoModel.from_pretrained(tiny_bert), batches=(2,), seq=SEQ, paths=("dense-fp32",),
                    eval_data=data, timing=False)
    stsb = EvalData(get_task("stsb"), {}, 0, SEQ, "none", {})
    with pytest.raises(InputError, match="head has 2 output labels, task stsb needs 1"):
        bench_model(AutoModelForSequenceClassification.from_pretrained(run), batches=(2,), seq=SEQ,
                    paths=("dense-fp32",), eval_data=stsb, timing=False)
    with pytest.raises(InputError, match="measures nothing"):
        bench_model(AutoModel.from_pretrained(tiny_bert), batches=(2,), seq=SEQ, paths=("dense-fp32",), timing=False)
    r = runner.invoke(app, ["bench", "--synthetic", "minilm", "--task", "sst2", "--data-dir", str(glue)])
    assert r.exit_code == 2 and "not --synthetic" in r.output


def test_int8_check_and_missing_paths_are_reported(sst2_model):
    run, glue = sst2_model
    data = load_eval_data(run, "sst2", glue, max_length=SEQ, max_examples=10)
    labels = np.array([f["labels"] for f in data.splits["dev"]])
    right = np.stack([labels == 0, labels == 1], axis=1).astype(np.float32)  # predicts every label
    wrong = right.copy()
    wrong[0] = wrong[0, ::-1]  # one of 10 flipped: -10 points
    acc, warnings = accuracy_result(data, {"dense-fp32": {"dev": right}, "sparse-runtime": {"dev": right},
                                           "sparse-runtime-int8": {"dev": wrong}},
                                    {"openvino-int8": "failed: RuntimeError: boom"},
                                    ["dense-fp32", "openvino-int8", "sparse-runtime", "sparse-runtime-int8"],
                                    batch=4, seq=SEQ)
    by = {r["path"]: r for r in acc["paths"]}
    assert by["dense-fp32"]["metrics"] == {"dev": {"accuracy": 1.0}}
    assert by["sparse-runtime-int8"]["agreement_dense_fp32"] == {"dev": pytest.approx(0.9)}
    assert by["sparse-runtime-int8"]["vs_sparse_runtime_points"]["dev"]["accuracy"] == pytest.approx(-10.0)
    assert by["openvino-int8"]["status"] == "failed" and acc["int8_check"]["within"] is False
    assert any("openvino-int8 has no dev metric (failed: RuntimeError: boom)" in w for w in warnings)
    assert any("sparse-runtime-int8 accuracy on dev is -10.00 points" in w for w in warnings)
    data.trained_max_length = 64
    _, warnings = accuracy_result(data, {}, {}, [], batch=4, seq=SEQ)
    assert any("max_length 64" in w for w in warnings)


def test_padded_arrays_fixed_shape_and_too_long_example_named():
    from sparsebert.bench.accuracy import padded_arrays

    feats = [{"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "labels": 1},
             {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": 0}]
    a = padded_arrays(feats, 4, pad_token_id=0)
    assert a["input_ids"].tolist() == [[2, 7, 3, 0], [2, 3, 0, 0]]
    assert a["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert a["token_type_ids"].tolist() == [[0] * 4, [0] * 4] and "labels" not in a
    with pytest.raises(ValueError, match="example 0 has 3 tokens, more than seq=2"):
        padded_arrays(feats, 2, pad_token_id=0)


def test_eval_logits_are_what_evaluate_scores(sst2_model):
    """``eval_logits`` (used by studies/sst2_knowledge/paired_test.py) gives, per split, the logits and labels ``evaluate``
    turns into its metrics: argmax agreement with the labels is exactly evaluate's accuracy."""
    import numpy as np

    from sparsebert.stages.evaluate import eval_logits, evaluate

    run, glue = sst2_model
    out = eval_logits(run, "sst2", glue, max_length=SEQ)
    logits, labels = out["dev"]
    assert list(out) == ["dev"] and logits.shape == (37, 2) and labels.shape == (37,)
    assert float(np.mean(logits.argmax(-1) == labels)) == evaluate(run, "sst2", glue, max_length=SEQ)["dev"]["accuracy"]


# ------------------------------------------------------------------------------------------------
# Bi-encoders (each text on its own, mean pooling, the saved head) and the engine check (issue 31)


@pytest.fixture(scope="module")
def bi_runs(tiny_bert, tmp_path_factory):
    """Saved 90 %-sparse tiny bi-encoders (random weights): STS-B (cosine) and MRPC (saved W [u; v; |u - v|]
    head), with their dev sets."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from sparsebert.bench.synthetic import magnitude_prune_
    from sparsebert.biencoder import BiEncoder
    from sparsebert.models import label_config
    from test_biencoder import write_mrpc, write_stsb

    root = tmp_path_factory.mktemp("bi")
    out = {}
    for task, write in (("stsb", write_stsb), ("mrpc", write_mrpc)):
        encoder = AutoModel.from_pretrained(tiny_bert).eval()
        magnitude_prune_(encoder, 0.9)
        spec = get_task(task)
        for key, value in label_config(spec).items():
            setattr(encoder.config, key, value)
        bi = BiEncoder(encoder, regression=spec.is_regression, num_labels=spec.num_labels, label_scale=5.0).eval()
        glue = write(root / f"glue-{task}", n_train=4, n_dev=23)
        tok = AutoTokenizer.from_pretrained(tiny_bert)
        if bi.classifier is not None:  # centre the head on the dev pairs so that both classes are predicted
            rows = [ln.split("\t") for ln in (glue / "MRPC" / "dev.tsv").read_text().splitlines()[1:]]
            a, b = (tok([r[k] for r in rows], padding=True, return_tensors="pt") for k in (3, 4))
            with torch.no_grad():
                logits = bi(**a, input_ids_b=b["input_ids"], attention_mask_b=b["attention_mask"]).logits
                bi.classifier.bias[1] -= float((logits[:, 1] - logits[:, 0]).median())
        bi.save_pretrained(root / task)
        tok.save_pretrained(root / task)
        out[task] = (root / task, glue)
    return out


@pytest.mark.parametrize("task", ["stsb", "mrpc"])
def test_bi_encoder_dev_metric_per_path_matches_evaluate(bi_runs, task):
    """A saved bi-encoder runs through the bench paths text by text (mean pooling of each path's hidden states,
    the saved head): dense-fp32's metric is what `sparsebert evaluate` reports, the engine's within the engine
    check, and each path's embeddings are compared with dense-fp32's."""
    from sparsebert.bench.accuracy import ENGINE_TOLERANCE_POINTS
    from sparsebert.export.checkpoint import load_any
    from sparsebert.runtime.build import load_kernel
    from sparsebert.stages.evaluate import evaluate

    run, glue = bi_runs[task]
    data = load_eval_data(run, task, glue, max_length=SEQ)
    assert data.head == "bi-encoder" and "input_ids_b" in data.splits["dev"][0]
    model = load_any(run)
    assert type(model).__name__ == "BertModel"
    paths = ("dense-fp32", "sparse-runtime") + (("engine", "engine-int8") if load_kernel() is not None else ())
    res = bench_model(model, batches=(4,), seq=SEQ, threads=1, paths=paths, eval_data=data, timing=False)
    acc = res["accuracy"]
    by = {r["path"]: r for r in acc["paths"]}
    assert acc["head"] == "bi-encoder" and acc["examples"] == {"dev": 23}  # 23 = 5 x 4 + 3 (filled rows)
    assert all(by[p]["status"] == "ok" for p in paths), acc["paths"]
    expect = evaluate(run, task, glue, max_length=SEQ)["dev"]
    got = by["dense-fp32"]["metrics"]["dev"]
    assert set(got) == set(expect) and all(got[m] == pytest.approx(expect[m], abs=1e-6) for m in expect)
    assert 0.0 < abs(got[acc["main_metric"]]) < 1.0  # a metric that can move (not a constant prediction)
    for path in paths[1:]:
        cos = by[path]["embedding_cosine_min_dense_fp32"]["dev"]
        if path == "engine-int8":
            assert 0.9 < cos < 1.0 and by[path]["max_abs_diff_logits"]["dev"] > 0
        else:  # fp32 paths: the same embeddings and scores to rounding
            assert cos > 1 - 1e-5 and by[path]["max_abs_diff_logits"]["dev"] < 1e-4
    checks = {c["path"]: c for c in acc["engine_check"]}
    assert set(checks) == {p for p in paths if p.startswith("engine")}
    for path, c in checks.items():
        assert c["tolerance_points"] == ENGINE_TOLERANCE_POINTS and c["metric"] == acc["main_metric"]
        assert c["delta_points"] == pytest.approx(by[path]["vs_dense_fp32_points"]["dev"][acc["main_metric"]])
        assert c["within"] == (abs(c["delta_points"]) <= ENGINE_TOLERANCE_POINTS)
    md = markdown({"command": "x", **res})
    assert "min cos of embeddings vs dense-fp32" in md and "each text of a pair on its own" in md
    if checks:
        assert "**engine check: engine " in md and "from dense-fp32 (the fp32 sparse model)" in md


def test_engine_check_flags_an_engine_path_off_by_more_than_the_tolerance(sst2_model):
    run, glue = sst2_model
    data = load_eval_data(run, "sst2", glue, max_length=SEQ, max_examples=10)
    labels = np.array([f["labels"] for f in data.splits["dev"]])
    right = np.stack([labels == 0, labels == 1], axis=1).astype(np.float32)
    wrong = right.copy()
    wrong[0] = wrong[0, ::-1]  # one of 10 flipped: -10 points
    acc, warnings = accuracy_result(data, {"dense-fp32": {"dev": right}, "engine": {"dev": right},
                                           "engine-int8": {"dev": wrong}}, {},
                                    ["dense-fp32", "engine", "engine-int8"], batch=4, seq=SEQ)
    checks = {c["path"]: c for c in acc["engine_check"]}
    assert checks["engine"]["within"] is True and checks["engine"]["delta_points"] == 0.0
    assert checks["engine-int8"]["within"] is False and checks["engine-int8"]["delta_points"] == pytest.approx(-10.0)
    assert any("engine-int8 accuracy on dev is -10.00 points from dense-fp32" in w for w in warnings)
    assert not any(w.startswith("accuracy: engine accuracy") for w in warnings)
    acc, _ = accuracy_result(data, {"engine": {"dev": right}}, {}, ["engine"], batch=4, seq=SEQ)
    assert acc["engine_check"] == []  # no fp32 reference: nothing to check against
