"""Movement pruning (Sanh, Wolf, Rush, *Movement Pruning*, NeurIPS 2020, §4, Eq. 6).

A weight that moves away from zero during fine-tuning matters; one that moves towards zero does
not. The score accumulates ``S_ij <- S_ij - (dL/dW_ij) * W_ij`` over optimizer steps (the
first-order estimate of how much the loss would grow if the weight shrank). The paper's hard
movement keeps the top-v scores, with the cubic schedule of GMP; so does this scorer.
"""

from __future__ import annotations

from sparsebert.pruning.scorers.base import GradientScorer


class MovementScorer(GradientScorer):
    """Score ``S = -Σ_t g_t ⊙ w_t`` (Sanh et al. 2020, Eq. 6), one ``[out, in]`` tensor per target."""

    name = "movement"
    buffers = ("movement",)

    def update(self, name, weight, grad):
        self._buffer("movement", name, weight).sub_(grad * weight)

    def score(self, name, weight):
        return self.state.get(f"movement.{name}", weight.new_zeros(weight.shape))
