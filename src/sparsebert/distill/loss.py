"""The knowledge-distillation loss of SparseBERT.

Xu et al., *Rethinking Network Pruning — under the Pre-train and Fine-tune Paradigm*
(NAACL 2021), §3 "knowledge-aware sparse pruning": the student is trained with

    L = w_att  * Σ_l MSE(A_s^l, A_t^{g(l)})          attention scores (pre-softmax), every layer
      + w_hid  * Σ_l MSE(H_s^l W_h, H_t^{g(l)})     hidden states, embedding output (l = 0) included
      + w_pred * CE(softmax(z_t / T), softmax(z_s / T))   soft cross-entropy on logits

which is TinyBERT's loss (Jiao et al., Findings of EMNLP 2020, Eqs. 7-10). ``g`` is the uniform
layer mapping g(l) = l * L_t / L_s (TinyBERT §3.2); W_h is a learnt projection, present only
when the hidden sizes differ. For regression tasks the prediction term is MSE to the gold labels.

Options beyond the paper (all off in its recipe, ``recipes/sparsebert-paper.yaml``):

* the soft term is scaled by T² (Hinton, Vinyals, Dean 2015, §2), so its gradient does not
  shrink as 1/T² when the temperature is raised (no change at T = 1);
* *hardness* h mixes the gold labels into the prediction term: (1 - h)·KL·T² + h·CE(z_s, y)
  (regression: (1 - h)·MSE(z_s, z_t) + h·MSE(z_s, y)); the paper's setting is h = 0 for
  classification and h = 1 for regression (TinyBERT's code);
* the attention term as KL between attention *probabilities*, KL(softmax(A_t) || softmax(A_s))
  per query over real keys (MiniLM, Wang et al., NeurIPS 2020, Eq. 4), instead of score MSE;
* per-term normalisation: each term divided by a running mean of itself (momentum 0.99, bias
  corrected), so that a term's share of the gradient follows its weight rather than its scale
  (the demo's attention MSE is ~100x the logit KL);
* a prediction-only phase (TinyBERT's second stage): attention and hidden terms switched off.

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

from sparsebert.distributed import batch_mean, global_denominator


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
    """Weights of the three loss terms (all 1.0 in the paper), the softmax temperature T and the
    options of the module docstring.

    Attributes:
        hardness: h in [0, 1], or None for the paper's (0 classification, 1 regression).
        attention_loss: ``"mse"`` (scores, TinyBERT) or ``"kl"`` (probabilities, MiniLM).
        normalize: divide each term by its running mean.
    """

    attention: float = 1.0
    hidden: float = 1.0
    prediction: float = 1.0
    temperature: float = 1.0
    hardness: float | None = None
    attention_loss: str = "mse"
    normalize: bool = False


def _pair_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    m = attention_mask.to(dtype)
    return (m[:, :, None] * m[:, None, :])[:, None]  # [B, 1, S, S]


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE of pre-softmax attention scores over real (query, key) pairs (TinyBERT Eq. 7).

    Args:
        student, teacher: ``[batch, heads, seq, seq]`` scores. If head counts differ, both are
            averaged over heads first.
        attention_mask: ``[batch, seq]``, 1 for tokens, 0 for padding.
    Returns:
        Scalar tensor.
    """
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    pair = _pair_mask(attention_mask, student.dtype)
    diff2 = (student - teacher).pow(2) * pair
    return diff2.sum() / global_denominator((pair.sum() * student.shape[1]).clamp_min(1.0))  # one process: the count


def attention_kl(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """KL(softmax(A_t) || softmax(A_s)) of each real query's attention over real keys, averaged over
    heads and real queries (MiniLM, Wang et al., NeurIPS 2020, Eq. 4).

    Args:
        student, teacher: ``[batch, heads, seq, seq]`` pre-softmax scores (head counts differing:
            scores averaged over heads first).
        attention_mask: ``[batch, seq]``.
    Returns:
        Scalar tensor (nats).
    """
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    keys = attention_mask[:, None, None, :].bool()                     # [B, 1, 1, S]
    neg = torch.finfo(torch.float32).min
    log_s = F.log_softmax(student.float().masked_fill(~keys, neg), dim=-1)
    log_t = F.log_softmax(teacher.float().masked_fill(~keys, neg), dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).masked_fill(~keys, 0.0).sum(-1)  # [B, H, S]
    queries = attention_mask[:, None, :].to(kl.dtype)                    # [B, 1, S]
    return (kl * queries).sum() / global_denominator((queries.sum() * kl.shape[1]).clamp_min(1.0))


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """MSE of hidden states over real tokens (TinyBERT Eqs. 8-9).

    Args:
        student, teacher: ``[batch, seq, hidden]`` (student already projected to teacher size).
        attention_mask: ``[batch, seq]``.
    Returns:
        Scalar tensor.
    """
    m = attention_mask.to(student.dtype)[..., None]
    diff2 = (student - teacher).pow(2) * m
    return diff2.sum() / global_denominator((m.sum() * student.shape[-1]).clamp_min(1.0))


def soft_cross_entropy_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft cross-entropy between teacher and student at temperature T, minus the teacher entropy.

    Equals KL(softmax(z_t/T) || softmax(z_s/T)), averaged over the batch: same gradient as the
    soft cross-entropy of TinyBERT Eq. 10, and exactly 0 when the logits agree. Not scaled by T²
    (:class:`DistillationLoss` does that).

    Args:
        student_logits, teacher_logits: ``[batch, num_labels]``.
    """
    t = teacher_logits.float() / temperature
    s = student_logits.float() / temperature
    p_t = F.softmax(t, dim=-1)
    return (p_t * (F.log_softmax(t, dim=-1) - F.log_softmax(s, dim=-1))).sum(-1).mean()


def add_shares(terms: dict[str, float]) -> dict[str, float]:
    """Replace the ``weighted/<term>`` entries of ``terms`` by ``share/<term>``: each term's fraction
    of the total loss (so a 100x dominance shows in the log and the progress bar)."""
    weighted = {k.split("/", 1)[1]: v for k, v in terms.items() if k.startswith("weighted/")}
    total = sum(abs(v) for v in weighted.values())
    out = {k: v for k, v in terms.items() if not k.startswith("weighted/")}
    out.update({f"share/{k}": (abs(v) / total if total > 0 else 0.0) for k, v in weighted.items()})
    return out


class DistillationLoss(nn.Module):
    """SparseBERT / TinyBERT distillation loss with uniform layer mapping (and the options above).

    Args:
        student_layers, teacher_layers: numbers of Transformer layers.
        student_hidden, teacher_hidden: hidden sizes; a trainable ``nn.Linear`` projection W_h
            (TinyBERT Eq. 8) is created when they differ — add ``self.parameters()`` to the optimizer.
        weights: :class:`DistillWeights`.
        regression: the prediction term is MSE (to the teacher's output and/or the labels).

    The running means of ``normalize`` are buffers (saved with the module's state).

    Raises:
        ValueError: impossible layer mapping, non-positive temperature, hardness outside [0, 1],
            unknown attention loss.
    """

    MOMENTUM = 0.99

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
        if weights.hardness is not None and not 0.0 <= weights.hardness <= 1.0:
            raise ValueError(f"hardness must be in [0, 1], got {weights.hardness}")
        if weights.attention_loss not in ("mse", "kl"):
            raise ValueError(f"attention_loss must be 'mse' or 'kl', got {weights.attention_loss!r}")
        self.layer_map = uniform_layer_map(student_layers, teacher_layers)
        self.weights = weights
        self.regression = regression
        self.hardness = weights.hardness if weights.hardness is not None else (1.0 if regression else 0.0)
        self.projection = nn.Linear(student_hidden, teacher_hidden) if student_hidden != teacher_hidden else None
        self.register_buffer("running", torch.zeros(3))   # attention, hidden, prediction
        self.register_buffer("updates", torch.zeros(3))

    def _normalized(self, index: int, value: torch.Tensor) -> torch.Tensor:
        if not self.weights.normalize:
            return value
        if self.training:
            with torch.no_grad():  # the global batch's value under a multi-process launch (the same on every rank)
                self.running[index] = self.MOMENTUM * self.running[index] + (1 - self.MOMENTUM) * batch_mean(value.detach())
                self.updates[index] += 1
        scale = self.running[index] / (1 - self.MOMENTUM ** self.updates[index].clamp_min(1))
        return value / scale.clamp_min(1e-8)

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
        prediction_only: bool = False,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the weighted loss.

        Args:
            student_scores / teacher_scores: per-layer ``[B, H, S, S]`` pre-softmax scores
                (``L_s`` / ``L_t`` entries); may be None when the attention weight is 0.
            student_hidden / teacher_hidden: ``L+1`` tensors ``[B, S, D]`` (embedding output first);
                may be None when the hidden weight is 0 (the term is then not computed).
            student_logits / teacher_logits: ``[B, C]`` (``[B, 1]`` for regression).
            attention_mask: ``[B, S]``.
            labels: ``[B]`` class ids or float scores; required when hardness > 0.
            prediction_only: skip the attention and hidden terms (TinyBERT's second stage).
        Returns:
            ``(total, terms)`` — the scalar loss; ``terms`` holds each computed term unweighted
            (``attention``, ``hidden``, ``prediction`` = soft part incl. T², ``hard``) and
            ``weighted/<term>``, its contribution to the total (see :func:`add_shares`).
        Raises:
            ValueError: wrong number of layers, or labels missing where needed.
        """
        w = self.weights
        n = len(self.layer_map)
        terms: dict[str, float] = {}
        total = student_logits.new_zeros((), dtype=torch.float32)
        if w.attention > 0 and not prediction_only:
            if student_scores is None or len(student_scores) != n:
                raise ValueError(f"need {n} student attention-score tensors, got "
                                 f"{None if student_scores is None else len(student_scores)}")
            fn = attention_kl if w.attention_loss == "kl" else attention_mse
            att = sum(fn(student_scores[l], teacher_scores[g - 1], attention_mask) for l, g in enumerate(self.layer_map))
            part = w.attention * self._normalized(0, att)
            total = total + part
            terms.update({"attention": att.item(), "weighted/attention": part.item()})
        if w.hidden > 0 and not prediction_only:
            if student_hidden is None or len(student_hidden) != n + 1:
                raise ValueError(f"need {n + 1} student hidden-state tensors (embeddings first), got "
                                 f"{None if student_hidden is None else len(student_hidden)}")
            hid = student_logits.new_zeros((), dtype=torch.float32)
            for ls, lt in [(0, 0)] + [(l + 1, g) for l, g in enumerate(self.layer_map)]:
                h = student_hidden[ls].float()
                if self.projection is not None:
                    h = self.projection(h)
                hid = hid + hidden_mse(h, teacher_hidden[lt].float(), attention_mask)
            part = w.hidden * self._normalized(1, hid)
            total = total + part
            terms.update({"hidden": hid.item(), "weighted/hidden": part.item()})
        if w.prediction > 0:
            h = self.hardness
            if h > 0 and labels is None:
                raise ValueError("the prediction term needs labels (hardness > 0, or a regression task)")
            if self.regression:
                soft = F.mse_loss(student_logits.float().squeeze(-1), teacher_logits.float().squeeze(-1)) if h < 1 else None
                hard = F.mse_loss(student_logits.float().squeeze(-1), labels.float()) if h > 0 else None
            else:
                soft = (soft_cross_entropy_kl(student_logits, teacher_logits, w.temperature) * w.temperature**2
                        if h < 1 else None)
                hard = F.cross_entropy(student_logits.float(), labels.long()) if h > 0 else None
            pred = student_logits.new_zeros((), dtype=torch.float32)
            if soft is not None:
                pred = pred + (1 - h) * soft
                terms["prediction"] = soft.item()
            if hard is not None:
                pred = pred + h * hard
                terms["hard"] = hard.item()
            part = w.prediction * self._normalized(2, pred)
            total = total + part
            terms["weighted/prediction"] = part.item()
        return total, terms
