"""Small dense students cut from a pre-trained encoder (the `small-dense` comparison).

The SparseBERT paper (Xu et al., NAACL 2021, Table 2) compares a 95 %-sparse BERT-base with
small dense models of *more* weights (TinyBERT-4L-312, DistilBERT-6L, MiniLM-6L). To make that
comparison on any encoder with equal data and steps, :func:`shrink_student` builds a dense
student with fewer layers and a narrower FFN, initialised from the pre-trained layers
(evenly spaced layers, as DistilBERT takes every other teacher layer — Sanh et al. 2019 §3;
FFN neurons with the largest weight norm ||W_in[j, :]||·||W_out[:, j]||, the usual structured
magnitude criterion). The hidden size and the attention heads are kept, so attention-score and
hidden-state distillation apply unchanged. :func:`dense_size_for` picks the layer count and FFN
width whose encoder weights come closest to a target count (e.g. the non-zeros of a 95 %-sparse
model).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.targets import UnsupportedArchitectureError, architecture_of, encoder_layers, hidden_size


def encoder_weights(num_layers: int, hidden: int, ffn: int) -> int:
    """Weights of the six target matrices of ``num_layers`` layers: L·(4·H² + 2·H·F) (biases excluded)."""
    return num_layers * (4 * hidden * hidden + 2 * hidden * ffn)


def dense_size_for(target_weights: int, hidden: int, teacher_layers: int, max_ffn: int, min_ffn: int = 64) -> tuple[int, int]:
    """Layer count and FFN width of a dense student with about ``target_weights`` encoder weights.

    Tries every layer count that divides ``teacher_layers`` (so the uniform layer map exists),
    deepest first, and takes the first whose FFN width ``F = (target/L − 4H²) / 2H`` is at
    least ``min_ffn``; when none is (a target below one attention block), one layer with
    ``min_ffn`` neurons — the smallest such student, which then has *more* weights than the target.

    Returns:
        ``(num_layers, ffn)`` with ``min_ffn <= ffn <= max_ffn``.
    Raises:
        InputError: non-positive sizes (a ``ValueError``).
    """
    if min(target_weights, hidden, teacher_layers, max_ffn, min_ffn) <= 0:
        raise InputError(f"sizes must be positive: target={target_weights}, hidden={hidden}, "
                         f"teacher_layers={teacher_layers}, max_ffn={max_ffn}, min_ffn={min_ffn}")
    for layers in sorted((d for d in range(1, teacher_layers + 1) if teacher_layers % d == 0), reverse=True):
        ffn = round((target_weights / layers - 4 * hidden * hidden) / (2 * hidden))
        if ffn >= min_ffn:
            return layers, min(ffn, max_ffn)
    return 1, min(min_ffn, max_ffn)


def _keep_layers(n_old: int, n_new: int) -> list[int]:
    return [round(i * n_old / n_new) for i in range(n_new)]


@torch.no_grad()
def _narrow(linear: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``linear`` keeping output rows (dim 0) or input columns (dim 1) ``keep``."""
    w = linear.weight.index_select(dim, keep)
    new = nn.Linear(w.shape[1], w.shape[0], bias=linear.bias is not None, dtype=w.dtype, device=w.device)
    new.weight.copy_(w)
    if linear.bias is not None:
        new.bias.copy_(linear.bias.index_select(0, keep) if dim == 0 else linear.bias)
    return new


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, name, value)


@torch.no_grad()
def shrink_student(model: nn.Module, num_layers: int | None = None, ffn: int | None = None) -> dict:
    """Cut ``model`` (in place) down to ``num_layers`` layers and ``ffn`` FFN neurons per layer.

    Kept layers: indices ``round(i·L/num_layers)`` (0-based; e.g. 6 → 2 keeps 0 and 3). Kept
    neurons: the ``ffn`` largest ``||W_in[j,:]||₂·||W_out[:,j]||₂`` of each layer, in their original
    order. ``config.num_hidden_layers`` / ``config.intermediate_size`` are updated, so
    ``save_pretrained`` / ``from_pretrained`` round-trip the smaller model.

    Returns:
        ``{"layers_kept": [...], "ffn": F, "encoder_weights": n}``.
    Raises:
        InputError: sizes above the model's (a ``ValueError``).
        UnsupportedArchitectureError: a config without ``num_hidden_layers`` /
            ``intermediate_size`` (e.g. DistilBERT).
    """
    config = model.config
    for attr in ("num_hidden_layers", "intermediate_size"):
        if not hasattr(config, attr):
            raise UnsupportedArchitectureError(f"{config.model_type}: cannot shrink a model whose config has no {attr!r}")
    spec = architecture_of(model)
    layers = encoder_layers(model)
    n_old, f_old = len(layers), config.intermediate_size
    num_layers = num_layers or n_old
    ffn = ffn or f_old
    if not 1 <= num_layers <= n_old:
        raise InputError(f"student_layers {num_layers} must be in [1, {n_old}] (the model's layer count)")
    if not 1 <= ffn <= f_old:
        raise InputError(f"student_ffn {ffn} must be in [1, {f_old}] (the model's intermediate_size)")
    kept = _keep_layers(n_old, num_layers)
    new_layers = nn.ModuleList([layers[i] for i in kept])
    for new_idx, layer in enumerate(new_layers):
        for m in layer.modules():  # some attention classes carry their layer index
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_idx
        if ffn < f_old:
            w_in, w_out = layer.get_submodule(spec.roles["ffn_in"]), layer.get_submodule(spec.roles["ffn_out"])
            score = w_in.weight.float().norm(dim=1) * w_out.weight.float().norm(dim=0)
            keep = score.topk(ffn).indices.sort().values
            _set(layer, spec.roles["ffn_in"], _narrow(w_in, keep, 0))
            _set(layer, spec.roles["ffn_out"], _narrow(w_out, keep, 1))
    base = getattr(model, "base_model", model)
    _set(base, spec.layers, new_layers)
    config.num_hidden_layers, config.intermediate_size = num_layers, ffn
    return {"layers_kept": kept, "ffn": ffn, "encoder_weights": encoder_weights(num_layers, hidden_size(config), ffn)}
