"""GLUE task registry and ``glue_data`` TSV readers.

Real-file tests use ``../shared/data/glue`` beside the repository root and check the official
row and label counts (shared/data/README.md); synthetic files in ``tmp_path`` cover the errors.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsebert.data import (
    TASKS,
    DataError,
    Example,
    TaskSpec,
    get_task,
    load_split,
    read_glue_split,
    resolve_task_dir,
)

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
requires_glue = pytest.mark.skipif(
    not GLUE.is_dir(), reason=f"real GLUE files not found at {GLUE} (../shared beside the repo)"
)

# ---------------------------------------------------------------------------------------------
# registry


def test_registry_has_all_tasks_with_consistent_specs():
    assert set(TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"}
    for name, spec in TASKS.items():
        assert spec.name == name
        assert spec.hub_name == ("nyu-mll/glue", name)
        assert len(spec.hub_text_columns) == len(spec.text_columns)
    assert TASKS["stsb"].is_regression and TASKS["stsb"].num_labels == 1
    assert TASKS["mnli"].num_labels == 3
    assert TASKS["mnli"].eval_splits == ("dev_matched", "dev_mismatched")
    assert TASKS["rte"].labels == ("entailment", "not_entailment")  # entailment is id 0
    assert TASKS["qnli"].labels == ("entailment", "not_entailment")
    assert TASKS["sst2"].is_pair is False and TASKS["cola"].is_pair is False
    assert TASKS["mrpc"].is_pair is True
    assert {n: s.main_metric for n, s in TASKS.items()} == {
        "cola": "mcc", "sst2": "accuracy", "mrpc": "f1", "stsb": "pearson", "qqp": "f1",
        "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy",
    }


@pytest.mark.parametrize("alias,name", [("SST-2", "sst2"), ("sts-b", "stsb"), ("CoLA", "cola"),
                                        ("MRPC", "mrpc"), (" rte ", "rte"), ("sst_2", "sst2")])
def test_get_task_aliases(alias, name):
    assert get_task(alias) is TASKS[name]
    assert get_task(TASKS[name]) is TASKS[name]


def test_get_task_unknown_lists_known():
    with pytest.raises(ValueError, match=r"unknown GLUE task 'wnli'.*cola.*sst2"):
        get_task("wnli")
    with pytest.raises(TypeError):
        get_task(3)  # type: ignore[arg-type]


def test_taskspec_is_frozen():
    with pytest.raises(AttributeError):
        TASKS["mrpc"].name = "x"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# real files: official row and label counts

REAL = [
    # task, split, rows, label counts by class id (None for STS-B)
    ("sst2", "train", 67349, {0: 29780, 1: 37569}),
    ("sst2", "dev", 872, {0: 428, 1: 444}),
    ("mrpc", "train", 3668, {0: 3668 - 2474, 1: 2474}),
    ("mrpc", "dev", 408, {0: 129, 1: 279}),
    ("rte", "train", 2490, {0: 1249, 1: 1241}),
    ("rte", "dev", 277, {0: 146, 1: 131}),
    ("cola", "train", 8551, {0: 2528, 1: 6023}),
    ("cola", "dev", 1043, {0: 322, 1: 721}),
    ("stsb", "train", 5749, None),
    ("stsb", "dev", 1500, None),
    ("qnli", "dev", 5463, {0: 2702, 1: 2761}),
]


@requires_glue
@pytest.mark.parametrize("task,split,rows,counts", REAL, ids=[f"{t}-{s}" for t, s, *_ in REAL])
def test_real_split_counts(task, split, rows, counts):
    examples = read_glue_split(task, GLUE, split)
    assert len(examples) == rows
    spec = get_task(task)
    for ex in examples:
        assert isinstance(ex, Example)
        assert ex.text_a.strip()
        assert (ex.text_b is not None) == spec.is_pair
    if counts is None:
        assert all(isinstance(ex.label, float) and 0.0 <= ex.label <= 5.0 for ex in examples)
    else:
        assert dict(Counter(ex.label for ex in examples)) == counts
        assert all(type(ex.label) is int for ex in examples)
    # sources are 1-based physical lines: header (if any) is line 1
    first_line = 2 if spec.has_header else 1
    assert examples[0].source == f"{GLUE / spec.glue_dir / (split + '.tsv')}:{first_line}"
    assert examples[-1].source.endswith(f":{rows + first_line - 1}")


@requires_glue
def test_real_tricky_rows_parse():
    rte = read_glue_split("rte", GLUE, "train")
    row = rte[2164]  # index 2164: sentence1 starts with an unclosed quote
    assert row.source.endswith("RTE/train.tsv:2166")
    assert row.text_a.startswith('"That film wasn\'t too successful')
    assert row.text_b == 'The film "WarGames" was shot in 1983.'
    assert row.label == 1  # not_entailment

    qnli = read_glue_split("qnli", GLUE / "QNLI", "dev")  # task directory given directly
    assert qnli[694].text_b.startswith('" Luis Walter Alvarez')
    assert qnli[694].label == 1  # not_entailment (checked against the raw line)
    assert qnli[3428].text_b.startswith('" There have been numerous accounts')
    assert qnli[3428].label == 0  # entailment


@requires_glue
def test_real_layout_details():
    mrpc = read_glue_split("mrpc", GLUE, "dev")  # header starts with a BOM before "Quality"
    assert mrpc[0].text_a.startswith("He said the foodservice pie business")
    assert mrpc[0].label == 1
    cola = read_glue_split("cola", GLUE, "dev")  # no header, no final newline
    assert cola[0].text_a == "The sailors rode the breeze clear of the rocks."
    assert cola[-1].text_a == "John talked to Bill about himself."
    assert cola[-1].text_b is None
    stsb = read_glue_split("stsb", GLUE, "dev")
    assert stsb[0].text_a == "A man with a hard hat is dancing."
    assert stsb[0].label == 5.0 and stsb[1].label == 4.75
    sst = read_glue_split("SST-2", GLUE, "validation")  # alias of "dev"
    assert sst[0].text_a == "it 's a charming and often affecting journey . "  # no stripping


@requires_glue
def test_real_missing_tasks_and_splits():
    with pytest.raises(FileNotFoundError, match=r"QNLI/train\.tsv"):
        read_glue_split("qnli", GLUE, "train")
    with pytest.raises(FileNotFoundError, match="MNLI"):
        read_glue_split("mnli", GLUE, "dev_matched")


# ---------------------------------------------------------------------------------------------
# resolve_task_dir


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_resolve_task_dir_root_task_dir_and_case(tmp_path):
    _write(tmp_path / "glue" / "MRPC" / "train.tsv", "x")
    assert resolve_task_dir("mrpc", tmp_path / "glue") == tmp_path / "glue" / "MRPC"
    assert resolve_task_dir("mrpc", tmp_path / "glue" / "MRPC") == tmp_path / "glue" / "MRPC"
    _write(tmp_path / "lower" / "sst-2" / "dev.tsv", "x")
    assert resolve_task_dir("sst2", tmp_path / "lower") == tmp_path / "lower" / "sst-2"
    with pytest.raises(FileNotFoundError, match=r"RTE/train\.tsv"):
        resolve_task_dir("rte", tmp_path / "glue")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_task_dir("rte", tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# synthetic files: every error names file and line

SST_HEADER = "sentence\tlabel\n"


def _sst(tmp_path: Path, body: str, split: str = "train", header: str = SST_HEADER) -> Path:
    return _write(tmp_path / "SST-2" / f"{split}.tsv", header + body)


def test_synthetic_ok_with_crlf_bom_and_trailing_blank_lines(tmp_path):
    _write(tmp_path / "SST-2" / "train.tsv", "\ufeffsentence\tlabel\r\ngood\t1\r\nbad \t0\r\n\r\n")
    ex = read_glue_split("sst2", tmp_path, "train")
    assert [(e.text_a, e.label) for e in ex] == [("good", 1), ("bad ", 0)]
    assert ex[1].source == f"{tmp_path / 'SST-2' / 'train.tsv'}:3"


def test_wrong_field_count(tmp_path):
    path = _sst(tmp_path, "fine\t1\nnot\tfine\t0\n")
    with pytest.raises(DataError, match="expected 2 tab-separated fields, got 3") as info:
        read_glue_split("sst2", tmp_path, "train")
    assert str(info.value).startswith(f"{path}:3: ")
    assert info.value.path == str(path) and info.value.line == 3


def test_unknown_label_names_value_and_allowed(tmp_path):
    path = _sst(tmp_path, "fine\t1\nmeh\t2\n")
    with pytest.raises(DataError) as info:
        read_glue_split("sst2", tmp_path, "train")
    msg = str(info.value)
    assert msg.startswith(f"{path}:3: ") and "'2'" in msg and "['0', '1']" in msg


def test_missing_column_names_column_and_header(tmp_path):
    path = _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tgold\n0\ta\tb\tentailment\n")
    with pytest.raises(DataError) as info:
        read_glue_split("rte", tmp_path, "dev")
    msg = str(info.value)
    assert msg.startswith(f"{path}:1: ") and "'label'" in msg and "'gold'" in msg


@pytest.mark.parametrize("content,what", [("", "empty file"), (SST_HEADER, "no data rows"),
                                          (SST_HEADER + "\n\n", "no data rows")])
def test_empty_split(tmp_path, content, what):
    path = _write(tmp_path / "SST-2" / "dev.tsv", content)
    with pytest.raises(DataError, match=what) as info:
        read_glue_split("sst2", tmp_path, "dev")
    assert str(info.value).startswith(f"{path}: ")


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


def _stsb_row(score: str) -> str:
    return f"0\tg\tf\t2012\t0001\tnone\tnone\tA cat.\tA dog.\t{score}\n"


@pytest.mark.parametrize("score", ["abc", "nan", "inf", "5.5", "-1", "1e0", "", " 3.0", "1_0"])
def test_stsb_bad_score(tmp_path, score):
    path = _write(tmp_path / "STS-B" / "dev.tsv", STSB_HEADER + _stsb_row("2.5") + _stsb_row(score))
    with pytest.raises(DataError, match="score") as info:
        read_glue_split("stsb", tmp_path, "dev")
    assert str(info.value).startswith(f"{path}:3: ")


@pytest.mark.parametrize("score,value", [("0", 0.0), ("5.000", 5.0), ("3.800000", 3.8), ("0.2", 0.2)])
def test_stsb_good_score(tmp_path, score, value):
    _write(tmp_path / "STS-B" / "dev.tsv", STSB_HEADER + _stsb_row(score))
    assert read_glue_split("stsb", tmp_path, "dev")[0].label == value


@pytest.mark.parametrize("text", ["", "   ", "\u3000"])
def test_blank_text_is_error(tmp_path, text):
    path = _sst(tmp_path, f"ok\t1\n{text}\t0\n")
    with pytest.raises(DataError, match="empty or whitespace-only text") as info:
        read_glue_split("sst2", tmp_path, "train")
    assert str(info.value).startswith(f"{path}:3: ")


def test_blank_line_inside_data_is_error(tmp_path):
    path = _sst(tmp_path, "a\t1\n\nb\t0\n")
    with pytest.raises(DataError, match="blank line") as info:
        read_glue_split("sst2", tmp_path, "train")
    assert str(info.value).startswith(f"{path}:3: ")


def test_invalid_utf8_reports_line(tmp_path):
    path = tmp_path / "SST-2" / "train.tsv"
    path.parent.mkdir()
    path.write_bytes(b"sentence\tlabel\nok\t1\nbad \xff byte\t0\n")
    with pytest.raises(DataError, match="UTF-8") as info:
        read_glue_split("sst2", tmp_path, "train")
    assert str(info.value).startswith(f"{path}:3: ")


def test_cola_headerless_layout_and_field_count(tmp_path):
    path = _write(tmp_path / "CoLA" / "dev.tsv", "src\t1\t\tFine.\nsrc\t0\t*\tBad this.\nsrc\t1\tx\n")
    with pytest.raises(DataError, match="expected 4 tab-separated fields, got 3") as info:
        read_glue_split("cola", tmp_path, "dev")
    assert str(info.value).startswith(f"{path}:3: ")
    _write(path, "src\t1\t\tFine.\nsrc\t0\t*\tBad this.")  # no final newline
    ex = read_glue_split("cola", tmp_path, "dev")
    assert [(e.text_a, e.label, e.source[-2:]) for e in ex] == [("Fine.", 1, ":1"), ("Bad this.", 0, ":2")]
    _write(path, "src\tyes\t\tFine.\n")
    with pytest.raises(DataError, match=r"unknown label 'yes' in column 1 \(0-based"):
        read_glue_split("cola", tmp_path, "dev")


def test_mnli_labels_and_splits(tmp_path):
    header = "index\tpromptID\tsentence1\tsentence2\tlabel1\tgold_label\n"
    rows = "0\t1\tp\th\tneutral\tneutral\n1\t2\tp\th\tx\tcontradiction\n2\t3\tp\th\tx\tentailment\n"
    _write(tmp_path / "MNLI" / "dev_mismatched.tsv", header + rows)
    ex = read_glue_split("mnli", tmp_path, "dev_mismatched")
    assert [e.label for e in ex] == [2, 0, 1]
    assert [e.label for e in load_split("mnli", "validation_mismatched", tmp_path)] == [2, 0, 1]
    with pytest.raises(ValueError, match="dev_matched, dev_mismatched"):
        read_glue_split("mnli", tmp_path, "dev")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        read_glue_split("sst2", tmp_path, "test")


def test_missing_split_file(tmp_path):
    _sst(tmp_path, "a\t1\n", split="train")
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv.*'dev' split of GLUE SST-2"):
        read_glue_split("sst2", tmp_path, "dev")


def test_skip_malformed_warns_and_keeps_good_rows(tmp_path):
    _write(tmp_path / "QQP" / "train.tsv",
           "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
           "0\t1\t2\tWhy?\tHow?\t0\n"
           "\tWas it real?\t0\n"               # the known malformed-row shape of old QQP copies
           "1\t3\t4\tWhat?\t \t1\n"            # blank question2
           "2\t5\t6\tWho?\tWhom?\t1\n")
    with pytest.raises(DataError, match=":3: expected 6 tab-separated fields, got 3"):
        read_glue_split("qqp", tmp_path, "train")
    with pytest.warns(UserWarning, match="skipped 2 malformed row"):
        ex = read_glue_split("qqp", tmp_path, "train", skip_malformed=True)
    assert [(e.text_a, e.text_b, e.label) for e in ex] == [("Why?", "How?", 0), ("Who?", "Whom?", 1)]


# Hypothesis: any tab/newline-free texts survive a write/read round trip unchanged.
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                min_size=1, max_size=30).filter(lambda s: s.strip() and not s.startswith("\ufeff"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_text, _text, st.sampled_from(["entailment", "not_entailment"])),
                     min_size=1, max_size=8))
def test_round_trip_pairs(tmp_path, rows):
    body = "".join(f"{i}\t{a}\t{b}\t{lab}\n" for i, (a, b, lab) in enumerate(rows))
    _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\tlabel\n" + body)
    ex = read_glue_split("rte", tmp_path, "dev")
    assert [(e.text_a, e.text_b, TASKS["rte"].labels[e.label]) for e in ex] == rows


# ---------------------------------------------------------------------------------------------
# hub loading (a fake ``datasets`` module; the real one is an optional extra)


def test_load_split_without_datasets_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ImportError, match=r"--data-dir.*sparsebert\[hub\]"):
        load_split("mrpc", "dev")


class _FakeClassLabel:
    def __init__(self, names):
        self.names = names


class _FakeDataset(list):
    def __init__(self, rows, label_names=None):
        super().__init__(rows)
        self.features = {"label": _FakeClassLabel(label_names)} if label_names else {}


def _fake_datasets(monkeypatch, rows, label_names=None):
    calls = []

    def load_dataset(path, name, split):
        calls.append((path, name, split))
        return _FakeDataset(rows, label_names)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_mnli_label_ids_map_to_file_ids(monkeypatch):
    rows = [{"premise": "p", "hypothesis": "h", "label": k, "idx": k} for k in (0, 1, 2)]
    calls = _fake_datasets(monkeypatch, rows, ["entailment", "neutral", "contradiction"])
    ex = load_split("mnli", "dev_matched")
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")]
    labels = TASKS["mnli"].labels
    assert [labels[e.label] for e in ex] == ["entailment", "neutral", "contradiction"]
    assert ex[2].source == "hf://datasets/nyu-mll/glue/mnli/validation_matched:2"


def test_hub_binary_and_regression(monkeypatch):
    _fake_datasets(monkeypatch, [{"sentence1": "a", "sentence2": "b", "label": 1}])
    assert load_split("rte", "train") == [Example("a", "b", 1, "hf://datasets/nyu-mll/glue/rte/train:0")]
    _fake_datasets(monkeypatch, [{"sentence1": "a", "sentence2": "b", "label": 3.25}])
    assert load_split("stsb", "dev")[0].label == 3.25


def test_hub_hidden_test_labels_rejected(monkeypatch):
    _fake_datasets(monkeypatch, [{"sentence": "x", "label": -1}])
    with pytest.raises(DataError, match=r"sst2/train:0: label -1.*hidden"):
        load_split("sst2", "train")


def test_load_split_with_data_dir_reads_files(tmp_path):
    _sst(tmp_path, "a\t1\n", split="dev")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_split("sst2", "dev", tmp_path)[0].label == 1


def test_taskspec_validation():
    with pytest.raises(ValueError):
        TaskSpec(name="x", glue_dir="X", text_columns=(), label_column="l", labels=("a", "b"),
                 main_metric="accuracy")
    with pytest.raises(ValueError):
        TaskSpec(name="x", glue_dir="X", text_columns=("0",), label_column="1", labels=("a", "b"),
                 main_metric="accuracy", has_header=False)


def test_train_batches_group_by_length_sees_every_example_once_with_less_padding():
    import random

    from sparsebert.data.encode import train_batches

    rng = random.Random(0)
    feats = [{"input_ids": [1] * rng.randint(3, 120), "labels": i} for i in range(1000)]
    for f in feats:
        f["attention_mask"] = [1] * len(f["input_ids"])
    plain = list(train_batches(feats, 16, seed=3, pad_token_id=0))
    grouped = list(train_batches(feats, 16, seed=3, pad_token_id=0, group_by_length=True))
    for batches in (plain, grouped):
        seen = sorted(int(x) for b in batches for x in b["labels"])
        assert seen == list(range(1000))
    assert sum(b["input_ids"].numel() for b in grouped) < 0.7 * sum(b["input_ids"].numel() for b in plain)
    again = list(train_batches(feats, 16, seed=3, pad_token_id=0, group_by_length=True))
    assert all(a["labels"].tolist() == b["labels"].tolist() for a, b in zip(grouped, again))
