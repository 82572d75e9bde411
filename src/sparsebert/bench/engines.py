"""Dense inference engines for ``sparsebert bench`` beyond torch: ONNX Runtime with its transformer
optimiser and int8 dynamic quantisation, OpenVINO fp32 and int8 (NNCF).

Each builder works on files in a work directory and returns what the bench calls; a missing
package raises :class:`NotInstalled` (the bench reports the path as skipped, with the extra to
install), anything else propagates (the bench reports the path as failed).

Sources:

* ONNX Runtime transformer optimiser: ``onnxruntime.transformers.optimizer.optimize_model``
  (model type ``bert``; fuses EmbedLayerNormalization, Attention, SkipLayerNormalization,
  BiasGelu). Its attention fusion recognises the eager attention pattern, so the graph it
  optimises is exported from a copy of the model with ``attn_implementation="eager"``.
* ONNX Runtime dynamic quantisation: ``onnxruntime.quantization.quantize_dynamic`` (int8
  weights, uint8 activations quantised per call: ``DynamicQuantizeMatMul`` / ``QAttention`` /
  ``MatMulInteger`` kernels; u8s8 on AVX2, VNNI where the CPU has it).
* OpenVINO: ``openvino.Core.read_model`` on the ONNX file, compiled per batch with static shapes;
  int8 by NNCF post-training quantisation (``nncf.quantize``, ``ModelType.TRANSFORMER``) on a
  small calibration set, falling back to int8 weight compression (``nncf.compress_weights``)
  where that fails.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from sparsebert.targets import hidden_size, num_heads

# What to install for each optional engine (the message of a skipped path).
EXTRA = {"onnx": "pip install 'sparsebert[onnx]'", "onnxruntime": "pip install 'sparsebert[onnx]'",
         "openvino": "pip install 'sparsebert[bench]'", "nncf": "pip install 'sparsebert[bench]'"}
# ONNX Runtime's fused transformer operators the optimiser is expected to produce for a BERT encoder.
ORT_FUSIONS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu",
               "LayerNormalization")
# Operators of a dynamically quantised ONNX graph.
ORT_INT8_OPS = ("DynamicQuantizeMatMul", "MatMulInteger", "QAttention", "DynamicQuantizeLinear", "QGemm")


class NotInstalled(RuntimeError):
    """An optional package of a bench path is not importable; ``str()`` says what to install."""


def require(*modules: str) -> None:
    """Import ``modules`` (an engine's packages) or raise :class:`NotInstalled` naming the extra.

    Raises:
        NotInstalled: one of them cannot be imported (the message: ``not installed: X (pip install ...)``).
    """
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as err:
            raise NotInstalled(f"not installed: {m} ({EXTRA.get(m, f'pip install {m}')})") from err


def eager_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` using transformers' eager attention (the pattern ORT fuses)."""
    m = copy.deepcopy(model).eval()
    if hasattr(m, "set_attn_implementation"):
        try:
            m.set_attn_implementation("eager")
            return m
        except Exception:  # an architecture without the switch keeps its own attention
            pass
    if hasattr(m.config, "_attn_implementation"):
        with contextlib.suppress(Exception):
            m.config._attn_implementation = "eager"
    return m


@contextlib.contextmanager
def _quiet():
    """Silence the optimiser's / quantisers' logging and progress output (stdout and stderr)."""
    level = logging.root.level
    logging.root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.root.setLevel(level)


def ort_optimize(onnx_in: str | Path, onnx_out: str | Path, config: Any) -> dict[str, int]:
    """Run ONNX Runtime's BERT transformer optimiser on ``onnx_in`` and save the result to ``onnx_out``.

    Args:
        onnx_in: a BERT-family encoder exported to ONNX (preferably with eager attention).
        onnx_out: where to write the optimised graph.
        config: the model's transformers config (heads and hidden size are read from it).
    Returns:
        Fused operator -> count (``get_fused_operator_statistics``), only the non-zero ones.
    Raises:
        NotInstalled: onnxruntime / onnx missing. UnsupportedArchitectureError: no head count or
        hidden size in ``config``.
    """
    require("onnx", "onnxruntime")
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet():
        opt = optimize_model(str(onnx_in), model_type="bert", num_heads=num_heads(config),
                             hidden_size=hidden_size(config), use_gpu=False)
        stats = opt.get_fused_operator_statistics()
        opt.save_model_to_file(str(onnx_out))
    return {k: int(v) for k, v in stats.items() if v}


def op_counts(onnx_file: str | Path) -> dict[str, int]:
    """Operator type -> number of nodes in the main graph of ``onnx_file``."""
    import onnx

    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    return dict(Counter(n.op_type for n in graph.node))


def ort_quantize(onnx_in: str | Path, onnx_out: str | Path) -> dict[str, int]:
    """``onnxruntime.quantization.quantize_dynamic`` (weights QInt8) of ``onnx_in`` to ``onnx_out``.

    Works on a graph with ORT's fused contrib operators (their outputs have no type from ONNX shape
    inference; ``DefaultTensorType`` = float says what they are).

    Returns:
        Quantised operator -> count in the written graph (those of :data:`ORT_INT8_OPS`).
    Raises:
        NotInstalled: onnxruntime / onnx missing. RuntimeError: the quantised graph has no int8 operator.
    """
    require("onnx", "onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(onnx_in), str(onnx_out), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    counts = {k: v for k, v in op_counts(onnx_out).items() if k in ORT_INT8_OPS}
    if not counts:
        raise RuntimeError(f"quantize_dynamic left no int8 operator in {onnx_out}")
    return counts


def openvino_read(onnx_file: str | Path):
    """An ``openvino.Model`` read from ``onnx_file``.

    Raises:
        NotInstalled: openvino missing.
    """
    require("openvino")
    import openvino as ov

    return ov.Core().read_model(str(onnx_file))


def openvino_int8(ov_model, calibration: list[dict[str, np.ndarray]]) -> tuple[Any, str]:
    """Int8 version of ``ov_model`` by NNCF: post-training quantisation, else int8 weight compression.

    Args:
        ov_model: an ``openvino.Model`` (fp32).
        calibration: input name -> array (int64, ``batch x seq``) per calibration sample.
    Returns:
        ``(model, method)``: ``method`` says which NNCF call made it (and, for the fallback, why).
    Raises:
        NotInstalled: nncf or openvino missing. Whatever ``nncf.compress_weights`` raises when both fail.
    """
    require("openvino")
    # NNCF sends usage telemetry unless this (its CI switch, which has no other effect) is set.
    os.environ.setdefault("NNCF_CI", "1")
    require("nncf")
    import nncf

    nncf.set_log_level(logging.ERROR)
    try:
        with _quiet():
            q = nncf.quantize(ov_model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))
        return q, (f"NNCF post-training quantisation (nncf.quantize, ModelType.TRANSFORMER, "
                   f"{len(calibration)} synthetic calibration inputs)")
    except Exception as err:
        why = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        with _quiet():
            q = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        return q, f"NNCF int8 weight compression (nncf.compress_weights INT8_ASYM; quantize failed: {why})"


def openvino_compile(ov_model, shapes: dict[str, tuple[int, ...]], threads: int, precision: str | None):
    """Compile ``ov_model`` for the CPU with static ``shapes``; returns ``(infer_request, precision_used)``.

    Args:
        ov_model: an ``openvino.Model`` (not changed: a clone is reshaped).
        shapes: input name -> shape (``batch x seq``).
        threads: ``INFERENCE_NUM_THREADS`` (one stream, latency hint).
        precision: ``INFERENCE_PRECISION_HINT`` (``"f32"`` keeps fp32 where OpenVINO would pick bf16
            on CPUs with AVX512-BF16 / AMX); ``None`` leaves OpenVINO's default.
    Returns:
        An infer request (``.infer(feeds)``, ``.get_output_tensor(0).data``) and the inference
        precision the compiled model reports.
    Raises:
        NotInstalled: openvino missing.
    """
    require("openvino")
    import openvino as ov

    m = ov_model.clone()
    m.reshape({name: ov.PartialShape(list(shape)) for name, shape in shapes.items()})
    cfg: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(threads), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        cfg["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(m, "CPU", cfg)
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        used = hint.to_string() if hasattr(hint, "to_string") else str(hint)
    except Exception:
        used = "unknown"
    return compiled.create_infer_request(), used


def int8_kernel_note(cpu_flags: list[str]) -> str:
    """What int8 matmuls run on, from the CPU flags (``/proc/cpuinfo`` names)."""
    flags = set(cpu_flags)
    if "amx_int8" in flags:
        return "CPU has AMX-INT8"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "CPU has VNNI"
    if "avx2" in flags:
        return "AVX2 u8s8 kernels (no VNNI on this CPU)"
    return "no AVX2 on this CPU"
