"""The training loop shared by ``finetune`` and ``prune``, and model evaluation.

Deliberately small (after nanoGPT's train.py): AdamW with decoupled weight decay (no decay on
biases and LayerNorm), linear warm-up then the recipe's learning-rate shape
(:mod:`sparsebert.lr_schedule`), gradient clipping, bf16 autocast on CPU/CUDA (fp32 master
weights), evaluation every N steps, progress bar and JSON-lines log. The stage supplies
``compute_loss(batch, step) -> (loss, terms)`` and optionally ``after_step(step)`` (the pruning
hook) — everything else is here. With a sparsifier, one step is: forward, backward (pruned
weights' gradients masked by the sparsifier's hooks), ``sparsifier.observe()`` (gradient-based
criteria), clipping, ``optimizer.step()``, ``after_step`` (masks enforced, pruning events). Given a :class:`~sparsebert.checkpointing.TrainingRun`,
``fit`` saves resumable training states and continues from one (:mod:`sparsebert.checkpointing`).
Under a multi-process launch (``accelerate launch``) each rank computes its share of every global batch and
the gradients are averaged right after the backward pass, before ``observe()`` and clipping
(:mod:`sparsebert.distributed`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sparsebert.checkpointing import Progress, TrainingRun
from sparsebert.data.encode import batch_indices, eval_batches, pad_batch
from sparsebert.data.files import recipe_task
from sparsebert.data.tasks import TaskSpec
from sparsebert.distributed import context
from sparsebert.io import JsonlLogger
from sparsebert.lr_schedule import lr_factor_fn
from sparsebert.metrics import compute_metrics, main_metric, predictions
from sparsebert.recipe import TrainRecipe


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def begin_stage(recipe: TrainRecipe) -> TaskSpec:
    """Common start of every training stage: threads, seed; returns the task (a GLUE task, or the
    task of the recipe's own ``train`` / ``dev`` files, :func:`sparsebert.data.files.recipe_task`).

    (The output-directory rule and the lock are :class:`~sparsebert.checkpointing.TrainingRun`'s.)

    Raises:
        ValueError: unknown task; DataError: a bad own train file.
    """
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    task = recipe_task(recipe)
    set_seed(recipe.seed)
    return task


def device() -> torch.device:
    """CUDA when available, else CPU; under a multi-process launch, this process's device (its GPU)."""
    ctx = context()
    if ctx.distributed:
        return ctx.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def bf16_native(device_type: str) -> bool:
    """Whether ``device_type`` computes bf16 matrix products in hardware: a CUDA GPU with bf16, or a
    CPU whose flags (``/proc/cpuinfo``) include ``avx512_bf16`` or ``amx_bf16``. On an AVX2-only CPU
    torch's bf16 autocast is emulated: measured 19 s vs 0.7 s fp32 for a MiniLM-L6 training step
    (batch 32 x 40 tokens, 2 threads)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(enabled: bool | None, dev: torch.device | None = None):
    """bf16 autocast context for ``dev``; ``enabled=None`` means "where native" (:func:`bf16_native`)."""
    dev = dev or device()
    if enabled is None:
        enabled = bf16_native(dev.type)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def to_device(batch: dict[str, torch.Tensor], dev: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a batch to ``dev``."""
    return {k: v.to(dev, non_blocking=True) for k, v in batch.items()}


def param_groups(modules: Sequence[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices, none on biases and LayerNorm/embedding norms."""
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_adamw(groups: list[dict], lr: float, dev: torch.device) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, ICLR 2019) with torch's fused kernel where it exists (CPU and CUDA,
    torch >= 2.4): the same update, one kernel over all tensors. On MiniLM-L6 (22.7 M parameters, 2 CPU
    threads) one step took 11-14 ms fused against 95 ms with the default per-tensor loop, a quarter of
    a prune step (benchmarks/train_step_time.py). Falls back to the default implementation elsewhere."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=dev.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):  # older torch, or a device/dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr)


@torch.no_grad()
def predict_logits(model: nn.Module, features: Sequence[dict], batch_size: int, pad_token_id: int, bf16: bool | None,
                   progress: str | None = None) -> np.ndarray:
    """Logits for encoded features, in input order.

    Args:
        progress: show a progress bar with this label (e.g. for the teacher-logit cache of a whole train
            split, minutes on one CPU thread); None: silent.
    Returns:
        ``[N, num_labels]`` float32 array (``[N, 1]`` for regression).
    """
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(features)
    batches = eval_batches(features, batch_size, pad_token_id)
    if progress is not None:
        batches = tqdm(batches, total=-(-len(features) // batch_size), desc=progress, dynamic_ncols=True,
                       disable=not context().is_main)
    for idx, batch in batches:
        batch.pop("labels")
        with autocast(bf16, dev):
            logits = model(**to_device(batch, dev)).logits
        for j, row in zip(idx, logits.float().cpu().numpy()):
            out[j] = row
    model.train(was_training)
    return np.stack(out)


def evaluate_features(
    model: nn.Module, task: TaskSpec, eval_sets: dict[str, list[dict]], batch_size: int, pad_token_id: int, bf16: bool | None
) -> dict[str, dict[str, float]]:
    """Official GLUE metrics on each encoded eval split.

    Returns:
        ``{split: {metric: value}}`` (values in [−1, 1], not percent).
    """
    return {split: compute_metrics(task, predictions(task, logits), labels)
            for split, (logits, labels) in split_logits(model, eval_sets, batch_size, pad_token_id, bf16).items()}


def split_logits(
    model: nn.Module, eval_sets: dict[str, list[dict]], batch_size: int, pad_token_id: int, bf16: bool | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Logits and gold labels of each encoded eval split, in the split's order.

    Returns:
        ``{split: (logits [N, num_labels] float32 ([N, 1] for regression), labels [N])}``.
    """
    return {split: (predict_logits(model, feats, batch_size, pad_token_id, bf16), np.array([f["labels"] for f in feats]))
            for split, feats in eval_sets.items()}


def headline(task: TaskSpec, results: dict[str, dict[str, float]]) -> float:
    """The task's main metric on its first eval split (MNLI: matched)."""
    return main_metric(task, results[task.eval_splits[0]])


def total_steps(recipe: TrainRecipe, num_examples: int) -> tuple[int, int]:
    """``(steps_per_epoch, total_steps)``: ``max_steps`` if set, else ceil(epochs * steps_per_epoch)."""
    per_epoch = math.ceil(num_examples / recipe.batch_size)
    return per_epoch, recipe.max_steps or max(1, math.ceil(recipe.epochs * per_epoch))


@dataclass
class FitResult:
    """What :func:`fit` returns: final/best eval results, timings (s) and step counts."""

    final: dict[str, dict[str, float]]
    best: dict[str, dict[str, float]]
    best_step: int
    best_state: dict[str, torch.Tensor] | None
    steps: int
    train_seconds: float
    mean_step_seconds: float
    history: list[dict] = field(default_factory=list)


def fit(
    *,
    model: nn.Module,
    extra_modules: Sequence[nn.Module],
    recipe: TrainRecipe,
    task: TaskSpec,
    train_features: list[dict],
    eval_sets: dict[str, list[dict]],
    pad_token_id: int,
    compute_loss: Callable[[dict[str, torch.Tensor], int], tuple[torch.Tensor, dict[str, float]]],
    logger: JsonlLogger,
    after_step: Callable[[int], dict[str, float]] | None = None,
    keep_best: bool = True,
    desc: str = "train",
    run: TrainingRun | None = None,
    sparsifier=None,
    lr_factor: Callable[[int], float] | None = None,
    evaluate: Callable[[nn.Module], tuple[dict[str, dict[str, float]], float]] | None = None,
) -> FitResult:
    """Train ``model`` (+ ``extra_modules``, e.g. a hidden-state projection) on ``train_features``.

    Args:
        compute_loss: (batch on device, completed steps before this one) -> (scalar loss, float
            terms for logging).
        after_step: called with the number of completed optimizer steps, right after
            ``optimizer.step()``; returns extra values to log (e.g. the current sparsity).
        keep_best: keep a CPU copy of the best-scoring weights (fine-tuning); with False the
            final weights are the result (pruning: only the final, fully sparse model counts).
        run: where to save resumable states (every ``recipe.save_every`` steps and after the
            last step) and, when ``run.resumed``, the state to continue from. None: no states.
        sparsifier: the :class:`~sparsebert.pruning.Sparsifier` driven by ``after_step``, whose
            masks and scorer state belong to the training state; fit binds the optimizer to it
            (moments of pruned weights zeroed at events) and calls its ``observe()`` after backward.
        lr_factor: learning-rate factor of the peak after ``t`` completed steps; default
            :func:`sparsebert.lr_schedule.lr_factor_fn` of the recipe's ``lr_schedule``.
        evaluate: ``model -> ({split: {metric: value}}, headline score)`` instead of the task's metrics on
            ``eval_sets`` (upstream pruning has no task: zero-shot STS of the embeddings); it must leave
            the model in training mode.
    Returns:
        :class:`FitResult`.
    """
    dev = next(model.parameters()).device
    ctx = context()
    per_epoch, steps = total_steps(recipe, len(train_features))
    eval_every = recipe.eval_every or per_epoch
    optimizer = make_adamw(param_groups([model, *extra_modules], recipe.weight_decay), recipe.learning_rate, dev)
    lr_factor = lr_factor or lr_factor_fn(recipe.lr_schedule, steps, int(recipe.warmup_ratio * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    if sparsifier is not None:
        sparsifier.bind_optimizer(optimizer)
    stateful = dict(modules={"model": model, **{f"extra.{i}": m for i, m in enumerate(extra_modules)}},
                    optimizer=optimizer, scheduler=scheduler, sparsifier=sparsifier)
    p, best_state = Progress(), None
    if run is not None and run.resumed:
        p, best_state = run.restore(**stateful)
        logger.log("resume", step=p.step, epoch=p.epoch, batches_in_epoch=p.batches_in_epoch, state=run.state_dir.name)
    else:
        logger.log("start", steps=steps, steps_per_epoch=per_epoch, train_examples=len(train_features))
    ctx.broadcast_modules(stateful["modules"].values())  # no-op on one process

    model.train()
    params = [q for g in optimizer.param_groups for q in g["params"]]
    quiet = {} if ctx.is_main else {"disable": True}  # one progress bar
    bar = tqdm(total=steps, initial=p.step, desc=desc, dynamic_ncols=True, **quiet)
    while p.step < steps:
        chunks = batch_indices(train_features, recipe.batch_size, recipe.seed + p.epoch, recipe.group_by_length)
        for chunk in itertools.islice(chunks, p.batches_in_epoch, None):  # skip what a resumed state consumed
            t0 = time.perf_counter()
            share, weight = ctx.share(chunk)  # one process: the whole batch
            batch = to_device(pad_batch([train_features[j] for j in share], pad_token_id), dev)
            ctx.seed_step(recipe.seed, p.step)
            with autocast(recipe.bf16, dev):
                loss, terms = compute_loss(batch, p.step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {p.step + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # gradients of the global batch on every rank, before the scorers and clipping see them
            n_tokens = int(batch["attention_mask"].sum()) + int(batch.get("attention_mask_b", torch.zeros(())).sum())
            loss_value, terms, tokens = ctx.reduce_step(params, weight, loss.item(), terms, n_tokens)
            if sparsifier is not None:
                sparsifier.observe()
            torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
            optimizer.step()
            scheduler.step()
            p.step += 1
            p.batches_in_epoch += 1
            extra = after_step(p.step) if after_step else {}
            p.train_seconds += time.perf_counter() - t0
            info = {"loss": loss_value, **terms, **extra}
            if p.step % recipe.log_every == 0 or p.step == steps:
                logger.log("train", step=p.step, epoch=p.epoch, lr=scheduler.get_last_lr()[0], tokens=tokens, **info)
            if p.step % eval_every == 0 or p.step == steps:
                if evaluate is not None:
                    p.results, score = evaluate(model)
                else:
                    p.results = evaluate_features(model, task, eval_sets, recipe.eval_batch_size, pad_token_id, recipe.bf16)
                    score = headline(task, p.results)
                flat = {f"{s}/{k}": v for s, m in p.results.items() for k, v in m.items()}
                logger.log("eval", step=p.step, **flat, **extra)
                p.history.append({"step": p.step, "score": score, **extra})
                if keep_best and (p.best_score is None or score > p.best_score):
                    p.best_score, p.best_results, p.best_step = score, p.results, p.step
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                p.last_eval = {task.main_metric if evaluate is None else "score": score}
            if run is not None and (p.step == steps or (recipe.save_every and p.step % recipe.save_every == 0)):
                run.save(p, best_state=best_state, log_bytes=logger.tell(), **stateful)
            info.update(p.last_eval)
            bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in info.items()}, refresh=False)
            bar.update(1)
            if p.step >= steps:
                break
        else:
            p.epoch, p.batches_in_epoch = p.epoch + 1, 0
    bar.close()
    if not keep_best:
        p.best_results, p.best_step = p.results, p.step
    return FitResult(
        final=p.results, best=p.best_results, best_step=p.best_step, best_state=best_state, steps=p.step,
        train_seconds=p.train_seconds, mean_step_seconds=p.train_seconds / max(p.step, 1), history=p.history,
    )
