"""The output of TinyBERT augmentation: a ``glue_data`` directory plus ``augment.json``.

:func:`augment_task` writes it, :func:`load_augmented` reads it back for training, and
:func:`prepare_augmented` resolves ``prune --augment`` (a directory, or ``auto``: written once into
a cache keyed by :func:`augment_cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from sparsebert.errors import InputError
from sparsebert.integrity import sha256_file

from ..glue import Example, _error, _iter_lines, read_glue_split, resolve_task_dir
from ..tasks import TaskSpec, get_task
from .augmenter import Augmenter
from .settings import AugmentSettings
from .word_vectors import read_word_vectors

#: Value of ``"format"`` in ``augment.json``.
AUGMENT_FORMAT = "sparsebert-augment/1"
#: Where ``prune --augment auto`` caches augmented data (relative to the working directory).
DEFAULT_CACHE = Path(".cache/augment")


def _raw_rows(task: TaskSpec, path: Path) -> tuple[str | None, dict[int, list[str]], list[int]]:
    """Header line (None for CoLA), ``{line: fields}`` and the text column indices."""
    lines = dict(_iter_lines(path))
    if task.has_header:
        header = lines.pop(1).split("\t")
        text_idx = [header.index(c) for c in task.text_columns]
        return "\t".join(header), {k: v.split("\t") for k, v in lines.items()}, text_idx
    return None, {k: v.split("\t") for k, v in lines.items()}, [int(c) for c in task.text_columns]


def _row_line(source: str) -> int:
    return int(source.rsplit(":", 1)[1].split("#", 1)[0])


def augment_task(
    task: TaskSpec | str,
    data_dir: str | Path,
    model: str,
    out: str | Path,
    settings: AugmentSettings = AugmentSettings(),
    *,
    word_vectors: str | Path | None = None,
    max_word_vectors: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Augment one task's train split and write it as a ``glue_data`` directory.

    Writes ``<out>/<glue_dir>/train.tsv`` (header and every column of the input file; the
    original rows first, then ``settings.copies`` rows per example in example order, only the
    text columns changed), copies of the task's evaluation split files when present, and
    ``<out>/augment.json``. The directory is written into a hidden staging directory and
    renamed into place (:func:`sparsebert.io.staged_output_dir`).

    Args:
        task: task name or :class:`TaskSpec`.
        data_dir: ``glue_data`` root or task directory (files only; the hub is not supported,
            the input file's sha256 is part of the record).
        model: model reference for the tokenizer, the MLM head and the default embeddings.
        out: output directory.
        settings: :class:`AugmentSettings`.
        word_vectors: GloVe text file for the neighbour path (None: the model's embeddings).
        max_word_vectors: read only the first N vectors of ``word_vectors``.
        overwrite: replace an existing ``out``.
        progress: show progress bars.
    Returns:
        The ``augment.json`` record (dict).
    Raises:
        OutputExistsError: ``out`` exists without ``overwrite`` (checked before any work).
        DataError: the train file is empty or malformed (``"<file>:<line>: ..."``), or the
            word-vector file is.
        FileNotFoundError, ModelNotFoundError, InputError: missing data / model, no ``data_dir``,
            bad settings (:class:`AugmentSettings` checks them when built).
    """
    from sparsebert.io import check_output_dir, environment, staged_output_dir, write_json_atomic

    t0 = time.perf_counter()
    spec = get_task(task)
    if data_dir is None:
        raise InputError("augment needs --data-dir (a glue_data directory); hub data is not supported")
    check_output_dir(out, overwrite)
    task_dir = resolve_task_dir(spec, data_dir)
    train_path = task_dir / f"{spec.train_split}.tsv"
    examples = read_glue_split(spec, data_dir, spec.train_split)  # validates every row
    vectors = read_word_vectors(word_vectors, max_word_vectors) if word_vectors is not None else None
    augmenter = Augmenter(model, settings, vectors)
    t_ready = time.perf_counter()
    copies, counts = augmenter.augment(examples, progress)
    t_aug = time.perf_counter()

    header, raw, text_idx = _raw_rows(spec, train_path)
    lines = [] if header is None else [header]
    for ex in examples:
        lines.append("\t".join(raw[_row_line(ex.source)]))
    for ex, versions in zip(examples, copies):
        base = raw[_row_line(ex.source)]
        for v in versions:
            fields = list(base)
            for col, text in zip(text_idx, (v.text_a, v.text_b)):
                fields[col] = text
            lines.append("\t".join(fields))

    n_in, n_copies = len(examples), sum(len(c) for c in copies)
    with staged_output_dir(out, overwrite) as stage:
        target = stage / spec.glue_dir
        target.mkdir()
        (target / f"{spec.train_split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        copied = {}
        for split in spec.eval_splits:
            src = task_dir / f"{split}.tsv"
            if src.is_file():
                shutil.copyfile(src, target / src.name)
                copied[split] = sha256_file(src)
        t_end = time.perf_counter()
        aug_s = t_aug - t_ready
        record = {
            "format": AUGMENT_FORMAT,
            "task": spec.name,
            "train_file": f"{spec.glue_dir}/{spec.train_split}.tsv",
            "input": {"path": str(train_path), "sha256": sha256_file(train_path), "examples": n_in},
            "eval_files_copied": copied,
            "model": model,
            "model_path": augmenter.path,
            "mlm_head": augmenter.has_mlm_head,
            "mlm_used": augmenter.use_mlm,
            "embeddings": ("model input embeddings" if vectors is None else
                           {"path": str(word_vectors), "sha256": sha256_file(word_vectors),
                            "words": len(vectors.words), "dim": vectors.dim}),
            "replacement_vocabulary": len(augmenter._nb_words),
            "settings": asdict(settings),
            "counts": {"original": n_in, "augmented": n_copies, "total": n_in + n_copies, **counts},
            "seconds": {"load": round(t_ready - t0, 3), "augment": round(aug_s, 3),
                        "write": round(t_end - t_aug, 3), "wall": round(t_end - t0, 3)},
            "examples_per_second": n_in / aug_s if aug_s > 0 else None,
            "examples_per_second_wall": n_in / (t_end - t0),
            "environment": environment(),
            "source": "TinyBERT (Jiao et al., Findings of EMNLP 2020) §3.3, Algorithm 1",
        }
        write_json_atomic(stage / "augment.json", record)
    return record


def augment_record(path: str | Path, task: TaskSpec | str) -> dict:
    """The ``augment.json`` record of an :func:`augment_task` output, checked.

    Raises:
        FileNotFoundError: ``path`` or ``path/augment.json`` missing.
        InputError: ``augment.json`` is not an augment record, or is for another task (a ``ValueError``).
    """
    from sparsebert.io import read_json

    spec = get_task(task)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: augmented data directory not found (run `sparsebert augment` first)")
    meta_path = path / "augment.json"
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != AUGMENT_FORMAT:
        raise InputError(f"{meta_path}: not a sparsebert augment record (format {AUGMENT_FORMAT!r} expected)")
    if meta.get("task") != spec.name:
        raise InputError(f"{meta_path}: augmented data is for task {meta.get('task')!r}, not {spec.name!r}")
    return meta


def load_augmented(path: str | Path, task: TaskSpec | str) -> list[Example]:
    """The training examples of an :func:`augment_task` output: the originals
    (``augment_record(path, task)["counts"]["original"]`` of them), then the copies.

    Raises:
        FileNotFoundError: ``path`` or ``path/augment.json`` missing.
        InputError: ``augment.json`` is not an augment record, or is for another task (a ``ValueError``).
        DataError: the train file is malformed, or holds a different number of rows than
            ``augment.json`` records (``"<file>: ..."``).
    """
    spec = get_task(task)
    path = Path(path)
    meta = augment_record(path, spec)
    examples = read_glue_split(spec, path, spec.train_split)
    expected = meta.get("counts", {}).get("total")
    if expected != len(examples):
        raise _error(path / meta.get("train_file", ""), None,
                     f"{len(examples)} examples, but augment.json records {expected}")
    return examples


# --------------------------------------------------------------------------- cache / prune


def _model_fingerprint(model: str) -> str:
    from sparsebert.models import resolve_model

    path = Path(resolve_model(model))
    if not path.is_dir():
        return model  # hub id
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def augment_cache_key(input_sha256: str, task: str, model: str, settings: AugmentSettings) -> str:
    """Cache key of on-the-fly augmentation: sha256 over the input file's sha256, the task, the
    model files' sha256 and the settings (16 hex digits)."""
    blob = json.dumps({"format": AUGMENT_FORMAT, "input": input_sha256, "task": task,
                       "model": _model_fingerprint(model), "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare_augmented(augment: str, task: TaskSpec | str, data_dir: str | Path | None, model: str, seed: int,
                      cache_dir: str | Path = DEFAULT_CACHE, progress: bool = True) -> Path:
    """Resolve ``prune --augment``: an :func:`augment_task` directory, or ``"auto"``.

    ``"auto"`` augments the train split of ``data_dir`` with ``model`` and the default
    :class:`AugmentSettings` (seed ``seed``) into ``cache_dir/<key>`` (:func:`augment_cache_key`),
    reusing it when present. For a directory, a warning is given when its recorded input sha256
    differs from the train file of ``data_dir``.

    Returns:
        The directory to pass to :func:`load_augmented`.
    Raises:
        InputError: ``"auto"`` without ``data_dir`` (a ``ValueError``).
        FileNotFoundError: ``"auto"`` and no train file under ``data_dir``.
    """
    spec = get_task(task)
    if augment != "auto":
        path = Path(augment)
        meta_path = path / "augment.json"
        if data_dir is not None and meta_path.is_file():
            from sparsebert.io import read_json

            recorded = read_json(meta_path).get("input", {}).get("sha256")
            train = resolve_task_dir(spec, data_dir) / f"{spec.train_split}.tsv"
            if train.is_file() and recorded != sha256_file(train):
                warnings.warn(f"{path}: augmented from a different train file than {train} "
                              "(sha256 differs)", stacklevel=2)
        return path
    if data_dir is None:
        raise InputError("--augment auto needs --data-dir (the train file is hashed for the cache key)")
    settings = AugmentSettings(seed=seed)
    train = resolve_task_dir(spec, data_dir) / f"{spec.train_split}.tsv"
    if not train.is_file():
        raise FileNotFoundError(f"{train}: no such file")
    target = Path(cache_dir) / augment_cache_key(sha256_file(train), spec.name, model, settings)
    if (target / "augment.json").is_file():
        return target
    augment_task(spec, data_dir, model, target, settings, overwrite=True, progress=progress)
    return target
