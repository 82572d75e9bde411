"""Movement pruning (Sanh, Wolf, Rush, *Movement Pruning*, NeurIPS 2020, §4, Eq. 6).

A weight that moves away from zero during fine-tuning matters; one that moves towards zero does
not. The score accumulates ``S_ij <- S_ij - (dL/dW_ij) * W_ij`` over optimizer steps (the
first-order estimate of how much the loss would grow if the weight shrank). The paper's hard
movement keeps the top-v scores, with the cubic schedule of GMP; so does this scorer.

**Budget: the criterion needs steps before its first event and a long pruning window** (issue 32;
``tests/test_movement.py``). The implementation is checked against the paper: the sign (weights moving
away from zero are kept), accumulation over the whole run (never reset at an event, as in the paper),
gradients observed after the gradient-mask hooks and before clipping, and scores of pruned weights frozen
(their gradients are masked) but ranked below every kept weight, so no stale score revives one. What the
score *contains* decides when it can be trusted. Under SGD it is exactly
``S_T = (w_T² - w_0²) / (2η) - (η/2) Σ_t g_t²``: the growth of ``|w|`` that the paper means, minus a drift
that every step's squared gradient adds. After few steps the weights have not moved (the demo cell's first
event came after 50 steps, all in the learning-rate warm-up), so ``S ≈ -w_0 Σ_t g_t``: minibatch noise
scaled by the pre-trained ``|w_0|``, whose lowest scores sit on *larger than average* weights (the
opposite of magnitude). Here pruning is monotone and zeroes the weights, so such an event cannot be
undone; in the paper's hard movement the top-v mask is recomputed from the scores at every step and a
masked weight keeps its value and its score keeps moving (straight-through), so early mistakes revert.
The paper's budget: about one epoch of dense score accumulation before the first mask, the cubic
schedule over ~7 epochs, two epochs with fixed masks, ~10 epochs in all (SQuAD: ~55k steps at batch 16;
Sanh et al.'s reference script, ``--initial_warmup 1 --final_warmup 2 --num_train_epochs 10``). On the
demo (2,000 examples, 504 steps, pruning from step 50 to step 302) movement ended on the majority floor
(0.552) where magnitude reached 0.772; on a tiny keyword task it beats the floor at 90 % once it has
~300 steps of a noisy gradient (60 steps: floor). Use magnitude (or Taylor) for short runs; give movement
at least several hundred steps of dense warm-up (``prune_start``) and thousands of steps in all.
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
