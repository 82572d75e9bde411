"""Sparse-int8 linears: int8 weights in 1x4 blocks, activations quantised per token on the fly.

Opt-in only (int8 changes the numerics): ``sparsebert.runtime.convert(model, int8=True)`` adds
the ``sbk-int8`` candidates to the kernels timed for each matrix, and a matrix gets int8 only
where it is measured fastest.

Quantisation (dynamic post-training quantisation of a linear, as in Zafrir et al. 2019, *Q8BERT:
Quantized 8Bit BERT*, and the dynamic int8 of Zafrir et al. 2021, *Prune Once for All*; both
symmetric, no zero points, int8 values in [-127, 127]):

* weights, once, per output channel: ``s_w[o] = max_k |W[o, k]| / 127``,
  ``Wq = round(W / s_w)`` (:func:`quantize_weight`);
* activations, at every call, per token (row of ``x``): ``s_x[t] = max_k |x[t, k]| / 127``,
  ``xq = round(x * (127 / max_k |x[t, k]|))`` (:func:`quantize_per_token`, round half to even);
  per token rather than per tensor so that one outlier token (or a padded batch) does not coarsen
  the others; symmetric (not asymmetric with a zero point) so that the integer product needs no
  correction term, and 8 bits rather than the 7 of fbgemm's ``reduce_range``: the AVX2 kernel
  avoids ``vpmaddubsw`` saturation by multiplying ``|w|`` with ``x * sign(w)`` (both <= 127);
* ``y[t, o] = (sum_k Wq[o, k] xq[t, k]) * s_w[o] * s_x[t] + b[o]``, the sum exact in int32.

Error bound (worst case, elementwise, from ``|W - s_w Wq| <= s_w / 2`` and
``|x - s_x xq| <= s_x / 2``; :func:`int8_error_bound`)::

    |y_int8[t, o] - y_fp32[t, o]| <= s_x[t]/2 * sum_k |W[o, k]|
                                   + s_w[o]/2 * sum_{k: W[o, k] != 0} |x[t, k]|
                                   + s_w[o] s_x[t] / 4 * nnz(W[o])

plus fp32 rounding of the output (a few ulp). Typical errors are far smaller (they add up like a
random walk); the tests measure both.

Weight storage (:func:`blocks_1x4`): blocks of 4 consecutive input columns of one output row,
only blocks with a non-zero kept (block CSR). Weights pruned with 1x4 blocks are stored exactly;
unstructured weights are zero-filled to whole blocks (:func:`fill_1x4`: stored values per
non-zero, at most 4). Weights pruned in 4x1 blocks (4 output rows x 1 input column, ``--pattern 4x1``)
go to a second kernel, ``csrc/spmm_int8_4x1.cpp`` (:func:`quantize_blocks_4x1`, :func:`units_4x1`; the
engine's ``int8-4x1`` matrices): the same quantisation, hence the same values, with each group of 4 stored
columns of a block-row one 4 x 4 unit that one ``vpdpbusd`` per 8 tokens and row consumes. The 1x4 kernel is
``csrc/spmm_int8.cpp``: AVX-512 VNNI (``vpdpbusd``) where the CPU
has it (tested on an AVX-512 VNNI EPYC), AVX2 otherwise (AVX-VNNI alone is compiled but untested); without the compiled extension
:class:`Int8BlockLinear` computes the same result with :func:`int8_linear_reference` (fp64, exact,
slow).
"""

from __future__ import annotations

import torch

from sparsebert.errors import InputError
from sparsebert.runtime.linear import SparseLinearBase

#: the most input features for which the int32 accumulator cannot overflow (127 * 127 * n < 2**31)
MAX_IN_FEATURES = 133_144
#: tokens per register tile of the int8 kernel
INT8_TILES = (8, 16, 32, 64)


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 quantisation of a weight.

    Args:
        weight: ``[out, in]`` float.
    Returns:
        ``(wq, scale)``: ``wq`` int8 ``[out, in]`` in [-127, 127] (zeros stay zero), ``scale`` fp32
        ``[out]`` with ``weight ~ scale[:, None] * wq`` (0 for an all-zero row).
    Raises:
        InputError: the weight is not 2-D or holds inf/NaN.
    """
    if weight.dim() != 2:
        raise InputError(f"weight must be 2-D [out, in], got shape {tuple(weight.shape)}")
    w = weight.detach().to(torch.float32).cpu()
    if not torch.isfinite(w).all():
        raise InputError("weight holds inf or NaN; int8 quantisation needs finite weights")
    amax = w.abs().amax(dim=1)
    scale = amax / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    wq = torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return wq, scale


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-token int8 quantisation, bit for bit what the C++ kernel does.

    ``scale[t] = max|x[t]| / 127``, ``xq[t] = round(x[t] * (127 / max|x[t]|))`` in fp32 (round half
    to even), clamped to [-127, 127]. An all-zero token gets scale 0; a token holding inf or NaN
    gets ``xq = 0`` and scale NaN (its outputs become NaN, as in fp32).

    Args:
        x: ``[tokens, in]`` fp32.
    Returns:
        ``(xq int8 [tokens, in], scale fp32 [tokens])``.
    """
    x = x.to(torch.float32)
    if x.dim() != 2 or x.shape[1] < 1:
        raise InputError(f"x must be [tokens, in] with in >= 1, got shape {tuple(x.shape)}")
    finite = torch.isfinite(x).all(dim=1)
    amax = torch.where(finite, x.abs().amax(dim=1), torch.zeros(x.shape[0]))
    use = finite & (amax > 0)
    safe = torch.where(use, amax, torch.ones_like(amax))
    inv = torch.full_like(safe, 127.0) / safe  # tensor / tensor: an IEEE division, like the kernel
    xq = torch.where(use[:, None], torch.round(x * inv[:, None]), torch.zeros_like(x)).clamp_(-127, 127)
    scale = torch.where(finite, amax / torch.full_like(amax, 127.0), torch.full_like(amax, float("nan")))
    return xq.to(torch.int8), scale


def int8_linear_reference(x: torch.Tensor, wq: torch.Tensor, w_scale: torch.Tensor,
                          bias: torch.Tensor | None) -> torch.Tensor:
    """The int8 product in torch: per-token quantisation of ``x``, exact integer sum (fp64), dequantised.

    Args:
        x: ``[tokens, in]`` float.
        wq: int8 ``[out, in]``; w_scale: fp32 ``[out]`` (from :func:`quantize_weight`).
        bias: ``[out]`` or None.
    Returns:
        fp32 ``[tokens, out]``; equals the kernel's output up to the fp32 rounding of its scaling
        (a few ulp).
    """
    xq, sx = quantize_per_token(x)
    acc = xq.to(torch.float64) @ wq.to(torch.float64).t()  # |acc| < 2**31: exact in fp64
    y = acc * (w_scale.to(torch.float64)[None, :] * sx.to(torch.float64)[:, None])
    if bias is not None:
        y = y + bias.to(torch.float64)
    return y.to(torch.float32)


def int8_error_bound(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Worst-case ``|y_int8 - y_fp32|`` per output element from quantisation (module docstring).

    Args:
        x: ``[tokens, in]``; weight: ``[out, in]`` (the unquantised weight; zeros are pruned).
    Returns:
        fp64 ``[tokens, out]`` (fp32 output rounding not included).
    """
    w = weight.detach().to(torch.float64).cpu()
    x64 = x.detach().to(torch.float64).cpu()
    sw = w.abs().amax(dim=1) / 127.0
    sx = x64.abs().amax(dim=1) / 127.0
    nz = (w != 0).to(torch.float64)
    return (sx[:, None] / 2 * w.abs().sum(dim=1)[None, :] + sw[None, :] / 2 * (x64.abs() @ nz.t())
            + sw[None, :] * sx[:, None] / 4 * nz.sum(dim=1)[None, :])


def fill_1x4(weight: torch.Tensor) -> float:
    """Stored values per non-zero when ``weight`` is kept in 1x4 blocks (1.0: pruned with 1x4 blocks;
    at most 4.0). ``inf`` for an all-zero weight."""
    out_f, in_f = weight.shape
    nz = weight.detach() != 0
    pad = (-in_f) % 4
    if pad:
        nz = torch.nn.functional.pad(nz, (0, pad))
    blocks = int(nz.reshape(out_f, -1, 4).any(dim=2).sum())
    nnz = int(nz.sum())
    return 4.0 * blocks / nnz if nnz else float("inf")


def blocks_1x4(wq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Block CSR of an int8 weight in 1x4 blocks (the kernel's layout).

    Args:
        wq: int8 ``[out, in]``.
    Returns:
        ``(row_ptr int32 [out + 1], bcol int16 [blocks], wv int32 [blocks])``: block ``j`` of row
        ``o`` (``row_ptr[o] <= j < row_ptr[o + 1]``) covers columns ``4 * bcol[j] .. + 4`` (``bcol``
        read as uint16), ``wv[j]`` holds those 4 int8 weights little-endian (zero past ``in``).
    Raises:
        InputError: more than :data:`MAX_IN_FEATURES` input features.
    """
    out_f, in_f = wq.shape
    if in_f > MAX_IN_FEATURES:
        raise InputError(f"int8 kernel: in_features {in_f} > {MAX_IN_FEATURES} could overflow the int32 accumulator")
    pad = (-in_f) % 4
    w = torch.nn.functional.pad(wq, (0, pad)) if pad else wq
    packed = w.contiguous().view(torch.int32)  # [out, in/4]: 4 int8 -> 1 int32, memory order kept
    keep = packed != 0
    row_ptr = torch.zeros(out_f + 1, dtype=torch.int64)
    row_ptr[1:] = keep.sum(dim=1).cumsum(0)
    cols = keep.nonzero()[:, 1]  # row-major order: blocks of row 0, then row 1, ...
    bcol = torch.where(cols >= 32768, cols - 65536, cols).to(torch.int16)
    return row_ptr.to(torch.int32), bcol.contiguous(), packed[keep].contiguous()


class Int8BlockLinear(SparseLinearBase):
    """Sparse-int8 linear (CPU): int8 weights in 1x4 blocks, activations quantised per token.

    Computes ``y [..., out] = dequant(quant(x) @ Wq^T) + b`` for ``x [..., in]`` (any float dtype;
    computed in fp32, returned in the input's dtype); numerics and error bound in
    :mod:`sparsebert.runtime.int8`. ``params``: ``tile`` (tokens per register tile: 8, 16, 32, 64)
    and ``rows`` (output rows per parallel task; 0 = all rows of a token tile).

    Args:
        weight: ``[out, in]`` float, pruned (exact zeros); quantised here.
        bias: ``[out]`` or None.
        impl: ``"auto"`` (the compiled kernel's SIMD path, the torch reference when the extension is
            not built), ``"generic"`` (the kernel's plain C++ path) or ``"torch"``
            (:func:`int8_linear_reference`).
    Raises:
        InputError: a bad ``tile``/``impl``, a non-finite weight, too many input features.
        RuntimeError: ``impl="generic"`` without the compiled extension.
    """

    kernel = "sbk-int8"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, tile: int = 32, rows: int = 64,
                 impl: str = "auto"):
        from sparsebert.runtime.build import build_error, load_kernel

        if tile not in INT8_TILES:
            raise InputError(f"sbk-int8: tile must be one of {INT8_TILES} tokens, got {tile}")
        if impl not in ("auto", "generic", "torch"):
            raise InputError(f"sbk-int8: impl must be 'auto', 'generic' or 'torch', got {impl!r}")
        if impl == "generic" and load_kernel() is None:
            raise RuntimeError(f"sbk-int8 generic kernel unavailable: {build_error()}")
        out_f, in_f = weight.shape
        super().__init__(in_f, out_f, None if bias is None else bias.detach().float().cpu(), {"tile": tile, "rows": rows})
        wq, scale = quantize_weight(weight)
        rp, bcol, wv = blocks_1x4(wq)
        self.register_buffer("row_ptr", rp, persistent=False)
        self.register_buffer("bcol", bcol, persistent=False)
        self.register_buffer("wv", wv, persistent=False)
        self.register_buffer("w_scale", scale.contiguous(), persistent=False)
        nnz = int((weight != 0).sum())
        #: stored int8 values per non-zero of the fp32 weight (1.0 for 1x4-block pruning, at most 4)
        self.fill = 4.0 * bcol.numel() / nnz if nnz else float("inf")
        self.impl = impl
        self._tile = tile
        self._rows = rows
        self._wq_dense: torch.Tensor | None = None

    @property
    def _ext(self):
        from sparsebert.runtime.build import load_kernel

        return None if self.impl == "torch" else load_kernel()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fill_1x4={self.fill:.2f}"

    def quantized_weight(self) -> torch.Tensor:
        """The int8 weight, dense ``[out, in]`` (``dense_weight() == w_scale[:, None] * this``)."""
        if self._wq_dense is None:
            kb = (self.in_features + 3) // 4
            packed = torch.zeros(self.out_features, kb, dtype=torch.int32)
            rows = torch.repeat_interleave(torch.arange(self.out_features), (self.row_ptr[1:] - self.row_ptr[:-1]).long())
            packed[rows, self.bcol.long() % 65536] = self.wv
            self._wq_dense = packed.view(torch.int8)[:, : self.in_features].contiguous()
        return self._wq_dense

    def dense_weight(self) -> torch.Tensor:
        """The dequantised weight ``w_scale[:, None] * Wq``, fp32 ``[out, in]``."""
        return self.w_scale[:, None] * self.quantized_weight().float()

    def _forward_2d(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if x.device.type != "cpu":
            raise RuntimeError("sbk-int8 kernel runs on CPU only")
        x = x.to(torch.float32).contiguous()
        ext = self._ext
        if ext is None:
            y = int8_linear_reference(x, self.quantized_weight(), self.w_scale, self.bias)
        else:
            y = ext.int8_block_linear(x, self.row_ptr, self.bcol, self.wv, self.w_scale, self.bias, self._tile,
                                      self._rows, 1 if self.impl == "generic" else 0)
        return y if dtype == torch.float32 else y.to(dtype)


# ------------------------------------------------------------------------------------------------
# 4x1 blocks (4 output rows x 1 input column, ``--pattern 4x1``): csrc/spmm_int8_4x1.cpp

#: the most input features of the 4x1 int8 kernel (uint16 columns; its int32 sums cannot overflow)
MAX_IN_FEATURES_4X1 = 65_536
#: tokens per tile of the 4x1 int8 kernel (32 only in VNNI builds: ``engine_max_tile_int8_4x1``)
INT8_4X1_TILES = (16, 32)


def quantize_blocks_4x1(row_ptr: torch.Tensor, values: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-row int8 quantisation of a matrix held as 4x1 blocks, exactly :func:`quantize_weight` of its
    dense form (same scales, same int8 values), without a dense copy.

    Args:
        row_ptr: ``[n_out / 4 + 1]`` block-row pointers (any integer dtype).
        values: fp32 ``[4 * blocks]`` (block ``j`` holds rows ``4g .. 4g + 4`` at ``4j .. 4j + 4``).
        n_out: the matrix's rows (a multiple of 4).
    Returns:
        ``(q int8 [blocks, 4], scale fp32 [n_out])``.
    Raises:
        InputError: inf / NaN values, or arrays that do not fit together.
    """
    rp = row_ptr.to(torch.int64)
    vals = values.detach().to(torch.float32).reshape(-1, 4)
    if n_out % 4 or rp.numel() != n_out // 4 + 1 or int(rp[-1]) != vals.shape[0]:
        raise InputError(f"4x1 blocks: row_ptr of {rp.numel()} entries / {vals.shape[0]} blocks do not fit {n_out} rows")
    if not torch.isfinite(vals).all():
        raise InputError("weight holds inf or NaN; int8 quantisation needs finite weights")
    groups = torch.repeat_interleave(torch.arange(n_out // 4), rp[1:] - rp[:-1])
    rows = (4 * groups[:, None] + torch.arange(4)[None, :]).reshape(-1)
    amax = torch.zeros(n_out).scatter_reduce_(0, rows, vals.abs().reshape(-1), "amax", include_self=True)
    scale = amax / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(vals.reshape(-1) / safe[rows]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(-1, 4), scale


def units_4x1(row_ptr: torch.Tensor, col: torch.Tensor, q: torch.Tensor,
              n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 4x1 int8 kernel's arrays: each block-row's blocks taken 4 at a time into units of 4 columns x 4 rows
    (the last unit of a block-row padded with zero weights at a repeat of its last real column).

    Args:
        row_ptr: ``[n_out / 4 + 1]`` block-row pointers; col: ``[blocks]`` input columns (int16 read as
            uint16, or any integer dtype); q: int8 ``[blocks, 4]`` (:func:`quantize_blocks_4x1`).
        n_in: input features (at most :data:`MAX_IN_FEATURES_4X1`).
    Returns:
        ``(urp int32 [n_out / 4 + 1], ucol int16 [4 * units], uw int32 [4 * units])`` (layout in
        ``csrc/spmm_int8_4x1.cpp``); the native code checks them again.
    Raises:
        InputError: more than :data:`MAX_IN_FEATURES_4X1` input features.
    """
    from sparsebert.runtime.linear import kernel_columns

    if n_in > MAX_IN_FEATURES_4X1:
        raise InputError(f"int8 4x1 kernel: in_features {n_in} > {MAX_IN_FEATURES_4X1}")
    rp = row_ptr.to(torch.int64)
    c = col.to(torch.int64)
    if col.dtype == torch.int16:
        c = c % 65536
    n_groups = rp.numel() - 1
    counts = rp[1:] - rp[:-1]
    ucount = (counts + 3) // 4
    urp = torch.zeros(n_groups + 1, dtype=torch.int64)
    urp[1:] = torch.cumsum(ucount, 0)
    units = int(urp[-1])
    group = torch.repeat_interleave(torch.arange(n_groups), counts)
    slot = 4 * urp[group] + (torch.arange(c.numel()) - rp[group])
    last = torch.zeros(n_groups, dtype=torch.int64)
    has = counts > 0
    last[has] = c[rp[1:][has] - 1]
    ucol = last[torch.repeat_interleave(torch.arange(n_groups), 4 * ucount)]
    ucol[slot] = c
    qs = torch.zeros(4 * units, 4, dtype=torch.int8)
    qs[slot] = q.reshape(-1, 4).to(torch.int8)
    uw = qs.reshape(units, 4, 4).transpose(1, 2).contiguous().view(torch.int32).reshape(-1)  # [unit, row] words
    return urp.to(torch.int32), kernel_columns(ucol, n_in), uw.contiguous()
