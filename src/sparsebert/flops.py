"""Per-token FLOPs of the encoder, dense vs sparse.

Counted as 2 FLOPs per multiply-add. The six target matrices of every layer cost
2 * in * out dense and 2 * nnz sparse per token; the attention matmuls QK^T and AV cost
2 * 2 * seq_len * hidden per token and layer and are not reduced by weight sparsity
(Xu et al., NAACL 2021 count the 20x on the weight matrices). Embeddings, LayerNorm, softmax,
biases and the task head are ignored (< 1 % at BERT-base size).
"""

from __future__ import annotations

from torch import nn

from sparsebert.targets import hidden_size, prunable_linears


def encoder_flops_per_token(model: nn.Module, seq_len: int = 128) -> dict[str, float]:
    """FLOPs per token (units: FLOP) of the encoder's linear layers and attention.

    Args:
        model: a supported transformers encoder (task model or base model).
        seq_len: sequence length used for the attention matmul cost.
    Returns:
        ``linear_dense``, ``linear_sparse``, ``attention``, ``total_dense``, ``total_sparse``,
        ``linear_reduction`` (dense / sparse linear FLOPs) and ``total_reduction``.
    """
    targets = prunable_linears(model)
    dense = sum(2.0 * m.weight.numel() for m in targets.values())
    sparse = sum(2.0 * int((m.weight != 0).sum()) for m in targets.values())
    layers = len(targets) // 6
    attention = layers * 2 * 2.0 * seq_len * hidden_size(model.config)
    return {
        "seq_len": seq_len,
        "linear_dense": dense,
        "linear_sparse": sparse,
        "attention": attention,
        "total_dense": dense + attention,
        "total_sparse": sparse + attention,
        "linear_reduction": dense / max(sparse, 1.0),
        "total_reduction": (dense + attention) / max(sparse + attention, 1.0),
    }
