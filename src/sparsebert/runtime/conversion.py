"""Convert a pruned model for inference: each pruned linear gets the kernel measured fastest.

For every target matrix (:func:`sparsebert.targets.prunable_linears`) the available kernels
(:func:`sparsebert.runtime.kernels.candidates`: the dense ``nn.Linear`` itself, sparsebert's CSR
kernel with several tile shapes, torch CSR/BSR, MKL, 2:4 on CUDA) are timed on a random input of
the real shape (``tokens`` x ``in_features``) and the fastest replaces the module. A sparse
kernel that is slower than dense is not used: the matrix stays a plain ``nn.Linear``.

With ``int8=True`` the sparse-int8 kernels (:mod:`sparsebert.runtime.int8`: int8 weights in 1x4
blocks, activations quantised per token) are timed too; they change the numerics, so they are
never considered otherwise.

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (transformers'
``"sdpa"`` implementation) where the family has it, eager otherwise (MPNet); ``attention="eager"``
opts out (:mod:`sparsebert.runtime.attention`). The report says which implementation runs.

Choices are cached on disk (``$SPARSEBERT_CACHE/kernel_choices.json``) per machine (CPU model and
flags, torch version, kernel build; up to 8 machines per file) and per signature (device, dtype, shape, density to 0.5 %,
tokens, threads, precision, kernel families), so the same shapes are measured once: a second
conversion of the same model on the same machine, e.g. ``sparsebert.load(path, runtime=True)`` in
a new process, re-uses the choices without timing anything. The file is re-read and merged just
before it is written, so that concurrent processes do not drop each other's entries.
``remeasure=True`` ignores the cached choices, times every distinct matrix again and writes the new
choices over the old ones (``sparsebert bench --remeasure-kernels``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from sparsebert.errors import InputError
from sparsebert.runtime.attention import check_attention, set_attention
from sparsebert.runtime.kernels import DENSE, FAMILIES, INT8_FAMILIES, Candidate, candidates, check_families, time_candidates
from sparsebert.targets import prunable_linears

CACHE_VERSION = 2  # 2: entries per machine; signatures carry the precision (fp32 / int8)
Timer = Callable[[dict[str, nn.Module], torch.Tensor], dict[str, float]]


@dataclass
class MatrixChoice:
    """The kernel chosen for one matrix and the measurements behind it."""

    name: str
    shape: list[int]
    nnz: int
    density: float
    kernel: str
    times_ms: dict[str, float]
    cached: bool
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def speedup_vs_dense(self) -> float:
        return self.times_ms[DENSE] / self.times_ms[self.kernel] if self.times_ms.get(self.kernel) else 1.0


@dataclass
class ConversionReport:
    """What :func:`convert` did, matrix by matrix."""

    tokens: int
    threads: int
    device: str
    matrices: list[MatrixChoice]
    cache_path: str | None
    #: int8 kernels were allowed (``convert(..., int8=True)``)
    int8: bool = False
    #: the int8 kernel's SIMD path in this build (``avx2``, ``avx512-vnni``, ...); None without int8
    int8_isa: str | None = None
    #: attention implementation the model runs after conversion (``"sdpa"``, ``"eager"``, or
    #: ``"sparsebert_sdpa_bf16"``; :mod:`sparsebert.runtime.attention`)
    attention: str | None = None
    #: dtype of the attention core: ``"float32"``, or ``"bfloat16"`` with ``attention_dtype=torch.bfloat16``
    attention_dtype: str = "float32"
    #: why ``attention`` differs from the request (e.g. MPNet has no SDPA path), else None
    attention_note: str | None = None
    #: matrices whose choice was read from the cache file (timed in an earlier conversion)
    from_cache: int = 0
    #: distinct signatures timed in this conversion (each timed once, its result shared by every
    #: matrix of that signature)
    timed: int = 0
    #: the cached choices were ignored and every signature timed again (``remeasure=True``)
    remeasured: bool = False

    def counts(self) -> dict[str, int]:
        """How many matrices got each kernel family."""
        out: dict[str, int] = {}
        for m in self.matrices:
            fam = m.kernel.split("[")[0]
            out[fam] = out.get(fam, 0) + 1
        return out

    def to_dict(self) -> dict:
        """JSON-able: ``cached`` counts the matrices that timed nothing themselves (choice from the cache
        file, or shared with an identical matrix timed earlier in this conversion); ``from_cache`` only
        those read from the file; ``timed`` the distinct signatures timed now."""
        return {"tokens": self.tokens, "threads": self.threads, "device": self.device, "cache_path": self.cache_path,
                "int8": self.int8, "int8_isa": self.int8_isa, "attention": self.attention,
                "attention_dtype": self.attention_dtype, "attention_note": self.attention_note, "counts": self.counts(),
                "cached": sum(m.cached for m in self.matrices), "from_cache": self.from_cache, "timed": self.timed,
                "remeasured": self.remeasured, "matrices": [asdict(m) for m in self.matrices]}


def machine_key(device: torch.device) -> str:
    """Identifies the hardware and software that measurements are valid for."""
    from sparsebert.runtime import build

    parts = [torch.__version__, device.type]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    else:
        parts += [build.cpu_model(), hashlib.sha256(" ".join(build.cpu_flags()).encode()).hexdigest()[:12]]
        try:
            parts.append(build._build_key())
        except OSError:
            parts.append("no-source")
    return "|".join(parts)


def default_cache_path() -> Path:
    """``$SPARSEBERT_KERNEL_CACHE``, else ``$SPARSEBERT_CACHE/kernel_choices.json`` (``~/.cache/sparsebert``)."""
    import os

    from sparsebert.runtime.build import cache_dir

    explicit = os.environ.get("SPARSEBERT_KERNEL_CACHE")
    return Path(explicit) if explicit else cache_dir() / "kernel_choices.json"


#: machines whose choices one cache file keeps (a home directory shared by several hosts)
MAX_MACHINES = 8


def _read_cache_file(path: Path) -> dict[str, dict]:
    """``{machine: entries}`` of a cache file ({} when missing, unreadable, corrupt or of another version)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("machines"), dict):
        return {}
    return {m: e for m, e in data["machines"].items() if isinstance(e, dict)}


def _load_cache(path: Path, machine: str) -> dict:
    return dict(_read_cache_file(path).get(machine, {}))


def _save_cache(path: Path, machine: str, new: dict) -> None:
    """Merge ``new`` entries of ``machine`` into the file as it is now (other machines' entries kept,
    the :data:`MAX_MACHINES` most recently written machines only)."""
    from sparsebert.io import write_json_atomic

    machines = _read_cache_file(path)
    mine = {**machines.pop(machine, {}), **new}
    machines[machine] = mine  # last: most recently written
    keep = dict(list(machines.items())[-MAX_MACHINES:])
    try:
        write_json_atomic(path, {"version": CACHE_VERSION, "machines": keep})
    except OSError:
        pass  # a read-only cache directory only costs re-measuring next time


def signature(weight: torch.Tensor, tokens: int, threads: int, families: tuple[str, ...], int8: bool = False) -> str:
    """Cache key of one matrix: device, dtype, shape, density (to 0.5 %), tokens, threads, precision
    (``fp32`` or ``int8``: whether int8 kernels were allowed), families."""
    nnz = int((weight != 0).sum())
    density = round(nnz / weight.numel() / 0.005) * 0.005
    return (f"{weight.device.type}|{str(weight.dtype).replace('torch.', '')}|{weight.shape[0]}x{weight.shape[1]}|"
            f"d={density:.3f}|tokens={tokens}|threads={threads}|prec={'int8' if int8 else 'fp32'}|"
            f"{','.join(sorted(families))}")


def target_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{"layer.{i}.{role}": module}`` at the target positions, whatever their type (after
    :func:`convert` they are runtime modules or the original ``nn.Linear``)."""
    from sparsebert.targets import ROLES, architecture_of, encoder_layers

    spec = architecture_of(model)
    return {f"layer.{i}.{role}": layer.get_submodule(spec.roles[role])
            for i, layer in enumerate(encoder_layers(model)) for role in ROLES}


def _replace(model: nn.Module, module: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if child is module:
                setattr(parent, child_name, new)
                return
    raise ValueError("module to replace not found in model")


@torch.no_grad()
def convert(model: nn.Module, *, tokens: int = 128, families: tuple[str, ...] | None = None, int8: bool = False,
            cache: bool = True, cache_path: str | Path | None = None, remeasure: bool = False, rounds: int = 15,
            timer: Timer | None = None, min_speedup: float = 1.0, seed: int = 0,
            log: Callable[[str], None] | None = None, attention: str | None = "sdpa",
            attention_dtype: torch.dtype | None = None) -> ConversionReport:
    """Replace every pruned target linear of ``model`` by its fastest kernel, in place.

    Args:
        model: a supported transformers model (any head), on the device it will run on.
        tokens: batch x sequence length to measure at (e.g. 128 for one 128-token sequence).
        families: kernel families to consider (default: all of
            :data:`sparsebert.runtime.kernels.FAMILIES` that are available).
        int8: also time the sparse-int8 kernels (:data:`sparsebert.runtime.kernels.INT8_FAMILIES`,
            :class:`sparsebert.runtime.int8.Int8BlockLinear`) and use them where fastest. Opt-in:
            int8 changes the outputs (error bound in :mod:`sparsebert.runtime.int8`).
        cache: read and write measured choices in ``cache_path``.
        cache_path: default ``$SPARSEBERT_CACHE/kernel_choices.json`` (``~/.cache/sparsebert``).
        remeasure: ignore the cached choices and time every distinct matrix again; with ``cache``
            the new choices replace the old ones in the file.
        rounds: timed calls per candidate.
        timer: ``(modules, x) -> {label: seconds}``; default
            :func:`sparsebert.runtime.kernels.time_candidates` (tests inject fixed timings).
        min_speedup: a sparse kernel must beat dense by this factor to be used.
        seed: seed of the random measurement input.
        log: called with one line per matrix.
        attention: ``"sdpa"`` (default: ``F.scaled_dot_product_attention``, logits within 1e-4 of
            eager; families without it, MPNet, keep eager and the report's ``attention_note`` says
            so), ``"eager"`` (transformers' matmul + softmax), or None (leave the model's).
        attention_dtype: None (fp32), or ``torch.bfloat16`` to run the attention core in bf16
            (opt-in, ``attention="sdpa"`` only; for CPUs with AVX512-BF16 / AMX, slower on AVX2).
    Returns:
        A :class:`ConversionReport` (``attention`` says which implementation runs). The model is put
        in eval mode.
    Raises:
        UnsupportedArchitectureError: the model has no known prunable linears.
        InputError: unknown kernel family, an int8 family without ``int8=True``, ``tokens`` < 1,
            or a bad ``attention`` / ``attention_dtype`` (see
            :func:`sparsebert.runtime.attention.check_attention`; raised before anything is timed)
            (a ``ValueError``).
    """
    if tokens < 1:
        raise InputError(f"tokens must be >= 1, got {tokens}")
    check_families(families, int8)
    check_attention(attention, attention_dtype)
    model.eval()
    attn = set_attention(model, attention, attention_dtype)
    fams = tuple(families) if families else FAMILIES
    if int8:
        fams += tuple(f for f in INT8_FAMILIES if f not in fams)
    timer = timer or (lambda mods, x: time_candidates(mods, x, rounds=rounds))
    targets = prunable_linears(model)
    first = next(iter(targets.values()))
    device = first.weight.device
    threads = torch.get_num_threads()
    path = Path(cache_path) if cache_path else default_cache_path()
    machine = machine_key(device) if cache else ""
    entries = _load_cache(path, machine) if cache and not remeasure else {}
    on_disk = set(entries)
    from_cache = 0
    measured: dict[str, dict] = {}
    gen = torch.Generator(device="cpu").manual_seed(seed)
    choices: list[MatrixChoice] = []
    for name, lin in targets.items():
        w = lin.weight.detach()
        nnz = int((w != 0).sum())
        cands, skipped = candidates(lin, tokens, fams, int8=int8)
        by_label: dict[str, Candidate] = {c.label: c for c in cands}
        sig = signature(w, tokens, threads, fams, int8)
        entry = entries.get(sig)
        cached = bool(entry and entry.get("kernel") in by_label)
        from_cache += cached and sig in on_disk and sig not in measured
        if cached:
            times = {k: float(v) for k, v in entry["times_ms"].items()}
            label = entry["kernel"]
        else:
            x = torch.randn(tokens, lin.in_features, generator=gen).to(device=device, dtype=w.dtype)
            modules = {c.label: c.build(lin) for c in cands}
            secs = timer(modules, x)
            times = {k: float(v) * 1e3 for k, v in secs.items()}
            label = min(times, key=times.get)
            if label != DENSE and times[DENSE] < min_speedup * times[label]:
                label = DENSE
            entries[sig] = measured[sig] = {"kernel": label, "times_ms": times}
            del modules
        new = by_label[label].build(lin)
        if new is not lin:
            _replace(model, lin, new)
        choice = MatrixChoice(name=name, shape=list(w.shape), nnz=nnz, density=nnz / w.numel(), kernel=label,
                              times_ms=times, cached=cached, skipped=skipped)
        choices.append(choice)
        if log:
            log(f"{name}: {label} ({times[label]:.3f} ms vs dense {times[DENSE]:.3f} ms{', cached' if cached else ''})")
    if cache and measured:
        _save_cache(path, machine, measured)  # merged into the file as it is now (concurrent writers)
    isa = None
    if int8:
        from sparsebert.runtime.build import load_kernel

        ext = load_kernel() if device.type == "cpu" else None
        isa = ext.int8_isa() if ext is not None else "torch-reference"
    return ConversionReport(tokens=tokens, threads=threads, device=str(device), matrices=choices,
                            cache_path=str(path) if cache else None, int8=int8, int8_isa=isa,
                            from_cache=from_cache, timed=len(measured), remeasured=remeasure,
                            attention=attn.implementation, attention_dtype=attn.dtype, attention_note=attn.note)
