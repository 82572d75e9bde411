"""No attribute of a package shadows a module of the same name (issue 33): the stage modules are
``sparsebert.stages.*`` and the runtime's conversion module is ``sparsebert.runtime.conversion``, while
``from sparsebert import prune, finetune, evaluate`` and ``from sparsebert.runtime import convert`` still
give the functions."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import sparsebert


@pytest.mark.parametrize("name, attrs", [
    ("sparsebert.stages.prune", ("prune", "build_schedules", "cubic_schedule", "pruning_window", "check_pair")),
    ("sparsebert.stages.finetune", ("finetune", "task_loss")),
    ("sparsebert.stages.evaluate", ("evaluate", "eval_task", "eval_logits")),
    ("sparsebert.runtime.conversion", ("convert", "ConversionReport", "time_candidates", "target_modules")),
])
def test_import_as_and_import_module_give_the_module(name, attrs):
    by_importlib = importlib.import_module(name)
    package, _, leaf = name.rpartition(".")
    # `import a.b.c as m` binds getattr(a.b, "c") (falling back to sys.modules): the same object
    namespace: dict = {}
    exec(f"import {name} as m", namespace)
    assert namespace["m"] is by_importlib
    assert getattr(importlib.import_module(package), leaf) is by_importlib
    assert isinstance(by_importlib, types.ModuleType)
    for attr in attrs:
        assert hasattr(by_importlib, attr), (name, attr)


def test_public_stage_functions_are_still_the_functions():
    from sparsebert import evaluate, finetune, prune
    from sparsebert.runtime import convert

    stages = importlib.import_module("sparsebert.stages")
    for fn, module in ((prune, "sparsebert.stages.prune"), (finetune, "sparsebert.stages.finetune"),
                       (evaluate, "sparsebert.stages.evaluate"), (convert, "sparsebert.runtime.conversion")):
        assert inspect.isfunction(fn) and fn.__module__ == module, fn
        assert getattr(importlib.import_module(module), fn.__name__) is fn
    assert sparsebert.prune is prune and sparsebert.finetune is finetune and sparsebert.evaluate is evaluate
    # the stages package exports nothing that could shadow its modules
    assert not any(inspect.isfunction(v) for v in vars(stages).values())
    assert list(inspect.signature(prune).parameters) == ["recipe"]


def test_no_package_attribute_shadows_a_module():
    """Every lazily exported name of ``sparsebert`` and every name of ``sparsebert.runtime`` differs
    from the submodules of that package (so ``import pkg.name as m`` is always the module)."""
    import sparsebert.runtime as runtime

    for package, names in ((sparsebert, sparsebert.__all__), (runtime, runtime.__all__)):
        modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
        assert not modules & set(names), (package.__name__, modules & set(names))


def test_old_module_paths_are_gone_not_shadowed():
    for old in ("sparsebert.prune", "sparsebert.finetune", "sparsebert.evaluate", "sparsebert.runtime.convert"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)


def test_public_prune_function_runs_and_fails_cleanly(tmp_path):
    """``sparsebert.prune(recipe)`` is callable through the package (a missing student: the usual error)."""
    from sparsebert.models import ModelNotFoundError

    recipe = sparsebert.PruneRecipe(student=str(tmp_path / "no_student"), teacher=str(tmp_path / "no_teacher"),
                                    task="sst2", data_dir=str(tmp_path), out=str(tmp_path / "out"))
    with pytest.raises(ModelNotFoundError, match="no_student"):
        sparsebert.prune(recipe)
    assert not (tmp_path / "out").exists()
