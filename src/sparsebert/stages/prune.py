"""Stage 2 — knowledge-aware sparse pruning (SparseBERT): prune the student while distilling.

Xu, Yen, Zhao, Xiao, *Rethinking Network Pruning — under the Pre-train and Fine-tune Paradigm*
(NAACL 2021), §3:

* the student starts from the **pre-trained** encoder (with a new task head), not from the
  fine-tuned one — it keeps the general knowledge of pre-training;
* the teacher is the **fine-tuned** model, frozen — it supplies the task knowledge through
  attention-score, hidden-state and logit distillation (:mod:`sparsebert.distill.loss`);
* the six weight matrices of every layer are pruned *during* this training by gradual
  magnitude pruning on the cubic schedule (:mod:`sparsebert.pruning`), masks enforced after
  every optimizer step, to the final sparsity s_f (0.95 in the paper: 20x fewer weights).

Beyond the paper (each a recipe field, see :class:`~sparsebert.recipe.PruneRecipe`): other criteria
(movement, PLATON's Taylor, oBERT), structured sparsity patterns (1x4 blocks for int8 VNNI kernels,
N:M; :mod:`sparsebert.pruning.patterns`), s_0 jumps, fixed-mask recovery after ``prune_end`` with pruning
events kept where the learning rate can still recover from them, learning-rate rewinding, and the
balanced distillation options of :mod:`sparsebert.distill.loss`. When only the teacher's logits are
needed they are computed once per training example before training (``cache_teacher``). With
augmented data, ``augment_filter`` drops the copies whose gold label the teacher disagrees with
(:mod:`sparsebert.data.augment.filter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from sparsebert.biencoder import label_scale, load_biencoder
from sparsebert.checkpointing import TrainingRun
from sparsebert.data.augment import augment_record, load_augmented, prepare_augmented, teacher_agreement
from sparsebert.data.taskdata import load_task_data
from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights
from sparsebert.distill.logit_cache import teacher_logits
from sparsebert.distill.loss import add_shares
from sparsebert.distill.small_dense import shrink_student
from sparsebert.distributed import context
from sparsebert.stages.finetune import task_loss
from sparsebert.errors import InputError, SparsebertError
from sparsebert.io import environment
from sparsebert.lr_schedule import lr_factor_fn, recoverable_end
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.outputs import write_run
from sparsebert.preflight import check_models, check_obs_gradients
from sparsebert.pruning import CubicSchedule, Sparsifier, make_scorer
from sparsebert.recipe import PruneRecipe
from sparsebert.targets import architecture_of, hidden_size, prunable_linears
from sparsebert.training import begin_stage, device, fit, total_steps


class IncompatibleModelsError(SparsebertError, ValueError):
    """Teacher and student cannot be distilled (vocabulary, labels, depth, sequence length)."""


def check_pair(teacher, student, teacher_tok, student_tok) -> None:
    """Fail before training if teacher and student cannot be paired (sequence length, label sets and
    disk space: :func:`sparsebert.preflight.check_models`).

    Raises:
        IncompatibleModelsError: different vocabularies or impossible layer mapping.
    """
    if teacher_tok.get_vocab() != student_tok.get_vocab():
        raise IncompatibleModelsError(
            f"teacher ({teacher_tok.name_or_path}) and student ({student_tok.name_or_path}) use different vocabularies"
        )
    lt, ls = teacher.config.num_hidden_layers, student.config.num_hidden_layers
    if lt % ls:
        raise IncompatibleModelsError(f"teacher layers ({lt}) must be a multiple of student layers ({ls})")


def student_zeros(student, name: str) -> dict[str, torch.Tensor]:
    """Keep-masks ``{target: bool [out, in]}`` (False = zero weight) of a sparse student's target matrices:
    what sparse transfer keeps pruned (:class:`~sparsebert.pruning.Sparsifier` ``keep_pruned``).

    Raises:
        InputError: the student ``name`` has no zero weight in its targets (not a sparse encoder).
    """
    masks = {n: m.weight.detach() != 0 for n, m in prunable_linears(student).items()}
    if all(bool(m.all()) for m in masks.values()):
        raise InputError(f"--sparse-transfer: the student {name} has no zero weight in its pruned matrices; give a "
                         "sparse encoder (the output of `sparsebert upstream` or `sparsebert prune`)")
    return masks


def load_model(recipe: PruneRecipe, name: str, task, *, require_head: bool = False, pooling: str | None = None):
    """The student (``require_head`` False) or the teacher of ``recipe.head``: a cross-encoder
    (:func:`~sparsebert.models.load_for_task`) or a bi-encoder (:func:`~sparsebert.biencoder.load_biencoder`;
    the teacher must be a fine-tuned bi-encoder, a new student's label scale is the task's until the data says)."""
    if recipe.head == "bi-encoder":
        return load_biencoder(name, task, require_head=require_head, pooling=pooling, scale=label_scale(task))
    return load_for_task(name, task, require_head=require_head, pooling=pooling)


def scorer_options(recipe: PruneRecipe) -> dict:
    """The keyword options of ``recipe.criterion``'s scorer (:mod:`sparsebert.pruning.scorers`)."""
    if recipe.criterion == "taylor":
        return {"beta1": recipe.taylor_beta1, "beta2": recipe.taylor_beta2}
    if recipe.criterion == "obs":
        return {"block_size": recipe.obs_block_size, "num_grads": recipe.obs_num_grads, "damp": recipe.obs_damp}
    return {}


def pruning_window(steps: int, prune_start: float, prune_end: float) -> tuple[int, int]:
    """``(start_step, end_step)`` of gradual pruning in a run of ``steps`` optimizer steps.

    ``start_step = int(prune_start * steps)`` (dense warm-up before it, Zhu & Gupta 2017's t_0) and
    ``end_step = round(prune_end * steps)``, at least ``start_step + 1`` (where s_f is reached; fixed-mask
    recovery after it). The window of :func:`cubic_schedule`.

    Raises:
        ValueError: ``steps < 1`` or not ``0 <= prune_start < prune_end <= 1``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 <= prune_start < prune_end <= 1.0:
        raise ValueError(f"need 0 <= prune_start < prune_end <= 1, got prune_start={prune_start}, prune_end={prune_end}")
    start = int(prune_start * steps)
    return start, max(start + 1, round(prune_end * steps))


def build_schedules(recipe: PruneRecipe, steps: int) -> tuple[CubicSchedule, object, dict]:
    """The sparsity schedule and the learning-rate factor of a prune run of ``steps`` steps.

    The cubic schedule runs from ``prune_start`` to ``prune_end`` (fractions of ``steps``). With
    ``lr_schedule: rewind`` the learning rate goes back to its peak at every pruning event. With
    ``min_event_lr_ratio > 0``, an end of pruning where the learning rate has decayed below that
    fraction of the peak is moved to the last step where it has not
    (:func:`sparsebert.lr_schedule.recoverable_end`), so every event can be recovered from. With ``criterion:
    obs``, events closer than ``obs_num_grads`` steps are warned about
    (:func:`sparsebert.preflight.check_obs_gradients`).

    Returns:
        ``(schedule, lr_factor, info)``; ``info`` says where pruning starts and ends and whether
        the end was moved (``{"start_step", "end_step", "requested_end_step"}``).
    Raises:
        ValueError: no step of the pruning window has a learning rate above the ratio.
    """
    warmup = int(recipe.warmup_ratio * steps)
    lr = lambda sched: lr_factor_fn(recipe.lr_schedule, steps, warmup,  # noqa: E731
                                    sched.event_steps if recipe.lr_schedule == "rewind" else ())
    schedule, info = cubic_schedule(steps, sparsity=recipe.sparsity, initial_sparsity=recipe.initial_sparsity,
                                    prune_start=recipe.prune_start, prune_end=recipe.prune_end,
                                    pruning_events=recipe.pruning_events,
                                    min_event_lr_ratio=recipe.min_event_lr_ratio, lr_for=lr)
    if recipe.criterion == "obs":
        check_obs_gradients(schedule.event_steps, recipe.obs_num_grads)
    return schedule, lr(schedule), info


def cubic_schedule(steps: int, *, sparsity: float, initial_sparsity: float, prune_start: float, prune_end: float,
                   pruning_events: int, min_event_lr_ratio: float,
                   lr_for: Callable[[CubicSchedule], Callable[[int], float] | None]) -> tuple[CubicSchedule, dict]:
    """The cubic sparsity schedule (Zhu & Gupta 2017, Eq. 1) over :func:`pruning_window`, with its end
    moved back to where the learning rate can still recover (shared by :func:`build_schedules` and the
    transformers integration).

    Args:
        lr_for: the learning-rate factor (``t -> lr / peak``) that goes with a candidate schedule (a
            rewinding schedule depends on the event steps); None: the end is not checked.
        min_event_lr_ratio: with > 0, an end of pruning where the factor is below it moves to the last
            step where it is not (:func:`sparsebert.lr_schedule.recoverable_end`).
    Returns:
        ``(schedule, {"start_step", "end_step", "requested_end_step"})`` in optimizer steps.
    Raises:
        ValueError: as :func:`pruning_window`, or no step of the window has a factor above the ratio.
    """
    start, end = pruning_window(steps, prune_start, prune_end)

    def cubic(end_step: int) -> CubicSchedule:
        return CubicSchedule(final_sparsity=sparsity, initial_sparsity=initial_sparsity,
                             start_step=start, end_step=end_step, num_events=pruning_events)

    schedule, moved = cubic(end), end
    factor = lr_for(schedule) if min_event_lr_ratio > 0 else None
    if factor is not None:
        moved = recoverable_end(factor, start, end, min_event_lr_ratio)
        if moved != end:
            schedule = cubic(moved)
    return schedule, {"start_step": start, "end_step": moved, "requested_end_step": end}


def schedule_rows(schedule: CubicSchedule, shown: int = 8) -> list[tuple[int, int, float]]:
    """A handful of the schedule's events as ``(event number from 1, step, target sparsity)``: the first
    and the last, and evenly spaced ones between (all of them when there are at most ``shown``)."""
    steps = schedule.event_steps
    if len(steps) <= shown:
        picked = range(len(steps))
    else:
        picked = sorted({round(i * (len(steps) - 1) / (shown - 1)) for i in range(shown)})
    return [(i + 1, steps[i], schedule.sparsity_at(steps[i])) for i in picked]


def plan(recipe: PruneRecipe) -> dict:
    """What :func:`prune` would do with ``recipe``, checked as a real run checks it, without training and
    without writing anything (``sparsebert prune --dry-run``).

    Checks, in the order of a real run: the output directory rule (or the partial run it would resume;
    :meth:`~sparsebert.checkpointing.TrainingRun.check`, without the lock), the task and your own files,
    the student and teacher (loaded on the CPU: config, weights, vocabularies, layer mapping, labels,
    sequence length, :func:`check_pair`, :func:`~sparsebert.preflight.check_models`), an ``augment``
    directory, and the train and eval splits (read and checked, not tokenised).

    Returns:
        ``{"recipe": the resolved recipe as a dict, "task": name, "resume_from": state dir or None,
        "train_examples": int or None (``augment: auto`` before the data is built), "examples_note": str or
        None, "steps_per_epoch": int or None, "steps": int or None, "schedule": None (``sparsity`` 0 or
        steps unknown) or {"start_step", "end_step", "requested_end_step", "events", "rows": [(n, step,
        sparsity), ...] (:func:`schedule_rows`)}, "eta_seconds": None}``: no step time is measured
        without training, so no ETA is made up.
    Raises:
        As :func:`prune` before its first training step (OutputExistsError, ResumeError, DataError,
        ModelNotFoundError, CorruptModelError, IncompatibleModelsError, PreflightError, ...), except
        OutputLockedError.
    """
    from sparsebert.data.glue import load_split
    from sparsebert.data.taskdata import subsample
    from sparsebert.preflight import check_data

    resume_from = TrainingRun(recipe).check()
    task = begin_stage(recipe)
    tokenizer = load_tokenizer(recipe.student)
    student = load_model(recipe, recipe.student, task, pooling=recipe.pooling)
    if recipe.student_layers or recipe.student_ffn:
        shrink_student(student, recipe.student_layers, recipe.student_ffn)
    teacher = None
    if recipe.uses_teacher:
        teacher_tok = load_tokenizer(recipe.teacher)
        teacher = load_model(recipe, recipe.teacher, task, require_head=True).eval()
        check_pair(teacher, student, teacher_tok, tokenizer)
    check_models(recipe, task, student, teacher)
    architecture_of(student)
    if tokenizer.pad_token_id is None:
        raise InputError(f"tokenizer {tokenizer.name_or_path!r} has no pad token")  # as load_task_data
    note = None
    if recipe.augment == "auto":
        examples = None
        note = "augment auto: the augmented train set is built (or taken from its cache) by the real run"
    elif recipe.augment:
        examples = load_augmented(recipe.augment, task)
    else:
        examples = load_split(task, task.train_split, recipe.data_dir)
        check_data(task, task.train_split, examples, str(recipe.data_dir or "hub"))
    if examples is not None and recipe.augment_filter == "teacher-agrees":
        note = "at most: the teacher-agrees filter drops some augmented copies first"
    for split in task.eval_splits:
        check_data(task, split, load_split(task, split, recipe.data_dir), str(recipe.data_dir or "hub"))
    n = None if examples is None else len(subsample(examples, recipe.max_train_examples, recipe.seed))
    per_epoch = steps = None
    if n is not None:
        per_epoch, steps = total_steps(recipe, n)
    elif recipe.max_steps:
        steps = recipe.max_steps
    schedule = None
    if steps is not None and recipe.sparsity > 0:
        sched, _, window = build_schedules(recipe, steps)
        schedule = {**window, "events": len(sched.event_steps), "rows": schedule_rows(sched)}
    return {"recipe": recipe.model_dump(mode="json"), "task": task.name, "resume_from": resume_from,
            "train_examples": n, "examples_note": note, "steps_per_epoch": per_epoch, "steps": steps,
            "schedule": schedule, "eta_seconds": None}


def _filter_augmented(recipe: PruneRecipe, task, teacher, tokenizer, examples: list, n_original: int):
    """``augment_filter: teacher-agrees``: the teacher's logits over every original and augmented
    example (:func:`~sparsebert.distill.logit_cache.teacher_logits`, disk-cached), and the examples
    :func:`~sparsebert.data.augment.teacher_agreement` keeps.

    Returns:
        ``(kept examples, their encoded features, [kept, C] float32 teacher logits of them, statistics dict)``.
    """
    from sparsebert.data.encode import encode_examples

    feats = encode_examples(tokenizer, examples, recipe.max_length, task.is_regression, head=recipe.head)
    pad = tokenizer.pad_token_id
    logits, from_disk = teacher_logits(
        teacher, feats, recipe.eval_batch_size, pad, recipe.bf16,
        progress=f"teacher logits for the augment filter ({len(feats):,} examples)",
        log=lambda m: print(m, flush=True) if context().is_main else None)
    gold = [f["labels"] for f in feats]
    if recipe.head == "bi-encoder" and task.is_regression:  # the teacher's cosines are in label / scale units
        gold = [y / teacher.label_scale for y in gold]
    keep, stats = teacher_agreement(logits, gold, n_original, task.is_regression)
    stats["teacher_logits_from_disk"] = from_disk
    if context().is_main:
        print(f"augment filter (teacher-agrees): kept {stats['kept_copies']:,} of {stats['copies']:,} augmented "
              f"copies and all {n_original:,} originals", flush=True)
    return ([e for e, k in zip(examples, keep) if k], [f for f, k in zip(feats, keep) if k], logits[keep],
            stats)


def prune(recipe: PruneRecipe) -> dict:
    """Prune ``recipe.student`` to ``recipe.sparsity`` while distilling from ``recipe.teacher``.

    Knowledge-aware sparse pruning (SparseBERT: Xu et al., *Rethinking Network Pruning — under the
    Pre-train and Fine-tune Paradigm*, NAACL 2021, §3): the pre-trained student is pruned on a cubic
    schedule (Zhu & Gupta 2018) by the chosen criterion while it learns the task from the fine-tuned
    teacher (logit KL·T², optionally attention and hidden-state terms, TinyBERT-style). ``sparsebert
    prune`` is the same with every field an option; the defaults are the measured recipe
    (:mod:`sparsebert.recipe`).

    The saved model has exact zeros in every pruned weight and loads with plain
    ``AutoModelForSequenceClassification.from_pretrained``. Resumable
    (:mod:`sparsebert.checkpointing`): the training state includes the pruning masks.

    Args:
        recipe: the validated settings (:class:`~sparsebert.recipe.PruneRecipe`; from keyword arguments or
            YAML with :func:`sparsebert.recipe.build_recipe`): ``student``, ``teacher``, ``task`` or
            ``train`` / ``dev``, ``out``, ``sparsity`` and the pruning, distillation and optimisation settings.
    Returns:
        The summary (also ``summary.json``): ``stage`` ("prune"), ``task``, ``teacher``, ``student``,
        ``metrics`` (the last step's ``{split: {metric: value}}``, fractions), ``steps``,
        ``pruning_events``, ``pruning_window`` (start / end step), ``criterion``, ``pattern``,
        ``teacher_logits_cached``, ``small_dense``, ``loss_terms`` (the weight of each term),
        ``train_examples``, ``augmented_data``, ``augment_filter``, ``train_seconds``,
        ``mean_step_seconds``, ``eval_history``, ``attention_scores``, ``environment``, ``sparsity``
        (:func:`~sparsebert.report.sparsity_report`: per-matrix and total sparsity, non-zeros, dense vs
        sparse FLOPs/token), ``recipe`` and ``wall_seconds``.
    Raises:
        OutputExistsError, OutputLockedError, ResumeError, CorruptCheckpointError, DataError,
        ModelNotFoundError, IncompatibleModelsError, ValueError.
    """
    t_start = time.time()
    with TrainingRun(recipe) as run:
        task = begin_stage(recipe)
        dev = device()
        tokenizer = load_tokenizer(recipe.student)
        student = load_model(recipe, recipe.student, task, pooling=recipe.pooling).to(dev)
        shrunk = None
        if recipe.student_layers or recipe.student_ffn:
            shrunk = shrink_student(student, recipe.student_layers, recipe.student_ffn)
        teacher = None
        if recipe.uses_teacher:
            teacher_tok = load_tokenizer(recipe.teacher)
            teacher = load_model(recipe, recipe.teacher, task, require_head=True).to(dev).eval()
            teacher.requires_grad_(False)
            check_pair(teacher, student, teacher_tok, tokenizer)
        check_models(recipe, task, student, teacher)
        architecture_of(student)  # unsupported family -> clear error before data loading
        train_examples = train_features = filtered_logits = filter_stats = None
        if recipe.augment:
            with context().main_first():  # `--augment auto` builds its cache once
                aug_dir = prepare_augmented(recipe.augment, task, recipe.data_dir, recipe.student, recipe.seed)
            train_examples = load_augmented(aug_dir, task)
            if recipe.augment_filter == "teacher-agrees":
                n_original = augment_record(aug_dir, task)["counts"]["original"]
                train_examples, train_features, filtered_logits, filter_stats = _filter_augmented(
                    recipe, task, teacher, tokenizer, train_examples, n_original)
        data = load_task_data(task, recipe, tokenizer, train_examples=train_examples, train_features=train_features)
        if recipe.head == "bi-encoder" and task.is_regression:  # the student's cosine targets: the teacher's scale
            student.set_label_scale(teacher.label_scale if teacher is not None
                                    else label_scale(task, [f["labels"] for f in data.train]))

        loss_fn = None
        if teacher is not None:
            loss_fn = DistillationLoss(
                student.config.num_hidden_layers, teacher.config.num_hidden_layers,
                hidden_size(student.config), hidden_size(teacher.config),
                DistillWeights(recipe.attention_weight, recipe.hidden_weight, recipe.prediction_weight,
                               recipe.temperature, recipe.hardness, recipe.attention_loss, recipe.normalize_terms),
                regression=task.is_regression,
            ).to(dev)
        _, steps = total_steps(recipe, len(data.train))
        sparsifier = schedule = lr_factor = None
        window: dict = {}
        if recipe.sparsity > 0:
            schedule, lr_factor, window = build_schedules(recipe, steps)
            scorer = make_scorer(recipe.criterion, **scorer_options(recipe))
            sparsifier = Sparsifier(prunable_linears(student), schedule, recipe.scope, scorer, recipe.pattern,
                                    keep_pruned=student_zeros(student, recipe.student) if recipe.sparse_transfer else None)
        taps = (AttentionScoreTap(student), AttentionScoreTap(teacher)) if teacher is not None and recipe.attention_weight > 0 else None
        want_hidden = teacher is not None and recipe.hidden_weight > 0
        # Only the teacher's logits are needed: compute them once per example (eval mode, so they
        # are what a per-step forward would give), not once per step; kept on disk for later runs and
        # resumes with the same teacher and data (sparsebert.distill.logit_cache).
        cached = teacher is not None and recipe.cache_teacher and taps is None and not want_hidden
        if cached and filtered_logits is not None and len(filtered_logits) == len(data.train):
            logits, from_cache = filtered_logits, filter_stats["teacher_logits_from_disk"]  # the filter's pass
        elif cached:
            logits, from_cache = teacher_logits(
                teacher, data.train, recipe.eval_batch_size, data.pad_token_id, recipe.bf16,
                progress=f"teacher logits ({len(data.train):,} examples, once)",
                log=lambda m: print(m, flush=True) if context().is_main else None)
        if cached:
            for feat, row in zip(data.train, logits):
                feat["teacher_logits"] = row.tolist()
        phase2_step = None if recipe.prediction_only_from is None else int(recipe.prediction_only_from * steps)

        def compute_loss(batch, step):
            labels = batch.pop("labels")
            if recipe.head == "bi-encoder":
                labels = student.targets(labels)  # regression: label / scale, what the cosines are trained to
            teacher_logits = batch.pop("teacher_logits", None)
            prediction_only = phase2_step is not None and step >= phase2_step
            hidden_now = want_hidden and not prediction_only
            s_out = student(**batch, output_hidden_states=hidden_now)
            terms: dict[str, float] = {}
            loss = s_out.logits.new_zeros((), dtype=torch.float32)
            if loss_fn is not None:
                t_hidden = None
                if teacher_logits is None:
                    with torch.no_grad():
                        t_out = teacher(**batch, output_hidden_states=hidden_now)
                    teacher_logits, t_hidden = t_out.logits, t_out.hidden_states
                s_scores, t_scores = (taps[0].scores(), taps[1].scores()) if taps and not prediction_only else (None, None)
                loss, terms = loss_fn(
                    s_scores, t_scores, s_out.hidden_states, t_hidden,
                    s_out.logits, teacher_logits, batch["attention_mask"], labels, prediction_only=prediction_only,
                )
                if taps:
                    taps[0].clear(), taps[1].clear()
            if recipe.label_weight > 0:
                hard = task_loss(s_out.logits, labels, task.is_regression)
                loss = loss + recipe.label_weight * hard
                terms.update({"label": hard.item(), "weighted/label": recipe.label_weight * hard.item()})
            return loss, add_shares(terms)

        def after_step(step: int) -> dict[str, float]:
            if sparsifier is None:
                return {}
            event = sparsifier.step(step)
            return {"target_sparsity": sparsifier.current_sparsity, "pruning_event": int(event)}

        try:
            with run.open_log() as log:  # closed before the run writes its manifest
                if sparsifier is not None and not run.resumed:
                    log.log("schedule", event_steps=schedule.event_steps, final_sparsity=recipe.sparsity,
                            initial_sparsity=recipe.initial_sparsity, targets=len(sparsifier.targets),
                            scope=recipe.scope, pattern=recipe.pattern, criterion=recipe.criterion,
                            lr_schedule=recipe.lr_schedule, **window)
                if cached:
                    log.log("teacher_cache", examples=len(data.train), from_disk=from_cache)
                if filter_stats is not None:
                    log.log("augment_filter", **filter_stats)
                result = fit(
                    model=student, extra_modules=[loss_fn] if loss_fn is not None else [], recipe=recipe, task=task, train_features=data.train,
                    eval_sets=data.eval_sets, pad_token_id=data.pad_token_id, compute_loss=compute_loss,
                    logger=log, after_step=after_step, keep_best=False, desc=f"prune {task.name} -> {recipe.sparsity:.0%}",
                    run=run, sparsifier=sparsifier, lr_factor=lr_factor,
                )
                if sparsifier is not None:
                    sparsifier.apply()
                summary = {
                    "stage": "prune",
                    "task": task.name,
                    "teacher": recipe.teacher,
                    "student": recipe.student,
                    "metrics": result.final,
                    "steps": result.steps,
                    "pruning_events": len(schedule.event_steps) if schedule else 0,
                    "pruning_window": window,
                    "criterion": recipe.criterion if schedule else None,
                    "pattern": recipe.pattern if schedule else None,
                    "teacher_logits_cached": cached,
                    "small_dense": shrunk,
                    "loss_terms": {"attention": recipe.attention_weight if teacher is not None else 0.0,
                                   "hidden": recipe.hidden_weight if teacher is not None else 0.0,
                                   "prediction": recipe.prediction_weight if teacher is not None else 0.0,
                                   "label": recipe.label_weight},
                    "train_examples": len(data.train),
                    "augmented_data": str(aug_dir) if recipe.augment else None,
                    "augment_filter": filter_stats,
                    "train_seconds": result.train_seconds,
                    "mean_step_seconds": result.mean_step_seconds,
                    "eval_history": result.history,
                    "attention_scores": architecture_of(student).score_note,
                    "environment": environment(),
                }
                summary = context().on_main(lambda: write_run(run.stage, student, tokenizer, recipe, summary, t_start))
                log.log("end", wall_seconds=summary["wall_seconds"], sparsity=summary["sparsity"]["targets"]["sparsity"])
        finally:
            for tap in taps or ():
                tap.close()
            if sparsifier is not None:
                sparsifier.close()
    return summary
