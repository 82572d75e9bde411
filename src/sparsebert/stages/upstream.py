"""Stage 2a — task-agnostic ("upstream") pruning: a sparse *pre-trained* encoder, pruned once.

SparseBERT (Xu et al., NAACL 2021) prunes while distilling on the task; on small tasks the student
then has to cross 60–90 % sparsity on a few thousand examples and loses what pre-training gave it.
Upstream pruning moves that crossing onto general text, with no task at all:

* the student is the pre-trained encoder; the teacher is its frozen dense copy (or another dense
  encoder with the same vocabulary);
* the student is distilled layer-wise on general text — the hidden states of every layer, embedding
  output included (MSE; TinyBERT Eq. 8) and the attention of every layer (KL of the attention
  probabilities per query, MiniLM, Wang et al. NeurIPS 2020, Eq. 4), optionally the sentence embedding
  itself (1 - cos of the mean-pooled outputs, :func:`embedding_term`) — while its six matrices per
  layer are pruned on the cubic schedule (Zhu & Gupta 2017), then recovered with the mask fixed;
* any criterion, scope and pattern of the pruner (:mod:`sparsebert.pruning`), resumable like ``prune``.

This is the upstream stage of Prune Once For All (Zafrir et al. 2021, §3: pruning during pre-training,
with distillation) and of oBERT (Kurtic et al. EMNLP 2022, §4), without an MLM head: both starting
checkpoints of this project are sentence-transformers models, whose representation *is* their product.
The output is a sparse pre-trained encoder (weights, ``recipe.yaml``, ``summary.json``, model card)
that ``finetune`` and ``prune --student`` accept (sparse transfer), and a sentence-embedding model;
every evaluation measures its zero-shot STS-B Spearman (:mod:`sparsebert.embeddings`).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence

import torch
from torch import nn

from sparsebert.checkpointing import TrainingRun
from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights
from sparsebert.distill.loss import add_shares
from sparsebert.data.text import load_text
from sparsebert.distributed import context
from sparsebert.embeddings import stsb_dev_pairs, sts_zero_shot
from sparsebert.io import environment
from sparsebert.models import load_encoder, load_tokenizer
from sparsebert.outputs import write_run
from sparsebert.pooling import masked_mean
from sparsebert.pruning import Sparsifier, make_scorer
from sparsebert.recipe import UpstreamRecipe
from sparsebert.stages.prune import build_schedules, check_pair, scorer_options, student_zeros
from sparsebert.targets import architecture_of, hidden_size, prunable_linears
from sparsebert.data.encode import eval_batches
from sparsebert.training import device, fit, set_seed, to_device, total_steps

# A sentence ends at . ! ? (optionally closed by a quote or bracket) before whitespace and a capital, digit
# or opening quote/bracket: good enough to pack whole sentences; a missed boundary only makes a longer one.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")

HELD_OUT = 128  # segments kept out of training to measure the distillation loss


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at ``. ! ?`` followed by a capitalised word (no model, no data).

    Returns:
        The non-blank sentences, in order; a text without a boundary is one sentence.
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a single text (BERT: ``[CLS]`` / ``[SEP]``; RoBERTa,
    MPNet: ``<s>`` / ``</s>``), read from how it encodes a probe word with and without them.

    Raises:
        ValueError: the tokenizer's special tokens do not wrap the text (not an encoder tokenizer).
    """
    bare = tokenizer("word", add_special_tokens=False)["input_ids"]
    full = tokenizer("word")["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i:i + len(bare)] == bare:
            return full[:i], full[i + len(bare):]
    raise ValueError(f"tokenizer {tokenizer.name_or_path!r}: special tokens do not wrap the text ({full} vs {bare})")


def text_segments(tokenizer, documents: Sequence[str], *, max_length: int, min_length: int, seed: int) -> list[dict]:
    """Training segments: whole sentences of each document packed up to a random length.

    Each segment's length target is drawn uniformly from ``[min_length, max_length]`` tokens (special
    tokens included), so training sees single sentences as well as paragraphs, as the downstream tasks
    do; a sentence longer than ``max_length`` is cut. Segments never cross documents.

    Args:
        documents: paragraphs / documents (:func:`sparsebert.data.text.load_text`).
    Returns:
        Encoded features as :func:`sparsebert.data.encode.encode_examples` gives them (``input_ids``,
        ``attention_mask``, ``token_type_ids`` where the tokenizer has them, ``labels`` = 0), in document order.
    Raises:
        ValueError: no document yields a segment of at least 3 tokens; ``min_length`` > ``max_length`` or
            ``max_length`` too short for the special tokens.
    """
    prefix, suffix = special_tokens(tokenizer)
    special = len(prefix) + len(suffix)
    body_max, body_min = max_length - special, max(1, min_length - special)
    if body_max < 3 or body_min > body_max:
        raise ValueError(f"need 3 + {special} <= min_length <= max_length, got min_length={min_length}, "
                         f"max_length={max_length}")
    rng = random.Random(seed)
    sentences = [split_sentences(d) for d in documents]
    flat = [s for doc in sentences for s in doc]
    ids = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    types = "token_type_ids" in tokenizer.model_input_names
    out: list[dict] = []

    def emit(body: list[int]) -> None:
        if len(body) >= 3:
            full = prefix + body[:body_max] + suffix
            feat = {"input_ids": full, "attention_mask": [1] * len(full)}
            if types:
                feat["token_type_ids"] = [0] * len(full)
            feat["labels"] = 0
            out.append(feat)

    k = 0
    for doc in sentences:
        target, cur = rng.randint(body_min, body_max), []
        for _ in doc:
            sent = ids[k]
            k += 1
            if cur and len(cur) + len(sent) > target:
                emit(cur)
                target, cur = rng.randint(body_min, body_max), []
            cur = cur + sent
            while len(cur) >= body_max:
                emit(cur[:body_max])
                cur = cur[body_max:]
        emit(cur)
    if not out:
        raise ValueError("the text gives no training segment of 3 tokens or more")
    return out


def embedding_term(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence-embedding distillation: mean over the batch of 1 - cos(u_s, u_t), where u is the masked mean of the
    last hidden states (the sentence-transformers embedding; Reimers & Gurevych, EMNLP 2020, distil the
    embedding itself, there with MSE). The cosine is what STS and retrieval use.

    Args:
        student, teacher: ``[B, S, D]`` last hidden states; attention_mask: ``[B, S]``.
    Returns:
        A scalar in [0, 2].
    """
    u_s = masked_mean(student.float(), attention_mask)
    u_t = masked_mean(teacher.float(), attention_mask)
    return (1 - torch.nn.functional.cosine_similarity(u_s, u_t, dim=-1)).mean()


class RunningMean(nn.Module):
    """Divides a loss term by a bias-corrected running mean of itself (momentum 0.99), as the distillation
    loss's ``normalize`` option does for its terms, so the term contributes about its weight whatever its
    scale; its state is a buffer (saved with resumable runs). Off: the identity."""

    def __init__(self, enabled: bool, momentum: float = 0.99):
        super().__init__()
        self.enabled, self.momentum = enabled, momentum
        self.register_buffer("running", torch.zeros(()))
        self.register_buffer("updates", torch.zeros(()))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return value
        if self.training:
            with torch.no_grad():
                self.running.mul_(self.momentum).add_((1 - self.momentum) * value.detach())
                self.updates += 1
        scale = self.running / (1 - self.momentum ** self.updates.clamp_min(1))
        return value / scale.clamp_min(1e-8)


def set_dropout(model: nn.Module, p: float) -> int:
    """Set the probability of every ``nn.Dropout`` of ``model`` to ``p`` (hidden-state and attention-probability
    dropout alike; the config is left as it is). Returns how many modules were changed."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for m in layers:
        m.p = p
    return len(layers)


def load_encoder_pair(recipe: UpstreamRecipe):
    """``(tokenizer, student, teacher)`` of an upstream recipe, checked to pair (vocabulary, layer mapping).

    The teacher is frozen and in eval mode; it is the student's starting checkpoint unless ``teacher`` names
    another dense encoder.

    Raises:
        ModelNotFoundError, CorruptModelError, ...: as :func:`sparsebert.models.load_encoder`;
        IncompatibleModelsError: as :func:`sparsebert.stages.prune.check_pair`;
        UnsupportedArchitectureError: a family the pruner does not know.
    """
    tokenizer = load_tokenizer(recipe.student)
    student = load_encoder(recipe.student)
    architecture_of(student)
    teacher = load_encoder(recipe.teacher).eval()
    teacher.requires_grad_(False)
    check_pair(teacher, student, load_tokenizer(recipe.teacher), tokenizer)
    return tokenizer, student, teacher


def upstream(recipe: UpstreamRecipe) -> dict:
    """Prune ``recipe.student`` to ``recipe.sparsity`` on general text while distilling ``recipe.teacher``.

    Returns:
        The summary (also ``summary.json``): ``{"stage": "upstream", "student", "teacher", "text": {sources,
        documents, segments, tokens, held_out}, "metrics": {"stsb_dev_zero_shot": {"spearman", "pearson"}
        (with ``sts_data_dir``), "held_out": {"hidden", "attention", "embedding"} (the terms with a weight,
        unweighted, on 128 held-out segments)}, "dense_metrics": the zero-shot STS-B of the teacher, "steps", "tokens_seen", "pruning_window", "criterion", "pattern", "train_seconds",
        "mean_step_seconds", "eval_history", "sparsity", "recipe", "wall_seconds", "environment"}``.
    Raises:
        OutputExistsError, OutputLockedError, ResumeError, CorruptCheckpointError (as ``prune``); DataError
        (an empty, binary or unreadable text source, named); ModelNotFoundError, IncompatibleModelsError;
        ValueError (no segment in the text).
    """
    t_start = time.time()
    with TrainingRun(recipe) as run:
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        set_seed(recipe.seed)
        dev = device()
        tokenizer, student, teacher = load_encoder_pair(recipe)
        if recipe.student_dropout is not None:
            set_dropout(student, recipe.student_dropout)
        # no lr warning here, unlike prune's preflight (check_learning_rate: 1e-4 made MPNet-base collapse in task
        # pruning): upstream, MPNet-base at 95 % kept 83 % of its zero-shot STS-B at 1e-4 and 79 % at the 3e-5 that
        # warning suggests (results/upstream_minilm.md)
        student.to(dev), teacher.to(dev)
        documents = load_text(recipe.text)
        segments = text_segments(tokenizer, documents, max_length=recipe.max_length, min_length=recipe.min_length,
                                 seed=recipe.seed)
        random.Random(recipe.seed).shuffle(segments)
        held_out, train = segments[:HELD_OUT], segments[HELD_OUT:]
        if not train:
            raise ValueError(f"the text gives {len(segments)} segments: need more than the {HELD_OUT} held out")
        if recipe.max_train_examples:
            train = train[: recipe.max_train_examples]
        sts = stsb_dev_pairs(recipe.sts_data_dir, recipe.max_eval_examples) if recipe.sts_data_dir else None
        loss_fn = DistillationLoss(
            student.config.num_hidden_layers, teacher.config.num_hidden_layers,
            hidden_size(student.config), hidden_size(teacher.config),
            DistillWeights(recipe.attention_weight, recipe.hidden_weight, 0.0, recipe.temperature, None,
                           recipe.attention_loss, recipe.normalize_terms),
        ).to(dev)
        _, steps = total_steps(recipe, len(train))
        schedule, lr_factor, window = build_schedules(recipe, steps)
        sparsifier = Sparsifier(prunable_linears(student), schedule, recipe.scope,
                                make_scorer(recipe.criterion, **scorer_options(recipe)), recipe.pattern,
                                keep_pruned=student_zeros(student, recipe.student) if recipe.sparse_transfer else None)
        taps = (AttentionScoreTap(student), AttentionScoreTap(teacher)) if recipe.attention_weight > 0 else None
        emb_norm = RunningMean(recipe.normalize_terms).to(dev)

        def distill(batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
            batch = {k: v for k, v in batch.items() if k != "labels"}
            s_out = student(**batch, output_hidden_states=True)
            with torch.no_grad():
                t_out = teacher(**batch, output_hidden_states=True)
            scores = (taps[0].scores(), taps[1].scores()) if taps else (None, None)
            if taps:
                taps[0].clear(), taps[1].clear()
            h = s_out.last_hidden_state
            loss, terms = loss_fn(scores[0], scores[1], s_out.hidden_states, t_out.hidden_states, h, h,
                                  batch["attention_mask"])
            if recipe.embedding_weight > 0:
                emb = embedding_term(h, t_out.last_hidden_state, batch["attention_mask"])
                part = recipe.embedding_weight * emb_norm(emb)
                loss = loss + part
                terms.update({"embedding": emb.item(), "weighted/embedding": part.item()})
            return loss, terms

        def compute_loss(batch, step):
            loss, terms = distill(batch)
            return loss, add_shares(terms)

        def zero_shot(model) -> dict[str, dict[str, float]]:
            if sts is None:
                return {}
            return {"stsb_dev_zero_shot": sts_zero_shot(model, tokenizer, *sts, batch_size=recipe.eval_batch_size)}

        @torch.no_grad()
        def evaluate(model) -> tuple[dict[str, dict[str, float]], float]:
            """The student's distillation terms on the held-out segments (unweighted, unnormalised) and its
            zero-shot STS-B; the headline is the Spearman (or minus the held-out hidden MSE without STS data)."""
            was = model.training
            model.eval(), loss_fn.eval(), emb_norm.eval()
            sums: dict[str, float] = {}
            for idx, batch in eval_batches(held_out, recipe.eval_batch_size, tokenizer.pad_token_id):
                _, terms = distill(to_device(batch, dev))
                for key in ("hidden", "attention", "embedding"):
                    if key in terms:
                        sums[key] = sums.get(key, 0.0) + terms[key] * len(idx)
            results = {"held_out": {k: v / len(held_out) for k, v in sums.items()}, **zero_shot(model)}
            model.train(was), loss_fn.train(was), emb_norm.train(was)
            if sts is not None:
                return results, results["stsb_dev_zero_shot"]["spearman"]
            return results, -results["held_out"].get("hidden", results["held_out"].get("attention", 0.0))

        def after_step(step: int) -> dict[str, float]:
            event = sparsifier.step(step)
            return {"target_sparsity": sparsifier.current_sparsity, "pruning_event": int(event)}

        dense_metrics = None
        try:
            with run.open_log() as log:
                if not run.resumed:
                    dense_metrics = zero_shot(teacher)
                    log.log("dense", **{f"{s}/{k}": v for s, m in dense_metrics.items() for k, v in m.items()})
                    log.log("schedule", event_steps=schedule.event_steps, final_sparsity=recipe.sparsity,
                            initial_sparsity=recipe.initial_sparsity, targets=len(sparsifier.targets),
                            scope=recipe.scope, pattern=recipe.pattern, criterion=recipe.criterion,
                            lr_schedule=recipe.lr_schedule, **window)
                result = fit(
                    model=student, extra_modules=[loss_fn, emb_norm], recipe=recipe, task=None, train_features=train,
                    eval_sets={}, pad_token_id=tokenizer.pad_token_id, compute_loss=compute_loss, logger=log,
                    after_step=after_step, keep_best=False, desc=f"upstream -> {recipe.sparsity:.0%}", run=run,
                    sparsifier=sparsifier, lr_factor=lr_factor, evaluate=evaluate,
                )
                sparsifier.apply()
                if dense_metrics is None:  # resumed: the dense figures are in the first part's log
                    dense_metrics = zero_shot(teacher)
                student.config.sparsebert_pooling = recipe.pooling
                tokens = sum(len(f["input_ids"]) for f in train)
                summary = {
                    "stage": "upstream",
                    "student": recipe.student,
                    "teacher": recipe.teacher,
                    "text": {"sources": recipe.text, "documents": len(documents), "segments": len(train),
                             "tokens": tokens, "held_out": len(held_out)},
                    "metrics": result.final,
                    "dense_metrics": dense_metrics,
                    "steps": result.steps,
                    "tokens_seen": round(result.steps * recipe.batch_size * tokens / len(train)),
                    "pruning_events": len(schedule.event_steps),
                    "pruning_window": window,
                    "criterion": recipe.criterion,
                    "pattern": recipe.pattern,
                    "loss_terms": {"attention": recipe.attention_weight, "hidden": recipe.hidden_weight,
                                   "embedding": recipe.embedding_weight},
                    "train_seconds": result.train_seconds,
                    "mean_step_seconds": result.mean_step_seconds,
                    "eval_history": result.history,
                    "environment": environment(),
                }
                summary = context().on_main(lambda: write_run(run.stage, student, tokenizer, recipe, summary, t_start))
                log.log("end", wall_seconds=summary["wall_seconds"], sparsity=summary["sparsity"]["targets"]["sparsity"])
        finally:
            for tap in taps or ():
                tap.close()
            sparsifier.close()
    return summary

