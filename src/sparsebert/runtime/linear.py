"""Inference-only replacements for a pruned ``nn.Linear``, one per kernel.

Every module here computes ``y = x @ W^T + b`` for ``x`` of any shape ``[..., in_features]``,
holds its weight in the kernel's own layout (no dense copy), and can give the dense weight back
(:meth:`SparseLinearBase.dense_weight`) for checks. They are built by
:func:`sparsebert.runtime.convert` after timing each candidate on the real shape.

Kernels:

* :class:`CSRKernelLinear` — sparsebert's own C++ kernel (``csrc/spmm.cpp``): CSR weight,
  activations packed into transposed token tiles, register tiles of 16-128 tokens, fused bias,
  torch's thread pool. fp32, CPU.
* :class:`TorchCSRLinear` — ``torch.sparse_csr`` weight through ``F.linear`` (MKL on CPU,
  cuSPARSE on CUDA).
* :class:`TorchBSRLinear` — ``torch.sparse_bsr`` weight (only offered when the pattern is blocky).
* :class:`MKLLinear` — Intel MKL through ``sparse_dot_mkl`` (only where installed).
* :class:`SemiStructuredLinear` — 2:4 semi-structured sparsity (CUDA, fp16/bf16, only when every
  group of 4 has at most 2 non-zeros).

The dense fallback is the original ``nn.Linear`` itself (kept when no sparse kernel is faster).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InferenceOnlyError(RuntimeError):
    """A runtime module was called on an input that requires a gradient."""


class SparseLinearBase(nn.Module):
    """Common part: shapes, bias, reshaping ``[..., in] -> [tokens, in] -> [..., out]``."""

    kernel: str = "?"

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor | None, params: dict | None = None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.params = dict(params or {})
        self.register_buffer("bias", None if bias is None else bias.detach().clone().contiguous(), persistent=False)

    @property
    def label(self) -> str:
        """Kernel name with its parameters, e.g. ``sbk[tile=64,rows=64]``."""
        if not self.params:
            return self.kernel
        return f"{self.kernel}[{','.join(f'{k}={v}' for k, v in sorted(self.params.items()))}]"

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.label}"

    def dense_weight(self) -> torch.Tensor:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise InferenceOnlyError(f"{type(self).__name__} is inference-only; run under torch.no_grad()")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}: input has {x.shape[-1]} features, expected {self.in_features}")
        lead = x.shape[:-1]
        y = self._forward_2d(x.reshape(-1, self.in_features))
        return y.reshape(*lead, self.out_features)


def _csr_parts(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    csr = weight.detach().to_sparse_csr()
    return csr.crow_indices(), csr.col_indices(), csr.values()


def kernel_columns(col: torch.Tensor, n_in: int) -> torch.Tensor:
    """Column indices as the C++ kernels read them: int16 holding the uint16 column (read back as unsigned)
    when ``n_in <= 65536``, else int32; contiguous.

    Args:
        col: integer column indices in ``[0, n_in)``, any integer dtype.
        n_in: the matrix's column count.
    """
    col = col.to(torch.int32)
    if n_in <= 65536:
        col = torch.where(col >= 32768, col - 65536, col).to(torch.int16)
    return col.contiguous()


def csr_arrays(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CSR arrays the C++ kernels read (``csr_linear``, the engine's ``engine_csr``).

    Args:
        weight: ``[out, in]`` float (exact zeros are not stored).
    Returns:
        ``(row_ptr int32 [out + 1], col [nnz], values fp32 [nnz])``; ``col`` is int16 holding the
        uint16 column (read back as unsigned by the kernels) when ``in <= 65536``, else int32.
    """
    rp, ci, v = _csr_parts(weight.detach().float().cpu())
    return rp.to(torch.int32).contiguous(), kernel_columns(ci, weight.shape[1]), v.float().contiguous()


class CSRKernelLinear(SparseLinearBase):
    """sparsebert's C++ CSR kernel (fp32, CPU). ``params``: ``tile`` (tokens per register tile,
    16/32/64/128), ``rows`` (output rows per parallel task; 0 = all rows of a token tile) and
    ``nt`` (1: non-temporal stores of the output, for outputs far larger than the caches)."""

    kernel = "sbk"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, tile: int = 64, rows: int = 64, nt: int = 0):
        from sparsebert.runtime.build import build_error, load_kernel

        if tile not in (16, 32, 64, 128):
            raise ValueError(f"sbk: tile must be 16, 32, 64 or 128 tokens, got {tile}")
        if load_kernel() is None:
            raise RuntimeError(f"sbk kernel unavailable: {build_error()}")
        out_f, in_f = weight.shape
        params = {"tile": tile, "rows": rows, **({"nt": 1} if nt else {})}
        super().__init__(in_f, out_f, None if bias is None else bias.float(), params)
        rp, ci, v = csr_arrays(weight)  # int16 storage read as uint16 by the kernel: columns up to 65535
        self.register_buffer("row_ptr", rp, persistent=False)
        self.register_buffer("col", ci, persistent=False)
        self.register_buffer("values", v, persistent=False)
        self._tile_v = tile // 16
        self._rows = rows
        self._nt = bool(nt)

    @property
    def _ext(self):
        from sparsebert.runtime.build import load_kernel

        return load_kernel()  # built once per process; kept out of the module so it deep-copies

    def dense_weight(self) -> torch.Tensor:
        col = self.col.to(torch.int64)
        if self.col.dtype == torch.int16:
            col = col % 65536
        return torch.sparse_csr_tensor(self.row_ptr.to(torch.int64), col, self.values,
                                       (self.out_features, self.in_features)).to_dense()

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if x.device.type != "cpu":
            raise RuntimeError("sbk kernel runs on CPU only")
        x = x.to(torch.float32).contiguous()
        y = self._ext.csr_linear(x, self.row_ptr, self.col, self.values, self.bias, self._tile_v, self._rows,
                                  self._nt)
        return y if dtype == torch.float32 else y.to(dtype)


class TorchCSRLinear(SparseLinearBase):
    """``torch.sparse_csr`` weight through ``F.linear`` (MKL sparse BLAS on CPU, cuSPARSE on CUDA)."""

    kernel = "torch-csr"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, bias)
        self.register_buffer("weight_csr", weight.detach().contiguous().to_sparse_csr(), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        return self.weight_csr.to_dense()

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_csr
        x = x.to(w.dtype)
        return F.linear(x, w, self.bias.to(w.dtype) if self.bias is not None else None)


def block_fill(weight: torch.Tensor, block: int) -> float:
    """Stored entries of a ``block x block`` BSR layout per non-zero (1.0 = perfectly blocky)."""
    out_f, in_f = weight.shape
    if out_f % block or in_f % block:
        return float("inf")
    nz = (weight != 0).reshape(out_f // block, block, in_f // block, block).any(dim=(1, 3))
    nnz = int((weight != 0).sum())
    return float(nz.sum()) * block * block / max(nnz, 1)


class TorchBSRLinear(SparseLinearBase):
    """``torch.sparse_bsr`` weight (square blocks); ``params``: ``block``."""

    kernel = "torch-bsr"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, block: int = 16):
        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, bias, {"block": block})
        self.register_buffer("weight_bsr", weight.detach().contiguous().to_sparse_bsr((block, block)), persistent=False)

    def dense_weight(self) -> torch.Tensor:
        return self.weight_bsr.to_dense()

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_bsr
        y = (w @ x.to(w.dtype).t()).t()
        if self.bias is not None:
            y = y + self.bias.to(w.dtype)
        return y


def mkl_available() -> bool:
    """``sparse_dot_mkl`` (and with it the MKL runtime) can be imported."""
    try:
        import sparse_dot_mkl  # noqa: F401
    except Exception:
        return False
    return True


class MKLLinear(SparseLinearBase):
    """Intel MKL sparse x dense through ``sparse_dot_mkl`` (scipy CSR weight, CPU)."""

    kernel = "mkl-csr"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        import scipy.sparse as sp

        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, None if bias is None else bias.float())
        w = weight.detach().float().cpu().numpy()
        self._w = sp.csr_matrix(w)
        self._w.sort_indices()

    def dense_weight(self) -> torch.Tensor:
        return torch.from_numpy(self._w.toarray())

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        from sparse_dot_mkl import dot_product_mkl

        dtype = x.dtype
        xt = x.to(torch.float32).contiguous().numpy().T  # [in, tokens], Fortran order: no copy
        y = torch.from_numpy(dot_product_mkl(self._w, xt, dense=True)).t()
        if self.bias is not None:
            y = y + self.bias
        return y.contiguous().to(dtype)


def is_2_4(weight: torch.Tensor) -> bool:
    """Every group of 4 consecutive weights in a row has at most 2 non-zeros."""
    if weight.shape[1] % 4:
        return False
    groups = (weight != 0).reshape(weight.shape[0], -1, 4).sum(-1)
    return bool((groups <= 2).all())


class SemiStructuredLinear(SparseLinearBase):
    """2:4 semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``; CUDA, fp16/bf16)."""

    kernel = "2:4"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        from torch.sparse import to_sparse_semi_structured

        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, bias)
        self.weight_24 = to_sparse_semi_structured(weight.detach().contiguous())
        self._dense_shape = (out_f, in_f)

    def dense_weight(self) -> torch.Tensor:
        return self.weight_24.to_dense()

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.weight_24.dtype
        return F.linear(x.to(dtype), self.weight_24, self.bias.to(dtype) if self.bias is not None else None)
