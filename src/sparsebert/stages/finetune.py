"""Stage 1 — fine-tune the teacher: standard task fine-tuning of a pre-trained encoder.

Devlin et al. (2019) §4: a new classification head on the pre-trained encoder, all weights
trained with AdamW, warm-up + linear decay. The best checkpoint by the task's main dev metric is
kept. The result is the *teacher* of knowledge-aware pruning (Xu et al., NAACL 2021, §3).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from sparsebert.biencoder import label_scale, load_biencoder
from sparsebert.checkpointing import TrainingRun
from sparsebert.distributed import context
from sparsebert.io import environment
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.outputs import write_run
from sparsebert.preflight import check_models
from sparsebert.recipe import FinetuneRecipe
from sparsebert.data.taskdata import load_task_data
from sparsebert.training import begin_stage, device, fit


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Cross-entropy on class ids, or MSE on scores for regression (``logits``: ``[B, C]``)."""
    if regression:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


def finetune(recipe: FinetuneRecipe) -> dict:
    """Fine-tune ``recipe.model`` on ``recipe.task``; write the best model to ``recipe.out``.

    Standard task fine-tuning (Devlin et al., NAACL 2019, §4): AdamW, linear warm-up and decay, the dev
    metric evaluated every ``eval_every`` steps (default once per epoch) and the best step kept.
    ``sparsebert finetune`` is the same with every field an option (``--learning-rate``).

    Output directory: ``config.json`` + ``model.safetensors`` + tokenizer (loads with
    ``AutoModelForSequenceClassification.from_pretrained``), ``summary.json``, ``recipe.yaml``,
    ``log.jsonl``, ``MANIFEST.json``. Resumable: see :mod:`sparsebert.checkpointing`.

    Args:
        recipe: the validated settings (:class:`~sparsebert.recipe.FinetuneRecipe`; build one from keyword
            arguments or a YAML file with :func:`sparsebert.recipe.build_recipe`): ``model``, ``task`` or
            ``train`` / ``dev``, ``out``, the optimisation settings.
    Returns:
        The summary (also ``summary.json``): ``stage`` ("finetune"), ``task``, ``model``, ``metrics`` (the
        best step's ``{split: {metric: value}}``, fractions), ``final_step_metrics``, ``best_step``,
        ``steps``, ``train_examples``, ``train_seconds``, ``mean_step_seconds``, ``eval_history`` (one
        record per evaluation), ``environment`` (versions, CPU, threads), ``sparsity``
        (:func:`~sparsebert.report.sparsity_report` of the saved model), ``recipe`` (the fields) and
        ``wall_seconds``.
    Raises:
        OutputExistsError: ``out`` exists without ``overwrite`` (checked before training).
        OutputLockedError: another run writes ``out``.
        ResumeError, CorruptCheckpointError: a partial run that cannot be continued.
        DataError, ModelNotFoundError, ValueError: bad data, model or settings.
    """
    t_start = time.time()
    with TrainingRun(recipe) as run:
        task = begin_stage(recipe)
        tokenizer = load_tokenizer(recipe.model)
        data = load_task_data(task, recipe, tokenizer)
        if recipe.head == "bi-encoder":  # Sentence-BERT: each text encoded on its own (sparsebert.biencoder)
            scale = label_scale(task, [f["labels"] for f in data.train])
            model = load_biencoder(recipe.model, task, scale=scale).to(device())
        else:
            model = load_for_task(recipe.model, task, pooling=recipe.pooling).to(device())
        check_models(recipe, task, model)
        targets = model.targets if recipe.head == "bi-encoder" else (lambda labels: labels)

        def compute_loss(batch, step):
            labels = targets(batch.pop("labels"))  # bi-encoder regression: MSE(cos, label / scale)
            loss = task_loss(model(**batch).logits, labels, task.is_regression)
            return loss, {}

        with run.open_log() as log:  # closed before the run writes its manifest
            result = fit(
                model=model, extra_modules=[], recipe=recipe, task=task, train_features=data.train,
                eval_sets=data.eval_sets, pad_token_id=data.pad_token_id, compute_loss=compute_loss,
                logger=log, keep_best=True, desc=f"finetune {task.name}", run=run,
            )
            if result.best_state is not None:
                model.load_state_dict(result.best_state)
            summary = {
                "stage": "finetune",
                "task": task.name,
                "model": recipe.model,
                "metrics": result.best,
                "final_step_metrics": result.final,
                "best_step": result.best_step,
                "steps": result.steps,
                "train_examples": len(data.train),
                "train_seconds": result.train_seconds,
                "mean_step_seconds": result.mean_step_seconds,
                "eval_history": result.history,
                "environment": environment(),
            }
            summary = context().on_main(lambda: write_run(run.stage, model, tokenizer, recipe, summary, t_start))
            log.log("end", **{k: summary[k] for k in ("wall_seconds", "best_step")})
    return summary
