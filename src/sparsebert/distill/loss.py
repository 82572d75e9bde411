"""The knowledge-distillation loss of SparseBERT.

Xu et al., *Rethinking Network Pruning — under the Pre-train and Fine-tune Paradigm*
(NAACL 2021), §3 "knowledge-aware sparse pruning": the student is trained with

    L = w_att  * Σ_l MSE(A_s^l, A_t^{g(l)})          attention scores (pre-softmax), every layer
      + w_hid  * Σ_l MSE(H_s^l W_h, H_t^{g(l)})     hidden states, embedding output (l = 0) included
      + w_pred * CE(softmax(z_t / T), softmax(z_s / T))   soft cross-entropy on logits

which is TinyBERT's loss (Jiao et al., Findings of EMNLP 2020, Eqs. 7-10). ``g`` is the uniform
layer mapping g(l) = l * L_t / L_s (TinyBERT §3.2); W_h is a learnt projection, present only
when the hidden sizes differ. For regression tasks the prediction term is MSE to the gold labels.

Two deliberate details:

* The soft cross-entropy is reported in its KL form, CE - H(softmax(z_t/T)). The teacher entropy
  is a constant, so gradients are identical; the benefit is that the loss is 0 exactly when the
  student reproduces the teacher.
* Padding is excluded from the attention and hidden MSEs (means are over real tokens/pairs only),
  where TinyBERT's code zeroes the masked scores instead; the optimum is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Uniform mapping g(l) = l * L_t / L_s for student layers l = 1..L_s (TinyBERT §3.2).

    Returns:
        A list of length ``student_layers``; entry ``l-1`` is the (1-based) teacher layer that
        student layer ``l`` learns from. Embedding outputs (layer 0) map to each other.

    Raises:
        ValueError: ``teacher_layers`` is not a multiple of ``student_layers``.
    """
    if student_layers <= 0 or teacher_layers <= 0:
        raise ValueError(f"layer counts must be positive, got student={student_layers}, teacher={teacher_layers}")
    if teacher_layers % student_layers:
        raise ValueError(
            f"uniform layer mapping needs teacher layers ({teacher_layers}) to be a multiple of "
            f"student layers ({student_layers})"
        )
    k = teacher_layers // student_layers
    return [l * k for l in range(1, student_layers + 1)]


@dataclass(frozen=True)
class DistillWeights:
    """Weights of the three loss terms (all 1.0 in the paper) and the softmax temperature T."""

    attention: float = 1.0
    hidden: float = 1.0
    prediction: float = 1.0
    temperature: float = 1.0


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE of pre-softmax attention scores over real (query, key) pairs.

    Args:
        student, teacher: ``[batch, heads, seq, seq]`` scores. If head counts differ, both are
            averaged over heads first.
        attention_mask: ``[batch, seq]``, 1 for tokens, 0 for padding.
    Returns:
        Scalar tensor.
    """
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    m = attention_mask.to(student.dtype)
    pair = (m[:, :, None] * m[:, None, :])[:, None]  # [B, 1, S, S]
    diff2 = (student - teacher).pow(2) * pair
    return diff2.sum() / (pair.sum() * student.shape[1]).clamp_min(1.0)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE of hidden states over real tokens.

    Args:
        student, teacher: ``[batch, seq, hidden]`` (student already projected to teacher size).
        attention_mask: ``[batch, seq]``.
    Returns:
        Scalar tensor.
    """
    m = attention_mask.to(student.dtype)[..., None]
    diff2 = (student - teacher).pow(2) * m
    return diff2.sum() / (m.sum() * student.shape[-1]).clamp_min(1.0)


def soft_cross_entropy_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft cross-entropy between teacher and student at temperature T, minus the teacher entropy.

    Equals KL(softmax(z_t/T) || softmax(z_s/T)), averaged over the batch: same gradient as the
    soft cross-entropy of TinyBERT Eq. 10, and exactly 0 when the logits agree.

    Args:
        student_logits, teacher_logits: ``[batch, num_labels]``.
    """
    t = teacher_logits.float() / temperature
    s = student_logits.float() / temperature
    p_t = F.softmax(t, dim=-1)
    return (p_t * (F.log_softmax(t, dim=-1) - F.log_softmax(s, dim=-1))).sum(-1).mean()


class DistillationLoss(nn.Module):
    """SparseBERT / TinyBERT distillation loss with uniform layer mapping.

    Args:
        student_layers, teacher_layers: numbers of Transformer layers.
        student_hidden, teacher_hidden: hidden sizes; a trainable ``nn.Linear`` projection W_h
            (TinyBERT Eq. 8) is created when they differ — add ``self.parameters()`` to the optimizer.
        weights: :class:`DistillWeights`.
        regression: use MSE to the labels for the prediction term.

    Raises:
        ValueError: impossible layer mapping, or non-positive temperature.
    """

    def __init__(
        self,
        student_layers: int,
        teacher_layers: int,
        student_hidden: int,
        teacher_hidden: int,
        weights: DistillWeights = DistillWeights(),
        regression: bool = False,
    ):
        super().__init__()
        if weights.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {weights.temperature}")
        self.layer_map = uniform_layer_map(student_layers, teacher_layers)
        self.weights = weights
        self.regression = regression
        self.projection = nn.Linear(student_hidden, teacher_hidden) if student_hidden != teacher_hidden else None

    def forward(
        self,
        student_scores: list[torch.Tensor] | None,
        teacher_scores: list[torch.Tensor] | None,
        student_hidden: tuple[torch.Tensor, ...] | None,
        teacher_hidden: tuple[torch.Tensor, ...] | None,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the weighted loss.

        Args:
            student_scores / teacher_scores: per-layer ``[B, H, S, S]`` pre-softmax scores
                (``L_s`` / ``L_t`` entries); may be None when the attention weight is 0.
            student_hidden / teacher_hidden: ``L+1`` tensors ``[B, S, D]`` (embedding output first);
                may be None when the hidden weight is 0 (the term is then not computed).
            student_logits / teacher_logits: ``[B, C]`` (``[B, 1]`` for regression).
            attention_mask: ``[B, S]``.
            labels: ``[B]`` float scores; required for regression.
        Returns:
            ``(total, terms)`` — the scalar loss and the unweighted terms as floats
            (``attention``, ``hidden``, ``prediction``).
        Raises:
            ValueError: wrong number of layers, or regression without labels.
        """
        w = self.weights
        n = len(self.layer_map)
        zero = student_logits.new_zeros((), dtype=torch.float32)
        att, hid = zero, zero
        if w.attention > 0:
            if student_scores is None or len(student_scores) != n:
                raise ValueError(f"need {n} student attention-score tensors, got "
                                 f"{None if student_scores is None else len(student_scores)}")
            att = sum(attention_mse(student_scores[l], teacher_scores[g - 1], attention_mask)
                      for l, g in enumerate(self.layer_map))
        if w.hidden > 0:
            if student_hidden is None or len(student_hidden) != n + 1:
                raise ValueError(f"need {n + 1} student hidden-state tensors (embeddings first), got "
                                 f"{None if student_hidden is None else len(student_hidden)}")
            for ls, lt in [(0, 0)] + [(l + 1, g) for l, g in enumerate(self.layer_map)]:
                h = student_hidden[ls].float()
                if self.projection is not None:
                    h = self.projection(h)
                hid = hid + hidden_mse(h, teacher_hidden[lt].float(), attention_mask)
        if self.regression:
            if labels is None:
                raise ValueError("regression distillation needs labels for the prediction term")
            pred = F.mse_loss(student_logits.float().squeeze(-1), labels.float())
        else:
            pred = soft_cross_entropy_kl(student_logits, teacher_logits, self.weights.temperature)
        total = w.attention * att + w.hidden * hid + w.prediction * pred
        terms = {"attention": att.item(), "hidden": hid.item(), "prediction": pred.item()}
        return total, terms
