"""Export to the ``sparse-bitmask`` format of the ``compressed-tensors`` library.

``compressed-tensors`` (Neural Magic / vLLM project; https://github.com/vllm-project/compressed-tensors)
is the checkpoint format of llm-compressor and vLLM. Its ``sparse-bitmask`` compressor stores each
targeted ``nn.Linear`` weight ``[out_features, in_features]`` as four tensors in
``model.safetensors`` (library source: ``compressors/sparse_compressors/sparse_bitmask.py``):

* ``<module>.shape`` — int64 ``[2]``, the dense shape;
* ``<module>.compressed`` — the non-zero values in row-major order, ``[nnz]``, the weight's dtype;
* ``<module>.bitmask`` — uint8 ``[out_features, ceil(in_features / 8)]``, one bit per weight
  (``numpy.packbits``, little-endian bit order);
* ``<module>.row_offsets`` — int64 ``[out_features]``, index into ``compressed`` where each row starts;

every other tensor dense under its Hugging Face name, and in ``config.json``
``quantization_config = {"quant_method": "compressed-tensors", "version": ..., "sparsity_config":
{"format": "sparse-bitmask", "targets": [module names], "global_sparsity": ...,
"sparsity_structure": "unstructured", ...}}``, which ``ModelCompressor.from_pretrained(dir)`` reads.

Everything format-specific is done by the library (``BitmaskConfig``, ``ModelCompressor.compress``
and ``update_config``); sparsebert chooses the targets (the six pruned matrices per layer of
:func:`sparsebert.targets.prunable_linears`), writes atomically, copies the tokenizer and run files,
and writes a model card and ``MANIFEST.json``.

Version note: the sparse-bitmask compressor exists in compressed-tensors 0.12-0.14 and was removed
in 0.15 (newer releases keep only the config class and ignore ``sparsity_config``); 0.14 requires
transformers < 5, so ``sparsebert[ecosystem]`` pins ``compressed-tensors>=0.12,<0.14``. transformers
5 loads compressed-tensors checkpoints only with compressed-tensors >= 0.15, so
``AutoModel.from_pretrained(dir)`` cannot read this directory there (with 0.15+ installed it loads
the four parts as unexpected keys and leaves the target weights *randomly initialised*): load it
with :func:`load_compressed_tensors` (the library's ``ModelCompressor.decompress``).

Round trip: decompressed weights equal the exported ones bit for bit, except that a pruned weight
stored as -0.0 comes back as +0.0 (the bitmask marks ``w != 0``), which compares equal.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsebert.errors import InputError, MissingDependencyError
from sparsebert.pooling import apply_config_pooling

FORMAT = "sparse-bitmask"
WEIGHTS = "model.safetensors"
SUMMARY = "compressed_tensors_export.json"
PARTS = ("shape", "compressed", "bitmask", "row_offsets")
SUPPORTED = "compressed-tensors>=0.12,<0.14"


def require_compressed_tensors():
    """Import ``compressed_tensors`` and check that it still has the sparse-bitmask compressor.

    Returns:
        The ``compressed_tensors`` module.
    Raises:
        MissingDependencyError: the package is missing, or is a version without the sparse-bitmask
            compressor (>= 0.15); the message names the installed version and what to install.
    """
    if importlib.util.find_spec("compressed_tensors") is None:
        raise MissingDependencyError(
            f"--format compressed-tensors needs the compressed-tensors package: pip install 'sparsebert[ecosystem]' "
            f"(or '{SUPPORTED}')")
    import compressed_tensors
    from compressed_tensors.compressors import BaseCompressor

    try:
        BaseCompressor.get_value_from_registry(FORMAT)
    except (KeyError, ValueError):
        raise MissingDependencyError(
            f"compressed-tensors {compressed_tensors.__version__} has no {FORMAT!r} compressor (removed in 0.15); "
            f"install '{SUPPORTED}' (pip install 'sparsebert[ecosystem]')") from None
    return compressed_tensors


def target_modules(model: nn.Module) -> list[str]:
    """Qualified names of the pruned ``nn.Linear`` modules (``bert.encoder.layer.0.attention.self.query``,
    ...): the ``targets`` of the sparsity config.

    Raises:
        UnsupportedArchitectureError: not a supported architecture.
    """
    from sparsebert.targets import qualified_names

    return sorted(p.removesuffix(".weight") for p in qualified_names(model).values())


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@torch.no_grad()
def export_compressed_tensors(model: nn.Module, out: str | Path, *, overwrite: bool = False,
                              source: str | Path | None = None) -> dict[str, Any]:
    """Write ``model`` in compressed-tensors' sparse-bitmask format to ``out`` (atomically).

    Args:
        model: a supported transformers model (CPU) whose target matrices hold exact zeros.
        out: output directory; refused if it exists unless ``overwrite``.
        overwrite: replace an existing ``out``.
        source: the directory the model came from: its tokenizer and run files (``summary.json``,
            ``recipe.yaml``, ...) are copied; dense weight files are not.
    Returns:
        The summary written to ``compressed_tensors_export.json``: library version, targets (count,
        non-zeros, weights, dense bytes, compressed bytes of the four parts), ``global_sparsity``
        (zeros / parameters over the whole model, llm-compressor's definition), file size.
    Raises:
        MissingDependencyError: see :func:`require_compressed_tensors`.
        OutputExistsError, OutputLockedError: see :func:`sparsebert.io.staged_output_dir`.
        UnsupportedArchitectureError: no target matrices for this model.
    """
    ct = require_compressed_tensors()
    from compressed_tensors import BitmaskConfig, ModelCompressor

    from sparsebert.export.checkpoint import _copy_side_files
    from sparsebert.integrity import write_manifest
    from sparsebert.io import staged_output_dir, write_json_atomic
    from sparsebert.modelcard import invoked_command, write_model_card

    model = model.eval()
    targets = target_modules(model)
    params = list(model.parameters())
    numel = sum(p.numel() for p in params)
    global_sparsity = 1.0 - sum(int((p != 0).sum()) for p in params) / max(numel, 1)
    compressor = ModelCompressor(sparsity_config=BitmaskConfig(
        targets=targets, global_sparsity=global_sparsity, sparsity_structure="unstructured"))
    compressed = compressor.compress(model)  # dense state dict -> targets as shape/compressed/bitmask/row_offsets
    missing = [t for t in targets if f"{t}.bitmask" not in compressed]
    if missing:  # the library matched fewer modules than sparsebert targets: never write a partial export
        raise InputError(f"{type(model).__name__}: compressed-tensors did not compress {missing[:3]} "
                         f"({len(missing)} of {len(targets)} target matrices)")
    modules = dict(model.named_modules())
    matrices = []
    for t in targets:
        w = modules[t].weight
        matrices.append({"module": t, "shape": list(w.shape), "nnz": int(compressed[f"{t}.compressed"].numel()),
                         "dense_bytes": _nbytes(w), "compressed_bytes": sum(_nbytes(compressed[f"{t}.{p}"]) for p in PARTS)})
    source = Path(source) if source is not None else None
    with staged_output_dir(out, overwrite) as stage:
        if source is not None and source.is_dir():
            _copy_side_files(source, stage)
        # save_pretrained with the compressed state dict, then update_config: the library's save lifecycle
        model.save_pretrained(stage, state_dict=compressed, safe_serialization=True)
        compressor.update_config(str(stage))
        file = stage / WEIGHTS
        dense = sum(m["dense_bytes"] for m in matrices)
        comp = sum(m["compressed_bytes"] for m in matrices)
        summary = {
            "format": f"compressed-tensors/{FORMAT}", "compressed_tensors": ct.__version__,
            "architecture": type(model).__name__, "source": str(source) if source is not None else None,
            "global_sparsity": global_sparsity,
            "targets": {"count": len(matrices), "nnz": sum(m["nnz"] for m in matrices),
                        "numel": sum(m["shape"][0] * m["shape"][1] for m in matrices),
                        "dense_bytes": dense, "compressed_bytes": comp, "ratio": dense / max(comp, 1)},
            "file_bytes": file.stat().st_size,
            "dense_estimate_bytes": sum(_nbytes(v) for v in model.state_dict().values()),
            "matrices": matrices,
        }
        write_json_atomic(stage / SUMMARY, summary)
        write_model_card(stage, name=Path(out).name, model=model, export={
            "format": f"compressed-tensors {FORMAT}",
            "description": (f"the {len(matrices)} pruned matrices are stored as bitmask + non-zero values + row "
                            f"offsets by the compressed-tensors library ({ct.__version__}), the format of "
                            "llm-compressor and vLLM; `config.json` has the `quantization_config` that "
                            "`ModelCompressor.from_pretrained` reads. transformers 5 cannot load this format "
                            "itself: decompress it with compressed-tensors 0.12-0.13 as below."),
            "load": ["from compressed_tensors import ModelCompressor",
                     "from transformers import AutoConfig, AutoModelForSequenceClassification",
                     f'config = AutoConfig.from_pretrained("{Path(out).name}")',
                     "model = AutoModelForSequenceClassification.from_config(config)",
                     f'ModelCompressor.from_pretrained("{Path(out).name}").decompress("{Path(out).name}", model)',
                     f'# or: sparsebert.export.compressed_tensors.load_compressed_tensors("{Path(out).name}")'],
            "command": invoked_command(), "library_name": "transformers", "tags": ["compressed-tensors", "sparse"],
            "metadata": {"sparsity_format": FORMAT, "compressed_tensors": ct.__version__},
        })
        write_manifest(stage)
    return summary


def export_compressed_tensors_run(run: str | Path, out: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Export a model/run directory (or a sparsebert sparse checkpoint) — see :func:`export_compressed_tensors`.

    Raises:
        MissingDependencyError: compressed-tensors missing or without the sparse-bitmask compressor
            (checked first, before anything is loaded).
        ModelNotFoundError: ``run`` is not a model directory (no ``config.json``).
        OutputExistsError: ``out`` exists and not ``overwrite`` (checked before loading).
        SparseCheckpointError, CorruptCheckpointError, UnsafeCheckpointError: see
            :func:`sparsebert.export.checkpoint.load_any`.
    """
    from sparsebert.export.checkpoint import load_any
    from sparsebert.io import check_output_dir

    require_compressed_tensors()
    check_output_dir(out, overwrite)
    model = load_any(run)
    return export_compressed_tensors(model, out, overwrite=overwrite, source=run)


def load_compressed_tensors(path: str | Path) -> nn.Module:
    """Rebuild the dense model of a compressed-tensors directory with the library's decompressor.

    The model class comes from ``config.json`` (``architectures``); the weights are set by
    ``ModelCompressor.from_pretrained(path).decompress(path, model)``. The returned model is in
    eval mode and its ``config`` no longer has the ``quantization_config`` entry (it holds dense
    weights now).

    Raises:
        MissingDependencyError: see :func:`require_compressed_tensors`.
        ModelNotFoundError: ``path`` has no ``config.json``.
        InputError: ``config.json`` has no compressed-tensors ``sparsity_config`` (naming the file).
    """
    require_compressed_tensors()
    from compressed_tensors import ModelCompressor
    from transformers import AutoConfig

    from sparsebert.export.checkpoint import _model_class
    from sparsebert.models import ModelNotFoundError

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path}: not a model directory (no config.json)")
    compressor = ModelCompressor.from_pretrained(str(path))
    if compressor is None or compressor.sparsity_compressor is None:
        raise InputError(f"{path / 'config.json'}: no compressed-tensors sparsity_config in quantization_config "
                         "(not a compressed-tensors sparse checkpoint)")
    config = AutoConfig.from_pretrained(path)
    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = _model_class(config)(config)
    compressor.decompress(str(path), model)
    return apply_config_pooling(model.eval())
