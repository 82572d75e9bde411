"""Where the prunable matrices of a BERT-family encoder live.

SparseBERT (Xu et al., NAACL 2021, §3) prunes, in every Transformer layer, the six weight
matrices of the encoder: query, key, value, attention output, FFN-in (intermediate) and FFN-out.
Embeddings, biases, LayerNorm, pooler and classifier stay dense.

Each supported architecture is described once, by the path of its layer list and the relative
path of each role inside a layer; every module found that way is also checked to be an
``nn.Linear``. Supporting a new architecture means adding one :class:`ArchitectureSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sparsebert.errors import SparsebertError

ROLES: tuple[str, ...] = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")


@dataclass(frozen=True)
class ArchitectureSpec:
    """Module paths of one encoder family (relative to ``model.base_model``).

    Attributes:
        layers: dotted path of the ``nn.ModuleList`` of Transformer layers.
        roles: role name (one of :data:`ROLES`) -> dotted path inside one layer.
        heads_attr: config attribute holding the number of attention heads.
        hidden_attr: config attribute holding the hidden size.
        score_note: what the captured pre-softmax scores contain for this family.
    """

    layers: str
    roles: dict[str, str]
    heads_attr: str = "num_attention_heads"
    hidden_attr: str = "hidden_size"
    score_note: str = "exactly the pre-softmax scores QK^T/sqrt(d_head)"


_BERT_LIKE = ArchitectureSpec(
    layers="encoder.layer",
    roles={
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
    },
)

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "camembert": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": ArchitectureSpec(
        layers="transformer.layer",
        roles={
            "query": "attention.q_lin",
            "key": "attention.k_lin",
            "value": "attention.v_lin",
            "attn_out": "attention.out_lin",
            "ffn_in": "ffn.lin1",
            "ffn_out": "ffn.lin2",
        },
        heads_attr="n_heads",
        hidden_attr="dim",
    ),
    "mpnet": ArchitectureSpec(
        layers="encoder.layer",
        roles={
            "query": "attention.attn.q",
            "key": "attention.attn.k",
            "value": "attention.attn.v",
            "attn_out": "attention.attn.o",
            "ffn_in": "intermediate.dense",
            "ffn_out": "output.dense",
        },
        score_note="the content term QK^T/sqrt(d_head); MPNet's relative-position bias is not included",
    ),
}


class UnsupportedArchitectureError(SparsebertError, ValueError):
    """The model's ``config.model_type`` has no :class:`ArchitectureSpec`, or its modules differ."""


def architecture_of(model: nn.Module) -> ArchitectureSpec:
    """Return the :class:`ArchitectureSpec` for a transformers model.

    Raises:
        UnsupportedArchitectureError: unknown ``config.model_type``.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model_type {model_type!r} is not supported; supported: {sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[model_type]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of Transformer layers of ``model`` (a base model or a task model).

    Raises:
        UnsupportedArchitectureError: the layer list is not where the spec says.
    """
    spec = architecture_of(model)
    base = getattr(model, "base_model", model)
    try:
        layers = base.get_submodule(spec.layers)
    except AttributeError as err:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__}: no layer list at {spec.layers!r}"
        ) from err
    if not isinstance(layers, nn.ModuleList):
        raise UnsupportedArchitectureError(f"{type(model).__name__}.{spec.layers} is not a ModuleList")
    return layers


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """All pruning targets: ``{"layer.{i}.{role}": nn.Linear}`` in layer order.

    Returns 6 x num_layers modules (Q, K, V, attention-output, FFN-in, FFN-out per layer).

    Raises:
        UnsupportedArchitectureError: a role's module is missing or is not ``nn.Linear``.
    """
    spec = architecture_of(model)
    out: dict[str, nn.Linear] = {}
    for i, layer in enumerate(encoder_layers(model)):
        for role in ROLES:
            path = spec.roles[role]
            try:
                module = layer.get_submodule(path)
            except AttributeError as err:
                raise UnsupportedArchitectureError(f"layer {i}: no module at {path!r} ({role})") from err
            if not isinstance(module, nn.Linear):
                raise UnsupportedArchitectureError(
                    f"layer {i}: {path!r} ({role}) is {type(module).__name__}, expected nn.Linear"
                )
            out[f"layer.{i}.{role}"] = module
    return out


def qualified_names(model: nn.Module) -> dict[str, str]:
    """Map target key ``layer.{i}.{role}`` -> the weight's full parameter name in ``model``."""
    by_module = {id(m): name for name, m in model.named_modules()}
    return {key: f"{by_module[id(lin)]}.weight" for key, lin in prunable_linears(model).items()}


def num_heads(config) -> int:
    """Number of attention heads of a transformers config (``num_attention_heads`` or ``n_heads``)."""
    for attr in ("num_attention_heads", "n_heads"):
        if hasattr(config, attr):
            return int(getattr(config, attr))
    raise UnsupportedArchitectureError(f"{type(config).__name__} has no attention-head count")


def hidden_size(config) -> int:
    """Hidden size of a transformers config (``hidden_size`` or ``dim``)."""
    for attr in ("hidden_size", "dim"):
        if hasattr(config, attr):
            return int(getattr(config, attr))
    raise UnsupportedArchitectureError(f"{type(config).__name__} has no hidden size")
