"""SparseBERT in a ``transformers.Trainer``: gradual pruning as a callback, distillation as a Trainer.

Knowledge-aware sparse pruning (Xu, Yen, Zhao & Xiao, *Rethinking Network Pruning — under the
Pre-train and Fine-tune Paradigm*, NAACL 2021, §3): the student starts from the **pre-trained**
encoder, the teacher is the **fine-tuned** one, and the student's encoder matrices are pruned by
gradual magnitude pruning (GMP) on the cubic schedule **while** it is distilled. Two pieces, usable
together or alone::

    from sparsebert.integrations import DistillationTrainer, GradualPruningCallback

    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=train, data_collator=collator,
                                  callbacks=[GradualPruningCallback(sparsity=0.95)])
    trainer.train()

* :class:`GradualPruningCallback` — any ``Trainer``: the cubic schedule of Zhu & Gupta (2017, Eq. 1)
  over the Trainer's ``state.max_steps`` (:class:`~sparsebert.pruning.CubicSchedule`, window from
  :func:`sparsebert.stages.prune.cubic_schedule`, as ``sparsebert prune``), criteria ``magnitude`` / ``movement`` / ``taylor`` /
  ``obs`` (:mod:`sparsebert.pruning.scorers`), masks held and enforced by
  :class:`~sparsebert.pruning.Sparsifier`. Defaults are :class:`~sparsebert.recipe.PruneRecipe`'s.
* :class:`DistillationTrainer` — a ``Trainer`` whose training loss is
  :class:`~sparsebert.distill.DistillationLoss` from a frozen teacher (defaults: logits only,
  KL·T² at T = 2 with hardness 0.5; attention-score and hidden-state terms optional). For an
  existing ``Trainer`` subclass, :func:`distillation_loss` is the loss computation alone.

Order of one optimizer step in ``transformers`` 5.24 (``Trainer._run_epoch``) and where the
pieces act:

1. ``training_step`` -> ``compute_loss`` -> backward, once per micro-batch: the sparsifier's tensor
   hooks zero the gradient of every pruned weight *as it is produced*, so accumulated gradients
   of pruned entries stay exactly 0;
2. (:class:`DistillationTrainer` only, on the last micro-batch) gradient-based criteria observe the
   gradients here, before clipping, as in sparsebert's own loop (:func:`sparsebert.training.fit`);
3. ``Trainer._clip_grad_norm`` (``accelerator.clip_grad_norm_`` -> ``torch.nn.utils.clip_grad_norm_``
   before accelerate 1.16, ``get_total_norm`` + ``clip_grads_with_norm_`` from 1.16): pruned gradients
   are already 0, so they add nothing to the clipped norm;
4. ``on_pre_optimizer_step``: with a plain ``Trainer``, gradient-based criteria observe here — the
   gradients are then the *clipped* ones (scaled by ``min(1, max_grad_norm / ‖g‖)``); magnitude
   pruning (the default) reads no gradients and is unaffected;
5. ``optimizer.step()`` (AdamW sees zero gradients for pruned entries), scheduler step,
   ``state.global_step += 1``;
6. ``on_step_end``: pruned weights re-zeroed (weight decay cannot revive them) or, on an event
   step, masks recomputed at s_t and AdamW's ``exp_avg`` / ``exp_avg_sq`` of newly pruned entries
   zeroed (:meth:`~sparsebert.pruning.Sparsifier.bind_optimizer`) — before any logging, evaluation
   or checkpoint of that step.

Not covered: DeepSpeed ZeRO and FSDP (sharded parameters: the per-matrix masks assume whole
weights; untested), and ``torch.compile`` (untested).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights
from sparsebert.distill.loss import add_shares
from sparsebert.stages.prune import cubic_schedule, scorer_options
from sparsebert.pruning import SCORERS, CubicSchedule, Sparsifier, make_scorer
from sparsebert.pruning.patterns import check_pattern, check_pattern_sparsity, parse_pattern
from sparsebert.recipe import PruneRecipe
from sparsebert.targets import hidden_size, prunable_linears

logger = logging.getLogger(__name__)


def _default(field: str):
    """A :class:`~sparsebert.recipe.PruneRecipe` default (one source for the CLI and this module)."""
    return PruneRecipe.model_fields[field].default


def default_distill_weights() -> DistillWeights:
    """The distillation weights of ``prune``'s default recipe (:class:`~sparsebert.recipe.PruneRecipe`).

    Logits only (attention 0, hidden 0, prediction 1), temperature T = 2, hardness h = 0.5: the
    prediction term is (1 − h)·KL(softmax(z_t/T) ‖ softmax(z_s/T))·T² + h·CE(z_s, y) (Hinton et al.
    2015; measured in ``results/demo_ablation.md``). The paper's terms (Xu et al. 2021 §3, TinyBERT
    Eqs. 7-10: attention + hidden + logits, T = 1) are ``DistillWeights(1, 1, 1, 1.0)``.
    """
    return DistillWeights(
        attention=_default("attention_weight"), hidden=_default("hidden_weight"),
        prediction=_default("prediction_weight"), temperature=_default("temperature"),
        hardness=_default("hardness"), attention_loss=_default("attention_loss"),
        normalize=_default("normalize_terms"),
    )


def _unwrap(obj, attr: str):
    """The torch object under accelerate's wrappers (``AcceleratedOptimizer.optimizer``,
    ``AcceleratedScheduler.scheduler``); ``obj`` itself when it is not wrapped."""
    while obj is not None and type(obj).__module__.startswith("accelerate") and getattr(obj, attr, None) is not None:
        obj = getattr(obj, attr)
    return obj


class GradualPruningCallback(TrainerCallback):
    """Gradual pruning of the student's encoder matrices on the cubic schedule, inside any ``Trainer``.

    Prunes the six matrices of every Transformer layer (Q, K, V, attention output, FFN-in, FFN-out;
    :func:`sparsebert.targets.prunable_linears`) from ``prune_start`` to ``prune_end`` (fractions of
    the Trainer's ``state.max_steps`` optimizer steps) on the cubic schedule
    s_t = s_f + (s_0 − s_f)(1 − (t − t_0)/(nΔt))³ (Zhu & Gupta 2017, Eq. 1; SparseBERT, Xu et al.
    2021 §3/§4.1), then trains with fixed masks (recovery). Exactly ``round(s·n)`` weights of a
    matrix with ``n`` weights are zero at sparsity ``s`` (``scope="per-matrix"``).

    Enforcement (:class:`~sparsebert.pruning.Sparsifier`, after torch.ao.pruning / SparseML):
    gradient hooks zero pruned gradients during backward (so before the Trainer's clipping and the
    optimizer step), AdamW moments of newly pruned entries are zeroed at every event, and pruned
    weights are re-zeroed after every optimizer step (``on_step_end``). See the module docstring
    for the exact order within a step.

    The end of pruning is checked against the Trainer's own learning-rate schedule (a ``LambdaLR``,
    which every ``lr_scheduler_type`` of transformers is): when the rate after ``end_step`` would be
    below ``min_event_lr_ratio`` of the peak, the end is moved to the last step where it is not
    (:func:`sparsebert.lr_schedule.recoverable_end`), as ``sparsebert prune`` does.

    Resuming (``trainer.train(resume_from_checkpoint=...)``): the masks are rebuilt from the exact
    zeros of the restored weights and the target sparsity from the schedule at the restored step;
    gradient-based criteria restart their statistics (magnitude pruning resumes exactly).

    Args:
        sparsity: final sparsity s_f in [0, 1) (fraction of zero weights per matrix); default (None)
            PruneRecipe's 0.95, or ``1 - N/M`` with an N:M ``pattern`` (which allows no other value).
        initial_sparsity: s_0 in [0, s_f], a one-shot jump at ``prune_start`` (oBERT: 0.7); default 0.
        prune_start: t_0 as a fraction of training, in [0, prune_end); default 0.1.
        prune_end: where s_f is reached, fraction of training in (prune_start, 1]; default 0.6.
        pruning_events: n, mask updates between start and end (>= 1); default 100.
        scope: ``"per-matrix"`` (the paper's; every matrix exactly at s_t) or ``"global"`` (one
            ranking over all matrices; total sparsity s_t).
        criterion: ``"magnitude"`` (|w|, GMP), ``"movement"`` (Sanh et al. 2020), ``"taylor"``
            (PLATON, Zhang et al. 2022) or ``"obs"`` (oBERT, Kurtic et al. 2022).
        pattern: ``"unstructured"`` (default), ``"RxC"`` blocks (``"1x4"``: int8 VNNI) or ``"N:M"``
            (:mod:`sparsebert.pruning.patterns`); shapes are checked at ``on_train_begin``.
        min_event_lr_ratio: in [0, 1]; 0 never moves the end of pruning (the paper's reference).
        scorer_options: keyword options of the criterion's scorer (``beta1``/``beta2`` for taylor;
            ``block_size``/``num_grads``/``damp`` for obs); PruneRecipe's defaults otherwise.
        targets: ``model -> {name: nn.Linear}``; default :func:`sparsebert.targets.prunable_linears`.

    Attributes (after ``on_train_begin``):
        sparsifier: the :class:`~sparsebert.pruning.Sparsifier` (masks: ``{name: bool [out, in]}``,
            True = kept).
        schedule: the :class:`~sparsebert.pruning.CubicSchedule` in optimizer steps.
        window: ``{"start_step", "end_step", "requested_end_step", "total_steps"}``.
        events: ``[{"step": int, "target_sparsity": float}]``, one per pruning event so far.

    Raises:
        ValueError: any argument out of range (the message names it and its value; a bad ``pattern``,
            an N:M pattern with another sparsity or with scope global: ``InputError``); at
            ``on_train_begin``, a Trainer whose total number of optimizer steps is unknown
            (``state.max_steps < 1``), no model, or a model family without known targets
            (``UnsupportedArchitectureError``).
    """

    def __init__(
        self,
        sparsity: float | None = None,
        *,
        initial_sparsity: float = _default("initial_sparsity"),
        prune_start: float = _default("prune_start"),
        prune_end: float = _default("prune_end"),
        pruning_events: int = _default("pruning_events"),
        scope: str = _default("scope"),
        criterion: str = _default("criterion"),
        pattern: str = _default("pattern"),
        min_event_lr_ratio: float = _default("min_event_lr_ratio"),
        scorer_options: Mapping[str, Any] | None = None,
        targets: Callable[[nn.Module], dict[str, nn.Linear]] | None = None,
    ):
        parsed = parse_pattern(pattern)
        if sparsity is None:
            sparsity = parsed.final_sparsity if parsed.final_sparsity is not None else _default("sparsity")
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        if not 0.0 <= initial_sparsity <= sparsity:
            raise ValueError(f"initial_sparsity must be in [0, sparsity={sparsity}], got {initial_sparsity}")
        if not 0.0 <= prune_start < prune_end <= 1.0:
            raise ValueError(f"need 0 <= prune_start < prune_end <= 1, got prune_start={prune_start}, "
                             f"prune_end={prune_end}")
        if int(pruning_events) != pruning_events or pruning_events < 1:
            raise ValueError(f"pruning_events must be an integer >= 1, got {pruning_events}")
        if scope not in ("per-matrix", "global"):
            raise ValueError(f"scope must be 'per-matrix' or 'global', got {scope!r}")
        if criterion not in SCORERS:
            raise ValueError(f"unknown pruning criterion {criterion!r}; choose one of {sorted(SCORERS)}")
        check_pattern(parsed, {}, scope)
        check_pattern_sparsity(parsed, sparsity)
        if not 0.0 <= min_event_lr_ratio <= 1.0:
            raise ValueError(f"min_event_lr_ratio must be in [0, 1], got {min_event_lr_ratio}")
        self.sparsity = float(sparsity)
        self.initial_sparsity = float(initial_sparsity)
        self.prune_start = float(prune_start)
        self.prune_end = float(prune_end)
        self.pruning_events = int(pruning_events)
        self.scope = scope
        self.criterion = criterion
        self.pattern = parsed.text
        self.min_event_lr_ratio = float(min_event_lr_ratio)
        defaults = scorer_options_for(criterion)
        unknown = sorted(set(scorer_options or {}) - set(defaults))
        if unknown:
            raise ValueError(f"criterion {criterion!r} takes scorer options {sorted(defaults)}, got {unknown}")
        self.scorer_options = {**defaults, **(scorer_options or {})}
        make_scorer(criterion, **self.scorer_options)  # invalid option values fail here, not mid-training
        self.targets_fn = targets or prunable_linears
        self.sparsifier: Sparsifier | None = None
        self.schedule: CubicSchedule | None = None
        self.window: dict[str, int] = {}
        self.events: list[dict[str, float]] = []
        self._observed_at: int | None = None

    @classmethod
    def from_recipe(cls, recipe: PruneRecipe, **overrides) -> "GradualPruningCallback":
        """The pruning settings of a :class:`~sparsebert.recipe.PruneRecipe` (e.g. a YAML recipe
        loaded with :func:`sparsebert.recipe.build_recipe`); keyword ``overrides`` win.

        Raises:
            ValueError: as the constructor.
        """
        kwargs = dict(sparsity=recipe.sparsity, initial_sparsity=recipe.initial_sparsity,
                      prune_start=recipe.prune_start, prune_end=recipe.prune_end,
                      pruning_events=recipe.pruning_events, scope=recipe.scope, criterion=recipe.criterion,
                      pattern=recipe.pattern, min_event_lr_ratio=recipe.min_event_lr_ratio,
                      scorer_options=scorer_options(recipe))
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- schedule ---------------------------------------------------------------------------

    def _lr_factor(self, lr_scheduler) -> Callable[[int], float] | None:
        sched = _unwrap(lr_scheduler, "scheduler")
        if isinstance(sched, torch.optim.lr_scheduler.LambdaLR) and sched.lr_lambdas:
            return sched.lr_lambdas[0]
        return None

    def build_schedule(self, total_steps: int, lr_factor: Callable[[int], float] | None = None) -> CubicSchedule:
        """The cubic schedule of a run of ``total_steps`` optimizer steps.

        Args:
            total_steps: the Trainer's ``state.max_steps`` (optimizer steps, not micro-batches).
            lr_factor: learning-rate multiplier after ``t`` completed steps (a ``LambdaLR`` lambda);
                with ``min_event_lr_ratio > 0`` the end of pruning is moved back to the last step
                where it is >= the ratio. None: the end is not checked.
        Raises:
            ValueError: ``total_steps < 1`` (message says how to fix it), or no step of the window
                has a learning rate >= ``min_event_lr_ratio`` (``InputError``).
        """
        if total_steps is None or total_steps < 1:
            raise ValueError(
                f"GradualPruningCallback needs the total number of optimizer steps, but the Trainer's "
                f"state.max_steps is {total_steps!r}; set TrainingArguments.max_steps, or give a train "
                f"dataset with a length (len(train_dataset)) so num_train_epochs can be converted to steps"
            )
        schedule, info = cubic_schedule(total_steps, sparsity=self.sparsity, initial_sparsity=self.initial_sparsity,
                                        prune_start=self.prune_start, prune_end=self.prune_end,
                                        pruning_events=self.pruning_events,
                                        min_event_lr_ratio=self.min_event_lr_ratio, lr_for=lambda _: lr_factor)
        self.window = {**info, "total_steps": total_steps}
        return schedule

    # -- Trainer events ---------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        """Build the schedule from ``state.max_steps``, the sparsifier on ``model``'s targets, bind
        ``optimizer``; on a resumed run, restore the masks from the weights' zeros."""
        if self.sparsifier is not None:  # a second trainer.train() on the same callback
            self.sparsifier.close()
        if model is None:
            raise ValueError("GradualPruningCallback.on_train_begin got no model (is it registered on a Trainer?)")
        lr_factor = self._lr_factor(lr_scheduler)
        self.schedule = self.build_schedule(state.max_steps, lr_factor)
        if lr_factor is None and self.min_event_lr_ratio > 0:
            warnings.warn(f"the Trainer's lr scheduler ({type(lr_scheduler).__name__}) is not a LambdaLR: the end of "
                          f"pruning is not checked against min_event_lr_ratio={self.min_event_lr_ratio}", stacklevel=2)
        scorer = make_scorer(self.criterion, **self.scorer_options)
        self.sparsifier = Sparsifier(self.targets_fn(model), self.schedule, self.scope, scorer, self.pattern)
        opt = _unwrap(optimizer, "optimizer")
        if opt is not None:
            self.sparsifier.bind_optimizer(opt)
        self.events = []
        self._observed_at = None
        if state.global_step > 0:
            self._restore(state.global_step)
        logger.info("GradualPruningCallback: %d target matrices, %s %s, pattern %s, to s_f=%.4g, events at steps "
                    "%d..%d of %d", len(self.sparsifier.targets), self.scope, self.criterion, self.pattern,
                    self.sparsity, self.schedule.event_steps[0], self.schedule.event_steps[-1], state.max_steps)

    def _restore(self, step: int) -> None:
        """Masks of a resumed run: the exact zeros of the restored weights; sparsity from the schedule."""
        sp, sched = self.sparsifier, self.schedule
        done = [e for e in sched.event_steps if e <= step]
        if done:
            target = sched.sparsity_at(done[-1])
        else:
            target = sched.initial_sparsity if sched.start_step == 0 else 0.0
        masks = {n: lin.weight.detach() != 0 for n, lin in sp.targets.items()}
        sp.load_state_dict({"masks": masks, "current_sparsity": target, "scorer": sp.scorer.state_dict()})
        if self.scope == "per-matrix":
            unit = sp.pattern.rows * sp.pattern.cols  # blocks prune round(s * n_blocks) whole blocks
            short = [n for n, m in masks.items() if int((~m).sum()) < round(target * m.numel() // unit) * unit]
            if short:
                warnings.warn(f"resumed at step {step}: {len(short)} target matrices (e.g. {short[0]}) have "
                              f"fewer zeros than the schedule's sparsity {target:.4g}; is the checkpoint from "
                              f"this run?", stacklevel=2)

    def observe_gradients(self, state) -> None:
        """Feed the current (masked, accumulated) gradients to a gradient-based criterion, once per
        optimizer step. :class:`DistillationTrainer` calls this after the last backward of a step,
        before clipping; otherwise ``on_pre_optimizer_step`` does (after clipping)."""
        if self.sparsifier is None or self._observed_at == state.global_step:
            return
        self._observed_at = state.global_step
        self.sparsifier.observe()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        """Gradient-based criteria observe the step's gradients (if not already done before clipping)."""
        self.observe_gradients(state)

    def on_step_end(self, args, state, control, **kwargs):
        """After optimizer step ``state.global_step``: re-zero pruned weights, or prune further on an event."""
        if self.sparsifier is None:
            return
        if self.sparsifier.step(state.global_step):
            self.events.append({"step": state.global_step, "target_sparsity": self.sparsifier.current_sparsity})
            logger.debug("pruning event at step %d: target sparsity %.4f", state.global_step,
                         self.sparsifier.current_sparsity)

    def on_train_end(self, args, state, control, **kwargs):
        """Zero pruned weights a last time and remove the gradient hooks (masks stay readable)."""
        if self.sparsifier is not None:
            self.sparsifier.apply()
            self.sparsifier.close()

    # -- reporting --------------------------------------------------------------------------

    @property
    def target_sparsity(self) -> float:
        """s_t of the last pruning event (0.0 before the first one or before training)."""
        return self.sparsifier.current_sparsity if self.sparsifier is not None else 0.0

    def achieved_sparsity(self) -> dict[str, float]:
        """Fraction of exact zeros per target matrix, read from the weights.

        Raises:
            RuntimeError: called before ``on_train_begin``.
        """
        if self.sparsifier is None:
            raise RuntimeError("GradualPruningCallback has no targets yet: train first")
        return self.sparsifier.sparsity()


def scorer_options_for(criterion: str) -> dict[str, Any]:
    """PruneRecipe's default scorer options of ``criterion`` (:func:`sparsebert.stages.prune.scorer_options`)."""
    return scorer_options(PruneRecipe.model_construct(criterion=criterion))


def distillation_loss(
    student: nn.Module,
    teacher: nn.Module,
    loss_fn: DistillationLoss,
    inputs: Mapping[str, torch.Tensor],
    *,
    taps: tuple[AttentionScoreTap, AttentionScoreTap] | None = None,
    prediction_only: bool = False,
    teacher_context: Callable[[], Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float], Any]:
    """The SparseBERT distillation loss of one batch: student forward, frozen teacher forward, loss.

    For a ``Trainer`` subclass's ``compute_loss`` (what :class:`DistillationTrainer` does).

    Args:
        student, teacher: sequence-classification models taking the same ``inputs``.
        loss_fn: :class:`~sparsebert.distill.DistillationLoss` (Xu et al. 2021 §3; TinyBERT
            Eqs. 7-10; KL·T² and hardness of Hinton et al. 2015).
        inputs: a collated batch: ``input_ids`` ``[B, S]``, ``attention_mask`` ``[B, S]`` (all ones
            when absent), optional ``token_type_ids``, and ``labels`` ``[B]`` (class ids, or float
            scores for regression; required when the hardness is > 0).
        taps: ``(student_tap, teacher_tap)`` :class:`~sparsebert.distill.AttentionScoreTap` when
            the attention term is on (cleared here after use).
        prediction_only: attention and hidden terms off (TinyBERT's second stage).
        teacher_context: a context-manager factory for the teacher's forward (e.g.
            ``accelerator.autocast``); the teacher always runs under ``torch.no_grad()``.
    Returns:
        ``(loss, terms, student_outputs)``: the scalar float32 loss (a per-batch mean), the
        unweighted terms (``prediction`` = KL·T², ``hard`` = CE, ``attention``, ``hidden``) with each
        term's ``share/<term>`` of the total (:func:`sparsebert.distill.loss.add_shares`), and the
        student's model output (``.logits`` ``[B, C]``).
    Raises:
        ValueError: labels missing where needed, or attention scores missing for the attention term.
    """
    batch = dict(inputs)
    labels = batch.pop("labels", None)
    w = loss_fn.weights
    want_hidden = w.hidden > 0 and not prediction_only
    s_out = student(**batch, output_hidden_states=want_hidden)
    ctx = teacher_context() if teacher_context is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        t_out = teacher(**batch, output_hidden_states=want_hidden)
    scores = (None, None)
    if taps is not None and w.attention > 0 and not prediction_only:
        scores = (taps[0].scores(), taps[1].scores())
    mask = batch.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(batch["input_ids"])
    try:
        loss, terms = loss_fn(scores[0], scores[1], s_out.hidden_states if want_hidden else None,
                              t_out.hidden_states if want_hidden else None, s_out.logits, t_out.logits,
                              mask, labels, prediction_only=prediction_only)
    finally:
        for tap in taps or ():
            tap.clear()
    return loss, add_shares(terms), s_out


class DistillationTrainer(Trainer):
    """A ``transformers.Trainer`` that trains the student by knowledge distillation from a teacher.

    The training loss is :func:`distillation_loss` with :class:`~sparsebert.distill.DistillationLoss`
    (default :func:`default_distill_weights`: KL·T² at T = 2, hardness 0.5, no attention / hidden
    terms). Evaluation loss (``eval_loss``) is the student's own task loss on the labels, so it
    compares across runs. With a :class:`GradualPruningCallback` among the callbacks this is the
    SparseBERT recipe (Xu et al., NAACL 2021, §3), and gradient-based criteria see the gradients
    before clipping. Training logs gain ``distill/<term>`` (mean since the last log) and
    ``target_sparsity``.

    Args:
        teacher_model: the fine-tuned teacher (frozen, eval mode, moved to ``args.device``); same
            vocabulary and number of labels as the student. Its depth must be a multiple of the
            student's only when the attention or hidden term is on (uniform layer map, TinyBERT §3.2).
        distill_weights: :class:`~sparsebert.distill.DistillWeights`.
        prediction_only_from: from this fraction of ``state.max_steps`` on, only the prediction term
            trains the student (TinyBERT's second stage); None = never.
        *args, **kwargs: ``transformers.Trainer``'s.

    When hidden sizes differ and the hidden term is on, the learnt projection W_h (TinyBERT Eq. 8)
    is added to the optimizer as its own parameter group; it is not saved with the student, and
    ``Trainer``'s gradient clipping (which covers ``model.parameters()``) does not clip it.

    Raises:
        ValueError: no teacher; teacher and student with different ``num_labels`` or
            ``vocab_size``; ``prediction_only_from`` outside (0, 1); and what
            :class:`~sparsebert.distill.DistillationLoss` raises (temperature <= 0, hardness outside
            [0, 1], impossible layer mapping).
    """

    #: compute_loss returns a per-batch mean: let the Trainer divide by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, teacher_model: nn.Module | None = None, distill_weights: DistillWeights | None = None,
                 prediction_only_from: float | None = None, **kwargs):
        if teacher_model is None:
            raise ValueError("DistillationTrainer needs teacher_model (the fine-tuned teacher)")
        if prediction_only_from is not None and not 0.0 < prediction_only_from < 1.0:
            raise ValueError(f"prediction_only_from must be in (0, 1), got {prediction_only_from}")
        super().__init__(*args, **kwargs)
        # The loss is a per-batch mean whatever the model accepts (transformers < 5 decided GA scaling by this).
        self.model_accepts_loss_kwargs = False
        s_cfg, t_cfg = self.model.config, teacher_model.config
        for attr in ("num_labels", "vocab_size"):
            s_val, t_val = getattr(s_cfg, attr, None), getattr(t_cfg, attr, None)
            if s_val != t_val:
                raise ValueError(f"teacher and student differ in {attr}: teacher {t_val}, student {s_val}")
        weights = distill_weights or default_distill_weights()
        layered = weights.attention > 0 or weights.hidden > 0
        t_layers = t_cfg.num_hidden_layers
        # The uniform layer map is only used by the attention/hidden terms; logits-only KD pairs any depths.
        s_layers = s_cfg.num_hidden_layers if layered else t_layers
        regression = s_cfg.problem_type == "regression" or s_cfg.num_labels == 1
        self.teacher = teacher_model.to(self.args.device).eval()
        self.teacher.requires_grad_(False)
        self.distill_loss = DistillationLoss(s_layers, t_layers, hidden_size(s_cfg), hidden_size(t_cfg), weights,
                                             regression=regression).to(self.args.device)
        self.prediction_only_from = prediction_only_from
        self._taps = (AttentionScoreTap(self.model), AttentionScoreTap(self.teacher)) if weights.attention > 0 else None
        self._term_sums: dict[str, float] = {}
        self._term_count = 0

    # -- pieces ----------------------------------------------------------------------------

    def _pruning_callbacks(self) -> list[GradualPruningCallback]:
        return [cb for cb in self.callback_handler.callbacks if isinstance(cb, GradualPruningCallback)]

    def create_optimizer(self, model=None):
        """``Trainer.create_optimizer``, plus the distillation projection W_h when there is one."""
        optimizer = super().create_optimizer(model)
        extra = [p for p in self.distill_loss.parameters() if p.requires_grad]
        have = {id(p) for g in optimizer.param_groups for p in g["params"]}
        extra = [p for p in extra if id(p) not in have]
        if extra:
            optimizer.add_param_group({"params": extra, "weight_decay": self.args.weight_decay})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Training: :func:`distillation_loss` (per-batch mean). Evaluation: ``Trainer``'s own loss.

        Returns:
            The scalar loss, or ``(loss, student_outputs)`` with ``return_outputs``.
        """
        if not model.training:
            try:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            finally:
                for tap in self._taps or ():
                    tap.clear()
        steps = self.state.max_steps
        prediction_only = (self.prediction_only_from is not None and steps > 0
                           and self.state.global_step >= int(self.prediction_only_from * steps))
        self.distill_loss.train()
        loss, terms, outputs = distillation_loss(model, self.teacher, self.distill_loss, inputs, taps=self._taps,
                                                 prediction_only=prediction_only,
                                                 teacher_context=self.accelerator.autocast)
        for k, v in terms.items():
            self._term_sums[k] = self._term_sums.get(k, 0.0) + v
        self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step``; after the last backward of an optimizer step (before the
        Trainer clips), gradient-based pruning criteria observe the accumulated gradients."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients:
            for cb in self._pruning_callbacks():
                cb.observe_gradients(self.state)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """``Trainer.log``; training records also get ``distill/<term>`` means and ``target_sparsity``."""
        if "loss" in logs:
            if self._term_count:
                logs.update({f"distill/{k}": v / self._term_count for k, v in self._term_sums.items()})
                self._term_sums, self._term_count = {}, 0
            for cb in self._pruning_callbacks()[:1]:
                logs["target_sparsity"] = cb.target_sparsity
        super().log(logs, start_time)
