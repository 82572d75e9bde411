"""Your own data (``--train`` / ``--dev``): CSV, TSV and JSON-lines files made at test time from the real
SST-2 and STS-B files of ``../shared/data/glue``; label discovery; errors that name file, line and column;
``finetune`` -> ``prune`` -> ``evaluate`` on an own CSV with the tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import GLUE
from sparsebert.cli import app
from sparsebert.data import DataError, FileTaskSpec, files_task, load_split
from sparsebert.data.files import discover_labels
from sparsebert.errors import InputError
from sparsebert.metrics import compute_metrics
from sparsebert.models import label_config
from sparsebert.recipe import FinetuneRecipe, PruneRecipe, RecipeError, build_recipe

needs_shared = pytest.mark.skipif(not GLUE.is_dir(), reason=f"../shared/data/glue (real SST-2 / STS-B) not found at {GLUE}")
pytestmark = needs_shared

NAMES = {"0": "negative", "1": "positive"}
runner = CliRunner()


def glue_rows(task_dir: str, n: int) -> tuple[list[str], list[list[str]]]:
    """Header and the first ``n`` rows of a real GLUE train file (tab-separated, no quoting)."""
    lines = (GLUE / task_dir / "train.tsv").read_text(encoding="utf-8").splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1 : n + 1]]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, objects: list) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


@pytest.fixture
def sst(tmp_path) -> tuple[Path, Path]:
    """SST-2 as an own-data task: train.csv (id, text, label names; 60 rows) and dev.jsonl (20 rows)."""
    _, rows = glue_rows("SST-2", 80)
    train = write_csv(tmp_path / "reviews_train.csv", ["id", "text", "label"],
                      [[str(i), text, NAMES[label]] for i, (text, label) in enumerate(rows[:60])])
    dev = write_jsonl(tmp_path / "reviews_dev.jsonl", [{"text": t, "label": NAMES[lab]} for t, lab in rows[60:]])
    return train, dev


@pytest.fixture
def stsb(tmp_path) -> tuple[Path, Path]:
    """STS-B as an own-data pair regression: train.jsonl (40 rows), dev.tsv (20 rows); the score as given."""
    header, rows = glue_rows("STS-B", 60)
    a, b, score = header.index("sentence1"), header.index("sentence2"), header.index("score")
    train = write_jsonl(tmp_path / "sts_train.jsonl",
                        [{"s1": r[a], "s2": r[b], "score": float(r[score])} for r in rows[:40]])
    dev = tmp_path / "sts_dev.tsv"
    dev.write_text("s1\ts2\tscore\n" + "".join(f"{r[a]}\t{r[b]}\t{r[score]}\n" for r in rows[40:]), encoding="utf-8")
    return train, dev


def test_csv_and_jsonl_classification(sst):
    train, dev = sst
    spec = files_task(train, dev)
    assert isinstance(spec, FileTaskSpec) and spec.name == "custom:reviews_train"
    assert spec.labels == ("negative", "positive") and not spec.is_pair and spec.main_metric == "accuracy"
    examples = load_split(spec, "train")
    _, rows = glue_rows("SST-2", 60)
    assert len(examples) == 60 and [e.text_a for e in examples] == [r[0] for r in rows]
    assert [e.label for e in examples] == [int(r[1]) for r in rows]  # negative=0, positive=1 as in SST-2
    assert examples[0].source == f"{train}:2"
    dev_examples = load_split(spec, "dev")
    assert len(dev_examples) == 20 and dev_examples[0].source == f"{dev}:1"
    # stored in the model config as transformers does
    assert label_config(spec)["id2label"] == {0: "negative", 1: "positive"}
    assert label_config(spec)["label2id"] == {"negative": 0, "positive": 1}
    assert set(compute_metrics(spec, [0, 1, 1], [0, 1, 0])) == {"accuracy", "macro_f1", "mcc"}
    (train.parent / "tickets").mkdir()
    generic = train.parent / "tickets" / "train.csv"
    generic.write_bytes(train.read_bytes())
    assert files_task(generic, dev).name == "custom:tickets"  # a split-only stem: the folder names the task


def test_pair_regression_jsonl_and_tsv(stsb):
    train, dev = stsb
    spec = files_task(train, dev, text_column="s1", text_pair_column="s2", label_column="score")
    assert spec.is_regression and spec.is_pair and spec.main_metric == "pearson"
    header, rows = glue_rows("STS-B", 60)
    got = load_split(spec, "dev")
    assert [(e.text_a, e.text_b, e.label) for e in got] == [
        (r[header.index("sentence1")], r[header.index("sentence2")], float(r[header.index("score")])) for r in rows[40:]]
    assert set(compute_metrics(spec, [e.label + 0.1 for e in got], [e.label for e in got])) == {"pearson", "spearman", "corr"}


def test_label_discovery_sorted_and_kind(tmp_path):
    def labels(values, **kw):
        path = write_csv(tmp_path / "t.csv", ["text", "label"], [[f"text {i}", v] for i, v in enumerate(values)])
        return discover_labels(path, **kw)

    assert labels(["b", "a", "c", "a"]) == ("a", "b", "c")  # text order, independent of row order
    assert labels(["10", "2", "1", "2"]) == ("1", "2", "10")  # whole numbers: classes, in numeric order
    assert labels([" pos", "neg ", "pos"]) == ("neg", "pos")  # stripped
    assert labels(["1.0", "0.0"]) == ("0.0", "1.0")  # whole numbers written as floats: still classes
    assert labels(["0.5", "3", "4.2"]) is None  # a number that is not whole: regression
    assert labels(["1", "2", "5"], task_type="regression") is None
    assert labels(["0.5", "3"], task_type="classification") == ("0.5", "3")
    with pytest.raises(DataError, match=r"t\.csv: only one label \('x'\) in column 'label'"):
        labels(["x", "x"])


def test_dev_label_not_in_train(sst, tmp_path):
    train, _ = sst
    dev = write_jsonl(tmp_path / "dev.jsonl", [{"text": "fine", "label": "positive"}, {"text": "meh", "label": "neutral"}])
    with pytest.raises(DataError) as err:
        load_split(files_task(train, dev), "dev")
    msg = str(err.value)
    assert msg.startswith(f"{dev}:2: label 'neutral' in column 'label'") and str(train) in msg and "positive" in msg


def _error(fn) -> str:
    with pytest.raises((DataError, InputError)) as err:
        fn()
    return str(err.value)


def test_bad_files_name_file_line_and_column(sst, stsb, tmp_path):
    train, dev = sst
    # missing column (CSV header): lists the columns found
    msg = _error(lambda: files_task(train, dev, text_column="sentence"))
    assert msg == f"{train}:1: missing column 'sentence' (--text-column); columns found: ['id', 'text', 'label']"
    # missing key on one JSON line
    bad = write_jsonl(tmp_path / "k.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"txt": "c", "label": "x"}])
    msg = _error(lambda: files_task(bad, dev))
    assert msg.startswith(f"{bad}:3: missing column 'text' (--text-column); keys found: ['txt', 'label']")
    # empty text in a CSV row (line 4 = third data row)
    rows = [["1", "good", "positive"], ["2", "bad", "negative"], ["3", "  ", "positive"]]
    bad = write_csv(tmp_path / "e.csv", ["id", "text", "label"], rows)
    msg = _error(lambda: files_task(bad, dev))
    assert msg == f"{bad}:4: empty or whitespace-only text in column 'text' (--text-column)"
    # unparseable JSON line
    bad = tmp_path / "j.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y",}\n', encoding="utf-8")
    msg = _error(lambda: files_task(bad, dev))
    assert msg.startswith(f"{bad}:3: not valid JSON at column ") and "column" in msg
    # a non-numeric label in a regression task (the dev file of STS-B's train)
    s_train, _ = stsb
    bad = tmp_path / "s.tsv"
    bad.write_text("s1\ts2\tscore\na b\tc d\t2.5\ne f\tg h\thigh\n", encoding="utf-8")
    spec = files_task(s_train, bad, text_column="s1", text_pair_column="s2", label_column="score")
    msg = _error(lambda: load_split(spec, "dev"))
    assert msg.startswith(f"{bad}:3: label 'high' in column 'score' (--label-column) is not a number")
    msg = _error(lambda: files_task(bad, None, text_column="s1", text_pair_column="s2", label_column="score",
                                    task_type="regression"))
    assert msg.startswith(f"{bad}:3: label 'high' in column 'score'")
    # a CSV row with another number of fields than the header
    bad = tmp_path / "f.csv"
    bad.write_text("text,label\ngood movie,positive\nbad, boring movie,negative\n", encoding="utf-8")
    assert _error(lambda: files_task(bad, dev)).startswith(f"{bad}:3: expected 2 comma-separated fields")
    # empty file, header only, missing file, unknown extension
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert _error(lambda: files_task(empty, dev)).startswith(f"{empty}: empty file; expected a header row")
    empty.write_text("text,label\n", encoding="utf-8")
    assert _error(lambda: files_task(empty, dev)) == f"{empty}: no data rows"
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    assert _error(lambda: files_task(tmp_path / "empty.jsonl", dev)).startswith(f"{tmp_path / 'empty.jsonl'}: empty file")
    assert _error(lambda: files_task(tmp_path / "nope.csv", dev)) == f"{tmp_path / 'nope.csv'}: no such file (the train file)"
    assert _error(lambda: load_split(files_task(train, tmp_path / "nope.jsonl"), "dev")).startswith(
        f"{tmp_path / 'nope.jsonl'}: no such file (the dev file)")
    msg = _error(lambda: files_task(tmp_path / "data.xlsx", dev))
    assert msg.startswith(f"{tmp_path / 'data.xlsx'}: unknown file type '.xlsx'; use .csv, .tsv")


def test_recipe_own_data_fields():
    r = FinetuneRecipe(model="m", train="t.csv", dev="d.csv", out="o")
    assert (r.task, r.text_column, r.label_column, r.text_pair_column, r.task_type) == (None, "text", "label", None, "auto")
    with pytest.raises(RecipeError, match="either task 'sst2' .* or train 't.csv'"):
        build_recipe(FinetuneRecipe, model="m", task="sst2", train="t.csv", dev="d.csv", out="o")
    with pytest.raises(RecipeError, match="train needs dev"):
        build_recipe(FinetuneRecipe, model="m", train="t.csv", out="o")
    with pytest.raises(RecipeError, match="no data: give task"):
        build_recipe(FinetuneRecipe, model="m", out="o")
    with pytest.raises(RecipeError, match="text_column is for your own files"):
        build_recipe(FinetuneRecipe, model="m", task="sst2", text_column="x", out="o")
    with pytest.raises(RecipeError, match="augment works on GLUE tasks"):
        build_recipe(PruneRecipe, student="m", teacher="t", train="t.csv", dev="d.csv", augment="auto", out="o")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


FAST = ["--max-steps", "4", "--batch-size", "8", "--max-length", "32", "--no-bf16", "--learning-rate", "1e-3"]


def test_cli_finetune_prune_evaluate_on_own_csv(tiny_bert, sst, tmp_path):
    train, dev = sst
    r = invoke("finetune", "--model", tiny_bert, "--train", train, "--dev", dev, "--out", tmp_path / "t", *FAST)
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["label2id"] == {"negative": 0, "positive": 1}
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["task"] == "custom:reviews_train" and set(summary["metrics"]["dev"]) == {"accuracy", "macro_f1", "mcc"}
    assert "train: " in (tmp_path / "t" / "recipe.yaml").read_text()
    r = invoke("prune", "--teacher", tmp_path / "t", "--student", tiny_bert, "--train", train, "--dev", dev,
               "--out", tmp_path / "s", "--sparsity", "0.5", *FAST)
    assert r.exit_code == 0, r.output
    # evaluate reads the data and labels back from the run (recipe.yaml, config.json) ...
    r = invoke("evaluate", tmp_path / "s", "--max-length", "32", "--json", tmp_path / "m.json")
    assert r.exit_code == 0 and "macro_f1" in r.output, r.output
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["dev"] == pytest.approx(
        json.loads((tmp_path / "s" / "summary.json").read_text())["metrics"]["dev"], abs=1e-6)
    # ... or takes another file in another format (columns as trained)
    other = write_csv(tmp_path / "other.csv", ["text", "label"], [["a fine film", "positive"], ["dull", "negative"]])
    r = invoke("evaluate", tmp_path / "t", "--dev", other)
    assert r.exit_code == 0 and "accuracy" in r.output, r.output
    # bad input: exit 2 and one line naming file, line and column; no traceback
    bad = write_csv(tmp_path / "bad.csv", ["text", "label"], [["fine", "positive"], ["ok", "neutral"]])
    r = invoke("evaluate", tmp_path / "t", "--dev", bad)
    assert r.exit_code == 2 and r.output.strip() == (
        f"error: {bad}:3: label 'neutral' in column 'label' (--label-column) is not one of the train file "
        f"{train}: ['negative', 'positive']"), r.output
    r = invoke("finetune", "--model", tiny_bert, "--train", train, "--dev", dev, "--text-column", "review",
               "--out", tmp_path / "x", *FAST)
    assert r.exit_code == 2 and f"{train}:1: missing column 'review'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_python_api_regression_on_own_pairs(tiny_bert, stsb, tmp_path):
    from sparsebert import evaluate, finetune

    train, dev = stsb
    summary = finetune(FinetuneRecipe(model=str(tiny_bert), train=str(train), dev=str(dev), text_column="s1",
                                      text_pair_column="s2", label_column="score", out=str(tmp_path / "t"),
                                      max_steps=2, batch_size=8, max_length=32, bf16=False))
    assert set(summary["metrics"]["dev"]) == {"pearson", "spearman", "corr"}
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "regression"
    metrics = evaluate(tmp_path / "t", max_length=32)  # own data read back from the run
    assert metrics["dev"]["pearson"] == pytest.approx(summary["metrics"]["dev"]["pearson"], abs=1e-5)
