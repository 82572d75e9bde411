"""Predictions (labels, scores or sentence embeddings) for a file of texts, on the native engine.

``sparsebert predict MODEL --input FILE --json FILE`` / :func:`predict`: the texts of a CSV, TSV or JSONL
file (:func:`sparsebert.data.files.read_texts`) are tokenised, sorted by length and run in batches of
similar length (little padding; the engine skips padding anyway), then written back in input order as
JSON lines, one per input row:

* classification: ``{"line": 2, "label": "positive", "score": 0.93, "probabilities": {"negative": 0.07, ...}}``
  (softmax over the head's logits; ``label`` is ``config.id2label`` of the arg-max);
* regression (one output): ``{"line": 2, "score": 3.71}``;
* ``embeddings=True``: ``{"line": 2, "embedding": [...]}``, the mean of the last hidden states over the
  text's tokens (sentence-transformers' mean pooling, Reimers & Gurevych 2019), L2-normalised.

Runs on :class:`sparsebert.engine.EncoderEngine` when it covers the model (``engine="auto"``); otherwise
it falls back, with a one-line notice, to the sparse runtime (:func:`sparsebert.runtime.convert`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sparsebert.errors import InputError

ENGINE_CHOICES = ("auto", "on", "off")


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def predict(model: str | Path, input: str | Path, out: str | Path | None = None, *, text_column: str = "text",
            text_pair_column: str | None = None, max_length: int | None = None, batch_size: int = 32,
            embeddings: bool = False, engine: str = "auto", int8: bool = False, threads: int | None = None,
            overwrite: bool = False, log: Callable[[str], None] = lambda s: None,
            progress: bool = False) -> dict[str, Any]:
    """Predict every row of ``input`` with ``model`` and write the rows to ``out`` (JSON lines).

    Args:
        model: a sparse checkpoint (``sparsebert export``) or a model / run directory (config, weights, tokenizer).
        input: ``.csv`` / ``.tsv`` / ``.jsonl`` with a ``text_column`` (and ``text_pair_column`` for pairs).
        out: the JSON-lines file to write (atomically); None: nothing is written (rows are returned).
        max_length: tokens per text (longer texts are truncated); None = what ``model`` was trained with (its
            ``recipe.yaml``, which ``sparsebert export`` copies, read by
            :func:`sparsebert.stages.evaluate.trained_settings`), else
            :data:`sparsebert.stages.evaluate.DEFAULT_MAX_LENGTH` (128).
        batch_size: texts per call (batched by length).
        embeddings: mean-pooled, L2-normalised sentence embeddings instead of the head's predictions.
        engine: ``auto`` (the engine where it covers the model, else the sparse runtime, with a notice),
            ``on`` (the engine or an error), ``off`` (the sparse runtime).
        int8: the engine's sparse-int8 matrices (1x4 blocks) instead of fp32.
        threads: torch threads (default: torch's current count).
        overwrite: replace an existing ``out``.
        log: receives the notices (the fallback) and the final throughput line.
        progress: show a progress bar with sequences/s (rich).
    Returns:
        ``{"rows": [...] (the JSON lines, in input order), "path": "engine" | "sparse-runtime", "notice": str | None,
        "sequences": n, "seconds": s (model calls only), "sequences_per_s": n / s, "out": str | None,
        "max_length": the max length used}``.
    Raises:
        InputError: bad options; a model without a head and ``embeddings=False``; ``out`` exists without
            ``overwrite``. DataError: a malformed input file (``file:line: ...``). ModelNotFoundError /
            SparseCheckpointError / CorruptCheckpointError: an unusable model directory (named).
        EngineUnavailableError, UnsupportedArchitectureError: ``engine="on"`` and the engine cannot run the model.
    """
    from transformers import AutoTokenizer

    from sparsebert.data.files import read_texts
    from sparsebert.export.checkpoint import load_any
    from sparsebert.io import atomic_path

    if engine not in ENGINE_CHOICES:
        raise InputError(f"--engine must be one of {list(ENGINE_CHOICES)}, got {engine!r}")
    if max_length is None:
        max_length = trained_max_length(model)
    if batch_size < 1 or max_length < 2:
        raise InputError(f"--batch-size must be >= 1 and --max-length >= 2; got {batch_size} and {max_length}")
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and not overwrite:
        raise InputError(f"{out} already exists; pass --overwrite to replace it")
    if threads:
        torch.set_num_threads(threads)
    rows_in = read_texts(input, text_column=text_column, text_pair_column=text_pair_column)
    net = load_any(model)
    if getattr(net.config, "sparsebert_head", None) == "bi-encoder" and not embeddings:
        return _predict_pairs(model, net, rows_in, out, text_pair_column, max_length, batch_size, engine, int8, log)
    head = hasattr(net, "classifier")
    if not head and not embeddings:
        raise InputError(f"{model}: the model has no classification head; use --embeddings for sentence embeddings")
    tok = AutoTokenizer.from_pretrained(str(model))
    call, path, notice = _runner(net, engine, int8, embeddings, max_length * batch_size)
    if notice:
        log(notice)
    texts = [r[1] for r in rows_in]
    pairs = [r[2] for r in rows_in] if text_pair_column else None
    encoded = tok(texts, pairs, truncation=True, max_length=max_length)  # once; each batch is padded from it
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    lengths = [len(x) for x in encoded["input_ids"]]
    config = net.config
    id2label = {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}
    results: list[dict[str, Any] | None] = [None] * len(rows_in)
    seconds = 0.0
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                       TimeRemainingColumn(), transient=True)
        task_id = bar.add_task("predict", total=len(rows_in), rate="")
        bar.start()
    try:
        for idx in _batches(lengths, batch_size):
            inputs = dict(tok.pad([{k: encoded[k][i] for k in keys} for i in idx], return_tensors="pt"))
            t0 = time.perf_counter()
            with torch.no_grad():
                y = call(inputs)
            seconds += time.perf_counter() - t0
            for j, i in enumerate(idx):
                results[i] = _row(rows_in[i][0], y[j], embeddings, id2label)
            if bar is not None:
                done = sum(r is not None for r in results)
                bar.update(task_id, completed=done, rate=f"{done / max(seconds, 1e-9):.1f} seq/s")
    finally:
        if bar is not None:
            bar.stop()
    rows = [r for r in results if r is not None]
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rate = len(rows) / seconds if seconds > 0 else float("inf")
    log(f"{len(rows)} sequences in {seconds:.2f} s of model calls ({rate:.1f} sequences/s) on the {path}")
    return {"rows": rows, "path": path, "notice": notice, "sequences": len(rows), "seconds": seconds,
            "sequences_per_s": rate, "out": None if out is None else str(out), "max_length": max_length}


def trained_max_length(model: str | Path) -> int:
    """The max length ``model`` was trained with (:func:`sparsebert.stages.evaluate.trained_settings`: its run's
    ``recipe.yaml``, kept by ``sparsebert export``), else ``DEFAULT_MAX_LENGTH`` (128), as ``evaluate`` does.

    Raises:
        RecipeError: an unreadable ``recipe.yaml`` (names the file, line and column).
    """
    from sparsebert.stages.evaluate import DEFAULT_MAX_LENGTH, trained_settings

    return trained_settings(model)["max_length"] or DEFAULT_MAX_LENGTH


def _row(line: int, y: torch.Tensor, embeddings: bool, id2label: dict[int, str]) -> dict[str, Any]:
    if embeddings:
        return {"line": line, "embedding": [round(float(v), 6) for v in y]}
    if y.numel() == 1:
        return {"line": line, "score": float(y[0])}
    p = torch.softmax(y.float(), -1)
    k = int(p.argmax())
    names = [id2label.get(i, str(i)) for i in range(p.numel())]
    return {"line": line, "label": names[k], "score": float(p[k]),
            "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}}


def _predict_pairs(model, net, rows_in, out: Path | None, text_pair_column: str | None, max_length: int,
                   batch_size: int, engine: str, int8: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """:func:`predict` for a bi-encoder (:mod:`sparsebert.biencoder`): every text of every pair embedded on its own
    (mean pooling, on the engine or the sparse runtime), then the pair's cosine (regression rows:
    ``{"line", "score": cosine, "scaled_score": cosine x the label scale}``) or ``W [u; v; |u - v|]`` (classification
    rows as a cross-encoder's: label, score, probabilities)."""
    from transformers import AutoTokenizer

    from sparsebert.biencoder import from_encoder
    from sparsebert.io import atomic_path

    if text_pair_column is None:
        raise InputError(f"{model}: a bi-encoder scores sentence pairs: give --text-pair-column (or --embeddings "
                         "for the embeddings of single texts)")
    bi = from_encoder(net, model)
    tok = AutoTokenizer.from_pretrained(str(model))
    call, path, notice = _runner(net, engine, int8, True, max_length * batch_size, normalize=False)
    if notice:
        log(notice)
    texts = [r[1] for r in rows_in] + [r[2] for r in rows_in]
    encoded = tok(texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    emb: list[torch.Tensor | None] = [None] * len(texts)
    seconds = 0.0
    for idx in _batches([len(x) for x in encoded["input_ids"]], batch_size):
        inputs = dict(tok.pad([{k: encoded[k][i] for k in keys} for i in idx], return_tensors="pt"))
        t0 = time.perf_counter()
        with torch.no_grad():
            y = call(inputs).float()
        seconds += time.perf_counter() - t0
        for j, i in enumerate(idx):
            emb[i] = y[j]
    n = len(rows_in)
    with torch.no_grad():
        scores = bi.score(torch.stack(emb[:n]), torch.stack(emb[n:]))
    id2label = {int(k): v for k, v in (getattr(bi.config, "id2label", None) or {}).items()}
    rows = []
    for (line, *_), y in zip(rows_in, scores):
        if bi.regression:
            rows.append({"line": line, "score": float(y[0]), "scaled_score": float(y[0]) * bi.label_scale})
        else:
            rows.append(_row(line, y, False, id2label))
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rate = n / seconds if seconds > 0 else float("inf")
    log(f"{n} pairs ({2 * n} texts) in {seconds:.2f} s of model calls ({rate:.1f} pairs/s) on the {path}")
    return {"rows": rows, "path": path, "notice": notice, "sequences": n, "seconds": seconds,
            "sequences_per_s": rate, "out": None if out is None else str(out)}


def _runner(net, engine: str, int8: bool, embeddings: bool,
            tokens: int, normalize: bool = True) -> tuple[Callable[[dict], torch.Tensor], str, str | None]:
    """``(call(inputs) -> [batch, labels] logits or [batch, hidden] embeddings (unit length with ``normalize``),
    path name, notice or None)``."""
    notice = None
    if engine != "off":
        from sparsebert.engine import EncoderEngine, EngineUnavailableError
        from sparsebert.targets import UnsupportedArchitectureError

        try:
            eng = EncoderEngine(net, int8=int8)
        except (EngineUnavailableError, UnsupportedArchitectureError) as err:
            if engine == "on":
                raise
            notice = f"notice: the native engine does not cover this model ({err}); running the sparse runtime instead"
        else:
            if embeddings:
                return (lambda x: eng.embed(**x, normalize=normalize)), "engine", None
            return (lambda x: eng(**x).logits), "engine", None
    elif int8:
        raise InputError("--int8 is an engine option; it cannot be used with --engine off")
    from sparsebert.runtime import convert

    convert(net, tokens=tokens)
    if embeddings:
        base = net.base_model

        def embed(x: dict) -> torch.Tensor:
            from sparsebert.pooling import masked_mean

            e = masked_mean(base(**x).last_hidden_state, x["attention_mask"])
            return torch.nn.functional.normalize(e, dim=-1) if normalize else e

        return embed, "sparse runtime", notice
    return (lambda x: net(**x).logits), "sparse runtime", notice
