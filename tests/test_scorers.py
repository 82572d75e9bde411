"""Pruning criteria on small hand-checkable matrices (sparsebert.pruning.scorers)."""

import numpy as np
import pytest
import torch
from torch import nn

from sparsebert.pruning import CubicSchedule, Sparsifier, make_scorer, score_mask
from sparsebert.pruning.scorers import MovementScorer, OBSScorer, TaylorScorer
from sparsebert.pruning.scorers.obs import block_size_for


def linear(weight) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float32)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


def observe(scorer, lin, grads):
    targets = {"w": lin}
    masks = {"w": torch.ones_like(lin.weight, dtype=torch.bool)}
    for g in grads:
        lin.weight.grad = torch.tensor(g, dtype=torch.float32)
        scorer.observe(targets, masks)
    return scorer.scores(targets, masks)["w"]


def test_movement_scores_match_hand_computation():
    """S = -Σ_t g_t w_t (Sanh et al. 2020): weights moving away from 0 score high."""
    lin = linear([[1.0, -2.0], [0.5, 3.0]])
    s = observe(MovementScorer(), lin, [[[0.1, 0.2], [-0.4, 0.0]], [[0.3, -0.1], [0.0, -1.0]]])
    expected = -(np.array([[0.1, 0.2], [-0.4, 0.0]]) + np.array([[0.3, -0.1], [0.0, -1.0]])) * np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(s.numpy(), expected, rtol=1e-6)
    # the largest |w| (3.0) is kept, but 1.0 (moving towards 0) goes before 0.5 (moving away)
    mask = score_mask(s, 0.5)
    assert mask.tolist() == [[False, False], [True, True]]


def test_taylor_platon_scores_match_hand_computation():
    """PLATON (Zhang et al. 2022, Eqs. 3-6): I = |w g|, Ī and U exponential averages, S = Ī U."""
    w = np.array([[2.0, -1.0]])
    grads = [np.array([[0.5, 1.0]]), np.array([[-0.25, 3.0]])]
    b1, b2 = 0.85, 0.95
    ibar, unc = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        sens = np.abs(w * g)
        ibar = b1 * ibar + (1 - b1) * sens
        unc = b2 * unc + (1 - b2) * np.abs(sens - ibar)
    s = observe(TaylorScorer(b1, b2), linear(w.tolist()), [g.tolist() for g in grads])
    np.testing.assert_allclose(s.numpy(), ibar * unc, rtol=1e-6)
    with pytest.raises(ValueError, match="beta1"):
        TaylorScorer(beta1=1.0)


def test_gradient_scorers_fall_back_to_magnitude_before_any_gradient():
    lin = linear([[1.0, -3.0, 0.5]])
    for name in ("movement", "taylor"):
        s = make_scorer(name).scores({"w": lin}, {"w": torch.ones(1, 3, dtype=torch.bool)})["w"]
        assert s.tolist() == [[1.0, 3.0, 0.5]]
    with pytest.raises(ValueError, match="unknown pruning criterion"):
        make_scorer("random")


def _fisher(grads: np.ndarray, damp: float) -> np.ndarray:
    return damp * np.eye(grads.shape[1]) + grads.T @ grads / len(grads)


def test_obs_woodfisher_inverse_scores_and_update_equal_the_closed_form():
    """oBERT on one block: F⁻¹ from Sherman-Morrison equals inv(λI + GᵀG/m); the score is
    w²/(2[F⁻¹]_ii); the update is the exact minimiser of ½ dᵀ F d subject to w_Q + d_Q = 0."""
    rng = np.random.default_rng(0)
    m, b, damp = 16, 8, 1e-2
    grads = rng.normal(size=(m, b))
    w = rng.normal(size=(1, b))
    scorer = OBSScorer(block_size=b, num_grads=m, damp=damp)
    lin = linear(w.tolist())
    scores = observe(scorer, lin, [g[None].tolist() for g in grads]).numpy()[0]
    F = _fisher(grads, damp)
    finv = np.linalg.inv(F)
    np.testing.assert_allclose(scorer.finv["w"][0].numpy(), finv, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(scores, w[0] ** 2 / (2 * np.diag(finv)), rtol=1e-3)
    # each score is the rise of the quadratic model when that weight alone is removed optimally
    for q in range(b):
        free = [i for i in range(b) if i != q]
        d = np.zeros(b)
        d[q] = -w[0, q]
        d[free] = -np.linalg.solve(F[np.ix_(free, free)], F[np.ix_(free, [q])] @ d[[q]])
        assert 0.5 * d @ F @ d == pytest.approx(scores[q], rel=1e-3)
    # prune the 5 lowest-score weights: OBS update against the constrained minimiser, which is
    # computed from F itself (not its inverse): d_free = -F_ff⁻¹ F_fq d_q with d_q = -w_q
    new_mask = score_mask(torch.tensor(scores[None]), 5 / b)
    pruned = [i for i in range(b) if not new_mask[0, i]]
    free = [i for i in range(b) if new_mask[0, i]]
    d = np.zeros(b)
    d[pruned] = -w[0, pruned]
    d[free] = -np.linalg.solve(F[np.ix_(free, free)], F[np.ix_(free, pruned)] @ d[pruned])
    scorer.after_prune({"w": lin}, {"w": torch.ones_like(new_mask)}, {"w": new_mask})
    np.testing.assert_allclose(lin.weight.detach().numpy()[0], w[0] + d, rtol=1e-3, atol=1e-4)
    assert np.abs(lin.weight.detach().numpy()[0, pruned]).max() < 1e-4
    assert scorer.count == 0 and not scorer.finv  # the Fisher is rebuilt after an event


def test_obs_blocks_and_state_roundtrip():
    assert block_size_for(384 * 384, 32) == 32 and block_size_for(10, 4) == 2 and block_size_for(7, 4) == 1
    lin = linear(np.random.default_rng(1).normal(size=(4, 6)).tolist())
    scorer = OBSScorer(block_size=4, num_grads=2, damp=1e-3)
    observe(scorer, lin, [np.ones((4, 6)).tolist()] * 3)
    assert scorer.count == 2  # only num_grads gradients per event
    other = OBSScorer(block_size=4, num_grads=2, damp=1e-3)
    other.load_state_dict(scorer.state_dict())
    assert other.count == 2 and torch.equal(other.finv["w"], scorer.finv["w"])
    with pytest.raises(ValueError, match="unexpected"):
        other.load_state_dict({"bogus": torch.zeros(1), "count": torch.tensor([0])})


@pytest.mark.parametrize("criterion", ["magnitude", "movement", "taylor", "obs"])
@pytest.mark.parametrize("scope", ["per-matrix", "global"])
def test_every_criterion_reaches_exact_sparsity_with_masks_enforced(criterion, scope):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    targets = {"0": model[0], "2": model[2]}
    sp = Sparsifier(targets, CubicSchedule(final_sparsity=0.9, end_step=10, num_events=5), scope,
                    make_scorer(criterion, **({"block_size": 8, "num_grads": 4} if criterion == "obs" else {})))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sp.bind_optimizer(opt)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    for step in range(1, 16):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sp.observe()
        opt.step()
        sp.step(step)
    total = sum(t.weight.numel() for t in targets.values())
    zeros = sum(int((t.weight == 0).sum()) for t in targets.values())
    if scope == "per-matrix":
        assert all(int((t.weight == 0).sum()) == round(0.9 * t.weight.numel()) for t in targets.values())
    else:
        assert zeros == round(0.9 * total)
    for name, t in targets.items():
        assert torch.all(t.weight[~sp.masks[name]] == 0)
        state = opt.state[t.weight]
        assert torch.all(state["exp_avg"][~sp.masks[name]] == 0) and torch.all(state["exp_avg_sq"][~sp.masks[name]] == 0)
    sp.close()
