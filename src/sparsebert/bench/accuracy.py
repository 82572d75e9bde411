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

Per path: the official GLUE metrics (:func:`sparsebert.metrics.compute_metrics`, fractions), their
difference to ``dense-fp32`` and to ``sparse-runtime`` in *points* (100 x the difference of the
fractions: accuracy in percentage points), the fraction of examples whose prediction equals
``dense-fp32``'s (classification; ``None`` for regression) and the largest absolute difference of
the logits from ``dense-fp32``'s. The check of the sparse-int8 kernels (issue 13): the
main metric of ``sparse-runtime-int8`` within :data:`INT8_TOLERANCE_POINTS` of ``sparse-runtime``.
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
    """

    task: TaskSpec
    splits: dict[str, list[dict]]
    pad_token_id: int
    max_length: int
    source: str
    at_max_length: dict[str, int]
    trained_max_length: int | None = None


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
            tokenizer without a pad token.
        FileNotFoundError / DataError: no such data directory or task directory, or a bad file (named).
        PreflightError: an empty split or a label outside the task's labels.
        ModelNotFoundError: ``model_dir`` has no tokenizer that loads.
    """
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
    source = str(data_dir) if data_dir is not None else "hub"
    splits: dict[str, list[dict]] = {}
    for split in spec.eval_splits:
        examples = load_split(spec, split, data_dir)
        check_data(spec, split, examples, source)
        splits[split] = encode_examples(tokenizer, examples[:max_examples], max_length, spec.is_regression)
    at_max = {s: sum(len(f["input_ids"]) == max_length for f in feats) for s, feats in splits.items()}
    return EvalData(spec, splits, tokenizer.pad_token_id, max_length, source, at_max, _trained_max_length(model_dir))


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


def path_logits(call: Callable[[], Any], logits_of: Callable[[], torch.Tensor], inputs: dict[str, torch.Tensor],
                arrays: dict[str, torch.Tensor]) -> np.ndarray:
    """Run ``arrays`` (:func:`padded_arrays`, ``[N, seq]``) through one bench path.

    ``call`` / ``logits_of`` are a path's callables from ``PathRunners.runner``, bound to ``inputs``
    (``[batch, seq]`` tensors the path reads at every call); each chunk of ``batch`` rows is copied
    into ``inputs`` in place, a short last chunk is filled up with copies of its first row.

    Returns:
        ``[N, C]`` float32 logits (``C`` = num_labels; 1 for regression), in the order of ``arrays``.
    """
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
        logits = logits_of().detach().float().cpu().reshape(batch, -1)
        out.append(logits[:k].numpy().copy())
    return np.concatenate(out)


def accuracy_result(data: EvalData, logits: dict[str, dict[str, np.ndarray]], not_evaluated: dict[str, str],
                    order: list[str], *, batch: int, seq: int) -> tuple[dict[str, Any], list[str]]:
    """The ``accuracy`` section of a bench result, and its warnings.

    Args:
        logits: path -> split -> ``[N, C]`` logits (:func:`path_logits`) of each path that ran.
        not_evaluated: path -> why it has no dev metric (skipped, failed, DeepSparse).
        order: the paths in table order.
    Returns:
        ``({"task", "main_metric", "main_split", "source", "examples" (split -> N), "max_length",
        "trained_max_length", "at_max_length", "batch", "seq", "inputs" (how they were built),
        "paths": [per-path dict], "int8_check"}, warnings)``. A path's dict: ``path``, ``status``
        (``"ok"`` / ``"skipped"`` / ``"failed"``), ``reason``, ``metrics`` (split -> metric ->
        fraction), ``vs_dense_fp32_points`` and ``vs_sparse_runtime_points`` (split -> metric ->
        100 x difference; None without that reference), ``agreement_dense_fp32`` (split ->
        fraction of equal predictions; None for regression), ``max_abs_diff_logits`` (split -> max
        |logits - dense-fp32's|). ``int8_check``: ``{"metric", "split", "delta_points",
        "tolerance_points", "within"}`` when both sparse runtime paths ran, else None.
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
    if data.trained_max_length is not None and data.trained_max_length != seq:
        warnings.append(f"accuracy: examples truncated to seq={seq} tokens, but the model was trained and evaluated "
                        f"with max_length {data.trained_max_length}: its dev metric may differ from the run's")
    result = {
        "task": task.name, "main_metric": task.main_metric, "main_split": main_split, "source": data.source,
        "examples": {s: len(f) for s, f in data.splits.items()}, "max_length": data.max_length,
        "trained_max_length": data.trained_max_length, "at_max_length": data.at_max_length,
        "batch": batch, "seq": seq,
        "inputs": (f"examples in file order, truncated to {data.max_length} tokens, {batch} per call, each call "
                   f"padded to {batch} x {seq} (pad id, mask 0; a short last batch filled with copies of its "
                   f"first example, whose outputs are dropped): the same compiled paths as timed"),
        "paths": rows, "int8_check": check,
    }
    return result, warnings


def check_model(model: torch.nn.Module, data: EvalData, name: str = "the model") -> None:
    """The model has a sequence-classification head for ``data.task``'s labels.

    Raises:
        InputError: no classification head (a bare encoder), or a head of another size / label order.
    """
    from sparsebert.errors import InputError
    from sparsebert.models import check_head_labels

    if not type(model).__name__.endswith("ForSequenceClassification"):
        raise InputError(f"{name} is a {type(model).__name__}, not a sequence-classification model: "
                         f"no {data.task.name} dev metric (--task needs a fine-tuned or pruned run directory)")
    check_head_labels(name, model.config, data.task)
