"""Side-by-side inference benchmark of a pruned model: the dense baselines a user would pick vs
the sparse runtime.

CPU paths, all in one process (DeepSparse in its own), same threads, same inputs:

==========================  ===================================================================
``dense-fp32``              the model as it is (torch eager, fp32) — the reference for outputs
``dense-bf16``              the model cast to bf16 (torch; oneDNN AVX512-BF16 / AMX where present)
``dynamic-int8``            ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``
``onnxruntime-fp32``        the dense ONNX graph (:mod:`sparsebert.export.onnx`) in ONNX Runtime
``onnxruntime-opt-fp32``    the graph after ORT's BERT transformer optimiser (fused attention,
                            SkipLayerNormalization, BiasGelu; :func:`.engines.ort_optimize`)
``onnxruntime-int8``        ``onnxruntime.quantization.quantize_dynamic`` (QInt8 weights) of the
                            optimised graph (:func:`.engines.ort_quantize`)
``openvino-fp32``           OpenVINO on the ONNX file, static shapes, inference precision f32
``openvino-int8``           the OpenVINO model quantised by NNCF (:func:`.engines.openvino_int8`)
``sparse-runtime``          :func:`sparsebert.runtime.convert` (kernel per matrix by measurement)
``sparse-runtime-int8``     ``convert(..., int8=True)``: the sparse-int8 kernel (``sbk-int8``,
                            :mod:`sparsebert.runtime.int8`) competes too; the note names the
                            chosen kernels and the int8 SIMD path (``int8_isa``)
``deepsparse``              optional: DeepSparse on the same ONNX file, in its own venv
==========================  ===================================================================

and on CUDA, when a GPU is present: ``cuda-dense-fp32``, ``cuda-dense-fp16``,
``cuda-sparse-runtime`` (torch CSR/BSR and 2:4 semi-structured where the pattern allows, fp16).
A path whose package is missing is reported as skipped (with what to install), one that raises
as failed; both appear in the ``warnings`` and as a ⚠ row, and never stop the other paths.

For every batch size the inputs are ``batch x seq`` random token ids with a full attention
mask. Every path is built and called once (its logits are compared with torch fp32: max abs
difference), then all in-process paths of the batch size, plus the linears-free model
(:mod:`sparsebert.bench.limits`), are timed *interleaved* by
:func:`sparsebert.timing.time_calls` with ``rotate=True``: ``warmup`` untimed calls of each,
then rounds of one call of each in rotating order, until ``max_iters`` rounds or, once
``min_iters`` are done, ``budget_s`` seconds per path (the group's budget is ``budget_s`` x the
number of callables). A drift in machine load thus hits every path alike. DeepSparse runs in a
subprocess and is timed in its own block after them; CUDA paths are interleaved among
themselves (with ``torch.cuda.synchronize``).

Reported per path: median, p10 and p90 latency (ms), sequences/s, and the speed-up over the
*fastest fp32 path* (of torch fp32, ORT fp32, ORT optimised fp32, OpenVINO fp32), over the
*best dense path* (the fastest path that ignores sparsity) and over torch eager fp32; per batch
size the two reference paths by name, the requested dense paths that were not measured, and the
physical limit (FLOP reduction, time of the non-linear part alone, each path's time over it).

The sparse runtime's kernel choices come from the kernel-choice cache
(:func:`sparsebert.runtime.convert`, ``$SPARSEBERT_CACHE/kernel_choices.json``) where it holds
them for this machine, shape, tokens and threads, so a second bench of the same model times no
kernel candidates; ``remeasure_kernels=True`` (``--remeasure-kernels``) times them all again and
writes the new choices to the cache. ``conversions`` / ``conversions_int8`` say, per token count,
how long the conversion took and how many choices came from the cache (``from_cache``) or were
timed in this run (``timed`` distinct shapes).

With ``eval_data`` (``--task``, ``--data-dir``) the task's dev split(s) also run through every CPU
path built at the largest batch size, with the callables that are timed, and each path's dev
metric, its difference to ``dense-fp32`` and ``sparse-runtime`` and its agreement with
``dense-fp32`` go to ``accuracy`` (:mod:`sparsebert.bench.accuracy`); ``timing=False``
(``--no-timing``) then skips all timing.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sparsebert.bench.engines import NotInstalled
from sparsebert.errors import InputError
from sparsebert.timing import time_calls

if TYPE_CHECKING:
    from sparsebert.bench.accuracy import EvalData

CPU_PATHS = ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "onnxruntime-opt-fp32",
             "onnxruntime-int8", "openvino-fp32", "openvino-int8", "sparse-runtime", "sparse-runtime-int8",
             "engine", "engine-int8", "deepsparse")
# The paths of sparsebert's own runtime (a conversion each: kernel choices in ``conversions`` / ``conversions_int8``).
SPARSE_RUNTIME_PATHS = ("sparse-runtime", "sparse-runtime-int8")
# The whole-encoder engine (sparsebert.engine): fp32 CSR / dense matrices, or int8 1x4 blocks.
ENGINE_PATHS = ("engine", "engine-int8")
CUDA_PATHS = ("cuda-dense-fp32", "cuda-dense-fp16", "cuda-sparse-runtime")
# fp32 paths: "vs fp32" is against the fastest of these (per device).
FP32_PATHS = ("dense-fp32", "onnxruntime-fp32", "onnxruntime-opt-fp32", "openvino-fp32")
CUDA_FP32_PATHS = ("cuda-dense-fp32",)
# Paths that ignore sparsity: "vs best dense" is against the fastest of these (per device).
DENSE_PATHS = {"dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "onnxruntime-opt-fp32",
               "onnxruntime-int8", "openvino-fp32", "openvino-int8", "cuda-dense-fp32", "cuda-dense-fp16"}
LINEARS_FREE = "linears-free"  # label of the non-linear-part model in the interleaved group (not a path)
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
                     "amx_tile", "amx_bf16", "amx_int8")
DEFAULT_DEEPSPARSE_VENV = Path(".cache/venv-deepsparse")
CALIBRATION_INPUTS = 8  # synthetic calibration inputs (batch 1 x seq) of openvino-int8


@dataclass
class PathResult:
    """Timings of one path at one batch size (times in ms; ratios are speed-ups, > 1 = faster).

    ``status`` is ``"ok"``, ``"skipped"`` (a package is not installed, or no device) or
    ``"failed"`` (it raised); ``skipped`` then holds the reason and nothing is timed.
    ``vs_fp32`` is against the fastest fp32 path of the batch size, ``vs_best_dense`` against the
    fastest dense path, ``vs_torch_fp32`` against torch eager fp32 (``dense-fp32``); their names
    are in the result's ``summary``. ``x_linears_free`` = ``median_ms`` / the non-linear part's ms.
    """

    path: str
    batch: int
    seq: int
    uses_sparsity: bool
    status: str = "ok"
    times_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    seq_per_s: float | None = None
    vs_fp32: float | None = None
    vs_best_dense: float | None = None
    vs_torch_fp32: float | None = None
    x_linears_free: float | None = None
    max_abs_diff: float | None = None
    timing: str = ""
    note: str = ""
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fill_stats(self) -> None:
        """Median, p10 / p90 (ms) and sequences/s from ``times_ms``; nothing when no call was timed."""
        if self.times_ms:
            self.median_ms = statistics.median(self.times_ms)
            self.p10_ms = _percentile(self.times_ms, 10)
            self.p90_ms = _percentile(self.times_ms, 90)
            self.seq_per_s = self.batch / (self.median_ms / 1e3)


def _percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def make_inputs(model: nn.Module, batch: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``batch x seq`` random token ids, full attention mask (+ zero token types where used)."""
    from sparsebert.export.onnx import input_names

    g = torch.Generator().manual_seed(seed)
    vocab = int(getattr(model.config, "vocab_size", 30522))
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch, seq), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones(batch, seq, dtype=torch.long)}
    if "token_type_ids" in input_names(model):
        out["token_type_ids"] = torch.zeros_like(ids)
    return out


def _logits(out) -> torch.Tensor:
    if isinstance(out, dict) or hasattr(out, "keys"):
        return out["logits"] if "logits" in out else out["last_hidden_state"]
    return out[0]


def bench_environment(threads: int) -> dict[str, Any]:
    """What :func:`sparsebert.io.environment` records (versions, platform, threads, cores), plus CPU
    model and flags, the sparse kernel's build state, ONNX / OpenVINO versions and load: recorded with every
    benchmark."""
    from sparsebert.io import environment
    from sparsebert.runtime.build import build_error, cpu_flags, cpu_model, load_kernel

    flags = set(cpu_flags())
    env: dict[str, Any] = {
        **environment(), "threads": threads, "cpu_model": cpu_model(),
        "cpu_flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "sparse_kernel": "built" if load_kernel() is not None else f"unavailable: {build_error()}",
        "loadavg_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("onnxruntime", "onnx", "openvino", "nncf"):  # installed versions, without importing them
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            env[dist] = None
    return env


def describe_model(model: nn.Module, seq: int = 128) -> str:
    """One line on the benchmarked model: class, parameters (millions), sparsity of the target matrices.

    Raises:
        UnsupportedArchitectureError: not a supported model.
    """
    from sparsebert.report import sparsity_report

    sp = sparsity_report(model, seq)
    return (f"{type(model).__name__}, {sp['model']['numel'] / 1e6:.1f} M parameters, target matrices "
            f"{sp['targets']['sparsity']:.2%} sparse ({len(sp['matrices'])} matrices)")


def find_deepsparse_python(explicit: str | Path | None = None) -> Path | None:
    """The Python of a DeepSparse venv: ``explicit``, ``$SPARSEBERT_DEEPSPARSE_PYTHON`` or
    ``.cache/venv-deepsparse`` (``make deepsparse``); ``None`` when none is given and the default
    venv does not exist.

    Raises:
        InputError: ``explicit`` or ``$SPARSEBERT_DEEPSPARSE_PYTHON`` is given but is not a file
            (a typo must not silently fall back to another venv).
    """
    for cand, what in ((explicit, "--deepsparse-python"),
                       (os.environ.get("SPARSEBERT_DEEPSPARSE_PYTHON"), "$SPARSEBERT_DEEPSPARSE_PYTHON")):
        if cand:
            if not Path(cand).is_file():
                raise InputError(f"{what} {cand}: no such file (the python of a DeepSparse venv, e.g. "
                                 f"{DEFAULT_DEEPSPARSE_VENV / 'bin' / 'python'} after `make deepsparse`)")
            return Path(cand)
    default = DEFAULT_DEEPSPARSE_VENV / "bin" / "python"
    return default if default.is_file() else None



def _error_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class PathRunners:
    """Builds each bench path's callable for one model, once per model (per batch where it must).

    ``runner(path, inputs)`` gives ``(call, logits_of_last_call, note)`` for any of :data:`CPU_PATHS`
    (torch fp32 / bf16 / dynamic int8, ONNX Runtime fp32 / optimised fp32 / int8, OpenVINO fp32 / int8,
    the sparse runtime fp32 / int8); ``linears_free(inputs)`` the call of the model with its target linears
    stubbed (:mod:`sparsebert.bench.limits`). Exported files (ONNX, quantised graphs) go to ``workdir``.
    :func:`bench_model` uses it for one model's paths; a script timing several models side by side
    builds one per model and times their calls together (:func:`sparsebert.timing.time_calls`).
    """

    def __init__(self, model: nn.Module, threads: int, workdir: Path, log: Callable[[str], None],
                 families: tuple[str, ...] | None, cpu_flags: list[str] | None = None, remeasure: bool = False):
        self.model = model
        self.remeasure = remeasure
        self.threads = threads
        self.workdir = workdir
        self.log = log
        self.families = families
        self.cpu_flags = list(cpu_flags or [])
        self._bf16 = None
        self._int8 = None
        self._onnx: Path | None = None
        self._ort = None
        self._ort_opt: tuple[Any, dict[str, int]] | None = None
        self._ort_int8: tuple[Any, dict[str, int]] | None = None
        self._ov = None
        self._ov_int8: tuple[Any, str] | None = None
        self._linears_free = None
        # path -> tokens -> conversion (seconds, cache use, the ConversionReport's dict)
        self.conversions: dict[str, dict[int, dict]] = {p: {} for p in SPARSE_RUNTIME_PATHS}
        #: engine path -> the EncoderEngine (built once per model: it does not depend on the batch)
        self.engines: dict[str, Any] = {}
        self.warnings: list[str] = []

    def onnx_file(self) -> Path:
        if self._onnx is None:
            from sparsebert.export.onnx import export_onnx

            self.log("exporting ONNX (dense graph) ...")
            self._onnx = export_onnx(self.model, self.workdir / "model.onnx")
        return self._onnx

    def _ort_optimised(self) -> tuple[Any, dict[str, int]]:
        """The optimised graph's session and its fusion counts (built once)."""
        if self._ort_opt is None:
            from sparsebert.bench.engines import eager_copy, ort_optimize, require
            from sparsebert.export.onnx import export_onnx, ort_session

            require("onnx", "onnxruntime")
            self.log("exporting ONNX with eager attention and running ORT's transformer optimiser ...")
            eager = export_onnx(eager_copy(self.model), self.workdir / "model-eager.onnx")
            fused = ort_optimize(eager, self.workdir / "model-ort-opt.onnx", self.model.config)
            missing = [op for op, alts in (("Attention", ("Attention", "MultiHeadAttention")),
                                           ("SkipLayerNormalization", ("SkipLayerNormalization",)),
                                           ("Gelu", ("BiasGelu", "FastGelu", "Gelu")))
                       if not any(fused.get(a) for a in alts)]
            if missing:
                self.warnings.append(f"onnxruntime-opt-fp32: ORT's optimiser fused no {', '.join(missing)} "
                                     f"(fused: {_counts(fused) or 'nothing'}): not the fully optimised graph")
            self._ort_opt = (ort_session(self.workdir / "model-ort-opt.onnx", threads=self.threads), fused)
        return self._ort_opt

    def _ort_quantised(self) -> tuple[Any, dict[str, int]]:
        if self._ort_int8 is None:
            from sparsebert.bench.engines import ort_quantize
            from sparsebert.export.onnx import ort_session

            self._ort_optimised()
            self.log("quantising the optimised graph (ORT quantize_dynamic, QInt8) ...")
            ops = ort_quantize(self.workdir / "model-ort-opt.onnx", self.workdir / "model-ort-int8.onnx")
            self._ort_int8 = (ort_session(self.workdir / "model-ort-int8.onnx", threads=self.threads), ops)
        return self._ort_int8

    def _openvino(self, int8: bool, seq: int):
        from sparsebert.bench.engines import openvino_int8, openvino_read, require

        require("openvino")
        if self._ov is None:
            self.log("reading the ONNX file into OpenVINO ...")
            self._ov = openvino_read(self.onnx_file())
        if not int8:
            return self._ov, ""
        if self._ov_int8 is None:
            require("nncf")
            self.log(f"quantising for OpenVINO with NNCF ({CALIBRATION_INPUTS} calibration inputs) ...")
            names = [i.get_any_name() for i in self._ov.inputs]
            calib = [{n: v.numpy() for n, v in make_inputs(self.model, 1, seq, seed=1000 + i).items() if n in names}
                     for i in range(CALIBRATION_INPUTS)]
            self._ov_int8 = openvino_int8(self._ov, calib)
        return self._ov_int8

    def linears_free(self, inputs: dict[str, torch.Tensor]) -> Callable[[], Any]:
        """One call of the model with its target linears stubbed out (:mod:`sparsebert.bench.limits`)."""
        if self._linears_free is None:
            from sparsebert.bench.limits import linears_free_model

            self._linears_free = linears_free_model(self.model)
        m = self._linears_free
        return lambda: m(**inputs)

    def runner(self, path: str, inputs: dict[str, torch.Tensor]) -> tuple[Callable[[], Any], Callable[[], torch.Tensor], str]:
        """``(call, logits_of_last_call, note)``.

        Raises:
            NotInstalled: the path's package is missing. InputError: unknown path.
        """
        last: dict[str, Any] = {}
        if path == "dense-fp32":
            m = self.model
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), "torch eager"
        if path == "dense-bf16":
            if self._bf16 is None:
                self._bf16 = copy.deepcopy(self.model).to(torch.bfloat16).eval()
            m = self._bf16
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), \
                "weights and activations bf16"
        if path == "dynamic-int8":
            if self._int8 is None:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from torch.ao.quantization import quantize_dynamic

                    self._int8 = quantize_dynamic(copy.deepcopy(self.model), {nn.Linear}, dtype=torch.qint8).eval()
            m = self._int8
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), \
                "int8 weights, activations quantised per call"
        if path in ("onnxruntime-fp32", "onnxruntime-opt-fp32", "onnxruntime-int8"):
            from sparsebert.bench.engines import int8_kernel_note, require

            require("onnx", "onnxruntime")
            if path == "onnxruntime-fp32":
                if self._ort is None:
                    from sparsebert.export.onnx import ort_session

                    self._ort = ort_session(self.onnx_file(), threads=self.threads)
                sess, note = self._ort, "dense graph, ORT_ENABLE_ALL"
            elif path == "onnxruntime-opt-fp32":
                sess, fused = self._ort_optimised()
                note = f"ORT transformer optimiser (bert); fused: {_counts(fused) or 'nothing'}"
            else:
                sess, ops = self._ort_quantised()
                note = (f"quantize_dynamic QInt8 of the optimised graph: {_counts(ops)}; "
                        f"{int8_kernel_note(self.cpu_flags)}")
            feeds = {i.name: inputs[i.name].numpy() for i in sess.get_inputs()}
            return (lambda: last.__setitem__("o", sess.run(None, feeds))), \
                (lambda: torch.from_numpy(np.array(last["o"][0])).float()), note
        if path in ("openvino-fp32", "openvino-int8"):
            from sparsebert.bench.engines import int8_kernel_note, openvino_compile

            int8 = path == "openvino-int8"
            ov_model, method = self._openvino(int8, int(inputs["input_ids"].shape[1]))
            import openvino
            names = [i.get_any_name() for i in ov_model.inputs]
            feeds = {n: inputs[n].numpy() for n in names}
            req, precision = openvino_compile(ov_model, {n: tuple(v.shape) for n, v in feeds.items()}, self.threads,
                                              None if int8 else "f32")
            note = f"OpenVINO {openvino.get_version().split('-')[0]}, static shapes, inference precision {precision}"
            if int8:
                note = f"{method}; {note}; {int8_kernel_note(self.cpu_flags)}"
            return (lambda: req.infer(feeds)), \
                (lambda: torch.from_numpy(np.array(req.get_output_tensor(0).data)).float()), note
        if path in SPARSE_RUNTIME_PATHS:
            from sparsebert.runtime import convert
            from sparsebert.runtime.kernels import INT8_FAMILIES

            int8 = path == "sparse-runtime-int8"
            families = self.families
            if families and not int8:  # --kernel sbk-int8 is for the int8 path; fp32 keeps the rest (or dense)
                families = tuple(f for f in families if f not in INT8_FAMILIES) or ("dense",)
            tokens = int(inputs["input_ids"].numel())
            m = copy.deepcopy(self.model)
            t0 = time.perf_counter()
            # kernel choices from the on-disk cache where it has them (remeasure: timed again, cache rewritten)
            rep = convert(m, tokens=tokens, families=families, int8=int8, cache=True, remeasure=self.remeasure,
                          log=None)
            conv_s = time.perf_counter() - t0
            conv = rep.to_dict()
            self.conversions[path][tokens] = {"seconds": round(conv_s, 2), "source": _choice_source(conv), **conv}
            note = f"kernels: {_counts(rep.counts())}"
            if int8:
                note += f"; int8 SIMD path {rep.int8_isa}"
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), note
        if path in ENGINE_PATHS:
            eng = self.engine(path)
            counts = ", ".join(f"{k} x{v}" for k, v in sorted(eng.report.counts().items()))
            note = (f"whole-encoder engine ({eng.report.isa} build): {counts}; attention {eng.report.attention_dtype} "
                    f"(ATen SDPA per sequence)")
            if path == "engine-int8":
                note += f"; int8 SIMD path {eng.report.int8_isa}"
            return (lambda: last.__setitem__("o", eng(**inputs))), (lambda: _logits(last["o"]).float()), note
        raise InputError(f"unknown path {path!r}; known: {list(CPU_PATHS + CUDA_PATHS)}")

    def engine(self, path: str):
        """The :class:`~sparsebert.engine.EncoderEngine` of an engine path (built on first use)."""
        if path not in self.engines:
            from sparsebert.engine import EncoderEngine

            self.engines[path] = EncoderEngine(self.model, int8=path == "engine-int8")
        return self.engines[path]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()) if v)


def _choice_source(conv: dict) -> str:
    """Where a conversion's kernel choices came from: ``"cache"`` (every matrix's choice read from the
    cache file, nothing timed), ``"measured"`` (nothing read from the file) or ``"mixed"``."""
    if conv["timed"] == 0 and conv["from_cache"]:
        return "cache"
    return "mixed" if conv["from_cache"] else "measured"


def _cuda_runner(path: str, model: nn.Module, inputs: dict[str, torch.Tensor],
                 families: tuple[str, ...] | None) -> tuple[Callable[[], Any], Callable[[], torch.Tensor], str]:
    """CUDA paths (only when a GPU is present); ``(call, logits_of_last_call, note)``.

    Raises:
        NotInstalled: no CUDA device.
    """
    if not torch.cuda.is_available():
        raise NotInstalled("no CUDA device")
    dev = torch.device("cuda")
    feeds = {k: v.to(dev) for k, v in inputs.items()}
    m = copy.deepcopy(model).to(dev)
    note = "fp32"
    if path == "cuda-dense-fp16" or path == "cuda-sparse-runtime":
        m = m.half()
        note = "fp16"
    if path == "cuda-sparse-runtime":
        from sparsebert.runtime import convert

        fams = families or ("torch-csr", "torch-bsr", "2:4")
        rep = convert(m, tokens=int(inputs["input_ids"].numel()), families=fams)
        note = "fp16; kernels: " + ", ".join(f"{k} x{v}" for k, v in sorted(rep.counts().items()))
    last: dict[str, Any] = {}
    return (lambda: last.__setitem__("o", m(**feeds))), (lambda: _logits(last["o"]).float().cpu()), note


def _deepsparse(python: Path, onnx_file: Path, inputs: dict[str, torch.Tensor], threads: int, warmup: int,
                min_iters: int, max_iters: int, budget_s: float, workdir: Path) -> tuple[list[float], np.ndarray, dict]:
    import onnx

    names = [i.name for i in onnx.load(str(onnx_file), load_external_data=False).graph.input]
    npz = workdir / "deepsparse_inputs.npz"
    np.savez(npz, *[inputs[n].numpy().astype(np.int64) for n in names])
    out = workdir / "deepsparse_out.npz"
    worker = Path(__file__).with_name("deepsparse_worker.py")
    cmd = [str(python), str(worker), "--onnx", str(onnx_file), "--inputs", str(npz), "--threads", str(threads),
           "--warmup", str(warmup), "--min-iters", str(min_iters), "--max-iters", str(max_iters),
           "--budget", str(budget_s), "--out", str(out)]
    env = {**os.environ, "NM_DISABLE_ANALYTICS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"DeepSparse worker failed (exit {proc.returncode}): {' | '.join(tail)}")
    res = json.loads(lines[-1])
    logits = np.load(res["output"])["arr_0"]
    return res["times_s"], logits, {"deepsparse": res["version"], "compile_s": round(res["compile_s"], 2)}


class _Guard:
    """Wraps a timed callable: the first exception is kept (and later calls skipped), so that one
    path failing mid-timing does not lose the others' rounds."""

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.error: BaseException | None = None

    def __call__(self) -> None:
        if self.error is None:
            try:
                self.fn()
            except Exception as err:
                self.error = err


def _time_group(rows: dict[str, PathResult], calls: dict[str, Callable[[], Any]], *, warmup: int, min_iters: int,
                max_iters: int, budget_s: float, timing: str, sync: Callable[[], None] = lambda: None
                ) -> dict[str, list[float]]:
    """Time ``calls`` interleaved (rotating order); fill the rows' times; returns label -> ms."""
    if not calls:
        return {}
    guarded = {label: _Guard(fn) for label, fn in calls.items()}
    times = time_calls(guarded, warmup=warmup, min_iters=min_iters, max_iters=max_iters,
                       budget_s=budget_s * len(guarded), sync=sync, rotate=True)
    out: dict[str, list[float]] = {}
    for label, g in guarded.items():
        if g.error is not None:
            if label in rows:
                rows[label].status, rows[label].skipped = "failed", f"failed while timed: {_error_line(g.error)}"
            continue
        out[label] = [t * 1e3 for t in times[label]]
        if label in rows:
            rows[label].times_ms = out[label]
            rows[label].timing = timing
    return out


@torch.inference_mode()
def bench_model(model: nn.Module, *, batches: tuple[int, ...] = (1, 32), seq: int = 128, threads: int | None = None,
                paths: tuple[str, ...] | None = None, deepsparse_python: str | Path | None = None,
                warmup: int = 3, min_iters: int = 10, max_iters: int = 50, budget_s: float = 20.0,
                families: tuple[str, ...] | None = None, cuda: bool | None = None, workdir: str | Path | None = None,
                limit: bool = True, remeasure_kernels: bool = False, eval_data: EvalData | None = None,
                timing: bool = True, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Measure every path at every batch size; see the module docstring.

    Args:
        model: a (pruned) supported encoder; benchmarked in fp32 on the CPU.
        batches: batch sizes (sequences per call).
        seq: tokens per sequence.
        threads: intra-op threads of every path (default: torch's current count).
        paths: paths to run (default: every CPU path, plus the CUDA paths on a GPU); ``dense-fp32``
            is always run (the reference for logits).
        warmup / min_iters / max_iters: untimed calls, and timed rounds at least / at most, per path.
        budget_s: seconds per path after which no round starts once ``min_iters`` are done.
        limit: also time the linears-free model and report the physical limit.
        families: kernel families of the sparse runtime paths (``sbk-int8`` only affects
            ``sparse-runtime-int8``).
        remeasure_kernels: time the sparse runtime's kernel candidates again instead of taking the
            choices from the kernel-choice cache (the new choices are written to it).
        eval_data: also run these eval split(s) (:func:`sparsebert.bench.accuracy.load_eval_data`,
            truncated to ``seq``) through every path built at the largest batch size and report
            each path's dev metric (:mod:`sparsebert.bench.accuracy`); CUDA paths and DeepSparse
            are not evaluated (a warning says so).
        timing: False: time nothing (no latency, no linears-free model, no DeepSparse); the paths
            are only built, checked against torch fp32 and (with ``eval_data``) evaluated.
    Returns:
        A JSON-able dict: ``environment``, ``settings``, ``results`` (batch -> list of
        :class:`PathResult` dicts), ``summary`` (batch -> ``reference_fp32`` and
        ``reference_best_dense`` (``{"path", "median_ms"}`` or None), ``dense_not_measured``
        (requested dense paths that were skipped or failed, with the reason), ``timing`` (which
        labels were interleaved, rounds) and ``limit`` (:func:`sparsebert.bench.limits.physical_limit`)),
        ``warnings``, ``conversions`` and ``conversions_int8`` (tokens -> the kernel choices of
        ``sparse-runtime`` / ``sparse-runtime-int8``: ``seconds`` the conversion took, ``source``
        ``"cache"`` / ``"measured"`` / ``"mixed"``, ``from_cache``, ``timed``, ``counts``, per matrix),
        ``wall_s`` (seconds of the whole bench) and, with ``eval_data``, ``accuracy``
        (:func:`sparsebert.bench.accuracy.accuracy_result`).
    Raises:
        InputError: an unknown path or kernel family (a ``ValueError``), a batch size or ``seq``
            < 1, or bad timing settings (or ``timing=False`` without ``eval_data``); with ``eval_data``,
            a model without a head for its task. A path that fails while running is reported as
            failed, with the error, and does not stop the others.
    """
    if not batches or any(int(b) < 1 for b in batches):
        raise InputError(f"batch sizes must be >= 1; got {list(batches)}")
    if seq < 1:
        raise InputError(f"seq must be >= 1; got {seq}")
    if warmup < 0 or min_iters < 1 or max_iters < min_iters or budget_s < 0:
        raise InputError(f"bench needs warmup >= 0, 1 <= min_iters <= max_iters and budget >= 0; got "
                         f"warmup={warmup}, min_iters={min_iters}, max_iters={max_iters}, budget={budget_s}")
    if not timing and eval_data is None:
        raise InputError("timing=False (--no-timing) measures nothing without eval_data (--task)")
    t_start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model = model.float().eval()
    if eval_data is not None:
        from sparsebert.bench.accuracy import check_model

        check_model(model, eval_data)
    acc_batch = max(int(b) for b in batches) if eval_data is not None else None
    accuracy: dict[str, Any] | None = None
    wanted = tuple(dict.fromkeys(paths)) if paths else CPU_PATHS
    unknown = set(wanted) - set(CPU_PATHS + CUDA_PATHS)
    if unknown:
        raise InputError(f"unknown path(s) {sorted(unknown)}; known: {list(CPU_PATHS + CUDA_PATHS)}")
    if families:
        from sparsebert.runtime.kernels import check_families

        check_families(families, int8=True)  # before any path runs (a failing path is only reported)
    use_cuda = torch.cuda.is_available() if cuda is None else cuda
    if use_cuda and not paths:
        wanted = wanted + CUDA_PATHS
    if "dense-fp32" not in wanted:
        wanted = ("dense-fp32",) + wanted
    ds_python = find_deepsparse_python(deepsparse_python)
    env = bench_environment(threads)
    warnings_: list[str] = []
    tmp = tempfile.TemporaryDirectory(prefix="sparsebert-bench-") if workdir is None else None
    work = Path(workdir) if workdir is not None else Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    builder = PathRunners(model, threads, work, log, families, env.get("cpu_flags"), remeasure=remeasure_kernels)
    results: dict[str, list[dict]] = {}
    summary: dict[str, dict] = {}
    problems: dict[tuple[str, str], list[int]] = {}
    timing_kw = dict(warmup=warmup, min_iters=min_iters, max_iters=max_iters, budget_s=budget_s)
    try:
        for batch in batches:
            inputs = make_inputs(model, batch, seq)
            rows = {p: PathResult(path=p, batch=batch, seq=seq, uses_sparsity=p not in DENSE_PATHS) for p in wanted}
            cpu_calls: dict[str, Callable[[], Any]] = {}
            cuda_calls: dict[str, Callable[[], Any]] = {}
            logits_fns: dict[str, Callable[[], torch.Tensor]] = {}
            ref: torch.Tensor | None = None
            for path in wanted:
                if path == "deepsparse":
                    continue
                r = rows[path]
                log(f"batch {batch} x {seq}: building {path} ...")
                try:
                    if path.startswith("cuda-"):
                        call, logits_of, r.note = _cuda_runner(path, model, inputs, families)
                    else:
                        call, logits_of, r.note = builder.runner(path, inputs)
                    call()  # the untimed check call: its logits against torch fp32
                    out = logits_of()
                    if path == "dense-fp32":
                        ref = out
                    elif ref is not None:
                        r.max_abs_diff = float((out.cpu() - ref).abs().max())
                    (cuda_calls if path.startswith("cuda-") else cpu_calls)[path] = call
                    logits_fns[path] = logits_of
                except NotInstalled as err:
                    r.status, r.skipped = "skipped", str(err)
                except Exception as err:  # one broken path must not lose the others' numbers
                    r.status, r.skipped = "failed", f"failed: {_error_line(err)}"
                if r.skipped:
                    log(f"  {path}: {r.skipped}")
            if eval_data is not None and batch == acc_batch:
                accuracy, acc_warnings = _dev_metrics(model, eval_data, wanted, rows, cpu_calls, logits_fns, inputs,
                                                      log, builder.conversions["sparse-runtime-int8"].get(batch * seq))
                warnings_ += acc_warnings
            lin_label = None
            if limit and timing:
                try:
                    lin = builder.linears_free(inputs)
                    lin()
                    cpu_calls[LINEARS_FREE] = lin
                    lin_label = LINEARS_FREE
                except Exception as err:
                    warnings_.append(f"batch {batch}: the linears-free model failed ({_error_line(err)}); "
                                     f"no physical limit")
            if not timing:
                cpu_calls, cuda_calls = {}, {}
            interleaved = list(cpu_calls)
            if interleaved:
                log(f"batch {batch} x {seq}: timing {', '.join(interleaved)} interleaved ...")
            cpu_times = _time_group(rows, cpu_calls, timing=f"interleaved ({len(interleaved)} callables, "
                                    "rotating order)", **timing_kw)
            cuda_times = _time_group(rows, cuda_calls, timing=f"interleaved with the other CUDA paths "
                                     f"({len(cuda_calls)}, rotating order)", sync=torch.cuda.synchronize
                                     if cuda_calls else (lambda: None), **timing_kw)
            if "deepsparse" in rows and not timing:
                rows["deepsparse"].status, rows["deepsparse"].skipped = "skipped", "not run: timing off (--no-timing)"
            elif "deepsparse" in rows:
                r = rows["deepsparse"]
                try:
                    if ds_python is None:
                        raise NotInstalled("not installed: DeepSparse (`make deepsparse`, own venv in "
                                           ".cache/venv-deepsparse, or --deepsparse-python)")
                    log(f"batch {batch} x {seq}: deepsparse (own process, own block) ...")
                    times, logits, extra = _deepsparse(ds_python, builder.onnx_file(), inputs, threads, warmup,
                                                       min_iters, max_iters, budget_s, work)
                    r.times_ms = [t * 1e3 for t in times]
                    r.timing = "own block (separate process, after the interleaved paths)"
                    r.extra.update(extra)
                    env["deepsparse"] = extra["deepsparse"]
                    r.note = f"DeepSparse {extra['deepsparse']} on the ONNX file, num_cores={threads}"
                    if ref is not None:
                        r.max_abs_diff = float((torch.from_numpy(logits).float() - ref).abs().max())
                except NotInstalled as err:
                    r.status, r.skipped = "skipped", str(err)
                except Exception as err:
                    r.status, r.skipped = "failed", f"failed: {_error_line(err)}"
            for path in ENGINE_PATHS:  # where the engine's time goes: one profiled call, after the timing
                if timing and path in cpu_calls:
                    prof = builder.engine(path).profile(inputs["input_ids"], inputs.get("attention_mask"),
                                                        inputs.get("token_type_ids"), calls=3)
                    rows[path].extra["profile_ms"] = {k: round(v, 3) for k, v in prof.items()}
            for r in rows.values():
                r.fill_stats()
                if r.median_ms:
                    log(f"  {r.path}: median {r.median_ms:.2f} ms, p10-p90 {r.p10_ms:.2f}-{r.p90_ms:.2f} ms "
                        f"({len(r.times_ms)} calls)")
                if r.skipped:
                    problems.setdefault((r.path, r.skipped), []).append(batch)
            row_list = list(rows.values())
            refs = _ratios(row_list)
            lim = None
            if lin_label and lin_label in cpu_times:
                from sparsebert.bench.limits import physical_limit

                lim = physical_limit(model, seq, cpu_times[lin_label], rows["dense-fp32"].median_ms,
                                     {r.path: r.median_ms for r in row_list if r.median_ms and not r.path.startswith("cuda-")})
                for r in row_list:
                    r.x_linears_free = lim["x_linears_free"].get(r.path)
            rounds = len(next(iter(cpu_times.values()))) if cpu_times else 0
            summary[str(batch)] = {
                **refs,
                "timing": {"interleaved": interleaved, "rounds": rounds, "order": "rotating",
                           "cuda_interleaved": list(cuda_calls),
                           "own_block": ["deepsparse"] if rows.get("deepsparse") and rows["deepsparse"].times_ms else []},
                "limit": lim,
            }
            conversions = {p: c[batch * seq] for p, c in builder.conversions.items() if batch * seq in c}
            # untimed (timing=False): no reference paths, nothing to warn about them
            warnings_ += _warnings(row_list, refs if timing else {}, batch, seq, conversions)
            results[str(batch)] = [asdict(r) for r in row_list]
    finally:
        if tmp is not None:
            tmp.cleanup()
    warnings_ = _problem_warnings(problems) + list(dict.fromkeys(builder.warnings)) + warnings_
    env["loadavg_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    out = {
        "environment": env,
        "settings": {"batches": list(batches), "seq": seq, "threads": threads, "warmup": warmup, "min_iters": min_iters,
                     "max_iters": max_iters, "budget_s": budget_s, "paths": list(wanted), "timed": timing,
                     "timing": ("all in-process paths of a batch size (and the linears-free model) interleaved, "
                                "one call each per round in rotating order; deepsparse in its own block") if timing
                     else "not measured (timing off: accuracy only)",
                     "kernel_families": list(families) if families else "all",
                     "kernel_choices": "remeasured" if remeasure_kernels else "cache"},
        "results": results,
        "summary": summary,
        "warnings": warnings_,
        "conversions": {str(k): v for k, v in builder.conversions["sparse-runtime"].items()},
        "conversions_int8": {str(k): v for k, v in builder.conversions["sparse-runtime-int8"].items()},
        "engines": {p: e.report.to_dict() for p, e in builder.engines.items()},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if accuracy is not None:
        out["accuracy"] = accuracy
    return out


def _dev_metrics(model: nn.Module, data: EvalData, wanted: tuple[str, ...], rows: dict[str, PathResult],
                 cpu_calls: dict[str, Callable[[], Any]], logits_fns: dict[str, Callable[[], torch.Tensor]],
                 inputs: dict[str, torch.Tensor], log: Callable[[str], None],
                 int8_conversion: dict | None) -> tuple[dict[str, Any], list[str]]:
    """Every built CPU path on ``data``'s eval split(s) (:mod:`sparsebert.bench.accuracy`), with the
    callables that are timed: ``inputs`` is overwritten per dev batch and restored afterwards.
    ``model``: the benchmarked model (a bi-encoder's encoder: its pair scores come from
    :func:`_biencoder_scorer`). ``int8_conversion``: the conversion of ``sparse-runtime-int8`` (how many
    matrices run an int8 kernel goes into the int8 check)."""
    from sparsebert.bench.accuracy import DEEPSPARSE_REASON, accuracy_result, path_logits, side_arrays

    batch, seq = inputs["input_ids"].shape
    bi = data.head == "bi-encoder"
    # split -> side ("" for a cross-encoder; "a" / "b": a bi-encoder's first / second texts) -> [N, seq] arrays
    arrays = {s: side_arrays(f, seq, data.pad_token_id, data.head) for s, f in data.splits.items()}
    scorer = _biencoder_scorer(model, data) if bi else None
    saved = {k: v.clone() for k, v in inputs.items()}
    logits: dict[str, dict[str, np.ndarray]] = {}
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    not_evaluated: dict[str, str] = {}
    try:
        for path in wanted:
            r = rows[path]
            if path == "deepsparse":
                not_evaluated[path] = DEEPSPARSE_REASON
            elif r.skipped:
                not_evaluated[path] = r.skipped
            elif path.startswith("cuda-"):
                not_evaluated[path] = "not evaluated: CUDA paths copy their inputs to the device once"
            elif path in cpu_calls:
                sizes = ", ".join(f"{len(f)} examples" for f in data.splits.values())
                log(f"{data.task.name} dev ({sizes}): {path} ...")
                try:
                    if bi:
                        out = {s: {side: path_logits(cpu_calls[path], logits_fns[path], inputs, a, pool=True)
                                   for side, a in sides.items()} for s, sides in arrays.items()}
                        embeddings[path] = {s: np.concatenate([e["a"], e["b"]]) for s, e in out.items()}
                        with torch.no_grad():
                            logits[path] = {s: scorer(torch.from_numpy(e["a"]), torch.from_numpy(e["b"])).float().numpy()
                                            for s, e in out.items()}
                    else:
                        logits[path] = {s: path_logits(cpu_calls[path], logits_fns[path], inputs, sides[""])
                                        for s, sides in arrays.items()}
                except Exception as err:  # reported, the other paths go on
                    not_evaluated[path] = f"failed on the dev set: {_error_line(err)}"
    finally:
        for k, v in inputs.items():
            v.copy_(saved[k])
    acc, warnings = accuracy_result(data, logits, not_evaluated, list(wanted), batch=batch, seq=seq,
                                    embeddings=embeddings if bi else None)
    check = acc["int8_check"]
    if check is not None and int8_conversion is not None:
        from sparsebert.runtime.kernels import INT8_FAMILIES

        counts = int8_conversion["counts"]
        check["int8_matrices"] = sum(counts.get(f, 0) for f in INT8_FAMILIES)
        check["matrices"] = sum(counts.values())
        if not check["int8_matrices"]:
            warnings.append("accuracy: sparse-runtime-int8 chose no int8 kernel (kernels: "
                            f"{_counts(counts)}): its check says nothing about the int8 kernels")
    return acc, warnings


def _biencoder_scorer(model: nn.Module, data: EvalData) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The pair score of a saved bi-encoder (``model``: its encoder, loaded from ``data.model_dir``):
    ``score(u [N, hidden], v [N, hidden])`` -> ``[N, 1]`` cosines (regression) or ``[N, classes]`` logits of its
    saved head (:meth:`sparsebert.biencoder.BiEncoder.score`, the head read from the directory's
    ``biencoder_head.safetensors`` by :func:`sparsebert.biencoder.from_encoder`).

    Raises:
        BiEncoderError: the directory does not hold a bi-encoder, or its head file is missing or bad (named).
    """
    from sparsebert.biencoder import from_encoder

    return from_encoder(model, data.model_dir).score


def _ref(rows: list[PathResult]) -> dict[str, Any] | None:
    best = min(rows, key=lambda r: r.median_ms) if rows else None
    return {"path": best.path, "median_ms": best.median_ms} if best else None


def _ratios(rows: list[PathResult]) -> dict[str, Any]:
    """Fill each timed row's ``vs_fp32`` / ``vs_best_dense`` / ``vs_torch_fp32`` (per device) and
    return the references: ``reference_fp32`` (fastest of :data:`FP32_PATHS`), ``reference_best_dense``
    (fastest of :data:`DENSE_PATHS`), ``dense_not_measured`` (``[{"path", "reason"}]``: requested dense
    paths without a time) and, where CUDA paths ran, the same three with a ``cuda_`` prefix."""
    out: dict[str, Any] = {}
    timed = [r for r in rows if r.median_ms]
    for prefix, on_dev, fp32_paths, torch_fp32 in (("", lambda p: not p.startswith("cuda-"), FP32_PATHS, "dense-fp32"),
                                                   ("cuda_", lambda p: p.startswith("cuda-"), CUDA_FP32_PATHS,
                                                    "cuda-dense-fp32")):
        dev_rows = [r for r in rows if on_dev(r.path)]
        if prefix and not dev_rows:
            continue
        fp32 = _ref([r for r in timed if r.path in fp32_paths])
        best = _ref([r for r in timed if r.path in DENSE_PATHS and on_dev(r.path)])
        base = next((r for r in timed if r.path == torch_fp32), None)
        for r in timed:
            if not on_dev(r.path):
                continue
            r.vs_fp32 = fp32["median_ms"] / r.median_ms if fp32 else None
            r.vs_best_dense = best["median_ms"] / r.median_ms if best else None
            r.vs_torch_fp32 = base.median_ms / r.median_ms if base else None
        out[f"{prefix}reference_fp32"] = fp32
        out[f"{prefix}reference_best_dense"] = best
        out[f"{prefix}dense_not_measured"] = [{"path": r.path, "reason": r.skipped} for r in dev_rows
                                              if r.path in DENSE_PATHS and not r.median_ms]
    return out


def _problem_warnings(problems: dict[tuple[str, str], list[int]]) -> list[str]:
    """One warning per (path, reason) of a skipped or failed path, with its batch sizes."""
    out = []
    for (path, reason), batches in problems.items():
        what = "skipped" if not reason.startswith("failed") else "FAILED"
        reason = reason.removeprefix("failed: ").removeprefix("failed ")
        out.append(f"{path} {what} (batch {', '.join(map(str, batches))}): {reason}")
    return out


def _warnings(rows: list[PathResult], refs: dict[str, Any], batch: int, seq: int,
              conversions: dict[str, dict] | None) -> list[str]:
    """The batch size's warnings; ``conversions``: sparse runtime path -> its conversion dict."""
    out = []
    dense = [r.path for r in rows if r.median_ms and r.path in DENSE_PATHS]
    if dense:
        out.append(f"batch {batch}: {', '.join(dense)} ignore sparsity: they multiply every pruned (zero) weight")
    for prefix in ("", "cuda_"):
        missing = refs.get(f"{prefix}dense_not_measured")
        best = refs.get(f"{prefix}reference_best_dense")
        if missing:
            names = ", ".join(m["path"] for m in missing)
            out.append(f"batch {batch}: best dense = {best['path'] if best else 'none'} among the dense paths measured; "
                       f"requested but not measured: {names} (the ratio does not include them)")
    best = refs.get("reference_best_dense")
    rated = [r for path in SPARSE_RUNTIME_PATHS + ENGINE_PATHS for r in rows
             if r.path == path and r.median_ms and r.vs_best_dense is not None]
    paying = max((r for r in rated if r.vs_best_dense >= 1.0), key=lambda r: r.vs_best_dense, default=None)
    for sparse in rated:
        if best and sparse.vs_best_dense < 1.0:
            slower = f"{sparse.path} is {1 / sparse.vs_best_dense:.2f}x slower than {best['path']}"
            if paying is None:
                out.append(f"batch {batch} x {seq}: sparsity does NOT pay: {slower}")
            else:  # another sparse path pays: say so, so that this path's line is not read as the verdict
                out.append(f"batch {batch} x {seq}: {slower}; sparsity pays on {paying.path} "
                           f"({paying.vs_best_dense:.2f}x faster than {best['path']})")
    for path, conversion in (conversions or {}).items():
        dense_left = conversion["counts"].get("dense", 0)
        if dense_left:
            out.append(f"batch {batch}: {path}: {dense_left} of {len(conversion['matrices'])} matrices stayed dense "
                       f"(no sparse kernel measured faster)")
    return out


def write_outputs(result: dict[str, Any], out: str | Path, command: str, title: str) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md`` (both with the exact command), atomically."""
    from sparsebert.bench.render import markdown
    from sparsebert.io import write_json_atomic, write_text_atomic

    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".json", ".md") else out
    result = {"command": command, "title": title, **result}
    write_json_atomic(stem.with_suffix(".json"), result)
    write_text_atomic(stem.with_suffix(".md"), markdown(result))
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def command_line(params: dict[str, Any] | None = None, command: str = "bench") -> str:
    """The command as typed (:func:`sparsebert.io.invoked_command`); when not run as the ``sparsebert``
    CLI (tests, a Python caller), rebuilt from the parsed ``params``."""
    import shlex

    from sparsebert.io import invoked_command

    typed = invoked_command()
    if typed is not None:
        return typed
    parts = ["sparsebert", command]
    for name, value in (params or {}).items():
        if value is None or value is False or value == []:
            continue
        flag = "--" + name.replace("_", "-")
        if name == "model":
            parts.append(str(value))
        elif value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                parts += [flag, str(v)]
        else:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(a) for a in parts)
