from pathlib import Path

import pytest

from sparsebert.io import OutputExistsError, atomic_path, staged_output_dir, write_json_atomic, write_text_atomic
from sparsebert.recipe import FinetuneRecipe, PruneRecipe, RecipeError, build_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_shipped_recipes_validate():
    r = build_recipe(PruneRecipe, RECIPES / "sparsebert-paper.yaml", task="mrpc", out="o", teacher="t", student="s")
    assert (r.sparsity, r.learning_rate, r.batch_size, r.max_length, r.pruning_events) == (0.95, 3e-5, 32, 128, 100)
    f = build_recipe(FinetuneRecipe, RECIPES / "teacher.yaml", task="rte", out="o", model="m")
    assert f.epochs == 3


#: run-control fields (where, what, how often to log/save) that are not part of the method
RUN_FIELDS = {"task", "data_dir", "train", "dev", "text_column", "text_pair_column", "label_column", "task_type", "out", "teacher", "student", "student_layers", "student_ffn", "augment", "seed",
              "threads", "overwrite", "resume", "save_every", "log_every", "eval_every", "eval_batch_size",
              "max_steps", "max_train_examples", "max_eval_examples", "bf16"}


def test_default_recipe_file_is_prunes_defaults():
    """recipes/sparsebert-default.yaml documents PruneRecipe's defaults; they must not drift apart."""
    import yaml

    data = yaml.safe_load((RECIPES / "sparsebert-default.yaml").read_text())
    defaults = {k: f.default for k, f in PruneRecipe.model_fields.items() if k not in RUN_FIELDS}
    assert set(data) == set(defaults), sorted(set(data) ^ set(defaults))
    assert {k: data[k] for k in defaults} == defaults
    paper = yaml.safe_load((RECIPES / "sparsebert-paper.yaml").read_text())
    assert {k for k in paper if paper[k] != data.get(k)} >= {"learning_rate", "attention_weight", "prune_end"}


def test_cli_overrides_file_and_none_is_ignored(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: m\ntask: rte\nout: o\nseed: 1\nepochs: 2\n")
    r = build_recipe(FinetuneRecipe, p, seed=5, epochs=None)
    assert (r.seed, r.epochs) == (5, 2)


def test_wrong_stage_and_bad_values_name_the_field(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("stage: prune\n")
    with pytest.raises(RecipeError, match="stage"):
        build_recipe(FinetuneRecipe, p, model="m", task="rte", out="o")
    with pytest.raises(RecipeError, match="initial_sparsity"):
        build_recipe(PruneRecipe, None, task="rte", out="o", teacher="t", student="s", sparsity=0.5, initial_sparsity=0.8)
    with pytest.raises(RecipeError, match="teacher is required"):
        build_recipe(PruneRecipe, None, task="rte", out="o", student="s")
    with pytest.raises(RecipeError, match="every loss weight is 0"):
        build_recipe(PruneRecipe, None, task="rte", out="o", student="s", attention_weight=0, hidden_weight=0,
                     prediction_weight=0)
    r = build_recipe(PruneRecipe, None, task="rte", out="o", student="s", attention_weight=0, hidden_weight=0,
                     prediction_weight=0, label_weight=1)
    assert r.teacher is None and not r.uses_teacher
    p.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        build_recipe(FinetuneRecipe, p)


def test_staged_output_is_atomic_and_respects_overwrite(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyError):
        with staged_output_dir(out) as stage:
            (stage / "half.txt").write_text("x")
            raise KeyError("crash")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_output_dir(out) as stage:
        write_json_atomic(stage / "a.json", {"v": 1})
    assert (out / "a.json").is_file()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with staged_output_dir(out):
            pass
    with staged_output_dir(out, overwrite=True) as stage:
        (stage / "b.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["b.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "first\n")  # creates the parent directory
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_text("half")
            raise KeyError("crash")
    assert target.read_text() == "first\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temporary file left
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"second")
    assert target.read_bytes() == b"second" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_recipe_changes_ignores_fields_added_later_at_their_default():
    """A run (or grid cell) made before a recipe field existed resumes / stays finished when the new
    field keeps its default; any other difference is reported."""
    from sparsebert.checkpointing import recipe_changes

    r = build_recipe(PruneRecipe, None, task="rte", out="o", teacher="t", student="s")
    saved = r.model_dump(mode="json")
    assert recipe_changes(saved, r) == []
    old = {k: v for k, v in saved.items() if k != "augment_filter"}  # written by an older sparsebert
    assert recipe_changes(old, r) == []
    assert recipe_changes({**old, "threads": 7}, r) == []  # MAY_CHANGE
    filtered = r.model_copy(update={"augment": "aug", "augment_filter": "teacher-agrees"})
    assert recipe_changes(old, filtered) == ["augment: None -> 'aug'", "augment_filter: None -> 'teacher-agrees'"]
    assert recipe_changes({**saved, "sparsity": 0.9}, r) == ["sparsity: 0.9 -> 0.95"]
    assert recipe_changes({**saved, "gone": 1}, r) == ["gone: 1 -> None"]  # a field sparsebert no longer has
