"""Capture what knowledge distillation matches: per-layer pre-softmax attention scores.

The SparseBERT loss (Xu et al., NAACL 2021, §3; inherited from TinyBERT, Jiao et al. 2020,
Eq. 7) matches attention *scores* before the softmax, A = QK^T / sqrt(d_head). transformers
only returns post-softmax probabilities, and only from the eager attention path; SDPA/flash
return nothing. :class:`AttentionScoreTap` therefore recomputes A from the outputs of the query
and key projections with forward hooks, which works with every attention implementation
(eager, SDPA) and keeps the fast kernel for the forward pass itself. ``tests/test_capture.py``
checks ``softmax(A + mask)`` against the eager implementation's returned probabilities.

For MPNet the tap gives the content term only (its relative-position bias is not included);
see :data:`sparsebert.targets.ARCHITECTURES`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sparsebert.targets import architecture_of, encoder_layers, num_heads


class AttentionScoreTap:
    """Forward hooks on every layer's Q and K projections; yields pre-softmax scores.

    Usage::

        with AttentionScoreTap(model) as tap:
            out = model(**batch)
            scores = tap.scores()   # list (one per layer) of [batch, heads, seq, seq]

    Scores are computed in float32 and keep the autograd graph (for the student).
    Hooks are removed on ``__exit__``/``close()``.

    Raises:
        UnsupportedArchitectureError: the model's family is not in ``targets.ARCHITECTURES``.
        RuntimeError: ``scores()`` called before a forward pass.
    """

    def __init__(self, model: nn.Module):
        spec = architecture_of(model)
        self.num_heads = num_heads(model.config)
        self._q: dict[int, torch.Tensor] = {}
        self._k: dict[int, torch.Tensor] = {}
        self._handles = []
        layers = encoder_layers(model)
        self.num_layers = len(layers)
        for i, layer in enumerate(layers):
            q_mod = layer.get_submodule(spec.roles["query"])
            k_mod = layer.get_submodule(spec.roles["key"])
            self._handles.append(q_mod.register_forward_hook(self._store(self._q, i)))
            self._handles.append(k_mod.register_forward_hook(self._store(self._k, i)))

    @staticmethod
    def _store(bucket: dict[int, torch.Tensor], index: int):
        def hook(_module, _inputs, output):
            bucket[index] = output

        return hook

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        return x.view(b, s, self.num_heads, d // self.num_heads).transpose(1, 2)

    def scores(self) -> list[torch.Tensor]:
        """Pre-softmax attention scores of the last forward, one ``[B, H, S, S]`` per layer."""
        if len(self._q) != self.num_layers or len(self._k) != self.num_layers:
            raise RuntimeError("AttentionScoreTap.scores() called before a complete forward pass")
        out = []
        # fp32 even inside a bf16 autocast region: the scores are regression targets.
        with torch.autocast(device_type=self._q[0].device.type, enabled=False):
            for i in range(self.num_layers):
                q = self._split_heads(self._q[i].float())
                k = self._split_heads(self._k[i].float())
                out.append(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]))
        return out

    def clear(self) -> None:
        """Drop the stored projections of the last forward pass (frees memory)."""
        self._q.clear()
        self._k.clear()

    def close(self) -> None:
        """Remove all hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.clear()

    def __enter__(self) -> "AttentionScoreTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
