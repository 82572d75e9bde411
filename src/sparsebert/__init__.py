"""sparsebert — knowledge-aware sparse pruning of BERT-family encoders.

Pipeline (one module per stage): data (:mod:`sparsebert.data`) -> teacher fine-tuning
(:func:`finetune`) -> prune-while-distill (:func:`prune`) -> evaluation (:func:`evaluate`) /
report (:func:`sparsity_report`) -> inference (:func:`load`, the native engine :class:`EncoderEngine`,
``sparsebert predict``). Method: Xu et al., *Rethinking Network Pruning — under the
Pre-train and Fine-tune Paradigm*, NAACL 2021.

The names below are imported on first use (module ``__getattr__``), so ``import sparsebert`` and
inference (:mod:`sparsebert.runtime`, :func:`load`) do not load the training stack.

No attribute shadows a module: the stage functions :func:`finetune`, :func:`prune` and
:func:`evaluate` live in :mod:`sparsebert.stages.finetune`, :mod:`sparsebert.stages.prune` and
:mod:`sparsebert.stages.evaluate` (``import sparsebert.stages.prune as p; p.build_schedules``).
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
    "prune": "sparsebert.stages.prune",
    "report_run": "sparsebert.report",
    "sparsity_report": "sparsebert.report",
}

__all__ = ["__version__", *sorted(_LAZY)]


# a public name is imported on first use (``from sparsebert import prune`` loads the training stack then)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

