"""One option vocabulary across every subcommand (issue 33): every option name of every command is in
``sparsebert.cli_vocabulary.OPTIONS``, no concept has two names, a name means the same kind of option
everywhere (a flag, or one taking FILE / DIR), old spellings are hidden aliases that still work with a
one-line notice; recipe options take their ``--help`` text and default from the recipe fields; and
``evaluate`` defaults to the max length and pooling its run was trained with."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import typer.main
from typer.testing import CliRunner

from sparsebert.cli import RECIPE_COMMANDS, app
from sparsebert.cli_vocabulary import ARGUMENTS, DEPRECATED, OPTIONS, PANELS, recipe_help

runner = CliRunner()


def _commands():
    group = typer.main.get_command(app)
    return group, dict(group.commands)


def _options(command):
    return [p for p in command.params if p.param_type_name == "option"]


def test_every_option_name_is_in_the_vocabulary():
    group, commands = _commands()
    unknown = []
    for p in _options(group):
        unknown += [("(app)", n) for n in p.opts + p.secondary_opts if n not in OPTIONS]
    for name, command in commands.items():
        for p in command.params:
            if p.param_type_name == "argument":
                if p.name not in ARGUMENTS:
                    unknown.append((name, f"argument {p.name}"))
                continue
            if p.hidden:
                continue  # the deprecated spellings: test_old_spellings_are_hidden_aliases
            for n in p.opts:
                if n not in OPTIONS:
                    unknown.append((name, n))
            for n in p.secondary_opts:  # a boolean's off switch is --no-<name>
                if n != "--no-" + p.opts[0][2:]:
                    unknown.append((name, n))
    assert not unknown, f"options outside sparsebert.cli_vocabulary.OPTIONS: {unknown}"


def test_no_concept_has_two_names():
    names = defaultdict(list)
    for name, term in OPTIONS.items():
        names[term.concept].append(name)
    assert not {c: n for c, n in names.items() if len(n) > 1}
    for command, old in DEPRECATED.items():
        assert not set(old) & set(OPTIONS) - {"--out"}, command  # an old name is no vocabulary word
    # within one command, two visible options never stand for one concept
    _, commands = _commands()
    for name, command in commands.items():
        concepts = [OPTIONS[p.opts[0]].concept for p in _options(command) if not p.hidden]
        assert len(concepts) == len(set(concepts)), name


def test_a_name_is_the_same_kind_of_option_everywhere():
    """A flag is a flag everywhere (``--json`` was a flag in report and a path in evaluate); --out is a
    DIR, --json a FILE, positional models are MODEL."""
    _, commands = _commands()
    for name, command in commands.items():
        for p in command.params:
            if p.param_type_name == "argument":
                assert p.metavar == p.name.upper(), (name, p.name, p.metavar)
                continue
            if p.hidden:
                continue
            term = OPTIONS[p.opts[0]]
            assert bool(p.is_flag) == term.flag, (name, p.opts[0])
            if term.metavar is not None:
                assert p.metavar == term.metavar, (name, p.opts[0], p.metavar)
            assert getattr(p, "rich_help_panel", None) in PANELS, (name, p.opts[0])
            assert p.help, (name, p.opts[0])


def test_old_spellings_are_hidden_aliases():
    _, commands = _commands()
    for name, command in commands.items():
        hidden = {p.opts[0]: p for p in _options(command) if p.hidden}
        visible = {n for p in _options(command) if not p.hidden for n in p.opts + p.secondary_opts}
        assert set(hidden) == set(DEPRECATED.get(name, {})), name
        for old, new in DEPRECATED.get(name, {}).items():
            assert new in visible and old not in visible, (name, old, new)
            assert hidden[old].help.startswith("deprecated: "), (name, old)


def test_recipe_options_get_help_and_defaults_from_the_recipe():
    import sparsebert.recipe as recipes

    _, commands = _commands()
    for name, cls_name in RECIPE_COMMANDS.items():
        if name not in commands:
            continue
        cls = getattr(recipes, cls_name)
        fields = [p for p in _options(commands[name]) if p.name in cls.model_fields and not p.hidden]
        assert len(fields) > 10, name
        for p in fields:
            assert p.help == recipe_help(cls, p.name), (name, p.name)
    from sparsebert.recipe import FinetuneRecipe, PruneRecipe

    assert recipe_help(PruneRecipe, "learning_rate").endswith("\\[default: 0.0001]")
    assert recipe_help(FinetuneRecipe, "learning_rate").endswith("\\[default: 2e-05]")
    assert recipe_help(PruneRecipe, "epochs") == "training epochs (max_steps overrides them) \\[default: 12]"
    with pytest.raises(ValueError, match="stage has no description"):
        recipe_help(PruneRecipe, "stage")


def test_prune_help_is_grouped_and_shows_the_defaults():
    r = runner.invoke(app, ["prune", "--help"], env={"COLUMNS": "2000"})  # one line per option
    assert r.exit_code == 0, r.output
    lines, current = {}, None  # an option's row and its wrapped continuation rows, joined
    for line in r.output.splitlines():
        if line.startswith("│ --"):
            current = line.split()[1]
            lines[current] = line.strip("│ ")
        elif line.startswith("│ ") and current is not None and line.strip("│ "):
            lines[current] += " " + line.strip("│ ")
        else:
            current = None
    lines = {k: " ".join(v.replace("│", " ").split()) for k, v in lines.items()}
    for option, default in (("--learning-rate", "0.0001"), ("--epochs", "12"), ("--temperature", "2"),
                            ("--hardness", "0.5"), ("--prune-start", "0.1"), ("--prune-end", "0.6"),
                            ("--attention-weight", "0"), ("--sparsity", "0.95")):
        assert f"[default: {default}]" in lines[option], lines[option]
    panels = [line.split()[1] for line in r.output.splitlines() if line.startswith("╭─")]
    assert panels == ["Options", "Recipe", "Data", "Model", "Pruning", "Distillation", "Optimisation", "Compute",
                      "Output"], panels
    assert "--lr " not in r.output


# --- the old spellings still work, with a notice ----------------------------------------------------

def _sparse_run(tiny_bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from sparsebert.bench.synthetic import magnitude_prune_

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    magnitude_prune_(model, 0.9)
    model.save_pretrained(tmp_path / "run")
    return tmp_path / "run"


def test_report_old_and_new_spellings(tiny_bert, tmp_path):
    run = _sparse_run(tiny_bert, tmp_path)
    new = runner.invoke(app, ["report", str(run), "--max-length", "64", "--json", "-"])
    assert new.exit_code == 0, new.output
    old = runner.invoke(app, ["report", str(run), "--seq-len", "64", "--json", "-"])
    assert old.exit_code == 0, old.output
    assert "warning: --seq-len is deprecated and goes in the next release; use --max-length" in old.stderr
    assert json.loads(old.stdout) == json.loads(new.stdout)
    r = runner.invoke(app, ["report", str(run), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0 and r.stdout == "", r.output
    assert json.loads((tmp_path / "r.json").read_text())["targets"] == json.loads(new.stdout)["targets"]
    r = runner.invoke(app, ["report", str(run), "--seq-len", "32", "--max-length", "64"])
    assert r.exit_code == 2 and "--max-length 64 and --seq-len 32 disagree" in r.output, r.output
    r = runner.invoke(app, ["report", str(run), "--json", "--totals-only"])
    assert r.exit_code == 2 and "--json takes a file (or - for stdout)" in r.output, r.output
    totals = runner.invoke(app, ["report", str(run), "--totals-only"], env={"COLUMNS": "200"})
    no_per = runner.invoke(app, ["report", str(run), "--no-per-matrix"], env={"COLUMNS": "200"})
    assert totals.exit_code == no_per.exit_code == 0
    assert totals.stdout == no_per.stdout and "deprecated" in totals.stderr


def test_bench_old_spellings_write_the_same_files(tiny_bert, tmp_path):
    run = _sparse_run(tiny_bert, tmp_path)
    common = ["--warmup", "0", "--min-iters", "1", "--max-iters", "1", "--threads", "1", "--no-sizes",
              "--path", "dense-fp32"]
    r = runner.invoke(app, ["bench", str(run), "--batch", "2", "--seq", "8", *common, "--out", str(tmp_path / "old")])
    assert r.exit_code == 0, r.output
    for old, new in (("--batch", "--batch-size"), ("--seq", "--max-length"), ("--out", "--json")):
        assert f"warning: {old} is deprecated and goes in the next release; use {new}" in r.stderr
    old = json.loads((tmp_path / "old.json").read_text())
    assert (tmp_path / "old.md").is_file() and set(old["results"]) == {"2"}
    r = runner.invoke(app, ["bench", str(run), "--batch-size", "2", "--max-length", "8", *common, "--json", "-"])
    assert r.exit_code == 0, r.output
    new = json.loads(r.stdout)  # stdout is the JSON only; the tables went to stderr
    assert set(new["results"]) == {"2"} and new["settings"]["seq"] == old["settings"]["seq"] == 8
    assert new["command"].startswith("sparsebert bench ") and "--max-length 8" in new["command"]
    r = runner.invoke(app, ["bench", str(run), *common, "--json", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and "give a .json file" in r.output


# --- evaluate: the max length and pooling the run was trained with ----------------------------------

def test_evaluate_defaults_to_the_runs_max_length_and_pooling(tiny_bert, tmp_path, monkeypatch):
    import sparsebert.stages.evaluate as ev

    run = tmp_path / "run"
    run.mkdir()
    seen = {}

    def fake_load(model_dir, task, data_dir, splits, max_length, max_examples, pooling=None):
        seen.update(max_length=max_length, pooling=pooling)
        raise SystemExit(0)  # the settings are what this test checks

    monkeypatch.setattr(ev, "_load", fake_load)
    # no recipe.yaml, no config: 128 and the config's (None -> cls when loading)
    with pytest.raises(SystemExit):
        ev.evaluate(run, "sst2")
    assert seen == {"max_length": 128, "pooling": None}
    (run / "recipe.yaml").write_text("stage: prune\nmax_length: 64\npooling: mean\n")
    with pytest.raises(SystemExit):
        ev.evaluate(run, "sst2")
    assert seen == {"max_length": 64, "pooling": "mean"}
    (run / "config.json").write_text(json.dumps({"sparsebert_pooling": "cls"}))
    with pytest.raises(SystemExit):
        ev.evaluate(run, "sst2")
    assert seen == {"max_length": 64, "pooling": "cls"}  # the config says what the saved head reads
    with pytest.raises(SystemExit):
        ev.evaluate(run, "sst2", max_length=32, pooling="mean")
    assert seen == {"max_length": 32, "pooling": "mean"}
    # the command line: the same defaults, overridable
    runner.invoke(app, ["evaluate", str(run), "--task", "sst2"])
    assert seen == {"max_length": 64, "pooling": "cls"}
    runner.invoke(app, ["evaluate", str(run), "--task", "sst2", "--max-length", "16", "--pooling", "mean"])
    assert seen == {"max_length": 16, "pooling": "mean"}
