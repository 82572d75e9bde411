"""The physical limit of a sparse speed-up: what is left when the pruned linears cost nothing.

Weight sparsity removes work only from the target matrices (Q, K, V, attention output, FFN in and
out of every layer). Embeddings, attention's QK^T / softmax / AV, LayerNorm, GELU, the pooler and
the task head stay. :func:`linears_free_model` replaces every target ``nn.Linear`` by a stub that
returns zeros of the right shape, so timing it measures the non-linear part alone, in the same
framework (torch eager fp32) and on the same inputs; :func:`physical_limit` puts that beside the
FLOP reduction (:func:`sparsebert.flops.encoder_flops_per_token`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from sparsebert.flops import encoder_flops_per_token
from sparsebert.targets import prunable_linears

METHOD = ("torch fp32 eager with every target linear (Q, K, V, attention output, FFN in/out) replaced by a stub "
          "returning zeros of its output shape (cost: allocating the output); timed interleaved with the paths")


class ZeroLinear(nn.Module):
    """Stands in for an ``nn.Linear(in_features, out_features)``: ``(..., in) -> zeros (..., out)``.

    The output has the input's dtype and device; no weight is read and nothing is multiplied.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def linears_free_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose target linears (:func:`sparsebert.targets.prunable_linears`)
    are :class:`ZeroLinear` stubs; everything else (embeddings, attention, norms, head) is kept.

    Raises:
        UnsupportedArchitectureError: not a supported model.
    """
    m = copy.deepcopy(model).eval()
    targets = {id(lin) for lin in prunable_linears(m).values()}
    names = [name for name, mod in m.named_modules() if id(mod) in targets]
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = m.get_submodule(parent_name) if parent_name else m
        lin = getattr(parent, leaf)
        setattr(parent, leaf, ZeroLinear(lin.in_features, lin.out_features))
    return m


def physical_limit(model: nn.Module, seq: int, nonlinear_ms: list[float], torch_fp32_ms: float | None,
                   path_ms: dict[str, float]) -> dict[str, Any]:
    """The limit section of one batch size.

    Args:
        model: the benchmarked (pruned) model.
        seq: sequence length (tokens).
        nonlinear_ms: timed calls (ms) of :func:`linears_free_model` on this batch's inputs.
        torch_fp32_ms: median ms of torch eager fp32 (``dense-fp32``) on the same inputs, or None.
        path_ms: path -> median ms of every timed path.
    Returns:
        ``method``; ``flops`` (per token, from :func:`sparsebert.flops.encoder_flops_per_token`:
        ``linear_reduction`` = dense / sparse FLOPs of the target linears, ``total_reduction`` = the
        same for the whole encoder with attention's matmuls); ``nonlinear_ms`` (median),
        ``nonlinear_p10_ms``, ``nonlinear_p90_ms``; ``nonlinear_share_of_torch_fp32`` (the
        non-linear part / torch fp32 time); ``ideal_sparse_ms_torch`` (torch fp32 time with its
        linear part divided by ``linear_reduction``: a sparse kernel as efficient per FLOP as
        torch's dense GEMM, in torch's non-linear part); ``x_linears_free`` (path -> its median /
        the non-linear part: how far the path is from "the linears are free"; < 1 where its
        non-linear operators are faster than torch eager's).
    Raises:
        ValueError: ``nonlinear_ms`` is empty.
    """
    import numpy as np

    if not nonlinear_ms:
        raise ValueError("physical_limit needs at least one timed call of the linears-free model")
    fl = encoder_flops_per_token(model, seq)
    med = float(np.median(nonlinear_ms))
    out: dict[str, Any] = {
        "method": METHOD,
        "flops": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fl.items()},
        "nonlinear_ms": med,
        "nonlinear_p10_ms": float(np.percentile(nonlinear_ms, 10)),
        "nonlinear_p90_ms": float(np.percentile(nonlinear_ms, 90)),
        "nonlinear_share_of_torch_fp32": None,
        "ideal_sparse_ms_torch": None,
        "x_linears_free": {p: ms / med for p, ms in path_ms.items()},
    }
    if torch_fp32_ms:
        out["nonlinear_share_of_torch_fp32"] = med / torch_fp32_ms
        linear_ms = max(torch_fp32_ms - med, 0.0)
        out["ideal_sparse_ms_torch"] = med + linear_ms / fl["linear_reduction"]
    return out
