import pytest
import torch
from torch import nn

from sparsebert.pruning import CubicSchedule, GMPSparsifier, global_magnitude_masks, magnitude_mask


def test_magnitude_mask_keeps_largest_exact_count():
    w = torch.tensor([[0.1, -5.0, 0.3], [2.0, -0.2, 0.05]])
    m = magnitude_mask(w, 0.5)
    assert m.tolist() == [[False, True, True], [True, False, False]]


def test_magnitude_mask_exact_count_with_ties():
    w = torch.ones(10, 10)
    assert int((~magnitude_mask(w, 0.37)).sum()) == 37


def test_already_pruned_stay_pruned():
    w = torch.tensor([5.0, 4.0, 3.0, 2.0])
    old = torch.tensor([False, True, True, True])  # the largest was pruned before
    m = magnitude_mask(w, 0.5, old)
    assert not m[0] and int(m.sum()) == 2 and m[1] and m[2]


def test_global_masks_rank_across_matrices():
    w = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([10.0, 20.0])}
    m = global_magnitude_masks(w, 0.5)
    assert m["a"].tolist() == [False, False] and m["b"].tolist() == [True, True]


def test_masks_survive_adamw_weight_decay():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    targets = {"0": model[0], "2": model[2]}
    sched = CubicSchedule(final_sparsity=0.9, end_step=10, num_events=5)
    sp = GMPSparsifier(targets, sched)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    for step in range(1, 31):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        # gradients of pruned weights are non-zero: AdamW alone would revive them
        opt.step()
        sp.step(step)
        for name, lin in targets.items():
            assert torch.all(lin.weight[~sp.masks[name]] == 0.0), f"pruned weight revived at step {step}"
    for name, lin in targets.items():  # exact count: round(s_f * n) zeros
        assert int((lin.weight == 0).sum()) == round(0.9 * lin.weight.numel())
    for lin in targets.values():  # exactly +0.0 (sign bit clear), so sparse export is bit-exact
        assert not torch.signbit(lin.weight[lin.weight == 0]).any()
    # biases stay dense
    assert int((model[0].bias == 0).sum()) == 0


def test_adamw_without_mask_enforcement_would_revive():
    """Control for the test above: the optimizer really does move pruned weights."""
    torch.manual_seed(0)
    lin = nn.Linear(8, 8)
    with torch.no_grad():
        lin.weight[:, :4] = 0.0
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=0.1)
    loss = lin(torch.randn(4, 8)).pow(2).sum()
    loss.backward()
    opt.step()
    assert int((lin.weight[:, :4] != 0).sum()) > 0


def test_sparsifier_rejects_bad_scope():
    with pytest.raises(ValueError, match="scope"):
        GMPSparsifier({"a": nn.Linear(2, 2)}, CubicSchedule(0.5, end_step=2), scope="row")
