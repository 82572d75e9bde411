"""The Optimal BERT Surgeon: second-order scores and weight updates from a block-diagonal Fisher.

Kurtic, Campos, Nguyen, Frantar, Kurtz, Fineran, Goin, Alistarh, *The Optimal BERT Surgeon:
Scalable and Accurate Second-Order Pruning for Large Language Models*, EMNLP 2022, §3
(after Optimal Brain Surgeon, Hassibi & Stork 1993, and WoodFisher, Singh & Alistarh 2020).

The Hessian of the loss is approximated by the empirical Fisher of the last ``m`` gradients,
block-diagonal over blocks of ``B`` consecutive weights of a row-major weight matrix, dampened:

    F = λ I + (1/m) Σ_k g_k g_kᵀ                               (oBERT Eq. 4, per block)

Its inverse is built without ever inverting, by one Sherman-Morrison (WoodFisher) update per
gradient, starting from F₀⁻¹ = I / λ:

    F_k⁻¹ = F_{k-1}⁻¹ - (F_{k-1}⁻¹ g gᵀ F_{k-1}⁻¹) / (m + gᵀ F_{k-1}⁻¹ g)

Removing weight q alone raises the quadratic model of the loss by ρ_q = w_q² / (2 [F⁻¹]_qq)
(the OBS saliency, oBERT Eq. 6), which is the score. At a pruning event the kept weights of each
block are moved to compensate for the whole pruned set Q of that block (the OBS update for a set):

    δw = - F⁻¹ E_Qᵀ (E_Q F⁻¹ E_Qᵀ)⁻¹ E_Q w                       (oBERT Eq. 7)

which is the exact minimiser of the quadratic model under w_Q = 0. After an event the Fisher is
rebuilt from the next ``m`` gradients.

Block patterns (``--pattern RxC``, :mod:`sparsebert.pruning.patterns`): the score of a block Q is the
saliency of removing it as a set, ρ_Q = ½ w_Qᵀ ([F⁻¹]_QQ)⁻¹ w_Q (the minimum of the quadratic model under
w_Q = 0; oBERT prunes 4-blocks this way), summed over the Fisher blocks the block meets. It is computed
exactly when the C weights of each block row lie in one Fisher block (C divides the Fisher block size)
and the R rows of a block lie in different Fisher blocks (R = 1, or in_features >= the Fisher block
size); other combinations raise :class:`~sparsebert.errors.InputError` before training. N:M patterns
rank single saliencies under a per-group cap, as unstructured OBS ranks single saliencies; the set
update δw above is exact for any pruned set, so the pattern of the masks is always kept.

``damp`` (λ) trades the prior (magnitude pruning as λ → ∞: F⁻¹ → I/λ makes ρ ∝ w² and δw = 0 on
the kept weights) against the observed curvature; oBERT uses λ = 1e-7 with m = 1024 gradients of
BERT-base. Cost: ``numel · B`` floats of memory per target (MiniLM-L6, B = 32: 1.4 GB) and
O(numel · B) work per observed gradient.
"""

from __future__ import annotations

import math

import torch

from sparsebert.errors import InputError
from sparsebert.pruning.patterns import Pattern
from sparsebert.pruning.scorers.base import Scorer


def block_size_for(numel: int, block_size: int) -> int:
    """The block size actually used: the largest divisor of ``numel`` that is <= ``block_size``
    (``gcd`` for powers of two; 1 = diagonal Fisher)."""
    b = min(block_size, numel)
    while numel % b:
        b -= 1
    return b


class OBSScorer(Scorer):
    """oBERT second-order scores with block-diagonal empirical Fisher and WoodFisher inverse.

    Args:
        block_size: B, weights per Fisher block (a divisor of each matrix's size is used, see
            :func:`block_size_for`).
        num_grads: m, gradients folded into the Fisher after each pruning event (later ones are
            ignored until the next event).
        damp: λ > 0, the dampening of the Fisher.
    Raises:
        ValueError: non-positive arguments.
    """

    name = "obs"
    needs_grad = True

    def __init__(self, block_size: int = 32, num_grads: int = 64, damp: float = 1e-7):
        if block_size < 1 or num_grads < 1 or not damp > 0 or not math.isfinite(damp):
            raise ValueError(f"obs needs block_size >= 1, num_grads >= 1, damp > 0; got {block_size}, "
                             f"{num_grads}, {damp}")
        self.block_size, self.num_grads, self.damp = block_size, num_grads, damp
        self.finv: dict[str, torch.Tensor] = {}
        self.count = 0

    def _blocks(self, t: torch.Tensor) -> torch.Tensor:
        b = block_size_for(t.numel(), self.block_size)
        return t.reshape(-1, b)

    def _finv(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        if name not in self.finv:
            nb, b = self._blocks(weight).shape
            eye = torch.eye(b, dtype=torch.float32, device=weight.device) / self.damp
            self.finv[name] = eye.expand(nb, b, b).clone()
        return self.finv[name]

    @torch.no_grad()
    def observe(self, targets, masks) -> None:
        if self.count >= self.num_grads:
            return
        for name, lin in targets.items():
            if lin.weight.grad is None:
                continue
            finv = self._finv(name, lin.weight)
            g = self._blocks(lin.weight.grad.detach().float())[..., None]      # [nb, B, 1]
            fg = finv @ g                                                      # [nb, B, 1]
            denom = self.num_grads + (g.transpose(1, 2) @ fg)                  # [nb, 1, 1]
            finv.sub_(fg @ fg.transpose(1, 2) / denom)
        self.count += 1

    @torch.no_grad()
    def scores(self, targets, masks):
        out = {}
        for name, lin in targets.items():
            w = lin.weight.detach().float()
            diag = self._finv(name, w).diagonal(dim1=1, dim2=2).reshape(w.shape)
            out[name] = w.pow(2) / (2 * diag)
        return out

    def check_pattern(self, targets, pattern: Pattern) -> None:
        """Blocks need C | the Fisher block size B and (R = 1 or in_features >= B) (module docstring).

        Raises:
            InputError: naming the matrix, its shape, B and the block.
        """
        if pattern.kind != "block":
            return
        for name, lin in targets.items():
            out_f, in_f = lin.weight.shape
            b = block_size_for(lin.weight.numel(), self.block_size)
            if b % pattern.cols or (pattern.rows > 1 and in_f < b):
                raise InputError(
                    f"criterion 'obs' with pattern {pattern.text!r}: matrix {name!r} ({out_f}x{in_f}) has Fisher "
                    f"blocks of {b} weights; a block's saliency is exact only when its {pattern.cols} columns fall "
                    f"in one Fisher block (obs_block_size a multiple of {pattern.cols}) and its {pattern.rows} rows "
                    f"in different ones (obs_block_size <= in_features); set obs_block_size accordingly")

    @torch.no_grad()
    def block_scores(self, targets, masks, rows, cols):
        """ρ_Q = ½ w_Qᵀ ([F⁻¹]_QQ)⁻¹ w_Q of every R x C block Q: name -> ``[out / R, in / C]``.

        Each block row (C consecutive weights) is one C x C principal submatrix of a Fisher block; the R
        rows of a block lie in different Fisher blocks, whose saliencies add (block-diagonal F).

        Raises:
            InputError: a combination :meth:`check_pattern` rejects.
        """
        self.check_pattern(targets, Pattern("block", rows=rows, cols=cols))
        out = {}
        for name, lin in targets.items():
            w = lin.weight.detach().float()
            out_f, in_f = w.shape
            finv = self._finv(name, w)                                           # [nb, B, B]
            nb, b, _ = finv.shape
            p = b // cols
            sub = finv.reshape(nb, p, cols, p, cols).diagonal(dim1=1, dim2=3)   # [nb, C, C, P]
            sub = sub.permute(0, 3, 1, 2)                                        # [nb, P, C, C]
            wq = w.reshape(nb, p, cols)                                          # [nb, P, C]
            x = torch.linalg.solve(sub, wq[..., None]).squeeze(-1)               # ([F⁻¹]_QQ)⁻¹ w_Q
            rho = 0.5 * (wq * x).sum(-1)                                         # [nb, P], row-major
            out[name] = rho.reshape(out_f // rows, rows, in_f // cols).sum(dim=1)
        return out

    @torch.no_grad()
    def after_prune(self, targets, old_masks, new_masks) -> None:
        """Apply the OBS update δw (oBERT Eq. 7) to each target, then reset the Fisher."""
        for name, lin in targets.items():
            finv = self._finv(name, lin.weight)
            w = self._blocks(lin.weight.detach().float())                       # [nb, B]
            p = self._blocks((~new_masks[name]).float())                        # 1 = pruned
            # (E_Q F⁻¹ E_Qᵀ)⁻¹ E_Q w for every block at once: pad the unpruned rows/cols with I
            m = finv * (p[:, :, None] * p[:, None, :]) + torch.diag_embed(1 - p)
            x = torch.linalg.solve(m, (p * w)[..., None])                       # [nb, B, 1]
            delta = -(finv @ (p[..., None] * x)).squeeze(-1)
            lin.weight.add_(delta.reshape(lin.weight.shape).to(lin.weight.dtype))
        self.finv.clear()
        self.count = 0

    def state_dict(self):
        return {**{f"finv.{n}": t.clone() for n, t in self.finv.items()}, "count": torch.tensor([self.count])}

    def load_state_dict(self, state):
        state = dict(state)
        count = state.pop("count", None)
        bad = [k for k in state if not k.startswith("finv.")]
        if bad or count is None:
            raise ValueError(f"obs scorer state: unexpected keys {bad[:3]} or no 'count'")
        self.finv = {k[len("finv."):]: v.float().clone() for k, v in state.items()}
        self.count = int(count.reshape(-1)[0])
