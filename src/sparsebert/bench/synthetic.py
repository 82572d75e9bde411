"""Random encoders of real shapes, pruned by magnitude: what ``bench --synthetic`` measures.

The pattern is unstructured (each weight on its own) or one of the pruner's patterns
(:mod:`sparsebert.pruning.patterns`): ``RxC`` blocks scored by the sum of their magnitudes (``1x4`` =
the 4 int8 weights one VNNI ``vpdpbusd`` step multiplies; Zafrir et al. 2021, *Prune Once For All*) or
``N:M`` (Mishra et al. 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.preflight import check_sparsity
from sparsebert.pruning.masks import block_sum, pattern_masks
from sparsebert.pruning.patterns import UNSTRUCTURED, check_pattern, check_pattern_sparsity
from sparsebert.targets import prunable_linears

SHAPES: dict[str, dict[str, int]] = {
    # BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072.
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    # MiniLM-L6-H384 (all-MiniLM-L6-v2): 6 layers, hidden 384, 12 heads, FFN 1536.
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
}


@torch.no_grad()
def magnitude_prune_(model: nn.Module, sparsity: float, pattern: str = UNSTRUCTURED) -> None:
    """Prune every target matrix ``[out, in]`` to ``sparsity`` by magnitude in ``pattern``, in place.

    The pruner's mask creator (:func:`sparsebert.pruning.masks.pattern_masks`) on ``|w|``. Unstructured: the
    ``round(sparsity * n)`` smallest-magnitude weights are zeroed. ``RxC``: whole blocks of
    R output rows x C input columns, ranked by the sum of their magnitudes, ``round(sparsity * blocks)``
    zeroed. ``N:M``: the N largest of every M consecutive weights of a row kept (sparsity must be 1 - N/M).

    Raises:
        PreflightError: ``sparsity`` is not a number in [0, 1).
        InputError: a bad pattern, one the matrix shapes do not divide, or an N:M pattern with another sparsity.
    """
    check_sparsity(sparsity, "sparsity")
    linears = prunable_linears(model)
    p = check_pattern(pattern, {name: tuple(lin.weight.shape) for name, lin in linears.items()})
    check_pattern_sparsity(p, sparsity)
    scores = {name: block_sum(lin.weight.abs(), p.rows, p.cols) if p.kind == "block" else lin.weight.abs()
              for name, lin in linears.items()}
    for name, keep in pattern_masks(p, scores, sparsity, {}).items():
        linears[name].weight.masked_fill_(~keep, 0.0)


def synthetic_model(shape: str, sparsity: float, num_labels: int = 2, seed: int = 0,
                    pattern: str = UNSTRUCTURED) -> nn.Module:
    """A randomly initialised ``BertForSequenceClassification`` of ``shape``, magnitude-pruned in ``pattern``
    (:func:`magnitude_prune_`).

    Raises:
        InputError: unknown shape or a bad pattern (:func:`magnitude_prune_`); PreflightError: sparsity out
            of range.
    """
    from transformers import BertConfig, BertForSequenceClassification

    if shape not in SHAPES:
        raise InputError(f"unknown synthetic shape {shape!r}; choose one of {list(SHAPES)}")
    torch.manual_seed(seed)
    config = BertConfig(**SHAPES[shape], vocab_size=30522, num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    magnitude_prune_(model, sparsity, pattern)
    return model
