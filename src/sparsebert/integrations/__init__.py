"""SparseBERT inside other training libraries.

:mod:`sparsebert.integrations.trainer` adds knowledge-aware sparse pruning (Xu et al., NAACL 2021,
§3) to a user's own ``transformers.Trainer``: :class:`GradualPruningCallback` (cubic gradual
pruning, masks enforced) and :class:`DistillationTrainer` (the distillation loss from a fine-tuned
teacher). Names are imported on first use, so ``import sparsebert.integrations`` does not import
transformers.
"""

from __future__ import annotations

import importlib

_NAMES = ("DistillationTrainer", "GradualPruningCallback", "default_distill_weights", "distillation_loss")

__all__ = list(_NAMES)


def __getattr__(name: str):
    """Import :mod:`sparsebert.integrations.trainer`'s names on first use."""
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.trainer"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
