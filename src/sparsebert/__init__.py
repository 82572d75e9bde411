"""sparsebert — knowledge-aware sparse pruning of BERT-family encoders.

Method: Xu et al., *Rethinking Network Pruning — under the Pre-train and Fine-tune Paradigm*, NAACL
2021. Pipeline: data -> finetune (the teacher) -> prune (the student, while distilling) -> evaluate /
report -> export -> load / predict. Command line: ``sparsebert --help`` (:mod:`sparsebert.cli`).

Public API (``help(sparsebert.NAME)``: its arguments, returned summary, errors and source):

    finetune(recipe) -> summary            fine-tune a teacher: a GLUE task or your own files
    prune(recipe) -> summary               prune a student to recipe.sparsity while distilling
    evaluate(model_dir, task=None, ...)    dev metrics of a saved model: {split: {metric: value}}
    report_run(run_dir) -> report          sparsity, non-zeros, FLOPs/token of a saved model
    sparsity_report(model) -> report       the same for a model in memory
    load(path, engine=False) -> model      a sparse checkpoint (``sparsebert export``) or its engine
    load_biencoder(name) -> BiEncoder      a Sentence-BERT bi-encoder (pair tasks, text by text)
    AutoSparseModel.from_pretrained(path)  the same, ``from_pretrained``-style
    EncoderEngine(model, int8=False)       the native sparse inference engine (C++)
    FinetuneRecipe, PruneRecipe            validated settings of finetune / prune (YAML: --recipe)

These names are imported on first use, so ``import sparsebert`` and inference do not load the
training stack; ``__all__`` lists them (``dir()`` and ``help()`` show only this summary). No
attribute shadows a module: the stage functions live in :mod:`sparsebert.stages`
(``import sparsebert.stages.prune as p; p.build_schedules``).
"""

from __future__ import annotations

from sparsebert._lazy import lazy_exports

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {
    "AutoSparseModel": "sparsebert.export.checkpoint",
    "EncoderEngine": "sparsebert.engine",
    "FinetuneRecipe": "sparsebert.recipe",
    "PruneRecipe": "sparsebert.recipe",
    "evaluate": "sparsebert.stages.evaluate",
    "finetune": "sparsebert.stages.finetune",
    "load": "sparsebert.export.checkpoint",
    "load_biencoder": "sparsebert.biencoder",
    "prune": "sparsebert.stages.prune",
    "report_run": "sparsebert.report",
    "sparsity_report": "sparsebert.report",
}

__all__ = ["__version__", *sorted(_LAZY)]


# a public name is imported on first use (``from sparsebert import prune`` loads the training stack then)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, listed=False)  # help(sparsebert): one screen

