"""Random encoders of real shapes, pruned by magnitude: what ``bench --synthetic`` measures."""

from __future__ import annotations

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.preflight import check_sparsity
from sparsebert.targets import prunable_linears

SHAPES: dict[str, dict[str, int]] = {
    # BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072.
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    # MiniLM-L6-H384 (all-MiniLM-L6-v2): 6 layers, hidden 384, 12 heads, FFN 1536.
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
}


@torch.no_grad()
def magnitude_prune_(model: nn.Module, sparsity: float) -> None:
    """Zero the ``round(sparsity * n)`` smallest-magnitude weights of every target matrix, in place.

    Raises:
        PreflightError: ``sparsity`` is not a number in [0, 1).
    """
    check_sparsity(sparsity, "sparsity")
    for lin in prunable_linears(model).values():
        w = lin.weight
        k = round(sparsity * w.numel())
        if k:
            idx = w.abs().flatten().argsort()[:k]
            w.view(-1)[idx] = 0.0


def synthetic_model(shape: str, sparsity: float, num_labels: int = 2, seed: int = 0) -> nn.Module:
    """A randomly initialised ``BertForSequenceClassification`` of ``shape``, magnitude-pruned.

    Raises:
        InputError: unknown shape (a ``ValueError``); ValueError: sparsity out of range.
    """
    from transformers import BertConfig, BertForSequenceClassification

    if shape not in SHAPES:
        raise InputError(f"unknown synthetic shape {shape!r}; choose one of {list(SHAPES)}")
    torch.manual_seed(seed)
    config = BertConfig(**SHAPES[shape], vocab_size=30522, num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    magnitude_prune_(model, sparsity)
    return model
