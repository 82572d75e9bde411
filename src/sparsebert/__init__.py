"""sparsebert — knowledge-aware sparse pruning of BERT-family encoders.

Pipeline (one module per stage): data (:mod:`sparsebert.data`) -> teacher fine-tuning
(:func:`finetune`) -> prune-while-distill (:func:`prune`) -> evaluation (:func:`evaluate`) /
report (:func:`sparsity_report`) -> inference (:func:`load`, the native engine :class:`EncoderEngine`,
``sparsebert predict``). Method: Xu et al., *Rethinking Network Pruning — under the
Pre-train and Fine-tune Paradigm*, NAACL 2021.

The names below are imported on first use (module ``__getattr__``), so ``import sparsebert`` and
inference (:mod:`sparsebert.runtime`, :func:`load`) do not load the training stack.
"""

from __future__ import annotations

import sys
import types

from sparsebert._lazy import lazy_exports

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY = {
    "AutoSparseModel": "sparsebert.export.checkpoint",
    "EncoderEngine": "sparsebert.engine",
    "FinetuneRecipe": "sparsebert.recipe",
    "PruneRecipe": "sparsebert.recipe",
    "evaluate": "sparsebert.evaluate",
    "finetune": "sparsebert.finetune",
    "load": "sparsebert.export.checkpoint",
    "prune": "sparsebert.prune",
    "report_run": "sparsebert.report",
    "sparsity_report": "sparsebert.report",
}

__all__ = ["__version__", *sorted(_LAZY)]


# a public name is imported on first use (``from sparsebert import prune`` loads the training stack then)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


class _Package(types.ModuleType):
    """``sparsebert.finetune``, ``.prune`` and ``.evaluate`` are the stage functions, not the modules of the
    same name (as they were when this package imported them eagerly): when the import system binds
    such a submodule here after loading it, the function it defines is bound instead. The modules
    stay in ``sys.modules`` (``importlib.import_module("sparsebert.prune")``)."""

    def __setattr__(self, name: str, value) -> None:
        if (isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
