"""First-order Taylor importance with moving averages and uncertainty: PLATON.

Zhang, Zuo, Liang, Chen, Chen, Zhao, *PLATON: Pruning Large Transformer Models with Upper
Confidence Bound of Weight Importance*, ICML 2022, §3, Eqs. 3-6:

    I_t  = |w_t ⊙ g_t|                              (first-order Taylor sensitivity, Eq. 3)
    Ī_t  = β1 Ī_{t-1} + (1 - β1) I_t                 (smoothed sensitivity, Eq. 4)
    U_t  = β2 U_{t-1} + (1 - β2) |I_t - Ī_t|         (uncertainty, Eq. 5)
    S_t  = Ī_t ⊙ U_t                                 (score, Eq. 6)

The paper's defaults are β1 = 0.85, β2 = 0.95.
"""

from __future__ import annotations

from sparsebert.pruning.scorers.base import GradientScorer


class TaylorScorer(GradientScorer):
    """PLATON score ``Ī ⊙ U`` (Zhang et al. 2022, Eq. 6) per target ``[out, in]``.

    Args:
        beta1: smoothing of the sensitivity, in [0, 1).
        beta2: smoothing of the uncertainty, in [0, 1).
    Raises:
        ValueError: a beta outside [0, 1).
    """

    name = "taylor"
    buffers = ("ibar", "unc")

    def __init__(self, beta1: float = 0.85, beta2: float = 0.95):
        super().__init__()
        for label, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"taylor {label} must be in [0, 1), got {b}")
        self.beta1, self.beta2 = beta1, beta2

    def update(self, name, weight, grad):
        sens = (weight * grad).abs()
        ibar = self._buffer("ibar", name, weight)
        unc = self._buffer("unc", name, weight)
        ibar.mul_(self.beta1).add_(sens, alpha=1 - self.beta1)
        unc.mul_(self.beta2).add_((sens - ibar).abs(), alpha=1 - self.beta2)

    def score(self, name, weight):
        ibar = self.state.get(f"ibar.{name}")
        if ibar is None:
            return weight.new_zeros(weight.shape)
        return ibar * self.state[f"unc.{name}"]
