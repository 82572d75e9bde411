"""Side-by-side inference benchmark of a pruned model: dense paths vs the sparse runtime.

Paths, all measured in one process, one after the other, on the same inputs:

========================  =====================================================================
``dense-fp32``            the model as it is (torch, fp32) — the reference for outputs
``dense-bf16``            the model cast to bf16 (torch; oneDNN AVX512-BF16 / AMX where present)
``dynamic-int8``          ``torch.ao.quantization.quantize_dynamic`` on every ``nn.Linear``
``onnxruntime-fp32``      the dense ONNX graph (:mod:`sparsebert.export.onnx`) in ONNX Runtime
``sparse-runtime``        :func:`sparsebert.runtime.convert` (kernel per matrix by measurement)
``deepsparse``            optional: DeepSparse on the same ONNX file, in its own venv
========================  =====================================================================

and on CUDA, when a GPU is present: ``cuda-dense-fp32``, ``cuda-dense-fp16``,
``cuda-sparse-runtime`` (torch CSR/BSR and 2:4 semi-structured where the pattern allows, fp16).

For every batch size the inputs are ``batch x seq`` random token ids with a full attention
mask. Each path: ``warmup`` untimed calls, then timed calls until ``max_iters`` or, once
``min_iters`` are done, ``budget_s`` seconds. Reported: median and p90 latency, sequences/s,
the ratio to dense fp32 and to the best path that ignores sparsity, and the max |logit
difference| to dense fp32.
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
from typing import Any

import numpy as np
import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.timing import time_calls

CPU_PATHS = ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "sparse-runtime", "deepsparse")
CUDA_PATHS = ("cuda-dense-fp32", "cuda-dense-fp16", "cuda-sparse-runtime")
DENSE_PATHS = {"dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-fp32", "cuda-dense-fp32", "cuda-dense-fp16"}
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
                     "amx_tile", "amx_bf16", "amx_int8")
DEFAULT_DEEPSPARSE_VENV = Path(".cache/venv-deepsparse")


@dataclass
class PathResult:
    """Timings of one path at one batch size."""

    path: str
    batch: int
    seq: int
    uses_sparsity: bool
    times_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    p90_ms: float | None = None
    seq_per_s: float | None = None
    vs_dense_fp32: float | None = None
    vs_best_dense: float | None = None
    max_abs_diff: float | None = None
    note: str = ""
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
    model and flags, the sparse kernel's build state, ONNX versions and load: recorded with every
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
    for mod in ("onnxruntime", "onnx"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            env[mod] = None
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
    ``.cache/venv-deepsparse`` (``make deepsparse``); ``None`` when there is none."""
    for cand in (explicit, os.environ.get("SPARSEBERT_DEEPSPARSE_PYTHON"), DEFAULT_DEEPSPARSE_VENV / "bin" / "python"):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


class _Paths:
    """Builds each path's callable once per model (per batch where it must)."""

    def __init__(self, model: nn.Module, threads: int, workdir: Path, log: Callable[[str], None],
                 families: tuple[str, ...] | None):
        self.model = model
        self.threads = threads
        self.workdir = workdir
        self.log = log
        self.families = families
        self._bf16 = None
        self._int8 = None
        self._onnx: Path | None = None
        self._ort = None
        self.conversions: dict[int, dict] = {}

    def onnx_file(self) -> Path:
        if self._onnx is None:
            from sparsebert.export.onnx import export_onnx

            self.log("exporting ONNX (dense graph) ...")
            self._onnx = export_onnx(self.model, self.workdir / "model.onnx")
        return self._onnx

    def runner(self, path: str, inputs: dict[str, torch.Tensor]) -> tuple[Callable[[], Any], Callable[[], torch.Tensor], str]:
        """``(call, logits_of_last_call, note)``."""
        last: dict[str, Any] = {}
        if path == "dense-fp32":
            m = self.model
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), ""
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
        if path == "onnxruntime-fp32":
            if self._ort is None:
                from sparsebert.export.onnx import ort_session

                self._ort = ort_session(self.onnx_file(), threads=self.threads)
            sess = self._ort
            feeds = {i.name: inputs[i.name].numpy() for i in sess.get_inputs()}
            return (lambda: last.__setitem__("o", sess.run(None, feeds))), \
                (lambda: torch.from_numpy(last["o"][0]).float()), "dense graph, ORT_ENABLE_ALL"
        if path == "sparse-runtime":
            from sparsebert.runtime import convert

            tokens = int(inputs["input_ids"].numel())
            m = copy.deepcopy(self.model)
            t0 = time.perf_counter()
            # measured afresh in every bench run (no cached choices from another machine state)
            rep = convert(m, tokens=tokens, families=self.families, cache=False, log=None)
            conv_s = time.perf_counter() - t0
            self.conversions[tokens] = {"seconds": round(conv_s, 2), **rep.to_dict()}
            counts = ", ".join(f"{k} x{v}" for k, v in sorted(rep.counts().items()))
            return (lambda: last.__setitem__("o", m(**inputs))), (lambda: _logits(last["o"]).float()), \
                f"kernels: {counts}"
        raise InputError(f"unknown path {path!r}; known: {list(CPU_PATHS + CUDA_PATHS)}")


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


@torch.inference_mode()
def bench_model(model: nn.Module, *, batches: tuple[int, ...] = (1, 32), seq: int = 128, threads: int | None = None,
                paths: tuple[str, ...] | None = None, deepsparse_python: str | Path | None = None,
                warmup: int = 3, min_iters: int = 10, max_iters: int = 50, budget_s: float = 20.0,
                families: tuple[str, ...] | None = None, cuda: bool | None = None, workdir: str | Path | None = None,
                log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Measure every path at every batch size; see the module docstring.

    Returns:
        A JSON-able dict: ``environment``, ``settings``, ``results`` (one list of
        :class:`PathResult` dicts per batch), ``warnings``, ``conversions`` (kernel choices).
    Raises:
        InputError: an unknown path or kernel family (a ``ValueError``). A path that fails while
            running is reported as skipped, with the error, and does not stop the others.
    """
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    model = model.float().eval()
    wanted = tuple(paths) if paths else CPU_PATHS
    unknown = set(wanted) - set(CPU_PATHS + CUDA_PATHS)
    if unknown:
        raise InputError(f"unknown path(s) {sorted(unknown)}; known: {list(CPU_PATHS + CUDA_PATHS)}")
    if families:
        from sparsebert.runtime.kernels import check_families

        check_families(families)  # before any path runs (a failing path is only reported)
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
    builder = _Paths(model, threads, work, log, families)
    results: dict[str, list[dict]] = {}
    try:
        for batch in batches:
            inputs = make_inputs(model, batch, seq)
            rows: list[PathResult] = []
            ref: torch.Tensor | None = None
            for path in wanted:
                r = PathResult(path=path, batch=batch, seq=seq, uses_sparsity=path not in DENSE_PATHS)
                log(f"batch {batch} x {seq}: {path} ...")
                try:
                    if path == "deepsparse":
                        if ds_python is None:
                            r.skipped = ("DeepSparse not installed: `make deepsparse` (own venv in .cache/venv-deepsparse) "
                                         "or --deepsparse-python")
                        else:
                            times, logits, extra = _deepsparse(ds_python, builder.onnx_file(), inputs, threads, warmup,
                                                               min_iters, max_iters, budget_s, work)
                            r.times_ms = [t * 1e3 for t in times]
                            r.extra.update(extra)
                            env["deepsparse"] = extra["deepsparse"]
                            r.note = f"DeepSparse {extra['deepsparse']} on the ONNX file, num_cores={threads}"
                            if ref is not None:
                                r.max_abs_diff = float((torch.from_numpy(logits).float() - ref).abs().max())
                    elif path.startswith("cuda-"):
                        _cuda_path(path, model, inputs, r, warmup, min_iters, max_iters, budget_s, families, ref)
                    else:
                        call, logits_of, note = builder.runner(path, inputs)
                        r.note = note
                        r.times_ms = [t * 1e3 for t in time_calls({path: call}, warmup=warmup, min_iters=min_iters,
                                                                  max_iters=max_iters, budget_s=budget_s)[path]]
                        out = logits_of()
                        if path == "dense-fp32":
                            ref = out
                        elif ref is not None:
                            r.max_abs_diff = float((out - ref).abs().max())
                except Exception as err:  # one broken path must not lose the others' numbers
                    r.skipped = f"failed: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                    log(f"  {path}: {r.skipped}")
                if r.times_ms:
                    r.median_ms = statistics.median(r.times_ms)
                    r.p90_ms = _percentile(r.times_ms, 90)
                    r.seq_per_s = batch / (r.median_ms / 1e3)
                    log(f"  {path}: median {r.median_ms:.2f} ms, p90 {r.p90_ms:.2f} ms ({len(r.times_ms)} calls)")
                rows.append(r)
            _ratios(rows)
            warnings_ += _warnings(rows, batch, seq, builder.conversions.get(batch * seq))
            results[str(batch)] = [asdict(r) for r in rows]
    finally:
        if tmp is not None:
            tmp.cleanup()
    env["loadavg_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "environment": env,
        "settings": {"batches": list(batches), "seq": seq, "threads": threads, "warmup": warmup, "min_iters": min_iters,
                     "max_iters": max_iters, "budget_s": budget_s, "paths": list(wanted),
                     "kernel_families": list(families) if families else "all"},
        "results": results,
        "warnings": warnings_,
        "conversions": {str(k): v for k, v in builder.conversions.items()},
    }


def _ratios(rows: list[PathResult]) -> None:
    timed = {r.path: r for r in rows if r.median_ms}
    base = timed.get("dense-fp32")
    dense = [r for r in timed.values() if r.path in DENSE_PATHS and not r.path.startswith("cuda-")]
    best = min(dense, key=lambda r: r.median_ms) if dense else None
    cuda_dense = [r for r in timed.values() if r.path in DENSE_PATHS and r.path.startswith("cuda-")]
    best_cuda = min(cuda_dense, key=lambda r: r.median_ms) if cuda_dense else None
    for r in timed.values():
        if base:
            r.vs_dense_fp32 = base.median_ms / r.median_ms
        ref = best_cuda if r.path.startswith("cuda-") else best
        if ref:
            r.vs_best_dense = ref.median_ms / r.median_ms
            r.extra["best_dense"] = ref.path


def _warnings(rows: list[PathResult], batch: int, seq: int, conversion: dict | None) -> list[str]:
    out = []
    dense = [r.path for r in rows if not r.skipped and r.path in DENSE_PATHS]
    if dense:
        out.append(f"batch {batch}: {', '.join(dense)} ignore sparsity: they multiply every pruned (zero) weight")
    sparse = next((r for r in rows if r.path == "sparse-runtime" and r.median_ms), None)
    if sparse and sparse.extra.get("best_dense") and sparse.vs_best_dense is not None and sparse.vs_best_dense < 1.0:
        out.append(f"batch {batch} x {seq}: sparsity does NOT pay: the sparse runtime is {1 / sparse.vs_best_dense:.2f}x "
                   f"slower than {sparse.extra['best_dense']}")
    if conversion:
        dense_left = conversion["counts"].get("dense", 0)
        if dense_left:
            out.append(f"batch {batch}: {dense_left} of {len(conversion['matrices'])} matrices stayed dense "
                       f"(no sparse kernel measured faster)")
    return out


def _cuda_path(path: str, model: nn.Module, inputs: dict[str, torch.Tensor], r: PathResult, warmup: int,
               min_iters: int, max_iters: int, budget_s: float, families: tuple[str, ...] | None,
               ref: torch.Tensor | None) -> None:
    """CUDA paths (only when a GPU is present)."""
    if not torch.cuda.is_available():
        r.skipped = "no CUDA device"
        return
    dev = torch.device("cuda")
    feeds = {k: v.to(dev) for k, v in inputs.items()}
    m = copy.deepcopy(model).to(dev)
    if path == "cuda-dense-fp16" or path == "cuda-sparse-runtime":
        m = m.half()
    if path == "cuda-sparse-runtime":
        from sparsebert.runtime import convert

        fams = families or ("torch-csr", "torch-bsr", "2:4")
        rep = convert(m, tokens=int(inputs["input_ids"].numel()), families=fams)
        r.note = "fp16; kernels: " + ", ".join(f"{k} x{v}" for k, v in sorted(rep.counts().items()))
    last: dict[str, Any] = {}
    times = time_calls({path: lambda: last.__setitem__("o", m(**feeds))}, warmup=warmup, min_iters=min_iters,
                       max_iters=max_iters, budget_s=budget_s, sync=torch.cuda.synchronize)[path]
    r.times_ms = [t * 1e3 for t in times]
    if ref is not None:
        r.max_abs_diff = float((_logits(last["o"]).float().cpu() - ref).abs().max())


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
