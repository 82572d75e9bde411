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
"""

from __future__ import annotations

import time

import torch

from sparsebert.checkpointing import TrainingRun
from sparsebert.data.augment import load_augmented, prepare_augmented
from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights
from sparsebert.distill.student import shrink_student
from sparsebert.finetune import task_loss
from sparsebert.io import environment
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.outputs import write_run
from sparsebert.preflight import check_models
from sparsebert.pruning import CubicSchedule, GMPSparsifier
from sparsebert.recipe import PruneRecipe
from sparsebert.targets import architecture_of, hidden_size, prunable_linears
from sparsebert.taskdata import load_task_data
from sparsebert.training import begin_stage, device, fit, total_steps


class IncompatibleModelsError(ValueError):
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


def prune(recipe: PruneRecipe) -> dict:
    """Prune ``recipe.student`` to ``recipe.sparsity`` while distilling from ``recipe.teacher``.

    The saved model has exact zeros in every pruned weight and loads with plain
    ``AutoModelForSequenceClassification.from_pretrained``; ``summary.json`` records metrics,
    per-matrix sparsity, non-zeros, dense vs sparse FLOPs/token, timings and the recipe.

    Resumable (:mod:`sparsebert.checkpointing`): the training state includes the pruning masks.

    Returns:
        The summary dict.
    Raises:
        OutputExistsError, OutputLockedError, ResumeError, CorruptCheckpointError, DataError,
        ModelNotFoundError, IncompatibleModelsError, ValueError.
    """
    t_start = time.time()
    with TrainingRun(recipe) as run:
        task = begin_stage(recipe)
        dev = device()
        tokenizer = load_tokenizer(recipe.student)
        student = load_for_task(recipe.student, task).to(dev)
        shrunk = None
        if recipe.student_layers or recipe.student_ffn:
            shrunk = shrink_student(student, recipe.student_layers, recipe.student_ffn)
        teacher = None
        if recipe.uses_teacher:
            teacher_tok = load_tokenizer(recipe.teacher)
            teacher = load_for_task(recipe.teacher, task, require_head=True).to(dev).eval()
            teacher.requires_grad_(False)
            check_pair(teacher, student, teacher_tok, tokenizer)
        check_models(recipe, task, student, teacher)
        architecture_of(student)  # unsupported family -> clear error before data loading
        train_examples = None
        if recipe.augment:
            aug_dir = prepare_augmented(recipe.augment, task, recipe.data_dir, recipe.student, recipe.seed)
            train_examples = load_augmented(aug_dir, task)
        data = load_task_data(task, recipe, tokenizer, train_examples=train_examples)

        loss_fn = None
        if teacher is not None:
            loss_fn = DistillationLoss(
                student.config.num_hidden_layers, teacher.config.num_hidden_layers,
                hidden_size(student.config), hidden_size(teacher.config),
                DistillWeights(recipe.attention_weight, recipe.hidden_weight, recipe.prediction_weight, recipe.temperature),
                regression=task.is_regression,
            ).to(dev)
        _, steps = total_steps(recipe, len(data.train))
        sparsifier = schedule = None
        if recipe.sparsity > 0:
            schedule = CubicSchedule(
                final_sparsity=recipe.sparsity, initial_sparsity=recipe.initial_sparsity,
                start_step=int(recipe.prune_start * steps), end_step=max(1, round(recipe.prune_end * steps)),
                num_events=recipe.pruning_events,
            )
            sparsifier = GMPSparsifier(prunable_linears(student), schedule, recipe.scope)
        taps = (AttentionScoreTap(student), AttentionScoreTap(teacher)) if teacher is not None and recipe.attention_weight > 0 else None
        want_hidden = teacher is not None and recipe.hidden_weight > 0

        def compute_loss(batch):
            labels = batch.pop("labels")
            s_out = student(**batch, output_hidden_states=want_hidden)
            terms: dict[str, float] = {}
            loss = 0.0
            if loss_fn is not None:
                with torch.no_grad():
                    t_out = teacher(**batch, output_hidden_states=want_hidden)
                s_scores, t_scores = (taps[0].scores(), taps[1].scores()) if taps else (None, None)
                loss, terms = loss_fn(
                    s_scores, t_scores, s_out.hidden_states, t_out.hidden_states,
                    s_out.logits, t_out.logits, batch["attention_mask"], labels,
                )
                if taps:
                    taps[0].clear(), taps[1].clear()
            if recipe.label_weight > 0:
                hard = task_loss(s_out.logits, labels, task.is_regression)
                loss = loss + recipe.label_weight * hard
                terms["label"] = hard.item()
            return loss, terms

        def after_step(step: int) -> dict[str, float]:
            if sparsifier is None:
                return {}
            event = sparsifier.step(step)
            return {"target_sparsity": sparsifier.current_sparsity, "pruning_event": int(event)}

        try:
            with run.open_log() as log:  # closed before the run writes its manifest
                if sparsifier is not None and not run.resumed:
                    log.log("schedule", event_steps=schedule.event_steps, final_sparsity=recipe.sparsity,
                            targets=len(sparsifier.targets), scope=recipe.scope)
                result = fit(
                    model=student, extra_modules=[loss_fn] if loss_fn is not None else [], recipe=recipe, task=task, train_features=data.train,
                    eval_sets=data.eval_sets, pad_token_id=data.pad_token_id, compute_loss=compute_loss,
                    logger=log, after_step=after_step, keep_best=False, desc=f"prune {task.name} -> {recipe.sparsity:.0%}",
                    run=run, sparsifier=sparsifier,
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
                    "small_dense": shrunk,
                    "loss_terms": {"attention": recipe.attention_weight if teacher is not None else 0.0,
                                   "hidden": recipe.hidden_weight if teacher is not None else 0.0,
                                   "prediction": recipe.prediction_weight if teacher is not None else 0.0,
                                   "label": recipe.label_weight},
                    "train_examples": len(data.train),
                    "augmented_data": str(aug_dir) if recipe.augment else None,
                    "train_seconds": result.train_seconds,
                    "mean_step_seconds": result.mean_step_seconds,
                    "eval_history": result.history,
                    "attention_scores": architecture_of(student).score_note,
                    "environment": environment(),
                }
                summary = write_run(run.stage, student, tokenizer, recipe, summary, t_start)
                log.log("end", wall_seconds=summary["wall_seconds"], sparsity=summary["sparsity"]["targets"]["sparsity"])
        finally:
            for tap in taps or ():
                tap.close()
    return summary
