"""Compressed encodings of one sparse matrix, their validation, and content hashes.

Two layouts, both plain tensors that safetensors stores:

* ``csr``: ``row_ptr`` (int32, ``[rows + 1]``), ``col`` (uint16 when the matrix has at most
  65,536 columns, else int32, ``[nnz]``), ``values`` (``[nnz]``, row-major order).
* ``bitmask``: ``mask`` (uint8, ``ceil(rows * cols / 8)`` bytes, the row-major non-zero pattern,
  least-significant bit first), ``values`` (``[nnz]``, row-major order).

``values`` are stored as fp32 (lossless for an fp32 model), fp16 or bf16. ``auto`` picks, per
matrix, whichever layout takes fewer bytes (CSR at high sparsity, bitmask at moderate sparsity).

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
    """Bytes a matrix takes in ``layout`` (indices + values)."""
    if layout == "csr":
        return (rows + 1) * 4 + nnz * (2 if cols <= 65536 else 4) + nnz * value_bytes
    if layout == "bitmask":
        return math.ceil(rows * cols / 8) + nnz * value_bytes
    raise InputError(f"layout must be one of {list(LAYOUTS)} or 'auto', got {layout!r}")


def choose_layout(layout: str, rows: int, cols: int, nnz: int, value_bytes: int) -> str:
    """Resolve ``auto`` to the smaller layout; check an explicit one."""
    if layout == "auto":
        return min(LAYOUTS, key=lambda lay: layout_bytes(lay, rows, cols, nnz, value_bytes))
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {list(LAYOUTS)} or 'auto', got {layout!r}")
    return layout


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


def csr_from_parts(name: str, layout: str, shape: tuple[int, int], nnz: int,
                   parts: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zeros of a stored matrix as CSR, validating every part, without a dense copy.

    Args:
        name: the matrix's parameter name (used in error messages).
        layout / shape / nnz: as recorded in the manifest.
        parts: the stored tensors of this matrix.
    Returns:
        ``(row_ptr int64 [rows + 1], col int64 [nnz] (increasing within each row), values [nnz])`` with the
        values in their stored dtype.
    Raises:
        SparseFormatError: a part is missing, has the wrong dtype or shape, an index is out of
            range, the row pointers are not monotone, or the counts disagree.
    """
    rows, cols = (int(s) for s in shape)
    expected = {"csr": ("row_ptr", "col", "values"), "bitmask": ("mask", "values")}.get(layout)
    if expected is None:
        raise _fail(name, f"unknown layout {layout!r} (expected one of {list(LAYOUTS)})")
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
