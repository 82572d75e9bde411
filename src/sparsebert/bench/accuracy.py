"""Dev metric of every bench path: does a fast path still give the model's answers?

``sparsebert bench MODEL --task TASK --data-dir DIR`` runs the task's labelled eval split(s)
(:attr:`TaskSpec.eval_splits`; MNLI: matched and mismatched) through each path that
:func:`sparsebert.bench.run.bench_model` built, with the *same* callables it times.

Inputs: the examples are tokenised by the model directory's tokenizer and truncated to ``seq``
tokens (:func:`sparsebert.data.encode.encode_examples`, ``max_length = seq``), in file order, and
fed ``batch`` at a time, each batch padded to the bench's fixed ``batch x seq`` shape (pad id,
attention mask 0); the rows that fill a short last batch repeat its first example and their
outputs are dropped. The compiled paths (ONNX Runtime, OpenVINO with static shapes, the sparse
runtime converted for ``batch x seq`` tokens) are thus reused as timed. :func:`sparsebert.evaluate`
pads each length-sorted batch only to its longest member instead; masked positions contribute
nothing, so torch fp32 gives the same predictions both ways (tested) when ``max_length`` is the
same — give ``--max-length`` equal to the ``max_length`` the model was trained and evaluated with
(``recipe.max_length`` in its ``summary.json``; a different one is warned about).

A saved **bi-encoder** (``config.json``: ``sparsebert_head: bi-encoder``, :mod:`sparsebert.biencoder`; the
model is its plain encoder) is evaluated as :func:`sparsebert.evaluate` does it: each text of a pair is encoded
on its own (at most ``seq`` tokens each), both texts go through the path's callable in batches of their own,
the path's last hidden states are mean-pooled over the real tokens (:func:`sparsebert.pooling.masked_mean`) and
the pair is scored by the saved head (``cos(u, v)`` for regression, ``W [u; v; |u - v|]`` for classes,
:meth:`sparsebert.biencoder.BiEncoder.score`): those scores are the "logits" below. Each path's embeddings are
also compared with ``dense-fp32``'s: the smallest cosine between a text's two embeddings.

Per path: the official GLUE metrics (:func:`sparsebert.metrics.compute_metrics`, fractions), their
difference to ``dense-fp32`` and to ``sparse-runtime`` in *points* (100 x the difference of the
fractions: accuracy in percentage points), the fraction of examples whose prediction equals
``dense-fp32``'s (classification; ``None`` for regression) and the largest absolute difference of
the logits from ``dense-fp32``'s. Two checks: the sparse-int8 kernels (issue 13), the main metric of
``sparse-runtime-int8`` within :data:`INT8_TOLERANCE_POINTS` of ``sparse-runtime``; and the engine
(issue 31, must-have 5), the main metric of every engine path (``engine``, ``engine-int8``) within
:data:`ENGINE_TOLERANCE_POINTS` of ``dense-fp32``, the torch fp32 model with its pruned weights (the fp32
sparse model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsebert.data.tasks import TaskSpec

#: sparse-runtime-int8's main metric may differ from sparse-runtime's by at most this (points)
INT8_TOLERANCE_POINTS = 0.5
#: an engine path's main metric may differ from dense-fp32's (the fp32 sparse model) by at most this (points;
#: issue 31, must-have 5)
ENGINE_TOLERANCE_POINTS = 0.5
#: the engine paths the engine check covers (sparsebert.bench.run.ENGINE_PATHS)
ENGINE_CHECK_PATHS = ("engine", "engine-int8")
#: why DeepSparse has no dev metric
DEEPSPARSE_REASON = ("not evaluated: DeepSparse runs in its own process on the bench's fixed inputs "
                     "(no dev-set mode)")


@dataclass
class EvalData:
    """The encoded eval split(s) of one task, for ``bench_model(..., eval_data=...)``.

    Attributes:
        task: the task (labels, metrics).
        splits: split name -> encoded features (:func:`~sparsebert.data.encode.encode_examples`:
            ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) lists of at most
            ``max_length`` tokens, ``labels``).
        pad_token_id: the tokenizer's pad id.
        max_length: the truncation length (tokens).
        source: where the examples came from (data directory, or ``"hub"``).
        at_max_length: split -> examples whose encoding has exactly ``max_length`` tokens
            (truncated, or exactly that long).
        trained_max_length: ``recipe.max_length`` of the model directory's ``summary.json``, when it has one.
        head: ``cross-encoder``, or ``bi-encoder`` (the model directory is a saved bi-encoder: the features carry
            the second texts under ``input_ids_b`` / ``attention_mask_b`` (/ ``token_type_ids_b``),
            :func:`sparsebert.biencoder.encode_pairs`; ``at_max_length`` counts pairs with either text at the limit).
        model_dir: the model directory (a bi-encoder's classification head is read from it).
    """

    task: TaskSpec
    splits: dict[str, list[dict]]
    pad_token_id: int
    max_length: int
    source: str
    at_max_length: dict[str, int]
    trained_max_length: int | None = None
    head: str = "cross-encoder"
    model_dir: str | None = None


def load_eval_data(model_dir: str | Path, task: str | TaskSpec, data_dir: str | Path | None, max_length: int,
                   max_examples: int | None = None) -> EvalData:
    """Read, check and encode ``task``'s eval split(s) with the tokenizer of ``model_dir``.

    Args:
        model_dir: a model/run directory (or sparse checkpoint) with its tokenizer files.
        data_dir: a ``glue_data`` root or the task directory; None: the Hugging Face hub.
        max_length: tokens per example after truncation (the bench's ``seq``).
        max_examples: only the first N examples of each split (as ``sparsebert evaluate --max-eval-examples``).
    Raises:
        InputError: unknown task (a ``ValueError``), ``max_length`` or ``max_examples`` < 1, or a
            tokenizer without a pad token; BiEncoderError (an InputError): a bi-encoder and a single-text task.
        FileNotFoundError / DataError: no such data directory or task directory, or a bad file (named).
        PreflightError: an empty split or a label outside the task's labels.
        ModelNotFoundError: ``model_dir`` has no tokenizer that loads.
    """
    from sparsebert.biencoder import check_pair_task, saved_head
    from sparsebert.data.encode import encode_examples
    from sparsebert.data.glue import load_split
    from sparsebert.data.tasks import get_task
    from sparsebert.errors import InputError
    from sparsebert.models import load_tokenizer
    from sparsebert.preflight import check_data

    spec = get_task(task)
    if max_length < 1:
        raise InputError(f"max_length must be >= 1; got {max_length}")
    if max_examples is not None and max_examples < 1:
        raise InputError(f"--max-eval-examples must be >= 1; got {max_examples}")
    tokenizer = load_tokenizer(str(model_dir))
    if tokenizer.pad_token_id is None:
        raise InputError(f"tokenizer of {model_dir} has no pad token")
    head = saved_head(model_dir)
    if head == "bi-encoder":
        check_pair_task(spec, where=f"{model_dir} (a bi-encoder)")
    source = str(data_dir) if data_dir is not None else "hub"
    splits: dict[str, list[dict]] = {}
    for split in spec.eval_splits:
        examples = load_split(spec, split, data_dir)
        check_data(spec, split, examples, source)
        splits[split] = encode_examples(tokenizer, examples[:max_examples], max_length, spec.is_regression, head=head)
    at_max = {s: sum(max(len(f["input_ids"]), len(f.get("input_ids_b", ()))) == max_length for f in feats)
              for s, feats in splits.items()}
    return EvalData(spec, splits, tokenizer.pad_token_id, max_length, source, at_max, _trained_max_length(model_dir),
                    head, str(model_dir))


def _trained_max_length(model_dir: str | Path) -> int | None:
    """``recipe.max_length`` of the directory's ``summary.json`` (None when it has none)."""
    from sparsebert.io import read_json

    path = Path(model_dir) / "summary.json"
    try:
        value = (read_json(path).get("recipe") or {}).get("max_length") if path.is_file() else None
    except Exception:  # an unreadable summary only loses the warning
        return None
    return int(value) if isinstance(value, int) else None


def padded_arrays(features: list[dict], seq: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """The features as ``[N, seq]`` int64 tensors (:func:`sparsebert.data.encode.pad_batch` to ``seq``
    tokens: ``input_ids`` padded with ``pad_token_id``, ``attention_mask`` and ``token_type_ids`` with 0;
    ``token_type_ids`` zeros when the features have none).

    Raises:
        ValueError: a feature longer than ``seq`` tokens.
    """
    from sparsebert.data.encode import pad_batch

    out = pad_batch(features, pad_token_id, length=seq)
    out.pop("labels")
    out.setdefault("token_type_ids", torch.zeros_like(out["input_ids"]))
    return out


def side_arrays(features: list[dict], seq: int, pad_token_id: int, head: str) -> dict[str, dict[str, torch.Tensor]]:
    """The ``[N, seq]`` arrays (:func:`padded_arrays`) of each input side: ``{"": arrays}`` for a cross-encoder
    (one input per example), ``{"a": arrays of the first texts, "b": of the second}`` for a bi-encoder.

    Raises:
        ValueError: a text longer than ``seq`` tokens (named); a bi-encoder feature without a second text.
    """
    if head != "bi-encoder":
        return {"": padded_arrays(features, seq, pad_token_id)}
    missing = [k for k in ("input_ids_b", "attention_mask_b") if features and k not in features[0]]
    if missing:
        raise ValueError(f"bi-encoder features have no {missing} (encode them with sparsebert.biencoder.encode_pairs)")
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if f"{k}_b" in features[0]]
    first = [{k: f[k] for k in keys} | {"labels": f["labels"]} for f in features]
    second = [{k: f[f"{k}_b"] for k in keys} | {"labels": f["labels"]} for f in features]
    return {"a": padded_arrays(first, seq, pad_token_id), "b": padded_arrays(second, seq, pad_token_id)}


def path_logits(call: Callable[[], Any], logits_of: Callable[[], torch.Tensor], inputs: dict[str, torch.Tensor],
                arrays: dict[str, torch.Tensor], pool: bool = False) -> np.ndarray:
    """Run ``arrays`` (:func:`padded_arrays`, ``[N, seq]``) through one bench path.

    ``call`` / ``logits_of`` are a path's callables from ``PathRunners.runner``, bound to ``inputs``
    (``[batch, seq]`` tensors the path reads at every call); each chunk of ``batch`` rows is copied
    into ``inputs`` in place, a short last chunk is filled up with copies of its first row.

    Args:
        pool: the path returns last hidden states (``[batch, seq, hidden]``, a base model): return their mean
            over each row's real tokens (:func:`sparsebert.pooling.masked_mean` with the chunk's attention mask)
            instead, ``[N, hidden]``.
    Returns:
        ``[N, C]`` float32 logits (``C`` = num_labels; 1 for regression), or with ``pool`` the ``[N, hidden]``
        mean-pooled embeddings, in the order of ``arrays``.
    Raises:
        ValueError: ``arrays`` of another sequence length than ``inputs``; with ``pool``, an output that is
            not ``[batch, seq, hidden]``.
    """
    from sparsebert.pooling import masked_mean

    batch, seq = inputs["input_ids"].shape
    n = arrays["input_ids"].shape[0]
    if arrays["input_ids"].shape[1] != seq:
        raise ValueError(f"dev arrays have {arrays['input_ids'].shape[1]} tokens per row, the path {seq}")
    out = []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        for key, t in inputs.items():
            t[:k].copy_(arrays[key][start:start + k])
            if k < batch:
                t[k:].copy_(arrays[key][start:start + 1].expand(batch - k, seq))
        call()
        logits = logits_of().detach().float().cpu()
        if pool:
            if logits.dim() != 3 or tuple(logits.shape[:2]) != (batch, seq):
                raise ValueError(f"mean pooling needs [batch, seq, hidden] = [{batch}, {seq}, ...] hidden states, "
                                 f"the path gave {list(logits.shape)}")
            logits = masked_mean(logits, inputs["attention_mask"].cpu())
        out.append(logits.reshape(batch, -1)[:k].numpy().copy())
    return np.concatenate(out)


def accuracy_result(data: EvalData, logits: dict[str, dict[str, np.ndarray]], not_evaluated: dict[str, str],
                    order: list[str], *, batch: int, seq: int,
                    embeddings: dict[str, dict[str, np.ndarray]] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The ``accuracy`` section of a bench result, and its warnings.

    Args:
        logits: path -> split -> ``[N, C]`` logits (:func:`path_logits`) of each path that ran (a bi-encoder:
            its pair scores).
        not_evaluated: path -> why it has no dev metric (skipped, failed, DeepSparse).
        order: the paths in table order.
        embeddings: a bi-encoder's: path -> split -> ``[2N, hidden]`` mean-pooled embeddings (first texts, then
            second texts); each path's row then gets ``embedding_cosine_min_dense_fp32`` (split -> the smallest
            cosine between a text's embedding on the path and on ``dense-fp32``).
    Returns:
        ``({"task", "main_metric", "main_split", "source", "examples" (split -> N), "max_length",
        "trained_max_length", "at_max_length", "batch", "seq", "inputs" (how they were built),
        "paths": [per-path dict], "int8_check"}, warnings)``. A path's dict: ``path``, ``status``
        (``"ok"`` / ``"skipped"`` / ``"failed"``), ``reason``, ``metrics`` (split -> metric ->
        fraction), ``vs_dense_fp32_points`` and ``vs_sparse_runtime_points`` (split -> metric ->
        100 x difference; None without that reference), ``agreement_dense_fp32`` (split ->
        fraction of equal predictions; None for regression), ``max_abs_diff_logits`` (split -> max
        |logits - dense-fp32's|). ``int8_check``: ``{"metric", "split", "delta_points",
        "tolerance_points", "within"}`` when both sparse runtime paths ran, else None. ``engine_check``: one
        such dict per engine path that ran beside ``dense-fp32`` (plus ``"path"``; its ``delta_points`` against
        ``dense-fp32``, tolerance :data:`ENGINE_TOLERANCE_POINTS`), ``[]`` when none did. ``head``:
        ``cross-encoder`` / ``bi-encoder``.
    """
    from sparsebert.metrics import compute_metrics, predictions

    task = data.task
    labels = {s: np.array([f["labels"] for f in feats]) for s, feats in data.splits.items()}
    metrics = {p: {s: compute_metrics(task, predictions(task, lg), labels[s]) for s, lg in by.items()}
               for p, by in logits.items()}

    def delta(p: str, ref: str) -> dict | None:
        if ref not in metrics:
            return None
        return {s: {m: 100.0 * (v - metrics[ref][s][m]) for m, v in ms.items()} for s, ms in metrics[p].items()}

    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    ref = logits.get("dense-fp32")
    for path in order:
        if path not in logits:
            reason = not_evaluated.get(path, "not evaluated")
            status = "failed" if reason.startswith("failed") else "skipped"
            rows.append({"path": path, "status": status, "reason": reason})
            warnings.append(f"accuracy: {path} has no dev metric ({reason})")
            continue
        row: dict[str, Any] = {"path": path, "status": "ok", "reason": None, "metrics": metrics[path],
                               "vs_dense_fp32_points": delta(path, "dense-fp32"),
                               "vs_sparse_runtime_points": delta(path, "sparse-runtime"),
                               "agreement_dense_fp32": None, "max_abs_diff_logits": None}
        if ref is not None:
            row["max_abs_diff_logits"] = {s: float(np.abs(lg - ref[s]).max()) for s, lg in logits[path].items()}
            if not task.is_regression:
                row["agreement_dense_fp32"] = {s: float(np.mean(predictions(task, lg) == predictions(task, ref[s])))
                                               for s, lg in logits[path].items()}
        ref_emb = (embeddings or {}).get("dense-fp32")
        if ref_emb is not None and path in embeddings:
            row["embedding_cosine_min_dense_fp32"] = {s: _min_cosine(e, ref_emb[s]) for s, e in embeddings[path].items()}
        rows.append(row)
    main_split = task.eval_splits[0]
    check = None
    if "sparse-runtime" in metrics and "sparse-runtime-int8" in metrics:
        d = 100.0 * (metrics["sparse-runtime-int8"][main_split][task.main_metric]
                     - metrics["sparse-runtime"][main_split][task.main_metric])
        check = {"metric": task.main_metric, "split": main_split, "delta_points": d,
                 "tolerance_points": INT8_TOLERANCE_POINTS, "within": abs(d) <= INT8_TOLERANCE_POINTS}
        if not check["within"]:
            warnings.append(f"accuracy: sparse-runtime-int8 {task.main_metric} on {main_split} is {d:+.2f} points "
                            f"from sparse-runtime (tolerance {INT8_TOLERANCE_POINTS})")
    engine_check = []
    if "dense-fp32" in metrics:
        for path in ENGINE_CHECK_PATHS:
            if path not in metrics:
                continue
            d = 100.0 * (metrics[path][main_split][task.main_metric] - metrics["dense-fp32"][main_split][task.main_metric])
            engine_check.append({"path": path, "metric": task.main_metric, "split": main_split, "delta_points": d,
                                 "tolerance_points": ENGINE_TOLERANCE_POINTS,
                                 "within": abs(d) <= ENGINE_TOLERANCE_POINTS})
            if abs(d) > ENGINE_TOLERANCE_POINTS:
                warnings.append(f"accuracy: {path} {task.main_metric} on {main_split} is {d:+.2f} points from "
                                f"dense-fp32, the fp32 sparse model (tolerance {ENGINE_TOLERANCE_POINTS})")
    if data.trained_max_length is not None and data.trained_max_length != seq:
        warnings.append(f"accuracy: examples truncated to seq={seq} tokens, but the model was trained and evaluated "
                        f"with max_length {data.trained_max_length}: its dev metric may differ from the run's")
    result = {
        "task": task.name, "head": data.head, "main_metric": task.main_metric, "main_split": main_split,
        "source": data.source,
        "examples": {s: len(f) for s, f in data.splits.items()}, "max_length": data.max_length,
        "trained_max_length": data.trained_max_length, "at_max_length": data.at_max_length,
        "batch": batch, "seq": seq,
        "inputs": (f"examples in file order, truncated to {data.max_length} tokens, {batch} per call, each call "
                   f"padded to {batch} x {seq} (pad id, mask 0; a short last batch filled with copies of its "
                   f"first example, whose outputs are dropped): the same compiled paths as timed"),
        "paths": rows, "int8_check": check, "engine_check": engine_check,
    }
    if data.head == "bi-encoder":
        result["inputs"] = (f"each text of a pair on its own (sparsebert.biencoder), in file order, truncated to "
                            f"{data.max_length} tokens, {batch} texts per call, each call padded to {batch} x {seq} "
                            f"(pad id, mask 0; a short last batch filled with copies of its first text, whose outputs "
                            f"are dropped), the last hidden states mean-pooled over the real tokens and each pair "
                            f"scored by the saved head (cosine for regression): the same compiled paths as timed")
    return result, warnings


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine similarity between the rows of ``a`` and ``b`` (``[N, hidden]`` each)."""
    num = (a * b).sum(axis=1)
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float((num / den).min())


def check_model(model: torch.nn.Module, data: EvalData, name: str = "the model") -> None:
    """The model has a sequence-classification head for ``data.task``'s labels; a bi-encoder (``data.head``) is
    its plain encoder, with the saved head's labels in its config.

    Raises:
        InputError: no classification head (a bare encoder that is not a saved bi-encoder), a head of another
            size / label order, or a bi-encoder given as a sequence-classification model.
    """
    from sparsebert.errors import InputError
    from sparsebert.models import check_head_labels

    if data.head == "bi-encoder":
        if type(model).__name__.endswith("ForSequenceClassification") or not hasattr(model, "base_model"):
            raise InputError(f"{name} is a {type(model).__name__}: a saved bi-encoder is its plain encoder "
                             "(AutoModel), scored by sparsebert.biencoder")
        check_head_labels(name, model.config, data.task)
        return
    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise InputError(f"{name} is a {type(model).__name__}, not a sequence-classification model: "
                         f"no {data.task.name} dev metric (--task needs a fine-tuned or pruned run directory)")
    check_head_labels(name, model.config, data.task)
