"""CLI basics of issue 33: --version, shell completion, prune --dry-run, did-you-mean for recipe keys,
flags named in validation errors and one-line errors for models that cannot be loaded."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import sparsebert
from sparsebert.cli import app

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output == f"sparsebert {sparsebert.__version__}\n", r.output


def test_shell_completion_is_on():
    assert "--install-completion" in invoke("--help").output
    r = invoke("--show-completion", "bash", prog_name="sparsebert", env={"SHELL": "/bin/bash"})
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
