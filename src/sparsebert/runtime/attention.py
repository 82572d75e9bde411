"""The attention implementation of the sparse runtime: SDPA where transformers has it, eager otherwise.

transformers (5.x) runs attention through an "attention implementation" chosen per model
(``model.config._attn_implementation``): ``"eager"`` computes ``softmax(QK^T/sqrt(d) + mask) V``
with separate matmul / softmax ops, ``"sdpa"`` calls
``torch.nn.functional.scaled_dot_product_attention`` (one fused kernel; on CPU a flash-attention
style kernel that never stores the [batch, heads, seq, seq] probabilities). transformers 5 already
picks ``"sdpa"`` by default for every supported family that has it; :func:`set_attention` makes the
choice explicit for the inference runtime (:func:`sparsebert.runtime.convert`,
``sparsebert.load(..., runtime=True)``), with ``attention="eager"`` as the opt-out. Training and
pruning are not touched: :class:`sparsebert.distill.capture.AttentionScoreTap` recomputes the
scores from the Q/K projections and works with either implementation.

Support per family (transformers 5.24): BERT (and MiniLM, a BERT), RoBERTa, XLM-R, CamemBERT,
ELECTRA and DistilBERT have SDPA; **MPNet has none** (its attention adds a relative-position bias
inside its own module and does not use transformers' attention interface), so it keeps eager
attention and :class:`AttentionSetting` says so in ``note``.

Numerics: SDPA reorders the same fp32 sums (online softmax), so logits differ from eager by
rounding only; ``tests/test_runtime_attention.py`` holds every family, with sparse kernels, to
1e-4 absolute on the logits of padded batches against eager fp32 with dense linears (measured
<= 1.5e-6 on tiny models with logits up to 4.4; 9e-8 at 1 x 128 and 3e-7 at 32 x 128 with padding
on a random 95 %-sparse BERT-base).

``dtype=torch.bfloat16`` (opt-in) runs only the attention core (QK^T, softmax, PV) in bf16:
Q, K and V are cast before SDPA and the context is cast back to fp32; projections, GELU and
LayerNorm stay fp32. It is meant for CPUs with native bf16 (AVX512-BF16 / AMX); on an AVX2-only
CPU bf16 is emulated and slower than fp32. Its error is tested (logits within 1 % of the
largest |logit| on tiny models; measured 0.09-0.37 %), its speed is not.

Not done, on purpose: bias + GELU and residual add + LayerNorm stay separate torch ops. The
sparse kernels already add the bias, GELU's cost is its erf (one pass either way), and
``torch.compile`` of GELU / add + LayerNorm (torch 2.13, CPU, AVX2) took minutes to compile and
was slower than the plain ops at 1 x 128 in a rough measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sparsebert.errors import InputError

#: values of ``attention`` (None: leave the model's own implementation)
ATTENTION_CHOICES = ("sdpa", "eager")
#: the runtime's default: transformers' SDPA path where the family has one
DEFAULT_ATTENTION = "sdpa"
#: name under which the bf16 SDPA variant is registered with transformers' attention interface
SDPA_BF16 = "sparsebert_sdpa_bf16"
_DTYPES = {None: "float32", torch.float32: "float32", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class AttentionSetting:
    """What :func:`set_attention` asked for and what the model runs.

    Attributes:
        requested: the ``attention`` argument (``"sdpa"``, ``"eager"``, or None: keep the model's).
        implementation: ``model.config._attn_implementation`` afterwards: ``"sdpa"``, ``"eager"``
            or :data:`SDPA_BF16`.
        dtype: dtype of the attention core, ``"float32"`` or ``"bfloat16"``.
        note: why the implementation differs from the request (e.g. MPNet has no SDPA path), else None.
    """

    requested: str | None
    implementation: str
    dtype: str
    note: str | None = None


def supports_sdpa(model: nn.Module) -> bool:
    """Whether transformers can switch ``model`` to SDPA attention (``_supports_sdpa`` and the
    attention-interface refactor; False for MPNet in transformers 5)."""
    can_set = getattr(model, "_can_set_attn_implementation", None)
    return bool(getattr(model, "_supports_sdpa", False)) and (can_set is None or bool(can_set()))


def _sdpa_bf16_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, **kwargs):
    """transformers' SDPA attention with Q, K, V (and a float mask) in bf16; the context
    ([batch, seq, heads, head_dim], as transformers returns it) is cast back to the input dtype."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dtype = query.dtype
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.clamp(min=torch.finfo(torch.bfloat16).min).to(torch.bfloat16)
    out, weights = sdpa_attention_forward(module, query.to(torch.bfloat16), key.to(torch.bfloat16),
                                          value.to(torch.bfloat16), attention_mask, **kwargs)
    return out.to(dtype), weights


def _register_bf16() -> None:
    """Register :data:`SDPA_BF16` with transformers' attention and mask interfaces (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SDPA_BF16, _sdpa_bf16_forward)
    if SDPA_BF16 not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionMaskInterface.register(SDPA_BF16, sdpa_mask)


def check_attention(attention: str | None, dtype: torch.dtype | None = None) -> None:
    """Validate the arguments of :func:`set_attention` (cheap; :func:`sparsebert.runtime.convert`
    calls it before any timing).

    Raises:
        InputError: ``attention`` not one of :data:`ATTENTION_CHOICES` or None; ``dtype`` not
            None / ``torch.float32`` / ``torch.bfloat16``; bf16 with anything but ``"sdpa"``
            (a ``ValueError``).
    """
    if attention is not None and attention not in ATTENTION_CHOICES:
        raise InputError(f"attention must be one of {list(ATTENTION_CHOICES)} or None (keep the model's), "
                         f"got {attention!r}")
    if dtype not in _DTYPES:
        raise InputError(f"attention_dtype must be None, torch.float32 or torch.bfloat16, got {dtype!r}")
    if dtype is torch.bfloat16 and attention != "sdpa":
        raise InputError(f"attention_dtype=torch.bfloat16 needs attention='sdpa', got attention={attention!r}")


def set_attention(model: nn.Module, attention: str | None = DEFAULT_ATTENTION,
                  dtype: torch.dtype | None = None) -> AttentionSetting:
    """Switch ``model`` (a transformers model, in place) to the requested attention implementation.

    Args:
        model: a transformers ``PreTrainedModel`` of a supported family (any head).
        attention: ``"sdpa"`` (``F.scaled_dot_product_attention``; families without it keep
            eager, see ``note``), ``"eager"`` (transformers' matmul + softmax path), or None to
            leave the model as it is.
        dtype: None or ``torch.float32`` (the model's fp32), or ``torch.bfloat16``: the attention
            core in bf16 (opt-in, for CPUs with AVX512-BF16 / AMX; ``attention="sdpa"`` only).
    Returns:
        An :class:`AttentionSetting`; ``implementation`` is what the model runs now.
    Raises:
        InputError: see :func:`check_attention`; also bf16 asked for a family without SDPA (MPNet).
    """
    check_attention(attention, dtype)
    config = model.config
    current = getattr(config, "_attn_implementation", None) or "eager"
    if attention is None:
        return AttentionSetting(None, current, "bfloat16" if current == SDPA_BF16 else "float32")
    note = None
    wanted = attention
    if attention == "sdpa" and not supports_sdpa(model):
        if dtype is torch.bfloat16:
            raise InputError(f"attention_dtype=torch.bfloat16 needs SDPA, which transformers does not have for "
                             f"{type(model).__name__} ({config.model_type})")
        wanted = "eager"
        note = (f"{type(model).__name__} ({config.model_type}) has no SDPA attention in transformers "
                f"(its attention does not use the attention interface): eager attention kept")
    elif attention == "sdpa" and dtype is torch.bfloat16:
        _register_bf16()
        wanted = SDPA_BF16
    if current != wanted:
        model.set_attn_implementation(wanted)
    got = config._attn_implementation
    if got != wanted:  # transformers refused without raising (it only logs a warning)
        raise InputError(f"{type(model).__name__}: could not set attention implementation {wanted!r} "
                         f"(transformers kept {got!r})")
    return AttentionSetting(attention, got, _DTYPES[dtype], note)
