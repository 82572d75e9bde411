"""The CLI on real MRPC (tiny model) and its errors on bad input: exit 2, one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import needs_glue
from sparsebert.cli import app
from test_pipeline import write_sst2

runner = CliRunner()
FAST = ["--max-steps", "4", "--batch-size", "8", "--max-length", "48", "--max-eval-examples", "16", "--no-bf16"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@needs_glue
def test_cli_pipeline_on_real_mrpc(tiny_bert, glue_dir, tmp_path):
    r = invoke("finetune", "--model", tiny_bert, "--task", "mrpc", "--data-dir", glue_dir,
               "--out", tmp_path / "t", "--max-train-examples", "64", *FAST)
    assert r.exit_code == 0, r.output
    r = invoke("prune", "--teacher", tmp_path / "t", "--student", tiny_bert, "--task", "mrpc", "--data-dir", glue_dir,
               "--out", tmp_path / "s", "--sparsity", "0.9", "--max-train-examples", "64", *FAST)
    assert r.exit_code == 0, r.output
    r = invoke("evaluate", tmp_path / "s", "--data-dir", glue_dir, "--max-eval-examples", "16")
    assert r.exit_code == 0 and "f1" in r.output, r.output
    r = invoke("report", tmp_path / "s")
    assert r.exit_code == 0 and "90.0" in r.output, r.output
    # existing output: refused without --overwrite, replaced with it
    r = invoke("finetune", "--model", tiny_bert, "--task", "mrpc", "--data-dir", glue_dir,
               "--out", tmp_path / "t", "--max-train-examples", "64", *FAST)
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = invoke("finetune", "--model", tiny_bert, "--task", "mrpc", "--data-dir", glue_dir,
               "--out", tmp_path / "t", "--max-train-examples", "64", "--overwrite", *FAST)
    assert r.exit_code == 0, r.output


@pytest.fixture
def data(tmp_path) -> Path:
    return write_sst2(tmp_path / "glue", 16, 8)


def test_unknown_task(tiny_bert, data, tmp_path):
    r = invoke("finetune", "--model", tiny_bert, "--task", "imdb", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "imdb" in r.output


def test_sparsity_out_of_range(tiny_bert, data, tmp_path):
    r = invoke("prune", "--teacher", tiny_bert, "--student", tiny_bert, "--task", "sst2", "--data-dir", data,
               "--out", tmp_path / "o", "--sparsity", "1.5", *FAST)
    assert r.exit_code == 2 and "sparsity" in r.output and "1.5" in r.output


def test_missing_data_dir(tiny_bert, tmp_path):
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", tmp_path / "nope", "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "nope" in r.output
    assert not (tmp_path / "o").exists()


def test_malformed_row_names_file_and_line(tiny_bert, data, tmp_path):
    train = data / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    lines[5] = lines[5].replace("\t", " ")  # physical line 6 loses its label column
    train.write_text("\n".join(lines) + "\n")
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and f"{train}:6" in r.output, r.output


def test_unknown_label_names_value(tiny_bert, data, tmp_path):
    train = data / "SST-2" / "train.tsv"
    train.write_text(train.read_text().replace("\t1\n", "\tpositive\n", 1))
    r = invoke("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "positive" in r.output and str(train) in r.output


def test_missing_model_dir(data, tmp_path):
    r = invoke("finetune", "--model", tmp_path / "no_model", "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "no_model" in r.output


def test_recipe_unknown_field_and_yaml_error(tiny_bert, data, tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text(f"model: {tiny_bert}\ntask: sst2\nlearning_rat: 0.1\n")
    r = invoke("finetune", "--recipe", bad, "--data-dir", data, "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "learning_rat" in r.output and str(bad) in r.output
    bad.write_text("task: [sst2\n")
    r = invoke("finetune", "--recipe", bad, "--out", tmp_path / "o")
    assert r.exit_code == 2 and f"{bad}:" in r.output and "YAML" in r.output


def test_recipe_file_drives_a_run_and_cli_overrides(tiny_bert, data, tmp_path):
    rec = tmp_path / "ft.yaml"
    rec.write_text(f"model: {tiny_bert}\ntask: sst2\ndata_dir: {data}\nmax_steps: 2\nbatch_size: 8\nbf16: false\nseed: 7\n")
    r = invoke("finetune", "--recipe", rec, "--out", tmp_path / "o", "--seed", "3")
    assert r.exit_code == 0, r.output
    saved = (tmp_path / "o" / "recipe.yaml").read_text()
    assert "seed: 3" in saved and "max_steps: 2" in saved


def test_prune_needs_layer_multiple(tiny_bert, data, tmp_path):
    from tiny import make_tiny_model

    three = make_tiny_model(tmp_path / "three", layers=3)
    r = invoke("finetune", "--model", three, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "t3", *FAST)
    assert r.exit_code == 0, r.output
    r = invoke("prune", "--teacher", tmp_path / "t3", "--student", tiny_bert, "--task", "sst2", "--data-dir", data,
               "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "multiple" in r.output


def test_no_data_dir_without_datasets_package(tiny_bert, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *a, **k):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    r = invoke("finetune", "--model", tiny_bert, "--task", "rte", "--out", tmp_path / "o", *FAST)
    assert r.exit_code == 2 and "--data-dir" in r.output and "sparsebert[hub]" in r.output


def test_learning_rate_option_and_its_old_name_lr(tiny_bert, data, tmp_path, monkeypatch):
    import importlib

    seen = []

    def fake_finetune(recipe):  # the option parsing only; no training
        seen.append(recipe.learning_rate)
        return {"best_step": 0, "metrics": {}}

    monkeypatch.setattr(importlib.import_module("sparsebert.stages.finetune"), "finetune", fake_finetune)
    base = ("finetune", "--model", tiny_bert, "--task", "sst2", "--data-dir", data, "--out", tmp_path / "o")
    for flags, expected in ((("--learning-rate", "1e-3"), 1e-3), (("--lr", "2e-3"), 2e-3),
                            (("--lr", "4e-3", "--learning-rate", "4e-3"), 4e-3)):
        r = invoke(*base, *flags)
        assert r.exit_code == 0, r.output
        assert seen[-1] == expected
    r = invoke(*base, "--lr", "1e-3", "--learning-rate", "2e-3")
    assert r.exit_code == 2 and r.output.endswith("error: --learning-rate 0.002 and --lr 0.001 disagree (--lr is the "
                                                  "old name of --learning-rate): give one\n"), r.output
    assert "warning: --lr is deprecated and goes in the next release; use --learning-rate" in r.output
    assert "--lr" not in invoke("finetune", "--help").output  # hidden: --learning-rate is the documented name


def test_only_user_errors_become_one_line(tmp_path, monkeypatch):
    """A SparsebertError is the user's (exit 2, one line); any other exception is a bug and keeps its traceback."""
    import importlib

    from sparsebert.errors import InputError

    report = importlib.import_module("sparsebert.export.report")
    for err, code in ((InputError("bad value 7 of field 'x'"), 2), (ValueError("internal bug"), 1),
                      (OSError("internal bug"), 1), (ImportError("internal bug"), 1)):
        def boom(*args, err=err, **kwargs):
            raise err

        monkeypatch.setattr(report, "report_any", boom)
        r = invoke("report", tmp_path)
        assert r.exit_code == code, (err, r.output)
        if code == 2:
            assert r.output == "error: bad value 7 of field 'x'\n"
        else:
            assert r.exception is err and "error:" not in r.output


def test_python_m_sparsebert_runs_the_cli():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sparsebert", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Usage: sparsebert" in r.stdout and "finetune" in r.stdout, r.stderr


def test_hub_model_that_cannot_be_loaded_is_a_user_error(tmp_path):
    from sparsebert.cli import is_user_error
    from sparsebert.models import ModelNotFoundError, hub_errors

    with pytest.raises(ModelNotFoundError, match="^nobody/nothing: cannot load it from the Hugging Face hub: no repo$"):
        with hub_errors("nobody/nothing", "nobody/nothing"):
            raise OSError("no repo\nlong details")
    with pytest.raises(OSError) as info:  # a local directory: a read error there is not rewritten
        with hub_errors(str(tmp_path), str(tmp_path)):
            raise OSError("disk")
    assert type(info.value) is OSError and not is_user_error(info.value)
