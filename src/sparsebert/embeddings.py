"""Sentence embeddings of an encoder, and their zero-shot STS evaluation.

Both starting checkpoints of this project are sentence-transformers models (all-MiniLM-L6-v2,
all-mpnet-base-v2): mean pooling of the last hidden states over the real tokens (Reimers &
Gurevych, EMNLP 2019, §3) gives a sentence embedding, and the cosine of two embeddings scores their
similarity. A sparse encoder that keeps its pre-trained knowledge keeps that ability; the zero-shot
STS-B score measures it *without any task training*: Spearman's rank correlation between the
cosine of the two sentences' embeddings and the gold similarity (0–5) on STS-B dev (the
sentence-transformers evaluation, ``EmbeddingSimilarityEvaluator``; Cer et al., SemEval 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sparsebert.pooling import masked_mean


@torch.no_grad()
def sentence_embeddings(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 128,
                        max_length: int = 128) -> torch.Tensor:
    """Mean-pooled last hidden states of ``texts``.

    Args:
        model: a transformers encoder (``AutoModel``) or a task model (its ``base_model`` is used).
        texts: N strings; batches are formed in length order (less padding), the result is in input order.
        max_length: tokens per text, longer ones truncated.
    Returns:
        ``[N, hidden]`` float32 on the CPU.
    Raises:
        ValueError: ``texts`` is empty.
    """
    if not texts:
        raise ValueError("no texts to embed")
    encoder = getattr(model, "base_model", model)
    was_training = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]))
    out = torch.empty(len(texts), encoder.config.hidden_size)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
        batch = {k: v.to(dev) for k, v in batch.items()}
        hidden = encoder(**batch).last_hidden_state
        out[idx] = masked_mean(hidden.float(), batch["attention_mask"]).cpu()
    encoder.train(was_training)
    return out


def sts_zero_shot(model: nn.Module, tokenizer, pairs: Sequence[tuple[str, str]], scores: Sequence[float], *,
                  batch_size: int = 128, max_length: int = 128) -> dict[str, float]:
    """Zero-shot semantic similarity: correlation of the embeddings' cosine with gold scores.

    Args:
        pairs: N sentence pairs (STS-B dev: 1,500).
        scores: N gold similarities (any scale; correlations are scale-free).
    Returns:
        ``{"spearman", "pearson"}`` in [-1, 1] (SciPy ``spearmanr`` / ``pearsonr`` of the cosines against
        ``scores``); the sentence-transformers STS metric is the Spearman one.
    Raises:
        ValueError: no pairs, or ``pairs`` and ``scores`` of different lengths.
    """
    from scipy import stats

    if len(pairs) != len(scores):
        raise ValueError(f"{len(pairs)} pairs but {len(scores)} scores")
    if not pairs:
        raise ValueError("no sentence pairs")
    emb = sentence_embeddings(model, tokenizer, [a for a, _ in pairs] + [b for _, b in pairs],
                              batch_size=batch_size, max_length=max_length)
    a, b = emb[: len(pairs)], emb[len(pairs):]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy().astype(np.float64)
    gold = np.asarray(scores, dtype=np.float64)
    return {"spearman": float(stats.spearmanr(cos, gold)[0]), "pearson": float(stats.pearsonr(cos, gold)[0])}


def stsb_dev_pairs(data_dir: str, max_examples: int | None = None) -> tuple[list[tuple[str, str]], list[float]]:
    """STS-B dev sentence pairs and gold scores from a ``glue_data`` root or its ``STS-B`` folder.

    Returns:
        ``(pairs, scores)``: the first ``max_examples`` (all when None) rows, scores in [0, 5].
    Raises:
        As :func:`sparsebert.data.glue.load_split` (missing folder or file, malformed row: named).
    """
    from sparsebert.data.glue import load_split

    rows = load_split("stsb", "dev", data_dir)[:max_examples]
    return [(r.text_a, r.text_b) for r in rows], [float(r.label) for r in rows]
