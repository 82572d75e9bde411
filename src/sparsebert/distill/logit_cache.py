"""On-disk cache of a teacher's logits over a training set, shared by runs and by resumed runs.

When distillation needs only the teacher's logits (prune's ``cache_teacher``, the default
recipe), prune computes them once per training example before the first step
(:func:`sparsebert.training.predict_logits`, eval mode). That pass costs ~2.5 min for MiniLM-L6
over SST-2's 67,349 sentences on one thread and ~20 min for a BERT-base-sized teacher, and was
paid again by every cell of a grid with the same teacher and by every resume of a long run.
:func:`teacher_logits` keeps the result under ``$SPARSEBERT_CACHE/teacher_logits/<key>.safetensors``
(another directory: ``$SPARSEBERT_TEACHER_LOGIT_CACHE``; ``off`` there disables the cache).

The key (SHA-256) covers everything the logits depend on: every tensor of the teacher's
``state_dict`` (names, dtypes, shapes and bytes), its class, the encoded inputs of every example
in order (input ids, attention mask, token type ids; a bi-encoder's second texts too), the eval batch size (padding per batch),
the autocast setting and the torch version. A changed teacher or data set therefore misses the
cache instead of reading stale logits; a file whose shape does not match is recomputed. Files are
written atomically (temp file + ``os.replace``) and read without pickle (safetensors).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sparsebert.io import atomic_path

#: the encoded inputs a key covers (the ``_b`` ones: the second texts of a bi-encoder, sparsebert.biencoder)
FEATURE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "input_ids_b", "attention_mask_b", "token_type_ids_b")


def cache_key(teacher: nn.Module, features: Sequence[dict], batch_size: int, bf16: bool | None) -> str:
    """SHA-256 (hex) of the teacher's weights, the encoded inputs and the settings (module docstring).

    Hashing reads every weight once (≈ 1 s for 110 M fp32 parameters).
    """
    h = hashlib.sha256()
    h.update(f"{type(teacher).__name__}|{torch.__version__}|batch={batch_size}|bf16={bf16}|n={len(features)}".encode())
    for name, t in teacher.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim safe
    for feat in features:
        for k in FEATURE_KEYS:
            if k in feat:
                h.update(k.encode())
                h.update(np.asarray(feat[k], dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def teacher_logits(teacher: nn.Module, features: Sequence[dict], batch_size: int, pad_token_id: int,
                   bf16: bool | None, cache_dir: str | Path | None = None, progress: str | None = None,
                   log=print) -> tuple[np.ndarray, bool]:
    """The teacher's logits for ``features``, from the cache or computed (then stored).

    Args:
        teacher: the fine-tuned teacher (any task head).
        features: encoded training examples (``input_ids`` etc.), in order.
        batch_size / pad_token_id / bf16: as :func:`sparsebert.training.predict_logits`.
        cache_dir: where the files go; None: ``$SPARSEBERT_TEACHER_LOGIT_CACHE`` if set, else
            ``$SPARSEBERT_CACHE/teacher_logits``; ``"off"``: neither read nor write a cache.
        progress: progress-bar label of the computation.
    Returns:
        ``([N, num_labels] float32 logits, True when read from the cache)``.
    """
    from safetensors.numpy import load_file, save_file

    from sparsebert.runtime.build import cache_dir as sparsebert_cache
    from sparsebert.training import predict_logits

    if cache_dir is None:
        cache_dir = os.environ.get("SPARSEBERT_TEACHER_LOGIT_CACHE") or None
    if cache_dir == "off":
        return predict_logits(teacher, features, batch_size, pad_token_id, bf16, progress=progress), False
    root = Path(cache_dir) if cache_dir is not None else sparsebert_cache() / "teacher_logits"
    path = root / f"{cache_key(teacher, features, batch_size, bf16)}.safetensors"
    if path.is_file():
        try:
            logits = load_file(str(path))["logits"]
        except Exception as err:  # a corrupt file (e.g. a disk that filled up): recompute
            log(f"teacher-logit cache {path}: unreadable ({type(err).__name__}), computing again")
        else:
            if logits.ndim == 2 and logits.shape[0] == len(features):
                log(f"teacher logits: read from the cache ({path})")
                return logits, True
            log(f"teacher-logit cache {path}: shape {logits.shape} does not fit {len(features)} examples, "
                "computing again")
    logits = predict_logits(teacher, features, batch_size, pad_token_id, bf16, progress=progress)
    with atomic_path(path) as tmp:
        save_file({"logits": np.ascontiguousarray(logits, dtype=np.float32)}, str(tmp))
    return logits, False
