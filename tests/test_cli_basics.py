"""CLI basics of issue 33: --version, shell completion, prune --dry-run, did-you-mean for recipe keys,
flags named in validation errors and one-line errors for models that cannot be loaded."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sparsebert
from conftest import needs_glue
from sparsebert.cli import app

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output == f"sparsebert {sparsebert.__version__}\n", r.output


def test_shell_completion_is_on(monkeypatch):
    assert "--install-completion" in invoke("--help").output
    # typer detects the shell from the parent processes (shellingham), not $SHELL: where the tests run without a
    # shell among their parents (`nohup make test &`, some CI runners) detection fails, so it is fixed here
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    r = invoke("--show-completion", prog_name="sparsebert", env={"SHELL": "/bin/bash"})
    assert r.exit_code == 0, r.output
    assert "complete" in r.output and "_SPARSEBERT_COMPLETE=complete_bash" in r.output, r.output


# --- recipe keys: did-you-mean; errors name the option or the file's key ---------------------------

def test_unknown_recipe_key_did_you_mean(tmp_path):
    from sparsebert.recipe import FinetuneRecipe, PruneRecipe, RecipeError, build_recipe

    f = tmp_path / "file.yaml"
    f.write_text("task: sst2\nlearnng_rate: 0.001\n")
    r = invoke("finetune", "--recipe", f, "--model", "m", "--out", tmp_path / "o")
    assert r.exit_code == 2, r.output
    assert r.output == f"error: unknown recipe key 'learnng_rate' in {f}; did you mean 'learning_rate'?\n"
    assert not (tmp_path / "o").exists()
    # a key of the other stage says so; a key like nothing lists where the keys are
    f.write_text("task: sst2\nsparsity: 0.9\nzzzz: 1\n")
    with pytest.raises(RecipeError, match=r"'sparsity' is a prune setting, not one of a finetune recipe; "
                                          r"unknown recipe key 'zzzz' in .*file.yaml \(the keys of a finetune"):
        build_recipe(FinetuneRecipe, f, model="m", out="o")
    # Python arguments get the same hint
    with pytest.raises(RecipeError, match="^unknown recipe key 'temprature' in the arguments; did you mean 'temperature'"):
        build_recipe(PruneRecipe, None, student="s", teacher="t", task="sst2", out="o", temprature=2.0)


def test_validation_errors_name_the_option_typed(tmp_path):
    r = invoke("finetune", "--model", "m", "--task", "sst2")
    assert r.exit_code == 2 and r.output == "error: --out: required\n", r.output
    r = invoke("prune", "--teacher", "t", "--student", "s", "--task", "sst2", "--out", tmp_path / "o",
               "--sparsity", "1.5")
    assert r.exit_code == 2 and r.output == "error: --sparsity: Input should be less than 1 (got 1.5)\n", r.output
    r = invoke("prune", "--teacher", "t", "--student", "s", "--task", "sst2", "--out", tmp_path / "o",
               "--pattern", "3x")
    assert r.exit_code == 2 and r.output.startswith("error: --pattern: pattern '3x' is not a sparsity pattern")
    assert "Value error" not in r.output
    # a value from the recipe file is named by its key there; a missing option may come from the file too
    f = tmp_path / "r.yaml"
    f.write_text("task: sst2\nsparsity: 1.5\n")
    r = invoke("prune", "--recipe", f, "--teacher", "t", "--student", "s")
    assert r.exit_code == 2, r.output
    assert r.output == (f"error: --out (or key 'out' in {f}): required; {f}: key 'sparsity': "
                        "Input should be less than 1 (got 1.5)\n"), r.output
    # the command line wins over the file and is named as typed
    r = invoke("prune", "--recipe", f, "--teacher", "t", "--student", "s", "--out", tmp_path / "o", "--sparsity", "2")
    assert r.exit_code == 2 and "--sparsity: Input should be less than 1 (got 2.0)" in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_python_api_errors_name_fields():
    from sparsebert.recipe import PruneRecipe, RecipeError, build_recipe

    with pytest.raises(RecipeError, match=r"^field 'sparsity': Input should be less than 1 \(got 1.5\)$"):
        build_recipe(PruneRecipe, None, student="s", teacher="t", task="sst2", out="o", sparsity=1.5)
    with pytest.raises(RecipeError, match=r"^field 'out': required$"):
        build_recipe(PruneRecipe, None, student="s", teacher="t", task="sst2")


# --- a third-party model folder that cannot be loaded: one line naming the file, exit 2 ----------

def _broken(tiny_bert: Path, root: Path, kind: str) -> tuple[Path, Path]:
    """A copy of ``tiny_bert`` with one file broken; returns ``(model dir, the file the error must name)``."""
    model = root / kind
    shutil.copytree(tiny_bert, model)
    config, weights = model / "config.json", model / "model.safetensors"
    if kind == "bad-json":
        config.write_text('{"model_type": "bert",\n  "hidden_size": 32,,\n}\n')
        return model, config
    if kind == "no-model-type":
        data = json.loads(config.read_text())
        del data["model_type"]
        config.write_text(json.dumps(data))
        return model, config
    if kind == "truncated":
        raw = weights.read_bytes()
        weights.write_bytes(raw[: len(raw) // 2])
        return model, weights
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def sst2(tmp_path_factory) -> Path:
    from test_pipeline import write_sst2

    return write_sst2(tmp_path_factory.mktemp("glue"), 16, 8)


@pytest.mark.parametrize("kind", ["bad-json", "no-model-type", "truncated"])
def test_unloadable_model_is_a_one_line_error(tiny_bert, sst2, tmp_path, kind):
    model, named = _broken(tiny_bert, tmp_path / "models", kind)
    texts = tmp_path / "in.jsonl"
    texts.write_text('{"text": "the company said"}\n')
    data = ("--task", "sst2", "--data-dir", sst2)
    commands = {
        "finetune --model": ("finetune", "--model", model, *data, "--out", tmp_path / "o", "--max-steps", "1"),
        "prune --student": ("prune", "--teacher", tiny_bert, "--student", model, *data, "--out", tmp_path / "o",
                            "--max-steps", "1"),
        "prune --teacher": ("prune", "--teacher", model, "--student", tiny_bert, *data, "--out", tmp_path / "o",
                            "--max-steps", "1"),
        "evaluate": ("evaluate", model, *data),
        "predict": ("predict", model, "--input", texts),
    }
    for what, args in commands.items():
        r = invoke(*args)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, (what, r.output, r.exception)
        assert lines[0].startswith(f"error: {named}"), (what, lines[0])
        assert "Traceback" not in r.output
        assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_model_file_checks_name_the_file(tiny_bert, tmp_path):
    from sparsebert.models import CorruptModelError, check_config_file, check_safetensors_file

    check_safetensors_file(tiny_bert / "model.safetensors")  # an intact file passes
    assert check_config_file(tiny_bert)["model_type"] == "bert"
    f = tmp_path / "model.safetensors"
    raw = (tiny_bert / "model.safetensors").read_bytes()
    for content, needle in ((raw[:5], "truncated"), (raw[:20], "truncated"), (raw + b"xx", "beyond"),
                            ((8).to_bytes(8, "little") + b"not json", "unreadable header")):
        f.write_bytes(content)
        with pytest.raises(CorruptModelError, match=f"^{f}: .*{needle}"):
            check_safetensors_file(f)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CorruptModelError, match="must be a JSON object"):
        check_config_file(tmp_path)


# --- prune --dry-run ------------------------------------------------------------------------------

def _no_training(monkeypatch):
    import importlib

    def boom(recipe):
        raise AssertionError("--dry-run must not train")

    monkeypatch.setattr(importlib.import_module("sparsebert.stages.prune"), "prune", boom)


@needs_glue
def test_prune_dry_run_on_real_mrpc(tiny_bert, glue_dir, tmp_path, monkeypatch):
    from sparsebert.recipe import PruneRecipe
    from sparsebert.stages.prune import build_schedules

    _no_training(monkeypatch)
    out = tmp_path / "o"
    r = invoke("prune", "--teacher", tiny_bert, "--student", tiny_bert, "--task", "mrpc", "--data-dir", glue_dir,
               "--out", out, "--sparsity", "0.9", "--batch-size", "16", "--epochs", "2", "--dry-run")
    assert r.exit_code == 0, (r.output, r.exception)
    for key in PruneRecipe.model_fields:  # every key of the resolved recipe, with its value
        assert key in r.output, key
    assert "0.9" in r.output and "mrpc" in r.output
    steps = 2 * -(-3668 // 16)  # MRPC train has 3,668 pairs
    assert f"train examples: 3,668" in r.output
    assert f"training steps: {steps:,} (230 per epoch x 2 epochs)" in r.output, r.output
    recipe = PruneRecipe(teacher=str(tiny_bert), student=str(tiny_bert), task="mrpc", out=str(out), sparsity=0.9,
                         batch_size=16, epochs=2)
    schedule, _, window = build_schedules(recipe, steps)
    assert (f"pruning: cubic schedule, {len(schedule.event_steps)} events from step {window['start_step']} to "
            f"{window['end_step']}") in r.output, r.output
    last = schedule.event_steps[-1]
    assert re.search(rf"│\s*{len(schedule.event_steps)}\s*│\s*{last}\s*│\s*90\.00%\s*│", r.output), r.output
    assert "ETA: not estimated" in r.output
    assert not out.exists() and not list(tmp_path.glob(".o.*"))


def test_prune_dry_run_checks_like_a_real_run(tiny_bert, sst2, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    base = ("prune", "--teacher", tiny_bert, "--student", tiny_bert, "--task", "sst2", "--max-steps", "40",
            "--dry-run")
    r = invoke(*base, "--data-dir", sst2, "--out", tmp_path / "o")
    assert r.exit_code == 0, (r.output, r.exception)
    assert "train examples: 16" in r.output and "training steps: 40 (1 per epoch, max_steps)" in r.output
    assert "to 24" in r.output  # prune_end 0.6 of 40 steps
    assert not (tmp_path / "o").exists()
    # the same one-line errors as a real run, and still nothing written
    for args, needle in (
        (("--data-dir", tmp_path / "nope", "--out", tmp_path / "o"), "nope"),
        (("--data-dir", sst2, "--out", tmp_path / "o", "--student", tmp_path / "no_model"), "no_model"),
        (("--data-dir", sst2, "--out", tmp_path / "o", "--max-length", "4096"), "max_length"),
        (("--data-dir", sst2, "--out", tmp_path / "o", "--resume"), "nothing to resume"),
    ):
        r = invoke(*base, *args)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], (args, r.output, r.exception)
        assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("")
    r = invoke(*base, "--data-dir", sst2, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--overwrite" in r.output, r.output
    r = invoke(*base, "--data-dir", sst2, "--out", tmp_path / "o", "--overwrite")
    assert r.exit_code == 0 and (tmp_path / "o" / "x").exists(), r.output  # --overwrite replaces nothing in a dry run


def test_prune_dry_run_without_pruning(tiny_bert, sst2, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    r = invoke("prune", "--teacher", tiny_bert, "--student", tiny_bert, "--task", "sst2", "--data-dir", sst2,
               "--out", tmp_path / "o", "--sparsity", "0", "--dry-run")
    assert r.exit_code == 0 and "pruning: none (sparsity 0)" in r.output, r.output
