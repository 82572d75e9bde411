"""Compressed encodings of one sparse matrix, their validation, and content hashes.

Two layouts, both plain tensors that safetensors stores:

* ``csr``: ``row_ptr`` (int32, ``[rows + 1]``), ``col`` (uint16 when the matrix has at most
  65,536 columns, else int32, ``[nnz]``), ``values`` (``[nnz]``, row-major order).
* ``bitmask``: ``mask`` (uint8, ``ceil(rows * cols / 8)`` bytes, the row-major non-zero pattern,
  least-significant bit first), ``values`` (``[nnz]``, row-major order).

``values`` are stored as fp32 (lossless for an fp32 model), fp16 or bf16. ``auto`` picks, per
matrix, whichever layout takes fewer bytes (CSR at high sparsity, bitmask at moderate sparsity).

A third layout is lossy and only used when asked for (``layout="int8-4x1"``):

* ``int8-4x1``: blocks of 4 output rows x 1 input column (``--pattern 4x1``; other patterns are
  zero-filled to whole blocks) in block CSR: ``row_ptr`` (int32, ``[rows / 4 + 1]``), ``col`` (uint16 /
  int32, ``[blocks]``, increasing within a block-row), ``values`` (int8, ``[4 * blocks]``, block ``j``'s
  4 rows at ``4j .. 4j + 4``, in [-127, 127]) and ``scale`` (fp32 ``[rows]``): ``W[o, k] = scale[o] *
  q[o, k]``, the symmetric per-row quantisation of :func:`sparsebert.runtime.int8.quantize_weight`, which
  the engine's int8 4x1 kernel then reads without quantising again. The manifest's ``nnz`` is the
  number of stored values (``4 * blocks``).

Dense tensors (the embedding tables) can be stored encoded (:func:`encode_dense`): ``fp16`` (``values``
fp16) or ``int8`` (``values`` int8 ``[rows, cols]`` in [-127, 127] and ``scale`` fp32 ``[rows]``, per row,
symmetric: ``E[r] = scale[r] * q[r]``); :func:`decode_dense` checks every part against the recorded shape.

Every stored tensor is hashed (SHA-256 of dtype, shape and raw bytes); :func:`decode` re-checks
the parts' shapes, ranges and counts and names the matrix and field that is wrong.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from sparsebert.errors import InputError, SparsebertError

LAYOUTS = ("csr", "bitmask")
#: the lossy int8 layout (asked for explicitly; never chosen by ``auto``)
INT8_4X1 = "int8-4x1"
#: encodings of dense tensors (embedding tables): ``fp32`` = stored as they are
DENSE_ENCODINGS = ("fp32", "fp16", "int8")
VALUE_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PART_SEP = "::"


class SparseFormatError(SparsebertError, ValueError):
    """A stored sparse matrix is inconsistent: wrong shapes, out-of-range indices, bad counts."""


def value_dtype(name: str) -> torch.dtype:
    """``fp32`` / ``fp16`` / ``bf16`` -> torch dtype.

    Raises:
        InputError: another name (a ``ValueError``).
    """
    try:
        return VALUE_DTYPES[name]
    except KeyError:
        raise InputError(f"value dtype must be one of {list(VALUE_DTYPES)}, got {name!r}") from None


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).replace("torch.", "")


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and raw bytes (row-major)."""
    h = hashlib.sha256()
    h.update(f"{dtype_name(t.dtype)}|{list(t.shape)}|".encode())
    t = t.detach().contiguous().cpu()
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _col_dtype(cols: int) -> torch.dtype:
    return torch.uint16 if cols <= 65536 else torch.int32


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def layout_bytes(layout: str, rows: int, cols: int, nnz: int, value_bytes: int) -> int:
    """Bytes a matrix takes in ``layout`` (indices + values); for ``int8-4x1``, ``nnz`` is the stored values
    (``4 * blocks``) and ``value_bytes`` is ignored."""
    if layout == INT8_4X1:
        return (rows // 4 + 1) * 4 + (nnz // 4) * (2 if cols <= 65536 else 4) + nnz + rows * 4
    if layout == "csr":
        return (rows + 1) * 4 + nnz * (2 if cols <= 65536 else 4) + nnz * value_bytes
    if layout == "bitmask":
        return math.ceil(rows * cols / 8) + nnz * value_bytes
    raise InputError(f"layout must be one of {list(LAYOUTS)} or 'auto', got {layout!r}")


def choose_layout(layout: str, rows: int, cols: int, nnz: int, value_bytes: int) -> str:
    """Resolve ``auto`` to the smaller layout; check an explicit one. ``int8-4x1`` stays ``int8-4x1`` where
    the rows are a multiple of 4, else the matrix gets the ``auto`` layout."""
    if layout == INT8_4X1:
        return INT8_4X1 if rows % 4 == 0 else choose_layout("auto", rows, cols, nnz, value_bytes)
    if layout == "auto":
        return min(LAYOUTS, key=lambda lay: layout_bytes(lay, rows, cols, nnz, value_bytes))
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {list(LAYOUTS) + [INT8_4X1]} or 'auto', got {layout!r}")
    return layout


def blocks_4x1_of(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(row_ptr int64 [rows / 4 + 1], col int64 [blocks], values [blocks, 4])`` of a dense ``[rows, cols]``
    matrix (rows a multiple of 4): a block is kept when any of its 4 weights is non-zero."""
    rows, cols = weight.shape
    w = weight.reshape(rows // 4, 4, cols)
    keep = (w != 0).any(dim=1)  # [groups, cols]
    row_ptr = torch.zeros(rows // 4 + 1, dtype=torch.int64)
    row_ptr[1:] = torch.cumsum(keep.sum(dim=1, dtype=torch.int64), 0)
    col = keep.nonzero()[:, 1]
    return row_ptr, col, w.permute(0, 2, 1)[keep].contiguous()


def int8_4x1_bytes(weight: torch.Tensor) -> int:
    """Bytes ``weight`` takes in the ``int8-4x1`` layout (the ``auto`` layout at fp32 values where its rows
    are not a multiple of 4)."""
    rows, cols = weight.shape
    if rows % 4:
        return layout_bytes(choose_layout("auto", rows, cols, int((weight != 0).sum()), 4), rows, cols,
                            int((weight != 0).sum()), 4)
    blocks = int((weight.reshape(rows // 4, 4, cols) != 0).any(dim=1).sum())
    return layout_bytes(INT8_4X1, rows, cols, 4 * blocks, 1)


@dataclass
class Encoded:
    """One matrix in a compressed layout."""

    layout: str
    shape: tuple[int, int]
    dtype: torch.dtype  # dtype of the dense matrix it decodes to
    nnz: int
    parts: dict[str, torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(nbytes(t) for t in self.parts.values())


def encode(weight: torch.Tensor, layout: str = "auto", values: str = "fp32") -> Encoded:
    """Encode a 2-D matrix (its exact zeros are the pattern).

    Args:
        weight: the dense matrix.
        layout: ``csr``, ``bitmask`` or ``auto``.
        values: ``fp32``, ``fp16`` or ``bf16``.
    """
    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {list(weight.shape)}")
    w = weight.detach().contiguous().cpu()
    vdt = value_dtype(values)
    rows, cols = w.shape
    nz = w != 0
    nnz = int(nz.sum())
    lay = choose_layout(layout, rows, cols, nnz, torch.tensor([], dtype=vdt).element_size())
    if lay == INT8_4X1:
        from sparsebert.runtime.int8 import quantize_blocks_4x1

        if not torch.isfinite(w).all():
            raise InputError("int8-4x1 layout: the weight holds inf or NaN")
        row_ptr, col, vals = blocks_4x1_of(w.float())
        q, scale = quantize_blocks_4x1(row_ptr, vals.reshape(-1), rows)
        parts = {"row_ptr": row_ptr.to(torch.int32), "col": col.to(torch.int32).to(_col_dtype(cols)),
                 "values": q.reshape(-1).contiguous(), "scale": scale.contiguous()}
        return Encoded(lay, (rows, cols), w.dtype, int(q.numel()), parts)
    vals = w[nz].to(vdt).contiguous()  # boolean indexing is row-major
    if lay == "csr":
        counts = nz.sum(dim=1, dtype=torch.int64)
        row_ptr = torch.zeros(rows + 1, dtype=torch.int64)
        row_ptr[1:] = torch.cumsum(counts, 0)
        col = nz.nonzero()[:, 1]
        parts = {"row_ptr": row_ptr.to(torch.int32), "col": col.to(torch.int32).to(_col_dtype(cols)), "values": vals}
    else:
        bits = np.packbits(nz.reshape(-1).numpy(), bitorder="little")
        parts = {"mask": torch.from_numpy(bits.copy()), "values": vals}
    return Encoded(lay, (rows, cols), w.dtype, nnz, parts)


def _fail(name: str, msg: str) -> SparseFormatError:
    return SparseFormatError(f"{name}: {msg}")


def _part(name: str, parts: dict[str, torch.Tensor], part: str, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    t = parts[part]
    if t.dtype != dtype or list(t.shape) != shape:
        raise _fail(name, f"{part} is {dtype_name(t.dtype)} {list(t.shape)}, expected {dtype_name(dtype)} {shape}")
    return t


def _scale(name: str, parts: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
    scale = _part(name, parts, "scale", torch.float32, [rows])
    if rows and not bool((torch.isfinite(scale) & (scale >= 0)).all()):
        raise _fail(name, "scale holds a negative, inf or NaN value")
    return scale


def int8_4x1_from_parts(name: str, shape: tuple[int, int], nnz: int,
                        parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The int8 4x1 blocks of a stored ``int8-4x1`` matrix, every part validated.

    Returns:
        ``(row_ptr int64 [rows / 4 + 1], col int64 [blocks] (increasing within a block-row), q int8 [blocks, 4],
        scale fp32 [rows])``.
    Raises:
        SparseFormatError: a part missing, of the wrong dtype or shape, an index out of range, row pointers not
            monotone, counts that disagree, or an int8 value of -128 (naming the matrix and part).
    """
    rows, cols = (int(s) for s in shape)
    missing = [p for p in ("row_ptr", "col", "values", "scale") if p not in parts]
    if missing:
        raise _fail(name, f"{INT8_4X1} layout is missing part(s) {missing}")
    if rows % 4 or rows < 0 or cols < 1:
        raise _fail(name, f"{INT8_4X1} layout needs rows divisible by 4, got shape [{rows}, {cols}]")
    if nnz < 0 or nnz % 4 or nnz > rows * cols:
        raise _fail(name, f"nnz {nnz} (stored values) is not 4 x blocks within shape [{rows}, {cols}]")
    blocks = nnz // 4
    rp = _part(name, parts, "row_ptr", torch.int32, [rows // 4 + 1]).to(torch.int64)
    col = parts["col"]
    if col.dtype not in (torch.uint16, torch.int32) or list(col.shape) != [blocks]:
        raise _fail(name, f"col is {dtype_name(col.dtype)} {list(col.shape)}, expected uint16/int32 [{blocks}]")
    q = _part(name, parts, "values", torch.int8, [nnz])
    scale = _scale(name, parts, rows)
    if int(rp[0]) != 0 or int(rp[-1]) != blocks or bool((rp[1:] < rp[:-1]).any()):
        raise _fail(name, f"row_ptr must rise monotonically from 0 to the {blocks} blocks")
    col64 = col.to(torch.int64)
    if blocks and (int(col64.min()) < 0 or int(col64.max()) >= cols):
        raise _fail(name, f"column index out of range [0, {cols})")
    group = torch.repeat_interleave(torch.arange(rows // 4), rp[1:] - rp[:-1])
    flat = group * cols + col64
    if blocks > 1 and bool((flat[1:] <= flat[:-1]).any()):
        raise _fail(name, "column indices are not strictly increasing within block-rows")
    if bool((q == -128).any()):
        raise _fail(name, "values hold -128 (int8 weights are in [-127, 127])")
    return rp, col64, q.reshape(blocks, 4), scale


def _int8_4x1_csr(name: str, shape: tuple[int, int], nnz: int,
                  parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The dequantised non-zeros (``scale[o] * q``, fp32) of an ``int8-4x1`` matrix as CSR."""
    rows, cols = (int(s) for s in shape)
    rp, col, q, scale = int8_4x1_from_parts(name, shape, nnz, parts)
    group = torch.repeat_interleave(torch.arange(rows // 4), rp[1:] - rp[:-1])
    row = (4 * group[:, None] + torch.arange(4)[None, :])  # [blocks, 4]
    keep = q != 0
    r, c = row[keep], col[:, None].expand(-1, 4)[keep]
    v = scale[r] * q[keep].to(torch.float32)
    order = torch.argsort(r * cols + c)
    r, c, v = r[order], c[order], v[order]
    rp64 = torch.zeros(rows + 1, dtype=torch.int64)
    rp64[1:] = torch.cumsum(torch.bincount(r, minlength=rows), 0)
    return rp64, c, v


def encode_dense(t: torch.Tensor, encoding: str) -> dict[str, torch.Tensor]:
    """The stored parts of a dense 2-D tensor (an embedding table) in ``encoding`` (``fp16`` / ``int8``).

    Raises:
        InputError: another encoding, a tensor that is not 2-D floating point, or inf / NaN for ``int8``.
    """
    if encoding not in DENSE_ENCODINGS[1:]:
        raise InputError(f"embedding encoding must be one of {list(DENSE_ENCODINGS)}, got {encoding!r}")
    if t.dim() != 2 or not t.is_floating_point():
        raise InputError(f"{encoding} encoding is for 2-D float tables, got {t.dtype} {list(t.shape)}")
    t = t.detach().cpu().to(torch.float32)
    if encoding == "fp16":
        return {"values": t.to(torch.float16).contiguous()}
    from sparsebert.runtime.int8 import quantize_weight

    q, scale = quantize_weight(t)
    return {"values": q.contiguous(), "scale": scale.contiguous()}


def decode_dense(name: str, encoding: str, shape: list[int], dtype: torch.dtype,
                 parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """The table of an encoded dense tensor (:func:`encode_dense`), in ``dtype``, every part checked.

    Raises:
        SparseFormatError: an unknown encoding, a part missing or of the wrong dtype / shape, a scale that is
            negative or not finite, an int8 value of -128 (naming the tensor and part).
    """
    expected = {"fp16": ("values",), "int8": ("values", "scale")}.get(encoding)
    if expected is None:
        raise _fail(name, f"unknown encoding {encoding!r} (expected one of {list(DENSE_ENCODINGS[1:])})")
    missing = [p for p in expected if p not in parts]
    if missing:
        raise _fail(name, f"{encoding} encoding is missing part(s) {missing}")
    if len(shape) != 2 or any(int(s) < 0 for s in shape):
        raise _fail(name, f"{encoding} encoding needs a 2-D shape, got {shape}")
    rows, cols = (int(s) for s in shape)
    if encoding == "fp16":
        return _part(name, parts, "values", torch.float16, [rows, cols]).to(dtype)
    q = _part(name, parts, "values", torch.int8, [rows, cols])
    if bool((q == -128).any()):
        raise _fail(name, "values hold -128 (int8 values are in [-127, 127])")
    return (_scale(name, parts, rows)[:, None] * q.to(torch.float32)).to(dtype)


def csr_from_parts(name: str, layout: str, shape: tuple[int, int], nnz: int,
                   parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zeros of a stored matrix as CSR, validating every part, without a dense copy.

    Args:
        name: the matrix's parameter name (used in error messages).
        layout / shape / nnz: as recorded in the manifest.
        parts: the stored tensors of this matrix.
    Returns:
        ``(row_ptr int64 [rows + 1], col int64 [nnz] (increasing within each row), values [nnz])`` with the
        values in their stored dtype (``int8-4x1``: the dequantised non-zeros, fp32; ``nnz`` there is the
        stored values, zeros included, so the CSR may hold fewer).
    Raises:
        SparseFormatError: a part is missing, has the wrong dtype or shape, an index is out of
            range, the row pointers are not monotone, or the counts disagree.
    """
    rows, cols = (int(s) for s in shape)
    if layout == INT8_4X1:
        return _int8_4x1_csr(name, (rows, cols), nnz, parts)
    expected = {"csr": ("row_ptr", "col", "values"), "bitmask": ("mask", "values")}.get(layout)
    if expected is None:
        raise _fail(name, f"unknown layout {layout!r} (expected one of {list(LAYOUTS) + [INT8_4X1]})")
    missing = [p for p in expected if p not in parts]
    if missing:
        raise _fail(name, f"{layout} layout is missing part(s) {missing}")
    vals = parts["values"]
    if vals.dim() != 1 or vals.numel() != nnz:
        raise _fail(name, f"values has shape {list(vals.shape)}, expected [{nnz}] (nnz)")
    if vals.dtype not in VALUE_DTYPES.values():
        raise _fail(name, f"values dtype {vals.dtype} is not one of fp32/fp16/bf16")
    if not 0 <= nnz <= rows * cols:
        raise _fail(name, f"nnz {nnz} out of range for shape [{rows}, {cols}]")
    if layout == "csr":
        rp, col = parts["row_ptr"], parts["col"]
        if rp.dtype != torch.int32 or list(rp.shape) != [rows + 1]:
            raise _fail(name, f"row_ptr is {rp.dtype} {list(rp.shape)}, expected int32 [{rows + 1}]")
        if col.dtype not in (torch.uint16, torch.int32) or list(col.shape) != [nnz]:
            raise _fail(name, f"col is {col.dtype} {list(col.shape)}, expected uint16/int32 [{nnz}]")
        rp64 = rp.to(torch.int64)
        if int(rp64[0]) != 0 or int(rp64[-1]) != nnz or bool((rp64[1:] < rp64[:-1]).any()):
            raise _fail(name, f"row_ptr must rise monotonically from 0 to nnz={nnz}")
        col64 = col.to(torch.int64)
        if nnz and (int(col64.min()) < 0 or int(col64.max()) >= cols):
            raise _fail(name, f"column index out of range [0, {cols})")
        row = torch.repeat_interleave(torch.arange(rows), rp64[1:] - rp64[:-1])
        flat = row * cols + col64
        if nnz > 1 and bool((flat[1:] <= flat[:-1]).any()):
            raise _fail(name, "column indices are not strictly increasing within rows")
        return rp64, col64, vals
    mask = parts["mask"]
    nbytes_ = math.ceil(rows * cols / 8)
    if mask.dtype != torch.uint8 or list(mask.shape) != [nbytes_]:
        raise _fail(name, f"mask is {mask.dtype} {list(mask.shape)}, expected uint8 [{nbytes_}]")
    bits = np.unpackbits(mask.numpy(), count=rows * cols, bitorder="little").astype(bool)
    if int(bits.sum()) != nnz:
        raise _fail(name, f"mask has {int(bits.sum())} set bits, expected nnz={nnz}")
    flat = torch.from_numpy(np.flatnonzero(bits))
    rp64 = torch.zeros(rows + 1, dtype=torch.int64)
    rp64[1:] = torch.cumsum(torch.bincount(flat // cols, minlength=rows), 0)
    return rp64, flat % cols, vals


def decode(name: str, layout: str, shape: tuple[int, int], dtype: torch.dtype, nnz: int,
           parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rebuild the dense matrix, validating every part (:func:`csr_from_parts`).

    Args:
        name: the matrix's parameter name (used in error messages).
        layout / shape / dtype / nnz: as recorded in the manifest.
        parts: the stored tensors of this matrix.
    Raises:
        SparseFormatError: a part is missing, has the wrong dtype or shape, an index is out of
            range, the row pointers are not monotone, or the counts disagree.
    """
    rows, cols = (int(s) for s in shape)
    rp, col, vals = csr_from_parts(name, layout, (rows, cols), nnz, parts)
    dense = torch.zeros(rows * cols, dtype=dtype)
    row = torch.repeat_interleave(torch.arange(rows), rp[1:] - rp[:-1])
    dense[row * cols + col] = vals.to(dtype)
    return dense.reshape(rows, cols)
