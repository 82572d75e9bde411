"""Checks before training: one test per bad input, each asserting its one-line message.

The first part tests :mod:`sparsebert.preflight`; the second runs the checks that already exist
elsewhere (data readers, recipe, output rule, ``prune.check_pair``) through the CLI and asserts
exit status 2, a single ``error:`` line, and that no output (or staging) directory was created.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
from transformers import AutoConfig
from typer.testing import CliRunner

from sparsebert.cli import app
from sparsebert.data.glue import Example
from sparsebert.data.tasks import get_task
from sparsebert.preflight import (
    PreflightError,
    check_disk_space,
    check_label_sets,
    check_labels,
    check_max_length,
    check_not_empty,
    check_sparsity,
    check_data,
    check_models,
    estimate_checkpoint_bytes,
    max_positions,
)

SST2, RTE, STSB = get_task("sst2"), get_task("rte"), get_task("stsb")


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# --- disk space ------------------------------------------------------------------------------------

def test_disk_space_names_dir_and_megabytes(tmp_path):
    out = tmp_path / "not" / "yet" / "there"
    assert check_disk_space(out, 1) > 0  # nearest existing parent is measured
    with pytest.raises(PreflightError) as err:
        check_disk_space(out, 10**18)
    msg = one_line(err)
    assert msg.startswith(f"{out}: needs about 1000000000000.0 MB on disk") and f"MB free at {tmp_path}" in msg
    assert not (tmp_path / "not").exists()


def test_checkpoint_estimate_counts_weights_moments_and_masks(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    from sparsebert.targets import prunable_linears

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    n = sum(p.numel() for p in model.parameters())
    masks = sum(lin.weight.numel() for lin in prunable_linears(model).values())
    assert estimate_checkpoint_bytes(model, with_optimizer=False) == 4 * n
    assert estimate_checkpoint_bytes(model) == 12 * n + masks


# --- labels and empty splits -----------------------------------------------------------------------

def test_class_label_out_of_range_names_file_and_line():
    good = Example("a", None, 1, "aug/SST-2/train.tsv:2")
    bad = Example("b", None, 2, "aug/SST-2/train.tsv:3")
    with pytest.raises(PreflightError) as err:
        check_labels(SST2, [good, bad], "aug")
    assert one_line(err) == "aug/SST-2/train.tsv:3: label 2 is not a class id of task sst2 (0..1 for ['0', '1'])"


def test_label_of_example_without_source_names_index():
    with pytest.raises(PreflightError) as err:
        check_labels(RTE, [Example("a", "b", 0, ""), Example("a", "b", "entailment", "")], "python list")
    assert one_line(err).startswith("python list[1]: label 'entailment' is not a class id of task rte")


def test_bool_label_is_not_a_class_id():
    with pytest.raises(PreflightError, match="label True"):
        check_labels(SST2, [Example("a", None, True, "f:1")], "x")


@pytest.mark.parametrize("score", [math.nan, math.inf, -0.5, 5.5])
def test_regression_label_must_be_finite_and_in_range(score):
    with pytest.raises(PreflightError) as err:
        check_labels(STSB, [Example("a", "b", 1.0, "f:2"), Example("a", "b", score, "f:3")], "x")
    assert one_line(err).startswith(f"f:3: label {score!r} is not a finite score in [0, 5] for task stsb")


def test_good_labels_pass(glue_dir):
    from sparsebert.data.glue import read_glue_split

    check_labels(RTE, read_glue_split("rte", glue_dir, "dev"), "rte")
    check_labels(STSB, [Example("a", "b", 0, "f:2"), Example("a", "b", 4.8, "f:3")], "x")


def test_empty_split():
    with pytest.raises(PreflightError) as err:
        check_not_empty("train", [], "aug/mrpc")
    assert one_line(err) == "aug/mrpc: split 'train' has no examples"
    check_not_empty("train", [Example("a", None, 0, "f:2")], "x")


# --- sequence length ---------------------------------------------------------------------------------

def test_max_length_against_bert_positions():
    cfg = AutoConfig.for_model("bert", max_position_embeddings=512)
    check_max_length(512, cfg, "model")
    with pytest.raises(PreflightError) as err:
        check_max_length(513, cfg, "model")
    assert one_line(err) == "max_length 513 exceeds the model's limit of 512 tokens"


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta", "camembert", "mpnet"])
def test_max_length_with_roberta_padding_offset(model_type):
    cfg = AutoConfig.for_model(model_type, max_position_embeddings=514, pad_token_id=1)
    assert max_positions(cfg) == 512
    check_max_length(512, cfg, "teacher")
    with pytest.raises(PreflightError) as err:
        check_max_length(513, cfg, "teacher")  # passes a plain max_position_embeddings check
    assert one_line(err) == ("max_length 513 exceeds the teacher's limit of 512 tokens "
                             "(max_position_embeddings 514 minus the padding offset)")


def test_no_offset_for_bert_with_pad_id_and_no_limit_without_positions():
    assert max_positions(AutoConfig.for_model("bert", max_position_embeddings=512, pad_token_id=0)) == 512
    assert max_positions(object()) is None


# --- teacher / student heads -------------------------------------------------------------------------

def _config(labels, name="runs/t"):
    cfg = AutoConfig.for_model("bert", num_labels=len(labels), id2label=dict(enumerate(labels)))
    cfg._name_or_path = name
    return cfg


def test_teacher_with_another_label_count():
    with pytest.raises(PreflightError) as err:
        check_label_sets(_config(["a", "b", "c"]), _config(["0", "1"], "s"), SST2)
    assert one_line(err) == "teacher runs/t: checkpoint head has 3 output labels, task sst2 needs 2"


def test_teacher_with_labels_in_another_order():
    with pytest.raises(PreflightError) as err:
        check_label_sets(_config(["not_entailment", "entailment"]), _config(list(RTE.labels), "s"), RTE)
    assert "teacher runs/t" in one_line(err) and "['not_entailment', 'entailment'] (by id)" in str(err.value)


def test_student_head_must_match_too():
    with pytest.raises(PreflightError) as err:
        check_label_sets(_config(list(RTE.labels)), _config(["a", "b", "c"], "pypi:x"), RTE)
    assert one_line(err).startswith("student pypi:x: checkpoint head has 3 output labels")
    check_label_sets(_config(list(RTE.labels)), _config(list(RTE.labels), "s"), RTE)


# --- sparsity -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1.0, 1, -0.1, math.nan, math.inf, True, "0.5", None])
def test_sparsity_out_of_range(value):
    with pytest.raises(PreflightError) as err:
        check_sparsity(value, "--sparsity")
    assert one_line(err) == (f"--sparsity: sparsity must be a number in [0, 1) (1.0 would remove every weight), "
                             f"got {value!r}")


def test_sparsity_in_range():
    assert check_sparsity(0.95, "sparsity") == 0.95 and check_sparsity(0, "sparsity") == 0.0


# --- the composite check ---------------------------------------------------------------------------

def test_learning_rate_warning_for_wide_students_only():
    from types import SimpleNamespace

    from sparsebert.preflight import check_learning_rate

    wide, narrow = SimpleNamespace(hidden_size=768), SimpleNamespace(hidden_size=384)
    with pytest.warns(UserWarning, match=r"learning_rate 0.0001 with a student of hidden size 768 at sparsity 0.95"):
        assert "3e-5" in check_learning_rate(1e-4, 0.95, wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_learning_rate(3e-5, 0.95, wide) is None  # the rate that works
        assert check_learning_rate(1e-4, 0.95, narrow) is None  # MiniLM-L6's default
        assert check_learning_rate(1e-4, 0.3, wide) is None  # barely pruned
        assert check_learning_rate(1e-4, 0.95, SimpleNamespace()) is None  # no hidden_size: nothing to say


def test_stage_checks_run_every_check(tiny_bert, tmp_path):
    from sparsebert.models import load_for_task
    from sparsebert.recipe import PruneRecipe

    student, teacher = load_for_task(str(tiny_bert), SST2), load_for_task(str(tiny_bert), SST2)
    recipe = PruneRecipe(teacher="t", student="s", task="sst2", data_dir=str(tmp_path), out=str(tmp_path / "o"))
    train = [Example("a", None, 0, "t.tsv:2")]
    check_data(SST2, "train", train, "t.tsv")
    check_models(recipe, SST2, student, teacher)
    with pytest.raises(PreflightError, match="split 'train' has no examples"):
        check_data(SST2, "train", [], "t.tsv")
    with pytest.raises(PreflightError, match="t.tsv:3: label 7"):
        check_data(SST2, "train", [*train, Example("b", None, 7, "t.tsv:3")], "t.tsv")
    with pytest.raises(PreflightError, match="max_length 300 exceeds the student's limit of 258"):
        check_models(recipe.model_copy(update={"max_length": 300}), SST2, student, teacher)
    with pytest.raises(PreflightError, match="max_length 300 exceeds the model's limit"):
        check_models(recipe.model_copy(update={"max_length": 300}), SST2, student)
    three = load_for_task(str(tiny_bert), get_task("mnli"))
    with pytest.raises(PreflightError, match="teacher .*3 output labels, task sst2 needs 2"):
        check_models(recipe, SST2, student, three)


# =====================================================================================================
# Existing early checks, through the CLI: exit 2, one `error:` line, nothing written.

runner = CliRunner()
FAST = ["--max-steps", "2", "--batch-size", "8", "--max-length", "32", "--max-eval-examples", "8", "--no-bf16"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(r, tmp_path: Path, *needles: str, out: str = "o") -> str:
    """Exit 2, exactly one output line, starting with ``error:``, holding every needle; no output."""
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / out).exists()
    assert not list(tmp_path.glob(f".{out}.*")), "a staging directory was left behind"
    return lines[0]


def _named_labels(model_dir: Path, labels=("0", "1")) -> Path:
    """Give a tiny model's config named head labels (as a fine-tuned teacher has; no warning)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["id2label"] = {str(i): lab for i, lab in enumerate(labels)}
    cfg["label2id"] = {lab: i for i, lab in enumerate(labels)}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    return model_dir


@pytest.fixture(scope="module")
def models(tiny_bert, tmp_path_factory):
    """``teacher`` (tiny BERT, sst2 head labels), ``three`` (3 layers), ``other_vocab`` (one extra word)."""
    from transformers import BertTokenizerFast

    from tiny import make_tiny_model

    root = tmp_path_factory.mktemp("preflight_models")
    teacher = _named_labels(Path(shutil.copytree(tiny_bert, root / "teacher")))
    three = _named_labels(make_tiny_model(root / "three", layers=3))
    other = Path(shutil.copytree(tiny_bert, root / "other_vocab"))
    vocab = other / "vocab.txt"
    vocab.write_text(vocab.read_text() + "zebra\n")
    (other / "tokenizer.json").unlink()
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(other)
    return {"teacher": teacher, "three": three, "other_vocab": other}


@pytest.fixture
def data(tmp_path) -> Path:
    from test_pipeline import write_sst2

    return write_sst2(tmp_path / "glue", 16, 8)


def prune_args(teacher, student, data, tmp_path, *extra):
    return ("prune", "--teacher", teacher, "--student", student, "--task", "sst2", "--data-dir", data,
            "--out", tmp_path / "o", *FAST, *extra)


def test_cli_missing_data_file(tiny_bert, data, tmp_path):
    dev = data / "SST-2" / "dev.tsv"
    dev.unlink()
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert_refused(r, tmp_path, f"{dev}: no such file")


def test_cli_bad_row_names_file_and_line(tiny_bert, data, tmp_path):
    train = data / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    lines[3] = lines[3] + "\textra"
    train.write_text("\n".join(lines) + "\n")
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert_refused(r, tmp_path, f"{train}:4: expected 2 tab-separated fields, got 3")


@pytest.mark.parametrize("value", ["1.0", "1"])
def test_cli_sparsity_one_is_rejected(models, tiny_bert, data, tmp_path, value):
    r = invoke(*prune_args(models["teacher"], tiny_bert, data, tmp_path, "--sparsity", value))
    assert_refused(r, tmp_path, "--sparsity: ", "less than 1", "1.0")


def test_cli_existing_output_without_overwrite(tiny_bert, data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", out, *FAST)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2 and lines == [f"error: output directory {out} already exists; pass --overwrite to replace it"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".o.*"))


def test_cli_teacher_student_vocab_mismatch(models, tiny_bert, data, tmp_path):
    r = invoke(*prune_args(models["teacher"], models["other_vocab"], data, tmp_path))
    assert_refused(r, tmp_path, f"teacher ({models['teacher']}) and student ({models['other_vocab']}) "
                                "use different vocabularies")


def test_cli_impossible_layer_mapping(models, tiny_bert, data, tmp_path):
    r = invoke(*prune_args(models["three"], tiny_bert, data, tmp_path))
    assert_refused(r, tmp_path, "teacher layers (3) must be a multiple of student layers (2)")


def test_cli_max_length_above_model_limit(models, tiny_bert, data, tmp_path):
    r = invoke(*prune_args(models["teacher"], tiny_bert, data, tmp_path, "--max-length", "300"))
    assert_refused(r, tmp_path, "max_length 300 exceeds the student's limit of 258 tokens")


def test_obs_events_closer_than_their_gradients_are_warned_about():
    from sparsebert.preflight import check_obs_gradients

    assert check_obs_gradients([126, 192, 258, 324], 64) is None  # 66 steps apart: every event has its 64
    assert check_obs_gradients([], 64) is None
    with pytest.warns(UserWarning, match=r"7 steps apart give an event's Fisher 7 of its 64 gradients"):
        msg = check_obs_gradients(list(range(67, 727, 7)), 64)
    assert "--pruning-events 10 or fewer" in msg


def test_an_obs_upstream_recipe_with_the_default_100_events_warns_when_its_schedule_is_built():
    from sparsebert.recipe import UpstreamRecipe
    from sparsebert.stages.prune import build_schedules

    recipe = UpstreamRecipe(student="x", out="o", criterion="obs", sparsity=0.95, max_steps=1200)
    with pytest.warns(UserWarning, match="criterion obs: pruning events"):
        build_schedules(recipe, 1200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_schedules(recipe.model_copy(update={"pruning_events": 10}), 1200)
