"""The pruning engine inside a real prune run: gradient masking, optimizer state, the schedule's
position against the learning rate, and a run that must learn (not sit on the majority floor)."""

from __future__ import annotations

import json

import pytest
import torch

from sparsebert import FinetuneRecipe, PruneRecipe, finetune, prune
from sparsebert.lr_schedule import lr_factor_fn, recoverable_end
from sparsebert.stages.prune import build_schedules

from test_pipeline import write_sst2


def test_pruned_gradients_are_zero_when_clipping_runs(tiny_bert, tmp_path, monkeypatch):
    """Dead weights must not enter the clipped norm nor AdamW's moments (torch.ao / SparseML)."""
    import sparsebert.training as training
    from sparsebert.pruning.sparsifier import Sparsifier

    data = write_sst2(tmp_path / "glue", n_train=64, n_dev=16)
    seen = {"sparsifiers": [], "checked": 0}
    real_init = Sparsifier.__init__

    def spy_init(self, *a, **k):
        real_init(self, *a, **k)
        seen["sparsifiers"].append(self)

    real_clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(params, *a, **k):
        sp = seen["sparsifiers"][-1]
        if sp.current_sparsity > 0:
            for name, lin in sp.targets.items():
                assert lin.weight.grad is not None
                assert torch.all(lin.weight.grad[~sp.masks[name]] == 0), f"{name}: pruned gradient reaches clipping"
            seen["checked"] += 1
        return real_clip(params, *a, **k)

    monkeypatch.setattr(Sparsifier, "__init__", spy_init)
    monkeypatch.setattr(training.torch.nn.utils, "clip_grad_norm_", spy_clip)
    prune(PruneRecipe(student=str(tiny_bert), task="sst2", data_dir=str(data), out=str(tmp_path / "s"),
                      attention_weight=0, hidden_weight=0, prediction_weight=0, label_weight=1.0,
                      sparsity=0.8, initial_sparsity=0.5, max_steps=8, batch_size=16, bf16=False, save_every=None))
    assert seen["checked"] >= 7  # s_0 applied before step 1: every step was checked


def test_no_pruning_event_where_the_learning_rate_has_decayed():
    recipe = PruneRecipe(student="s", teacher="t", task="sst2", out="o", prune_end=1.0, warmup_ratio=0.1)
    schedule, lr, window = build_schedules(recipe, 1000)
    assert window["requested_end_step"] == 1000 and window["end_step"] < 1000
    # after the warm-up (where the rate only rises) no event sits below the ratio of the peak
    assert all(lr(e) >= recipe.min_event_lr_ratio for e in schedule.event_steps if e >= 100)
    assert schedule.sparsity_at(window["end_step"]) == recipe.sparsity
    # the paper's exact schedule: ratio 0 keeps the last event at the last step (lr 0)
    paper = recipe.model_copy(update={"min_event_lr_ratio": 0.0})
    schedule, lr, window = build_schedules(paper, 1000)
    assert schedule.event_steps[-1] == 1000 and lr(1000) == 0.0
    # rewinding: every event is followed by the peak rate, so nothing moves
    rewind = recipe.model_copy(update={"lr_schedule": "rewind", "pruning_events": 5, "prune_start": 0.0, "prune_end": 0.8})
    schedule, lr, window = build_schedules(rewind, 1000)
    assert window["end_step"] == 800 and schedule.event_steps == [160, 320, 480, 640, 800]
    assert all(lr(e) == 1.0 for e in schedule.event_steps)
    with pytest.raises(ValueError, match="no pruning step"):
        recoverable_end(lr_factor_fn("linear", 100, 0), 95, 100, 0.5)


def test_lr_shapes():
    lin = lr_factor_fn("linear", 100, 10)
    assert lin(0) == 0.0 and lin(5) == 0.5 and lin(10) == 1.0 and lin(55) == 0.5 and lin(100) == 0.0
    const = lr_factor_fn("constant", 100, 10)
    assert const(5) == 0.5 and const(99) == 1.0
    rew = lr_factor_fn("rewind", 100, 0, [40, 70])
    assert rew(0) == 1.0 and rew(20) == 0.5 and rew(40) == 1.0 and rew(55) == 0.5 and rew(70) == 1.0 and rew(85) == 0.5
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor_fn("cosine", 100)


@pytest.mark.parametrize("criterion,scope,bf16", [("magnitude", "per-matrix", None), ("movement", "per-matrix", None),
                                                  ("magnitude", "global", True)])
def test_pruned_to_90_percent_still_learns_a_separable_task(tiny_bert, tmp_path, criterion, scope, bf16):
    """A tiny random BERT on 'contains good vs bad' (floor 0.5): after pruning to 90 % while
    distilling with the default recipe, the student must beat the floor by far, not collapse to one
    class. bf16 is left at its default (native only) in two cases, and forced on (emulated where the
    CPU lacks it) with global scope in the third, so both the bf16 path and global ranking train."""
    data = write_sst2(tmp_path / "glue", n_train=192, n_dev=64)
    common = dict(task="sst2", data_dir=str(data), max_length=32, batch_size=16, save_every=None)
    teacher = finetune(FinetuneRecipe(model=str(tiny_bert), out=str(tmp_path / "t"), max_steps=120,
                                      learning_rate=2e-3, **common))
    t_acc = teacher["metrics"]["dev"]["accuracy"]
    assert t_acc >= 0.9, f"teacher did not learn ({t_acc})"
    sparse = prune(PruneRecipe(teacher=str(tmp_path / "t"), student=str(tiny_bert), out=str(tmp_path / "s"),
                               sparsity=0.9, max_steps=240, learning_rate=2e-3, criterion=criterion, scope=scope,
                               bf16=bf16, **common))
    acc = sparse["metrics"]["dev"]["accuracy"]
    assert sparse["sparsity"]["targets"]["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert acc >= 0.85, f"90 %-sparse student at {acc} (floor 0.5, teacher {t_acc})"
    log = [json.loads(line) for line in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    train = [r for r in log if r.get("event") == "train"]
    assert train and all(abs(sum(v for k, v in r.items() if k.startswith("share/")) - 1) < 1e-6 for r in train)


def test_bf16_default_means_native_only(monkeypatch):
    """``bf16=None`` (the recipes' default) autocasts exactly where the hardware computes bf16."""
    import sparsebert.training as tr

    for native in (True, False):
        monkeypatch.setattr(tr, "bf16_native", lambda device_type, native=native: native)
        with tr.autocast(None, torch.device("cpu")):
            assert torch.is_autocast_enabled("cpu") is native
        with tr.autocast(False, torch.device("cpu")):
            assert not torch.is_autocast_enabled("cpu")
    assert FinetuneRecipe.model_fields["bf16"].default is None and PruneRecipe.model_fields["bf16"].default is None
