#!/usr/bin/env python
"""SparseBERT in a ``transformers.Trainer`` script, in the style of transformers' ``run_glue.py``.

The student starts from the **pre-trained** encoder, the teacher is the **fine-tuned** one, and the
student is pruned on the cubic schedule while it is distilled (Xu et al., NAACL 2021, §3). Against a
plain ``run_glue.py`` the only changes are the lines marked ``# SparseBERT``: ``DistillationTrainer``
instead of ``Trainer`` (plus ``teacher_model=``), and a ``GradualPruningCallback``. Without
``--teacher`` the script uses a plain ``Trainer`` with the callback (pruning with the labels only).

Offline on local directories (a ``glue_data`` TSV root, a pre-trained model, a fine-tuned teacher,
e.g. the output of ``sparsebert finetune``)::

    python examples/trainer_glue.py --student path/to/pretrained --teacher runs/teacher \\
        --task sst2 --data_dir path/to/glue_data --output_dir runs/trainer-sparse \\
        --max_steps 2000 --per_device_train_batch_size 32 --learning_rate 1e-4 \\
        --sparsity 0.95 --use_cpu --report_to none --save_strategy no

Every ``TrainingArguments`` option works as in ``run_glue.py``. The total number of optimizer steps
(``--max_steps``, or ``--num_train_epochs`` times the batches per epoch) sets the pruning schedule.
Prints one JSON line: the evaluation metrics and the achieved sparsity of the pruned matrices.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import numpy as np
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          HfArgumentParser, Trainer, TrainingArguments)

from sparsebert.data import get_task, load_split
from sparsebert.data.encode import encode_examples
from sparsebert.distill import DistillWeights
from sparsebert.integrations import DistillationTrainer, GradualPruningCallback  # SparseBERT
from sparsebert.metrics import compute_metrics
from sparsebert.models import check_head_labels, label_config
from sparsebert.recipe import PruneRecipe


def _default(name: str):
    return PruneRecipe.model_fields[name].default


@dataclass
class ModelArguments:
    student: str = field(metadata={"help": "pre-trained encoder directory the student starts from"})
    teacher: str | None = field(default=None, metadata={"help": "fine-tuned teacher directory; none = labels only"})


@dataclass
class DataArguments:
    task: str = field(metadata={"help": "GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte"})
    data_dir: str = field(metadata={"help": "glue_data root (or one task's directory) with the TSV files"})
    max_length: int = field(default=128, metadata={"help": "max tokens per example (pair included)"})
    max_train_examples: int | None = field(default=None, metadata={"help": "first N training examples"})
    max_eval_examples: int | None = field(default=None, metadata={"help": "first N examples of each eval split"})


@dataclass
class SparseBertArguments:
    sparsity: float = field(default=_default("sparsity"), metadata={"help": "final sparsity s_f per matrix"})
    initial_sparsity: float = field(default=_default("initial_sparsity"), metadata={"help": "one-shot s_0"})
    prune_start: float = field(default=_default("prune_start"), metadata={"help": "start, fraction of training"})
    prune_end: float = field(default=_default("prune_end"), metadata={"help": "s_f reached, fraction of training"})
    pruning_events: int = field(default=_default("pruning_events"), metadata={"help": "mask updates"})
    criterion: str = field(default=_default("criterion"), metadata={"help": "magnitude, movement, taylor or obs"})
    scope: str = field(default=_default("scope"), metadata={"help": "per-matrix or global"})
    pattern: str = field(default=_default("pattern"), metadata={
        "help": "unstructured, RxC blocks (1x4: int8 VNNI) or N:M (2:4, with --sparsity 0.5)"})
    temperature: float = field(default=_default("temperature"), metadata={"help": "softmax temperature T"})
    hardness: float = field(default=_default("hardness"), metadata={"help": "weight h of the gold labels"})
    attention_weight: float = field(default=_default("attention_weight"), metadata={"help": "attention term"})
    hidden_weight: float = field(default=_default("hidden_weight"), metadata={"help": "hidden-state term"})


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser((ModelArguments, DataArguments, SparseBertArguments, TrainingArguments))
    model_args, data_args, sb_args, training_args = parser.parse_args_into_dataclasses(args=argv)

    task = get_task(data_args.task)
    tokenizer = AutoTokenizer.from_pretrained(model_args.student)

    def encoded(split: str, limit: int | None) -> list[dict]:
        examples = load_split(task, split, data_args.data_dir)[:limit]
        return encode_examples(tokenizer, examples, data_args.max_length, task.is_regression)

    train_dataset = encoded(task.train_split, data_args.max_train_examples)
    eval_sets = {split: encoded(split, data_args.max_eval_examples) for split in task.eval_splits}
    eval_dataset = eval_sets if len(eval_sets) > 1 else next(iter(eval_sets.values()))

    student = AutoModelForSequenceClassification.from_pretrained(model_args.student, **label_config(task))

    def metrics(pred) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        preds = logits[:, 0] if task.is_regression else np.argmax(logits, axis=-1)
        return compute_metrics(task, preds, pred.label_ids)

    common = dict(model=student, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                  compute_metrics=metrics)
    pruning = GradualPruningCallback(  # SparseBERT: cubic gradual pruning, masks enforced
        sb_args.sparsity, initial_sparsity=sb_args.initial_sparsity, prune_start=sb_args.prune_start,
        prune_end=sb_args.prune_end, pruning_events=sb_args.pruning_events, criterion=sb_args.criterion,
        scope=sb_args.scope, pattern=sb_args.pattern)
    if model_args.teacher:
        teacher = AutoModelForSequenceClassification.from_pretrained(model_args.teacher)
        check_head_labels(model_args.teacher, teacher.config, task)
        weights = DistillWeights(attention=sb_args.attention_weight, hidden=sb_args.hidden_weight, prediction=1.0,
                                 temperature=sb_args.temperature, hardness=sb_args.hardness)
        trainer = DistillationTrainer(teacher_model=teacher, distill_weights=weights,  # SparseBERT
                                      callbacks=[pruning], **common)
    else:
        trainer = Trainer(callbacks=[pruning], **common)

    trainer.train()
    results = trainer.evaluate()
    trainer.save_model()
    per_matrix = pruning.achieved_sparsity()
    summary = {"task": task.name, "metrics": results, "target_sparsity": pruning.target_sparsity,
               "sparsity_min": min(per_matrix.values()), "sparsity_max": max(per_matrix.values()),
               "pruned_matrices": len(per_matrix), "pruning_events": len(pruning.events),
               "pruning_window": pruning.window}
    print(json.dumps(summary, default=float))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
