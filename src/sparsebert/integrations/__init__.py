"""SparseBERT inside other training libraries.

:mod:`sparsebert.integrations.trainer` adds knowledge-aware sparse pruning (Xu et al., NAACL 2021,
§3) to a user's own ``transformers.Trainer``: :class:`GradualPruningCallback` (cubic gradual
pruning, masks enforced) and :class:`DistillationTrainer` (the distillation loss from a fine-tuned
teacher). Names are imported on first use, so ``import sparsebert.integrations`` does not import
transformers.
"""

from __future__ import annotations

from sparsebert._lazy import lazy_exports

_NAMES = ("DistillationTrainer", "GradualPruningCallback", "default_distill_weights", "distillation_loss")

__all__ = list(_NAMES)


__getattr__, __dir__ = lazy_exports(__name__, globals(), {n: f"{__name__}.trainer" for n in _NAMES})
