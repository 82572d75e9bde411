"""Compact sparse checkpoints: export a pruned model, load it back bit for bit.

An export directory holds

* ``model.sparse.safetensors`` — every tensor of the model's state dict: the pruned target
  matrices (:func:`sparsebert.targets.prunable_linears`) in a compressed layout
  (:mod:`sparsebert.export.format`: ``<param>::csr.row_ptr`` / ``::csr.col`` / ``::csr.values``,
  ``<param>::bitmask.mask`` / ``::bitmask.values``, or on request the lossy
  ``<param>::int8-4x1.row_ptr`` / ``.col`` / ``.values`` / ``.scale``), the embedding tables (word,
  position, token type) encoded as ``embeddings`` says (default ``fp16``: ``<param>::fp16.values``;
  ``int8``: ``<param>::int8.values`` + ``.scale``, per row; ``fp32``: as they are), everything else
  dense under its own name, as in the Hugging Face checkpoint. The safetensors metadata carries ``format``, ``format_version``
  (``1``; ``2`` when an encoded table or the int8 layout is present), a JSON ``manifest`` (per matrix:
  layout, shape, dtype, nnz, value dtype, the hash of its stored parts and of the dense matrix it decodes
  to; per dense tensor: its hash; per encoded table (``quantized``): encoding, shape, dtype, part hashes
  and the hash of the table it decodes to) and ``content_sha256``
  (of the canonical manifest, so it covers every tensor's bytes, shape and layout).
* ``config.json`` and the tokenizer / run files of the source (no dense weight file),
* ``sparse_export.json`` — sizes (dense vs compressed, target matrices and whole checkpoint),
  layouts, value dtype, source.
* ``MANIFEST.json`` — size and sha256 of every file (:mod:`sparsebert.integrity`), written last;
  :func:`load` checks the side files with it (the weights file has its own per-tensor hashes).

:func:`load` rebuilds the model without pickle (safetensors only), verifying every hash, shape
and count; with fp32 values and ``embeddings="fp32"`` every weight equals the pruned dense one bit for
bit (signed zeros of pruned entries come back as +0.0, which compares equal). The default fp16
embedding tables come back rounded to fp16 (relative error <= 2^-11 per entry; logits of the tested tiny
models move by < 1e-3), int8 tables by at most half a step of their row's scale.

Size (results/export_size_bert-base_sparse95.json: BERT-base shape, 95 % magnitude sparsity, against its
dense fp32 ``model.safetensors`` of 438.0 MB): fp32 embedding tables 124.1 MB (3.5x, the 93.8 MB word
embedding dominates), the default fp16 tables 76.5 MB (5.7x), fp16 values + int8 tables 44.3 MB (9.9x);
4x1-pruned with the ``int8-4x1`` layout 57.5 MB (7.6x) and with int8 tables 33.7 MB (13.0x)
(``ratio_vs_dense_fp32`` and ``parts_bytes`` in the summary).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsebert.errors import InputError, SparsebertError
from sparsebert.export.format import (
    DENSE_ENCODINGS,
    INT8_4X1,
    PART_SEP,
    SparseFormatError,
    decode,
    decode_dense,
    dtype_name,
    encode,
    encode_dense,
    nbytes,
    tensor_sha256,
    value_dtype,
)
from sparsebert.integrity import MANIFEST, read_manifest, verify_manifest, write_manifest
from sparsebert.io import staged_output_dir, write_json_atomic
from sparsebert.pooling import apply_config_pooling
from sparsebert.targets import qualified_names

WEIGHTS = "model.sparse.safetensors"
SUMMARY = "sparse_export.json"
FORMAT = "sparsebert-sparse"
FORMAT_VERSION = "2"
#: versions this sparsebert reads (``2`` adds encoded embedding tables and the int8-4x1 layout)
FORMAT_VERSIONS = ("1", "2")
#: names of the embedding tables that ``embeddings`` encodes (modules of these names, any family)
EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")
#: dtypes a manifest may name for a decoded tensor
_DECODED_DTYPES = ("float32", "float16", "bfloat16", "float64")
_SKIP_FILES = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "tf_model.h5", "flax_model.msgpack", "log.jsonl", WEIGHTS, SUMMARY, MANIFEST}
_SKIP_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
MB = 1e6


class SparseCheckpointError(SparsebertError, ValueError):
    """A sparse checkpoint cannot be loaded: missing, truncated, corrupt or inconsistent."""


def _canonical(t: torch.Tensor) -> torch.Tensor:
    """-0.0 -> +0.0 (what the sparse encodings reproduce); other values unchanged."""
    return t + 0.0 if t.is_floating_point() else t


def _listed_parts(file, name: str, tag: str, listed: dict, stored: dict, used: set, verify: bool) -> dict:
    """The stored tensors of one manifest entry's parts (``<name><PART_SEP><tag>.<part>``), each checked
    against its manifest record (:func:`_checked`) and added to ``used``.

    Raises:
        SparseCheckpointError: a listed part is missing from the file, or does not match its record.
    """
    parts = {}
    for part, pinfo in listed.items():
        key = f"{name}{PART_SEP}{tag}.{part}"
        if key not in stored:
            raise SparseCheckpointError(f"{file}: {key!r} listed in the manifest is missing")
        used.add(key)
        parts[part] = _checked(file, repr(key), stored[key], pinfo, verify)
    return parts


def _checked(file: Path, what: str, t: torch.Tensor, info: dict, verify: bool) -> torch.Tensor:
    """Return ``t`` if its shape, dtype (and, with ``verify``, sha256) match the manifest entry.

    Raises:
        SparseCheckpointError: naming ``file`` and the tensor.
    """
    if list(t.shape) != info["shape"] or dtype_name(t.dtype) != info["dtype"]:
        raise SparseCheckpointError(f"{file}: {what} is {dtype_name(t.dtype)} {list(t.shape)}, "
                                    f"manifest says {info['dtype']} {info['shape']}")
    if verify and tensor_sha256(t) != info["sha256"]:
        raise SparseCheckpointError(f"{file}: {what}: sha256 mismatch (corrupt)")
    return t


def _content_hash(manifest: dict) -> str:
    """SHA-256 of the canonical manifest JSON (which holds every tensor's hash, shape and layout)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _copy_side_files(src: Path, dst: Path) -> list[str]:
    copied = []
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in _SKIP_FILES and not f.name.endswith(_SKIP_SUFFIXES) and not f.name.startswith("."):
            shutil.copy2(f, dst / f.name)
            copied.append(f.name)
    return copied


def embedding_tables(model: nn.Module) -> list[str]:
    """State-dict names of the model's embedding tables (``nn.Embedding`` modules named as in
    :data:`EMBEDDING_TABLES`: word, position and token type embeddings of every supported family)."""
    return [f"{n}.weight" for n, m in model.named_modules()
            if isinstance(m, nn.Embedding) and n.rsplit(".", 1)[-1] in EMBEDDING_TABLES]


@torch.no_grad()
def export_model(model: nn.Module, out: str | Path, *, values: str = "fp32", layout: str = "auto",
                 embeddings: str = "fp16", overwrite: bool = False,
                 source: str | Path | None = None) -> dict[str, Any]:
    """Write ``model`` as a compact sparse checkpoint directory (atomically).

    Args:
        model: a supported transformers model whose target matrices hold exact zeros.
        out: output directory; refused if it exists unless ``overwrite``.
        values: value dtype of the compressed matrices: ``fp32`` (lossless), ``fp16``, ``bf16``.
        layout: ``auto`` (smaller of CSR / bitmask per matrix), ``csr``, ``bitmask`` or ``int8-4x1`` (lossy:
            int8 4x1 blocks with per-row scales, what the engine's int8 4x1 kernel reads; ``values`` does not
            apply; matrices whose rows are not a multiple of 4 get ``auto``).
        embeddings: storage of the embedding tables (:func:`embedding_tables`): ``fp16`` (default), ``int8``
            (per-row scales) or ``fp32`` (lossless).
        overwrite: replace an existing ``out``.
        source: directory the model came from: its config, tokenizer and run files are copied
            and its dense weight file size is recorded.
    Returns:
        The summary written to ``sparse_export.json``.
    Raises:
        OutputExistsError: ``out`` exists and not ``overwrite``.
        InputError: bad ``values`` / ``layout`` / ``embeddings``, or no target matrix (a ``ValueError``).
        UnsupportedArchitectureError: not a supported model.
    """
    value_dtype(values)
    if embeddings not in DENSE_ENCODINGS:
        raise InputError(f"embeddings must be one of {list(DENSE_ENCODINGS)}, got {embeddings!r}")
    targets = {v: k for k, v in qualified_names(model).items()}  # param name -> layer.i.role
    tables = set(embedding_tables(model)) if embeddings != "fp32" else set()
    state = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    manifest: dict[str, Any] = {"sparse": {}, "dense": {}}
    quantized: dict[str, Any] = {}
    matrices, encoded_tables = [], []
    seen: dict[int, str] = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if name in targets:
            enc = encode(t, layout=layout, values=values)
            for part, pt in enc.parts.items():
                tensors[f"{name}{PART_SEP}{enc.layout}.{part}"] = pt
            if enc.layout == INT8_4X1:  # what load() will rebuild
                decoded = decode(name, enc.layout, enc.shape, t.dtype, enc.nnz, enc.parts)
            else:
                decoded = _canonical(t.to(enc.parts["values"].dtype).to(t.dtype))
            manifest["sparse"][name] = {
                "target": targets[name], "layout": enc.layout, "shape": list(enc.shape), "dtype": dtype_name(t.dtype),
                "values": "int8" if enc.layout == INT8_4X1 else values, "nnz": enc.nnz,
                "parts": {p: {"dtype": dtype_name(pt.dtype), "shape": list(pt.shape), "sha256": tensor_sha256(pt)}
                          for p, pt in enc.parts.items()},
                "sha256": hashlib.sha256("".join(tensor_sha256(pt) for pt in enc.parts.values()).encode()).hexdigest(),
                "decoded_sha256": tensor_sha256(decoded),
            }
            matrices.append({"name": targets[name], "param": name, "shape": list(enc.shape), "nnz": enc.nnz,
                             "layout": enc.layout, "dense_bytes": nbytes(t), "dense_fp32_bytes": t.numel() * 4,
                             "compressed_bytes": enc.nbytes})
        elif name in tables and t.is_floating_point() and t.dim() == 2:
            parts = encode_dense(t, embeddings)
            for part, pt in parts.items():
                tensors[f"{name}{PART_SEP}{embeddings}.{part}"] = pt
            quantized[name] = {
                "encoding": embeddings, "shape": list(t.shape), "dtype": dtype_name(t.dtype),
                "parts": {p: {"dtype": dtype_name(pt.dtype), "shape": list(pt.shape), "sha256": tensor_sha256(pt)}
                          for p, pt in parts.items()},
                "decoded_sha256": tensor_sha256(decode_dense(name, embeddings, list(t.shape), t.dtype, parts)),
            }
            encoded_tables.append({"param": name, "shape": list(t.shape), "encoding": embeddings,
                                   "dense_bytes": nbytes(t), "dense_fp32_bytes": t.numel() * 4,
                                   "stored_bytes": sum(nbytes(pt) for pt in parts.values())})
        else:
            # safetensors refuses shared storage (tied weights): store an independent copy.
            key = t.untyped_storage().data_ptr() if t.numel() else -1
            t = t.clone() if key in seen else t.contiguous()
            seen.setdefault(key, name)
            tensors[name] = t
            manifest["dense"][name] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "sha256": tensor_sha256(t)}
    if not manifest["sparse"]:
        raise InputError(f"{type(model).__name__}: no target matrices to compress")
    if quantized:
        manifest["quantized"] = quantized
    # version 1 where nothing needs version 2, so that older sparsebert reads it
    version = "2" if quantized or any(m["layout"] == INT8_4X1 for m in matrices) else "1"
    content = _content_hash(manifest)
    meta = {"format": FORMAT, "format_version": version, "manifest": json.dumps(manifest, sort_keys=True),
            "content_sha256": content}
    from safetensors.torch import save_file

    source = Path(source) if source is not None else None
    with staged_output_dir(out, overwrite) as stage:
        copied = _copy_side_files(source, stage) if source is not None and source.is_dir() else []
        config = copy.deepcopy(model.config)
        config.architectures = [type(model).__name__]
        config.save_pretrained(stage)
        save_file(tensors, str(stage / WEIGHTS), metadata=meta)
        dense_file = None
        if source is not None:
            for cand in ("model.safetensors", "pytorch_model.bin"):
                if (source / cand).is_file():
                    dense_file = source / cand
                    break
        t_dense = sum(m["dense_bytes"] for m in matrices)
        t_fp32 = sum(m["dense_fp32_bytes"] for m in matrices)
        t_comp = sum(m["compressed_bytes"] for m in matrices)
        plain = sum(nbytes(t) for n, t in tensors.items() if n in manifest["dense"])
        e_stored = sum(e["stored_bytes"] for e in encoded_tables)
        e_dense = sum(e["dense_bytes"] for e in encoded_tables)
        other = plain + e_stored  # everything but the target matrices, as stored
        fp32_all = sum(t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in state.values())
        file_bytes = (stage / WEIGHTS).stat().st_size
        summary = {
            "format": FORMAT, "format_version": version, "values": values, "layout": layout,
            "embeddings": embeddings,
            "content_sha256": content, "source": str(source) if source is not None else None,
            "architecture": type(model).__name__,
            "targets": {"count": len(matrices), "nnz": sum(m["nnz"] for m in matrices),
                        "numel": sum(m["shape"][0] * m["shape"][1] for m in matrices),
                        "dense_bytes": t_dense, "dense_fp32_bytes": t_fp32, "compressed_bytes": t_comp,
                        "ratio_vs_dense_fp32": t_fp32 / max(t_comp, 1),
                        "layouts": {lay: sum(m["layout"] == lay for m in matrices)
                                    for lay in ("csr", "bitmask", INT8_4X1)}},
            "embedding_tables": {"encoding": embeddings, "tables": encoded_tables, "dense_bytes": e_dense,
                                 "stored_bytes": e_stored},
            "other_tensors_bytes": other,
            "checkpoint": {"dense_file": str(dense_file) if dense_file else None,
                           "dense_file_bytes": dense_file.stat().st_size if dense_file else None,
                           "dense_estimate_bytes": t_dense + plain + e_dense,
                           "dense_fp32_bytes": fp32_all,
                           "sparse_file_bytes": file_bytes,
                           "ratio_vs_dense_fp32": fp32_all / file_bytes,
                           # what the sparse file holds, by kind (header: the safetensors header with the manifest)
                           "parts_bytes": {"target_matrices": t_comp, "embedding_tables": e_stored,
                                           "other_tensors": plain, "header": file_bytes - t_comp - other}},
            "copied_files": copied,
            "matrices": matrices,
        }
        ck = summary["checkpoint"]
        ck["ratio"] = (ck["dense_file_bytes"] or ck["dense_estimate_bytes"]) / ck["sparse_file_bytes"]
        write_json_atomic(stage / SUMMARY, summary)
        _write_card(stage, Path(out).name, model, summary)
        write_manifest(stage)
    return summary


def _write_card(stage: Path, name: str, model: nn.Module, summary: dict) -> None:
    """The export's ``README.md`` model card (:mod:`sparsebert.modelcard`)."""
    from sparsebert.modelcard import invoked_command, write_model_card

    t = summary["targets"]
    write_model_card(stage, name=name, model=model, export={
        "format": f"sparsebert sparse checkpoint ({summary['values']} values)",
        "description": (f"`{WEIGHTS}` holds the {t['count']} pruned matrices as CSR or bitmask + values "
                        f"({t['dense_fp32_bytes'] / MB:.2f} MB dense fp32 -> {t['compressed_bytes'] / MB:.2f} MB), "
                        f"the embedding tables as {summary.get('embeddings', 'fp32')} and "
                        "every other tensor dense, with SHA-256 hashes; it loads with sparsebert, not with "
                        "`transformers` alone."),
        "load": ["import sparsebert", f'model = sparsebert.load("{name}")                  # dense weights, bit for bit',
                 f'model = sparsebert.load("{name}", runtime=True)    # pruned linears on sparse kernels'],
        "command": invoked_command(), "library_name": "sparsebert", "tags": ["sparse"],
        "metadata": {"values": summary["values"], "content_sha256": summary["content_sha256"]},
    })


def export_run(run_dir: str | Path, out: str | Path, *, values: str = "fp32", layout: str = "auto",
               embeddings: str = "fp16", overwrite: bool = False) -> dict[str, Any]:
    """Export a saved model / run directory (anything ``from_pretrained`` loads) — see :func:`export_model`.

    Raises:
        ModelNotFoundError: ``run_dir`` is not a model directory.
    """
    from sparsebert.models import ModelNotFoundError

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ModelNotFoundError(f"{run_dir}: not a model directory (no config.json)")
    from sparsebert.io import check_output_dir

    check_output_dir(out, overwrite)  # fail before the (slow) load
    model = _load_hf(run_dir)
    return export_model(model, out, values=values, layout=layout, embeddings=embeddings, overwrite=overwrite,
                        source=run_dir)


def _model_class(config):
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            return cls
    return transformers.AutoModelForSequenceClassification


def _load_hf(run_dir: Path) -> nn.Module:
    """A ``from_pretrained`` directory, loaded safely (manifest verified, safetensors only).

    Raises:
        CorruptCheckpointError, UnsafeCheckpointError, CorruptModelError: see
            :func:`sparsebert.models.check_local_model` and :func:`sparsebert.models.model_file_errors`.
    """
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    from sparsebert.models import check_local_model, model_file_errors

    safe = check_local_model(run_dir)
    with model_file_errors(run_dir):
        config = AutoConfig.from_pretrained(run_dir)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with model_file_errors(run_dir):
            model = _model_class(config).from_pretrained(run_dir, **safe).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    return apply_config_pooling(model)


def read_header(path: str | Path) -> tuple[dict, dict]:
    """``(metadata, manifest)`` of a sparse checkpoint directory or file: the safetensors header only,
    no tensor is read.

    ``metadata`` is the header's string table (``format``, ``format_version``, ``manifest``,
    ``content_sha256``); ``manifest`` is its ``manifest`` field parsed, ``{"sparse": {param: entry},
    "dense": {param: entry}}``. (The ``MANIFEST.json`` of the directory's side files is read by
    :func:`sparsebert.integrity.read_manifest`.)

    Raises:
        SparseCheckpointError: missing file, unreadable header, not a sparsebert checkpoint, or a
            ``manifest`` field that is missing, not JSON or not of that shape (naming the file and field).
    """
    from safetensors import safe_open

    file = _weights_file(path)
    try:
        with safe_open(str(file), "pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise SparseCheckpointError(f"{file}: not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise SparseCheckpointError(f"{file}: not a sparsebert sparse checkpoint (metadata format={meta.get('format')!r})")
    if meta.get("format_version") not in FORMAT_VERSIONS:
        raise SparseCheckpointError(f"{file}: format_version {meta.get('format_version')!r} is not supported "
                                    f"(this sparsebert reads {', '.join(FORMAT_VERSIONS)})")
    if "manifest" not in meta:
        raise SparseCheckpointError(f"{file}: metadata field 'manifest' is missing")
    try:
        manifest = json.loads(meta["manifest"])
    except ValueError as err:
        raise SparseCheckpointError(f"{file}: metadata field 'manifest' is not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise SparseCheckpointError(f"{file}: metadata field 'manifest' must be a JSON object, "
                                    f"got {type(manifest).__name__}")
    for key in ("sparse", "dense"):
        if not isinstance(manifest.get(key), dict):
            raise SparseCheckpointError(f"{file}: metadata field 'manifest': entry {key!r} must be an object "
                                        f"(parameter name -> tensor description), got {manifest.get(key)!r:.60}")
    if not isinstance(manifest.get("quantized", {}), dict):
        raise SparseCheckpointError(f"{file}: metadata field 'manifest': entry 'quantized' must be an object "
                                    f"(parameter name -> encoded table), got {manifest.get('quantized')!r:.60}")
    return meta, manifest


def _weights_file(path: str | Path) -> Path:
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise SparseCheckpointError(f"{file}: not found (not a sparse checkpoint directory)")
    return file


def _read_checked(path: str | Path, verify: bool) -> tuple[Path, dict, dict[str, torch.Tensor],
                                                           dict[str, tuple[dict, dict[str, torch.Tensor]]]]:
    """``(file, manifest, dense tensors, {sparse name: (manifest entry, parts)})``, every stored tensor's
    shape, dtype (and with ``verify`` its hash and the manifest's) checked against the manifest."""
    from safetensors import safe_open

    file = _weights_file(path)
    meta, manifest = read_header(file)
    if verify and _content_hash(manifest) != meta.get("content_sha256"):
        raise SparseCheckpointError(f"{file}: manifest does not match content_sha256 (metadata edited or corrupt)")
    try:
        with safe_open(str(file), "pt") as f:
            stored = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise SparseCheckpointError(f"{file}: cannot read tensors (truncated or corrupt): {err}") from None
    dense: dict[str, torch.Tensor] = {}
    sparse: dict[str, tuple[dict, dict[str, torch.Tensor]]] = {}
    used: set[str] = set()
    for name, info in manifest["dense"].items():
        if name not in stored:
            raise SparseCheckpointError(f"{file}: tensor {name!r} listed in the manifest is missing")
        used.add(name)
        dense[name] = _checked(file, f"tensor {name!r}", stored[name], info, verify)
    for name, info in manifest["sparse"].items():
        parts = _listed_parts(file, name, info["layout"], info["parts"], stored, used, verify)
        sparse[name] = (info, parts)
    for name, info in manifest.get("quantized", {}).items():
        if (not isinstance(info, dict) or not isinstance(info.get("parts"), dict) or info.get("encoding") not in
                DENSE_ENCODINGS[1:] or info.get("dtype") not in _DECODED_DTYPES or not isinstance(info.get("shape"), list)):
            raise SparseCheckpointError(f"{file}: manifest entry of encoded table {name!r} is malformed "
                                        "(needs encoding fp16/int8, dtype, shape and parts)")
        if name in dense or name in sparse:
            raise SparseCheckpointError(f"{file}: {name!r} is described twice in the manifest")
        parts = _listed_parts(file, name, info["encoding"], info["parts"], stored, used, verify)
        try:
            table = decode_dense(name, info["encoding"], info["shape"], getattr(torch, info["dtype"]), parts)
        except SparseFormatError as err:
            raise SparseCheckpointError(f"{file}: {err}") from None
        if verify and tensor_sha256(table) != info.get("decoded_sha256"):
            raise SparseCheckpointError(f"{file}: {name!r}: decoded table does not match its recorded sha256")
        dense[name] = table
    extra = sorted(set(stored) - used)
    if extra:
        raise SparseCheckpointError(f"{file}: tensors not described by the manifest: {extra[:5]}")
    return file, manifest, dense, sparse


def load_state_dict(path: str | Path, *, verify: bool = True) -> dict[str, torch.Tensor]:
    """Decode a sparse checkpoint into a dense state dict, checking hashes, shapes and counts.

    Raises:
        SparseCheckpointError: truncated or corrupt file, hash mismatch, wrong shapes, missing parts
            (the message names the file and the tensor or field).
    """
    file, _, out, sparse = _read_checked(path, verify)
    for name, (info, parts) in sparse.items():
        try:
            dense = decode(name, info["layout"], tuple(info["shape"]), getattr(torch, info["dtype"]), int(info["nnz"]), parts)
        except SparseFormatError as err:
            raise SparseCheckpointError(f"{file}: {err}") from None
        if verify and tensor_sha256(dense) != info["decoded_sha256"]:
            raise SparseCheckpointError(f"{file}: {name!r}: decoded matrix does not match its recorded sha256")
        out[name] = dense
    return out


def load_sparse(path: str | Path, *, verify: bool = True) -> tuple[dict[str, torch.Tensor],
                                                                   dict[str, tuple[tuple[int, int], torch.Tensor,
                                                                                   torch.Tensor, torch.Tensor, Any]]]:
    """A sparse checkpoint as stored: its dense tensors (encoded embedding tables decoded), and every pruned
    matrix as CSR (no dense copy).

    Every part is validated (:func:`sparsebert.export.format.csr_from_parts`: shapes, index ranges,
    monotone row pointers, counts) and, with ``verify``, every stored tensor's SHA-256 and the manifest's
    ``content_sha256`` are checked (the decoded-matrix hash needs the dense matrix and is not).

    Returns:
        ``(dense state dict, {parameter name: ((rows, cols), row_ptr int64, col int64, values fp32, int8)})``:
        ``int8`` is None, or for the ``int8-4x1`` layout the stored blocks ``(row_ptr int64, col int64, q int8
        [blocks, 4], scale fp32 [rows])`` (:func:`sparsebert.export.format.int8_4x1_from_parts`), the CSR then
        holding their dequantised non-zeros.
    Raises:
        SparseCheckpointError: as :func:`load_state_dict` (naming the file and tensor).
    """
    from sparsebert.export.format import csr_from_parts, int8_4x1_from_parts

    file, _, dense, sparse = _read_checked(path, verify)
    out = {}
    for name, (info, parts) in sparse.items():
        shape = tuple(int(x) for x in info["shape"])
        try:
            rp, col, vals = csr_from_parts(name, info["layout"], shape, int(info["nnz"]), parts)
            q8 = int8_4x1_from_parts(name, shape, int(info["nnz"]), parts) if info["layout"] == INT8_4X1 else None
        except SparseFormatError as err:
            raise SparseCheckpointError(f"{file}: {err}") from None
        out[name] = (shape, rp, col, vals.float(), q8)
    return dense, out


def load_any(path: str | Path) -> nn.Module:
    """Load a sparse checkpoint (:func:`load`) or a plain ``from_pretrained`` model directory, in eval mode.

    Raises:
        ModelNotFoundError: ``path`` has no ``config.json``.
        SparseCheckpointError: a corrupt sparse checkpoint (see :func:`load`).
        CorruptCheckpointError, UnsafeCheckpointError: a model directory that differs from its
            ``MANIFEST.json`` or has only pickle weights (see :func:`sparsebert.models.check_local_model`).
        CorruptModelError: a ``config.json`` that is not a JSON object or names no known architecture, a
            truncated ``*.safetensors`` (named; :func:`sparsebert.models.check_local_model`).
    """
    from sparsebert.models import ModelNotFoundError

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path}: not a model directory (no config.json)")
    return load(path) if (path / WEIGHTS).is_file() else _load_hf(path)


def load(path: str | Path, *, runtime: bool = False, engine: bool = False, tokens: int | None = None,
         verify: bool = True, **convert_kwargs) -> Any:
    """Rebuild the model of a sparse checkpoint directory (no pickle; every hash checked).

    Args:
        path: a directory written by :func:`export_model` / ``sparsebert export``.
        runtime: also convert it for inference with :func:`sparsebert.runtime.convert`
            (``tokens``, default 128, and ``convert_kwargs`` are passed on, e.g. ``int8=True`` for
            the opt-in sparse-int8 kernels, ``attention="eager"`` to opt out of SDPA attention;
            both are refused without ``runtime``). The kernel
            choices are cached per machine: loading the same model again (any process, same
            ``tokens`` and thread count) times nothing.
        verify: check hashes (shapes and counts are always checked).
        engine: return the native whole-encoder engine (:class:`sparsebert.engine.EncoderEngine`, called
            like the model, ``.logits`` out), built straight from the stored sparse parts (:func:`load_engine`:
            no dense copy of the pruned matrices). Where the engine does not cover the model (no compiler,
            another family) a one-line warning says so and the model comes back converted by the sparse
            runtime instead.
    Returns:
        The model (same class as exported, e.g. ``BertForSequenceClassification``) in eval mode.
        With ``runtime``, ``model.runtime_report`` is the
        :class:`~sparsebert.runtime.ConversionReport` (kernels per matrix; ``.attention``: the
        attention implementation that runs). With ``engine``, the
        :class:`~sparsebert.engine.EncoderEngine` (where it covers the model).
    Raises:
        InputError: ``tokens`` or a ``convert_kwargs`` argument without ``runtime=True`` (named).
        SparseCheckpointError: see :func:`load_state_dict`; also a config that does not fit.
        CorruptCheckpointError: ``config.json`` or a tokenizer file differs from ``MANIFEST.json`` (named;
            checked first when there is one).
        CorruptModelError: ``config.json`` is not a JSON object or names no known architecture (named).
    """
    if engine and runtime:
        raise InputError(f"load({str(path)!r}): runtime=True and engine=True are two inference paths; pick one")
    runtime_only = (["tokens"] if tokens is not None else []) + list(convert_kwargs)
    if runtime_only and not runtime:
        raise InputError(f"load({str(path)!r}): {', '.join(runtime_only)} need runtime=True (they configure the "
                         "sparse-kernel conversion and would be ignored without it)")
    path = Path(path)
    if engine:
        import warnings

        from sparsebert.engine import EngineUnavailableError
        from sparsebert.targets import UnsupportedArchitectureError

        try:
            return load_engine(path, verify=verify)
        except (EngineUnavailableError, UnsupportedArchitectureError) as err:
            warnings.warn(f"{path}: the native engine does not cover this model ({err}); using the sparse runtime",
                          stacklevel=2)
            runtime = True
    _check_side_files(path)
    state = load_state_dict(path, verify=verify)
    config = _config(path)
    model = _model_class(config)(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise SparseCheckpointError(f"{path}: weights do not fit {type(model).__name__}: "
                                    f"{str(err).splitlines()[0]} ...") from None
    model.eval()
    apply_config_pooling(model)
    if runtime:
        from sparsebert.runtime import convert

        model.runtime_report = convert(model, tokens=128 if tokens is None else tokens, **convert_kwargs)
    return model


def _check_side_files(path: Path) -> None:
    """A sparse checkpoint directory's side files: the ``MANIFEST.json`` hashes of config and tokenizer (the
    weights carry their own per-tensor hashes) and a readable ``config.json`` (errors name the file)."""
    from sparsebert.models import check_config_file

    files = read_manifest(path)
    if files is not None:
        verify_manifest(path, only=tuple(f for f in files if f != WEIGHTS))
    if not (path / "config.json").is_file():
        raise SparseCheckpointError(f"{path}: no config.json (not a sparse checkpoint directory)")
    check_config_file(path)


def _config(path: Path):
    """The transformers config of a checked checkpoint directory (loading errors name the directory)."""
    from transformers import AutoConfig

    from sparsebert.models import model_file_errors

    with model_file_errors(path):
        return AutoConfig.from_pretrained(path)


def load_engine(path: str | Path, *, verify: bool = True, **engine_kwargs):
    """The native engine of a sparse checkpoint, built straight from its stored parts: every pruned matrix
    goes from its CSR / bitmask parts (:func:`load_sparse`) to the kernels' arrays without a dense copy
    (``int8=True`` quantises 4x1-block matrices from their blocks and others from a transient dense copy;
    matrices stored in the ``int8-4x1`` layout go to the int8 4x1 kernel as stored, without quantising again;
    encoded embedding tables are decoded to fp32); embeddings, LayerNorms, biases
    and the head are loaded into the model class, which is built on the ``meta`` device (its encoder
    matrices are never materialised, so ``engine.model`` itself cannot be called).

    Args:
        path: a directory written by :func:`export_model` / ``sparsebert export``.
        verify: check hashes (shapes, index ranges and counts are always checked).
        engine_kwargs: passed to :class:`sparsebert.engine.EncoderEngine` (``int8``, ``attention_dtype``, ``isa``).
    Returns:
        The :class:`~sparsebert.engine.EncoderEngine`.
    Raises:
        SparseCheckpointError: see :func:`load_state_dict`; also tensors that do not fit the config's model.
        CorruptCheckpointError: ``config.json`` or a tokenizer file differs from ``MANIFEST.json``.
        EngineUnavailableError, UnsupportedArchitectureError: the engine cannot run here / this model.
    """
    from sparsebert.engine import EncoderEngine
    from sparsebert.engine.model import SparseMatrix

    path = Path(path)
    _check_side_files(path)
    dense, sparse = load_sparse(path, verify=verify)
    config = _config(path)
    with torch.device("meta"):
        model = _model_class(config)(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = set(shapes)
    missing, unexpected = sorted(expected - set(dense) - set(sparse)), sorted(set(dense) - expected)
    if missing or unexpected or set(sparse) - expected:
        raise SparseCheckpointError(f"{path}: weights do not fit {type(model).__name__}: missing {missing[:3]}, "
                                    f"unexpected {(unexpected + sorted(set(sparse) - expected))[:3]}")
    stored_shapes = {**{n: tuple(t.shape) for n, t in dense.items()}, **{n: tuple(v[0]) for n, v in sparse.items()}}
    for name, shape in sorted(stored_shapes.items()):
        if shape != shapes[name]:
            raise SparseCheckpointError(f"{path}: {name!r} is stored as {list(shape)} but {type(model).__name__} "
                                        f"of config.json expects {list(shapes[name])}")
    model.load_state_dict(dense, strict=False, assign=True)
    model.eval()
    apply_config_pooling(model)
    matrices = {name: SparseMatrix(rp, col, vals, shape, q8) for name, (shape, rp, col, vals, q8) in sparse.items()}
    return EncoderEngine(model, matrices=matrices, **engine_kwargs)


class AutoSparseModel:
    """``from_pretrained``-style entry point for sparse checkpoints.

    >>> model = AutoSparseModel.from_pretrained("runs/sparse-export")             # dense weights
    >>> model = AutoSparseModel.from_pretrained("runs/sparse-export", runtime=True)  # sparse kernels
    """

    @staticmethod
    def from_pretrained(path: str | Path, **kwargs) -> nn.Module:
        return load(path, **kwargs)
