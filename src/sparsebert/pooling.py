"""Sentence pooling in front of a sequence-classification head: the [CLS] token or the masked mean.

Hugging Face's sequence-classification models read the first token: BERT's pooler takes
``hidden[:, 0]`` (dense + tanh) before the classifier, MPNet/RoBERTa heads take ``features[:, 0]``.
Sentence-embedding checkpoints such as all-MiniLM-L6-v2 were trained with *mean* pooling (Reimers &
Gurevych 2019, §3), so their [CLS] vector carries almost no input information before fine-tuning
(``results/cls_collapse.md``: spread ≤ 0.008 across dev examples in layers 0-4). ``mean`` pooling
feeds the head the attention-mask-weighted mean of the last hidden states instead:

    pooled = Σ_t m_t h_t / max(Σ_t m_t, 1),   h: [batch, seq, hidden], m: [batch, seq] in {0, 1}

and hands it to the head as a length-1 sequence, so the head's own weights (BERT's pooler dense,
MPNet's ``classifier.dense``) are kept with their names: the state dict is unchanged and the choice
is recorded in ``config.sparsebert_pooling`` (saved in ``config.json``).

Loading through sparsebert (``load_for_task``, ``sparsebert.load``, exports) re-applies it. A plain
``AutoModelForSequenceClassification.from_pretrained`` of a ``mean`` checkpoint does **not**: it
would read [CLS] and predict wrongly, which is why the model card says so.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from sparsebert.errors import InputError

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = ("cls", "mean")
CONFIG_KEY = "sparsebert_pooling"


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The attention-mask-weighted mean over the sequence (mean pooling, Reimers & Gurevych 2019, §3).

    Args:
        hidden: ``[batch, seq, hidden]``.
        mask: ``[batch, seq]`` in {0, 1}, or None (every position counts).
    Returns:
        ``[batch, hidden]``: ``Σ_t m_t h_t / max(Σ_t m_t, 1)``.
    """
    if mask is None or mask.shape != hidden.shape[:2]:
        m = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
    else:
        m = mask.to(hidden.dtype)
    return (hidden * m.unsqueeze(-1)).sum(dim=1) / m.sum(dim=1).clamp(min=1.0).unsqueeze(-1)


class MeanPooling(nn.Module):
    """Hooks that replace the head's input sequence by its masked mean (no parameters, no state).

    Installed by :func:`apply_pooling` as ``model.sparsebert_mean_pooling``: a forward pre-hook on the
    whole model records ``attention_mask`` ([batch, seq], 1 = token) from the call, and a forward
    pre-hook on the head (``pooler`` or ``classifier``) swaps its input ``[batch, seq, hidden]`` for
    ``[batch, 1, hidden]``. Without an ``attention_mask`` every position counts.
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: torch.Tensor | None = None

    def capture(self, module: nn.Module, args: tuple, kwargs: dict):
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]  # forward(input_ids, attention_mask, ...)
        self._mask = mask
        return None

    def pool(self, module: nn.Module, args: tuple):
        return (masked_mean(args[0], self._mask).unsqueeze(1), *args[1:])


def head_module(model: nn.Module) -> nn.Module:
    """The module that reads the first token: the base model's ``pooler`` (BERT) or the
    ``classifier`` head that indexes ``[:, 0]`` (MPNet, RoBERTa).

    Raises:
        InputError: the model has neither.
    """
    base = getattr(model, "base_model", model)
    pooler = getattr(base, "pooler", None)
    if isinstance(pooler, nn.Module):
        return pooler
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Module) and not isinstance(head, nn.Linear):
        return head  # a head module that takes the sequence (features[:, 0, :])
    raise InputError(f"{type(model).__name__}: no pooler or sequence-reading classifier head; "
                     "mean pooling is supported for BERT- and MPNet/RoBERTa-style heads")


def apply_pooling(model: nn.Module, pooling: str) -> nn.Module:
    """Set ``model``'s sentence pooling to ``pooling`` in place and record it in its config.

    Idempotent: applying the same pooling twice installs one set of hooks; ``cls`` removes them.

    Returns:
        ``model``.
    Raises:
        InputError: unknown ``pooling`` (names the value), or a model without a supported head.
    """
    if pooling not in POOLINGS:
        raise InputError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    current = getattr(model, "sparsebert_mean_pooling", None)
    if current is not None:
        for handle in current._handles:
            handle.remove()
        del model.sparsebert_mean_pooling
    if pooling == "mean":
        hooks = MeanPooling()
        hooks._handles = [
            model.register_forward_pre_hook(hooks.capture, with_kwargs=True),
            head_module(model).register_forward_pre_hook(hooks.pool),
        ]
        model.sparsebert_mean_pooling = hooks
    config = getattr(model, "config", None)
    if config is not None:
        if pooling == "cls":
            if hasattr(config, CONFIG_KEY):
                delattr(config, CONFIG_KEY)
        else:
            setattr(config, CONFIG_KEY, pooling)
    return model


def config_pooling(config) -> str:
    """The pooling a saved model was trained with (``config.sparsebert_pooling``; ``cls`` when absent).

    Raises:
        InputError: the config names an unknown pooling.
    """
    pooling = getattr(config, CONFIG_KEY, None) or "cls"
    if pooling not in POOLINGS:
        raise InputError(f"config.json: {CONFIG_KEY} = {pooling!r}, expected one of {', '.join(POOLINGS)}")
    return pooling


def apply_config_pooling(model: nn.Module) -> nn.Module:
    """Re-apply the pooling recorded in ``model.config`` (after loading a saved model). Returns ``model``."""
    return apply_pooling(model, config_pooling(model.config))
