"""SparseBERT inside a user's own ``transformers.Trainer`` (sparsebert.integrations.trainer):
the cubic schedule reaches the target exactly, masks are enforced around the Trainer's clipping
and AdamW, and the training loss is the distillation loss from the teacher."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainerControl, TrainerState, TrainingArguments)

from sparsebert.data import get_task, load_split
from sparsebert.data.encode import encode_examples
from sparsebert.integrations import DistillationTrainer, GradualPruningCallback, default_distill_weights
from sparsebert.models import label_config
from sparsebert.pruning.sparsifier import Sparsifier
from sparsebert.recipe import PruneRecipe

from test_pipeline import write_sst2

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trainer_glue.py"


@pytest.fixture(scope="module")
def sst2(tiny_bert, tmp_path_factory):
    """(data root, tokenizer, encoded train features) of the synthetic SST-2 task."""
    root = write_sst2(tmp_path_factory.mktemp("trainer") / "glue", n_train=64, n_dev=16)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    train = encode_examples(tok, load_split("sst2", "train", root), 32, False)
    return root, tok, train


def _model(path, seed: int):
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def _args(tmp_path, **kw) -> TrainingArguments:
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, learning_rate=1e-3,
                use_cpu=True, report_to="none", save_strategy="no", eval_strategy="no", disable_tqdm=True,
                logging_steps=5, seed=0, max_grad_norm=1.0, dataloader_num_workers=0)
    return TrainingArguments(**{**base, **kw})


def _spy_clip(monkeypatch, callback, record: list):
    """Check, whenever the Trainer clips, that every pruned entry's gradient is exactly zero.

    The spy wraps ``Accelerator.clip_grad_norm_``, the Trainer's one clipping call: below it, accelerate
    < 1.16 calls ``torch.nn.utils.clip_grad_norm_`` and 1.16 calls ``get_total_norm`` and
    ``clip_grads_with_norm_`` (a spy on torch's function saw no clipping at all with 1.16)."""
    real_clip = Accelerator.clip_grad_norm_

    def spy(self, params, *a, **k):
        params = list(params)
        sp = callback.sparsifier
        if sp is not None and sp.current_sparsity > 0:
            for name, lin in sp.targets.items():
                assert lin.weight.grad is not None, name
                assert torch.all(lin.weight.grad[~sp.masks[name]] == 0), f"{name}: pruned gradient reaches clipping"
            record.append("clip-checked")
        else:
            record.append("clip")
        return real_clip(self, params, *a, **k)

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", spy)


def test_trainer_reaches_target_sparsity_with_masks_enforced_and_distillation(tiny_bert, sst2, tmp_path, monkeypatch):
    _, tok, train = sst2
    student, teacher = _model(tiny_bert, 0), _model(tiny_bert, 1)
    teacher_calls = []
    real_forward = teacher.forward
    monkeypatch.setattr(teacher, "forward", lambda *a, **k: teacher_calls.append(1) or real_forward(*a, **k))
    callback = GradualPruningCallback(sparsity=0.9)  # every other setting: PruneRecipe's defaults
    clips: list[str] = []
    _spy_clip(monkeypatch, callback, clips)
    steps = 30
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=_args(tmp_path, max_steps=steps),
                                  train_dataset=train, data_collator=DataCollatorWithPadding(tok),
                                  callbacks=[callback])
    trainer.train()

    # the schedule came from the Trainer's max_steps: 10 % .. 60 % of 30 steps, one event per step
    assert callback.window == {"start_step": 3, "end_step": 18, "requested_end_step": 18, "total_steps": steps}
    assert [e["step"] for e in callback.events] == list(range(4, 19))
    assert callback.events[-1]["target_sparsity"] == 0.9
    # exact per-matrix sparsity, and the zeros are exactly the pruned entries
    sp = callback.sparsifier
    assert len(sp.targets) == 12  # 2 layers x (Q, K, V, attention-out, FFN-in, FFN-out)
    for name, lin in sp.targets.items():
        w, mask = lin.weight.detach(), sp.masks[name]
        assert int((w == 0).sum()) == round(0.9 * w.numel()), name
        assert torch.equal(w != 0, mask), name
    # pruned gradients were zero every time clipping ran after the first event (steps 5..30)
    assert len(clips) == steps and clips.count("clip-checked") == steps - 4
    # AdamW's moments of pruned entries are zero (bound optimizer; zero gradients after the event)
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    for name, lin in sp.targets.items():
        state = opt.state[lin.weight]
        assert torch.all(state["exp_avg"][~sp.masks[name]] == 0), name
        assert torch.all(state["exp_avg_sq"][~sp.masks[name]] == 0), name
    # the training loss is the distillation loss: (1 - h)·KL·T² + h·CE with h = 0.5, teacher run every step
    assert len(teacher_calls) == steps
    logs = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logs) == steps // 5
    for r in logs:
        assert math.isclose(r["loss"], 0.5 * r["distill/prediction"] + 0.5 * r["distill/hard"], rel_tol=1e-5)
        assert r["distill/prediction"] > 0
    assert logs[-1]["target_sparsity"] == 0.9


@pytest.mark.parametrize("trainer_kind", ["plain", "distill"])
def test_gradient_criteria_observe_once_per_step_around_clipping(tiny_bert, sst2, tmp_path, monkeypatch, trainer_kind):
    """Movement scores see each optimizer step's accumulated gradient once: before clipping with
    DistillationTrainer (as sparsebert's own loop), after it with a plain Trainer (documented)."""
    _, tok, train = sst2
    callback = GradualPruningCallback(sparsity=0.5, criterion="movement", prune_start=0.0, prune_end=0.5,
                                      min_event_lr_ratio=0.0)
    order: list[str] = []
    _spy_clip(monkeypatch, callback, order)
    real_observe = Sparsifier.observe
    monkeypatch.setattr(Sparsifier, "observe", lambda self: order.append("observe") or real_observe(self))
    args = _args(tmp_path, max_steps=6, gradient_accumulation_steps=2, per_device_train_batch_size=4)
    common = dict(model=_model(tiny_bert, 0), args=args, train_dataset=train,
                  data_collator=DataCollatorWithPadding(tok), callbacks=[callback])
    trainer = (DistillationTrainer(teacher_model=_model(tiny_bert, 1), **common) if trainer_kind == "distill"
               else Trainer(**common))
    trainer.train()
    assert callback.sparsifier.scorer.steps == 6
    pairs = [(order[i], order[i + 1]) for i in range(0, len(order), 2)]
    first = "observe" if trainer_kind == "distill" else "clip"
    assert len(pairs) == 6 and all(p[0].startswith(first) for p in pairs), order
    for name, lin in callback.sparsifier.targets.items():
        assert int((lin.weight == 0).sum()) == round(0.5 * lin.weight.numel()), name


def test_defaults_errors_and_resume(tiny_bert, tmp_path):
    cb = GradualPruningCallback()
    assert (cb.sparsity, cb.prune_start, cb.prune_end, cb.pruning_events, cb.scope, cb.criterion) == \
        (0.95, 0.1, 0.6, 100, "per-matrix", "magnitude")
    w = default_distill_weights()
    assert (w.temperature, w.hardness, w.prediction, w.attention, w.hidden) == (2.0, 0.5, 1.0, 0.0, 0.0)
    recipe = PruneRecipe(student="s", teacher="t", task="sst2", out="o", criterion="taylor", sparsity=0.8)
    from_recipe = GradualPruningCallback.from_recipe(recipe)
    assert from_recipe.sparsity == 0.8 and from_recipe.scorer_options == {"beta1": 0.85, "beta2": 0.95}

    with pytest.raises(ValueError, match="sparsity must be in \\[0, 1\\), got 1.0"):
        GradualPruningCallback(sparsity=1.0)
    with pytest.raises(ValueError, match="prune_start=0.7, prune_end=0.6"):
        GradualPruningCallback(prune_start=0.7)
    with pytest.raises(ValueError, match="unknown pruning criterion 'random'"):
        GradualPruningCallback(criterion="random")
    with pytest.raises(ValueError, match="got \\['beta1'\\]"):
        GradualPruningCallback(criterion="movement", scorer_options={"beta1": 0.9})

    model = _model(tiny_bert, 0)
    args, control = _args(tmp_path), TrainerControl()
    with pytest.raises(ValueError, match="state.max_steps is 0"):
        cb.on_train_begin(args, TrainerState(max_steps=0), control, model=model)
    with pytest.raises(ValueError, match="differ in num_labels: teacher 3, student 2"):
        DistillationTrainer(model=model, args=args, teacher_model=AutoModelForSequenceClassification.from_pretrained(
            tiny_bert, num_labels=3))

    # resuming at step 50 of 100: masks from the restored zeros, target sparsity from the schedule
    cb = GradualPruningCallback(sparsity=0.5, pruning_events=10, min_event_lr_ratio=0.0)
    cb.on_train_begin(args, TrainerState(max_steps=100), control, model=model)
    for step in range(1, 51):
        cb.on_step_end(args, TrainerState(max_steps=100, global_step=step), control)
    masks = {n: m.clone() for n, m in cb.sparsifier.masks.items()}
    target = cb.target_sparsity
    assert 0 < target < 0.5
    resumed = GradualPruningCallback(sparsity=0.5, pruning_events=10, min_event_lr_ratio=0.0)
    resumed.on_train_begin(args, TrainerState(max_steps=100, global_step=50), control, model=model)
    assert resumed.target_sparsity == target
    assert all(torch.equal(resumed.sparsifier.masks[n], m) for n, m in masks.items())
    cb.sparsifier.close(), resumed.sparsifier.close()


def test_example_script_runs_offline(tiny_bert, sst2, tmp_path, capsys, monkeypatch):
    root, _, _ = sst2
    teacher = tmp_path / "teacher"
    labels = label_config(get_task("sst2"))
    AutoModelForSequenceClassification.from_pretrained(tiny_bert, **labels).save_pretrained(teacher)
    spec = importlib.util.spec_from_file_location("trainer_glue", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    summary = module.main([
        "--student", str(tiny_bert), "--teacher", str(teacher), "--task", "sst2", "--data_dir", str(root),
        "--output_dir", str(tmp_path / "out"), "--max_steps", "10", "--per_device_train_batch_size", "16",
        "--max_length", "32", "--sparsity", "0.8", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
        "--disable_tqdm", "true", "--learning_rate", "1e-3",
    ])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["target_sparsity"] == summary["target_sparsity"] == 0.8
    assert summary["sparsity_min"] == pytest.approx(0.8, abs=1e-3) and summary["pruned_matrices"] == 12
    assert "eval_accuracy" in summary["metrics"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
