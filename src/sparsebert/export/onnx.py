"""ONNX export of a (pruned) model, and the check that ONNX Runtime reproduces torch.

The graph is the dense one (pruned weights are stored as dense initializers holding exact
zeros): ONNX Runtime runs it as dense; sparsity-aware engines (DeepSparse) detect the zeros
themselves. Inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the model
takes them), dynamic batch and sequence axes; output ``logits`` (or ``last_hidden_state``).

Exported with torch's TorchScript-based exporter at opset 17 (an IR version older runtimes such
as DeepSparse 1.8 read); where that exporter is unavailable, with the dynamo exporter.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sparsebert.errors import MissingDependencyError

OPSET = 17
MODEL_FILE = "model.onnx"


def input_names(model: nn.Module) -> list[str]:
    """The inputs the exported graph takes, in order."""
    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


class _Wrapper(nn.Module):
    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *args):
        out = self.model(**dict(zip(self.names, args)), return_dict=True)
        return out["logits"] if "logits" in out else out["last_hidden_state"]


def dummy_inputs(model: nn.Module, batch: int = 2, seq: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids with some right padding (attention mask 0) for export and checks."""
    g = torch.Generator().manual_seed(seed)
    vocab = int(getattr(model.config, "vocab_size", 100))
    ids = torch.randint(min(5, vocab - 1), vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for b in range(1, batch):
        mask[b, seq - min(seq - 1, 3 * b):] = 0
    pad = getattr(model.config, "pad_token_id", 0) or 0
    ids = ids.masked_fill(mask == 0, pad)
    out = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names(model):
        out["token_type_ids"] = torch.zeros_like(ids)
    return out


@torch.no_grad()
def export_onnx(model: nn.Module, file: str | Path, *, opset: int = OPSET) -> Path:
    """Write ``model`` (eval mode, fp32, CPU) to ``file`` as ONNX with dynamic batch/sequence axes."""
    file = Path(file)
    model = model.eval()
    names = input_names(model)
    wrapper = _Wrapper(model, names).eval()
    example = dummy_inputs(model)
    args = tuple(example[n] for n in names)
    out_name = "logits" if hasattr(model, "classifier") or "ForSequenceClassification" in type(model).__name__ else "last_hidden_state"
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn[out_name] = {0: "batch"} if out_name == "logits" else {0: "batch", 1: "sequence"}
    kwargs: dict[str, Any] = dict(input_names=names, output_names=[out_name], opset_version=opset,
                                  dynamic_axes=dyn, do_constant_folding=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(wrapper, args, str(file), dynamo=False, **kwargs)
        except TypeError:  # a torch without the `dynamo` switch: TorchScript exporter is the default
            torch.onnx.export(wrapper, args, str(file), **kwargs)
    return file


def ort_session(file: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``threads`` intra-op threads; sequential execution)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(file), sess_options=opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def check_onnx(model: nn.Module, file: str | Path, inputs: dict[str, torch.Tensor] | None = None,
               atol: float = 1e-4) -> float:
    """Max |ONNX Runtime - torch| on ``inputs`` (default: :func:`dummy_inputs`).

    Raises:
        AssertionError: the difference exceeds ``atol``.
    """
    inputs = inputs or dummy_inputs(model, batch=3, seq=24, seed=1)
    sess = ort_session(file)
    names = [i.name for i in sess.get_inputs()]
    feeds = {n: inputs[n].numpy().astype(np.int64) for n in names}
    got = sess.run(None, feeds)[0]
    ref = _Wrapper(model.eval(), names)(*(inputs[n] for n in names)).numpy()
    diff = float(np.abs(got - ref).max())
    if diff > atol:
        raise AssertionError(f"{file}: ONNX Runtime differs from torch by {diff:.3g} (> {atol})")
    return diff


def require_onnx() -> None:
    """Check that the optional ONNX packages are installed.

    Raises:
        MissingDependencyError: ``onnx`` or ``onnxruntime`` is missing (an ``ImportError``); the
            message names them and the extra to install.
    """
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"ONNX export needs {' and '.join(missing)}: pip install 'sparsebert[onnx]'")


def export_onnx_run(run: str | Path, out: str | Path, *, overwrite: bool = False) -> float:
    """Export a model directory or sparse checkpoint to ``out/MODEL_FILE`` and check it with ONNX Runtime.

    Tokenizer/config files are copied beside the ONNX file; the directory is written atomically.

    Returns:
        Max |ONNX Runtime - torch| over the check inputs.
    Raises:
        ModelNotFoundError, SparseCheckpointError, OutputExistsError, MissingDependencyError.
    """
    from sparsebert.export.checkpoint import _copy_side_files, load_any
    from sparsebert.io import check_output_dir, staged_output_dir

    run, out = Path(run), Path(out)
    require_onnx()
    check_output_dir(out, overwrite)
    model = load_any(run)
    with staged_output_dir(out, overwrite) as stage:
        _copy_side_files(run, stage)
        export_onnx(model, stage / MODEL_FILE)
        diff = check_onnx(model, stage / MODEL_FILE)
        _write_card(stage, out.name, model, diff)
        return diff


def _write_card(stage: Path, name: str, model: nn.Module, diff: float) -> None:
    """The export's ``README.md`` model card (:mod:`sparsebert.modelcard`)."""
    from sparsebert.modelcard import invoked_command, write_model_card

    names = input_names(model)
    write_model_card(stage, name=name, model=model, export={
        "format": f"ONNX (opset {OPSET})",
        "description": (f"`{MODEL_FILE}` is the dense graph (pruned weights are exact zeros in its initializers), "
                        f"inputs {', '.join(names)} with dynamic batch and sequence axes; ONNX Runtime matched "
                        f"torch within {diff:.2e} at export."),
        "load": ["import onnxruntime as ort", "from transformers import AutoTokenizer",
                 f'session = ort.InferenceSession("{name}/{MODEL_FILE}")',
                 f'tokenizer = AutoTokenizer.from_pretrained("{name}")',
                 'enc = tokenizer(["a sentence"], return_tensors="np")',
                 "logits = session.run(None, {i.name: enc[i.name] for i in session.get_inputs()})[0]"],
        "command": invoked_command(), "library_name": "onnx", "tags": ["onnx"],
        "metadata": {"opset": OPSET, "max_abs_diff_vs_torch": diff},
    })
