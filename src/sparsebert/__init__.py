"""sparsebert — knowledge-aware sparse pruning of BERT-family encoders.

Pipeline (one module per stage): data (:mod:`sparsebert.data`) -> teacher fine-tuning
(:func:`finetune`) -> prune-while-distill (:func:`prune`) -> evaluation (:func:`evaluate`) /
report (:func:`sparsity_report`). Method: Xu et al., *Rethinking Network Pruning — under the
Pre-train and Fine-tune Paradigm*, NAACL 2021.
"""

__version__ = "0.1.0"

from sparsebert.evaluate import evaluate  # noqa: E402
from sparsebert.export.checkpoint import AutoSparseModel, load  # noqa: E402
from sparsebert.finetune import finetune  # noqa: E402
from sparsebert.prune import prune  # noqa: E402
from sparsebert.recipe import FinetuneRecipe, PruneRecipe  # noqa: E402
from sparsebert.report import report_run, sparsity_report  # noqa: E402

__all__ = [
    "AutoSparseModel", "FinetuneRecipe", "PruneRecipe", "__version__", "evaluate", "finetune", "load", "prune",
    "report_run", "sparsity_report",
]
