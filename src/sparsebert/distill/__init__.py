"""Knowledge distillation for prune-while-distill (SparseBERT / TinyBERT losses)."""

from sparsebert.distill.capture import AttentionScoreTap
from sparsebert.distill.loss import DistillationLoss, DistillWeights, uniform_layer_map

__all__ = ["AttentionScoreTap", "DistillationLoss", "DistillWeights", "uniform_layer_map"]
