"""The whole-encoder engine: a pruned BERT-family model run layer after layer in native code.

:class:`EncoderEngine` takes a (pruned) transformers model and hands every encoder layer to the C++
engine (``sparsebert/runtime/csrc/engine.cpp``): Q/K/V as one product, attention per sequence on
real tokens only, residual add + LayerNorm and GELU fused into the linears that precede them. Python
only packs the batch (drops padding) before the call and runs the tiny classification head
(``[batch, hidden]``) after it.

    >>> engine = EncoderEngine(model)                      # model: a BertForSequenceClassification, ...
    >>> out = engine(input_ids=ids, attention_mask=mask)   # out.logits: [batch, labels], fp32
    >>> emb = engine.embed(input_ids=ids, attention_mask=mask)   # [batch, hidden]: mean-pooled

Families (``config.model_type``): ``bert`` (MiniLM too), ``roberta``, ``xlm-roberta``, ``camembert``,
``electra`` (embedding size = hidden size), ``mpnet`` (relative-position bias added to the scores)
and ``distilbert``: all post-LayerNorm encoders. Heads: the family's sequence classification head
(BERT pooler + classifier; RoBERTa / XLM-R / MPNet / ELECTRA classification heads; DistilBERT
pre-classifier + ReLU), with ``config.sparsebert_pooling = "mean"`` honoured
(:mod:`sparsebert.pooling`), or no head (the base ``*Model``: hidden states and embeddings).

Each of the six matrices per layer (Q, K, V together) runs as ``4x1`` (fp32, weights pruned in blocks of 4
output rows x 1 input column, ``--pattern 4x1``: :func:`blocks_4x1`, at most :data:`BLOCK4_MAX_FILL` stored
values per non-zero), ``csr`` (fp32 CSR, density at most :data:`CSR_MAX_DENSITY`), ``dense`` (fp32 through
ATen's addmm) or, with ``int8=True``, ``int8-4x1`` (int8 in 4x1 blocks, ``csrc/spmm_int8_4x1.cpp``: chosen
for the matrices that would run on the fp32 4x1 kernel, i.e. 4x1-pruned ones, with at most 65,536 inputs) or
else ``int8`` (1x4 blocks); both with per-output-channel weight scales and per-token activation scales
(:mod:`sparsebert.runtime.int8`), and the same quantisation, so they compute the same values. Numerics: fp32 paths match the transformers model to rounding
(the sums run in another order; GELU's erf is the Abramowitz-Stegun 7.1.26 form, absolute error
<= 1.5e-7); tested at 1e-4 absolute on the logits of tiny models (:data:`FP32_LOGIT_ATOL`).
``attention_dtype="bfloat16"`` runs the attention core in bf16 (for AVX512-BF16 CPUs; emulated and
slower elsewhere).

Source of the design: Intel's sparse inference accelerator (Shen et al. 2023, arXiv 2306.16601:
fused epilogues, per-layer native execution) and DeepSparse's whole-graph execution; the
padding-free packing is that of "packed" / variable-length attention (e.g. FlashAttention's
``cu_seqlens``).

Raises (at construction): :class:`EngineUnavailableError` when the native extension cannot be built,
:class:`~sparsebert.targets.UnsupportedArchitectureError` for another family or an unsupported
activation / embedding layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparsebert.errors import InputError, SparsebertError
from sparsebert.targets import UnsupportedArchitectureError

#: activation name (``config.hidden_act`` / DistilBERT ``config.activation``) -> engine id (vmath.h Act)
ACTIVATIONS = {"gelu": 1, "gelu_new": 2, "gelu_pytorch_tanh": 2, "gelu_fast": 2, "relu": 3}
#: a matrix runs as fp32 CSR at or below this density (fraction of non-zeros), else dense
CSR_MAX_DENSITY = 0.35
#: an int8 matrix: 1x4 blocks are used when the stored block values are at most this fraction of the matrix
INT8_MAX_BLOCK_DENSITY = 0.5
#: a matrix runs on the 4x1-block kernel when its blocks store at most this many values per non-zero
BLOCK4_MAX_FILL = 1.25
#: tested logit tolerance of the fp32 engine against the transformers model (absolute)
FP32_LOGIT_ATOL = 1e-4
#: bytes of a packed CSR token tile that still fit the L2 cache comfortably (tile choice)
_TILE_BYTES = 128 * 1024
ATTENTION_DTYPES = ("float32", "bfloat16")


class EngineUnavailableError(SparsebertError, RuntimeError):
    """The native extension that holds the engine could not be built or loaded (the reason is named)."""


@dataclass
class EngineReport:
    """What the engine runs.

    Attributes:
        family: ``config.model_type``.
        isa: the extension build (``native`` or ``avx2``; :func:`sparsebert.runtime.build.resolve_isa`).
        int8_isa: the int8 kernel's SIMD path in that build (``avx512-vnni``, ``avx2``, ...).
        attention_dtype: ``float32`` or ``bfloat16``.
        hidden: the hidden size.
        kinds: matrix name (``layer.3.qkv``, ``layer.3.ffn_in``, ...) -> ``4x1`` / ``csr`` / ``dense`` / ``int8`` /
            ``int8-4x1``.
        nnz: matrix name -> stored non-zeros (int8: stored block values).
        build_s: seconds to build the engine (conversion of every matrix).
    """

    family: str
    isa: str
    int8_isa: str
    attention_dtype: str
    hidden: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    nnz: dict[str, int] = field(default_factory=dict)
    build_s: float = 0.0

    def counts(self) -> dict[str, int]:
        """kind -> number of matrices."""
        out: dict[str, int] = {}
        for k in self.kinds.values():
            out[k] = out.get(k, 0) + 1
        return out

    def matrix_bytes(self) -> int:
        """Bytes of the encoder's matrices as the engine stores them (values and indices), i.e. the weight
        bytes one call reads: CSR 4 + 2 per non-zero (+ row pointers), 4x1 blocks 4 per value + 2 per block,
        int8 (1x4 and 4x1) 1 per stored value + 2 per block of 4, dense 4 per weight."""
        per = {"csr": 6.0, "4x1": 4.5, "int8": 1.5, "int8-4x1": 1.5, "dense": 4.0}
        return int(sum(per[k] * self.nnz[n] for n, k in self.kinds.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "hidden": self.hidden, "isa": self.isa, "int8_isa": self.int8_isa,
                "attention_dtype": self.attention_dtype, "counts": self.counts(), "kinds": dict(self.kinds),
                "nnz": dict(self.nnz), "matrix_bytes": self.matrix_bytes(), "build_s": round(self.build_s, 3)}


@dataclass
class _Family:
    base: nn.Module
    word: nn.Embedding
    pos: nn.Embedding
    type: nn.Embedding | None
    emb_ln: nn.LayerNorm
    layers: list[dict[str, nn.Module]]
    act: str
    eps: float
    padding_idx: int | None  # positions from input ids as RoBERTa / MPNet do; None: 0 .. S - 1
    relative_bias: Any = None  # MPNet: the encoder (compute_position_bias)


def _bert_layers(base: nn.Module) -> list[dict[str, nn.Module]]:
    return [{"q": lyr.attention.self.query, "k": lyr.attention.self.key, "v": lyr.attention.self.value,
             "o": lyr.attention.output.dense, "ln1": lyr.attention.output.LayerNorm,
             "ffn_in": lyr.intermediate.dense, "ffn_out": lyr.output.dense, "ln2": lyr.output.LayerNorm}
            for lyr in base.encoder.layer]


def _family(model: nn.Module) -> _Family:
    config = model.config
    mt = getattr(config, "model_type", None)
    base = getattr(model, "base_model", model)
    if mt in ("bert", "roberta", "xlm-roberta", "camembert", "electra"):
        emb = base.embeddings
        if getattr(base, "embeddings_project", None) is not None:
            raise UnsupportedArchitectureError(f"{mt}: embedding size {config.embedding_size} != hidden size "
                                               f"{config.hidden_size} (embeddings_project) is not supported by the engine")
        pos_type = getattr(config, "position_embedding_type", "absolute")
        if pos_type not in (None, "absolute"):
            raise UnsupportedArchitectureError(f"{mt}: position_embedding_type {pos_type!r} is not supported by the "
                                               "engine (only 'absolute')")
        padding_idx = emb.padding_idx if mt in ("roberta", "xlm-roberta", "camembert") else None
        return _Family(base, emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings, emb.LayerNorm,
                       _bert_layers(base), config.hidden_act, float(config.layer_norm_eps), padding_idx)
    if mt == "mpnet":
        emb = base.embeddings
        layers = [{"q": lyr.attention.attn.q, "k": lyr.attention.attn.k, "v": lyr.attention.attn.v,
                   "o": lyr.attention.attn.o, "ln1": lyr.attention.LayerNorm, "ffn_in": lyr.intermediate.dense,
                   "ffn_out": lyr.output.dense, "ln2": lyr.output.LayerNorm} for lyr in base.encoder.layer]
        return _Family(base, emb.word_embeddings, emb.position_embeddings, None, emb.LayerNorm, layers,
                       config.hidden_act, float(config.layer_norm_eps), emb.padding_idx, base.encoder)
    if mt == "distilbert":
        emb = base.embeddings
        layers = [{"q": lyr.attention.q_lin, "k": lyr.attention.k_lin, "v": lyr.attention.v_lin,
                   "o": lyr.attention.out_lin, "ln1": lyr.sa_layer_norm, "ffn_in": lyr.ffn.lin1,
                   "ffn_out": lyr.ffn.lin2, "ln2": lyr.output_layer_norm} for lyr in base.transformer.layer]
        return _Family(base, emb.word_embeddings, emb.position_embeddings, None, emb.LayerNorm, layers,
                       config.activation, 1e-12, None)
    raise UnsupportedArchitectureError(f"model_type {mt!r} is not supported by the engine; supported: bert, roberta, "
                                       "xlm-roberta, camembert, electra, mpnet, distilbert")


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).cpu().contiguous()


def _bias(m: nn.Linear) -> torch.Tensor:
    return torch.zeros(m.out_features) if m.bias is None else _f32(m.bias)


@dataclass
class SparseMatrix:
    """One ``[out, in]`` matrix as its non-zeros: ``row_ptr`` int64 ``[out + 1]``, ``col`` int64 ``[nnz]``
    (increasing within a row), ``values`` fp32 ``[nnz]``. What the engine builds its kernels' arrays from,
    whether the matrix comes from a module's dense weight (:meth:`from_dense`) or straight from a compact
    checkpoint's CSR / bitmask parts (:meth:`EncoderEngine.from_checkpoint`), without a dense copy."""

    row_ptr: torch.Tensor
    col: torch.Tensor
    values: torch.Tensor
    shape: tuple[int, int]
    #: int8 4x1 blocks as a compact checkpoint stores them (``layout="int8-4x1"``): ``(block row_ptr
    #: [out / 4 + 1], col [blocks], q int8 [blocks, 4], scale fp32 [out])``; the fields above hold the
    #: dequantised non-zeros. The int8 engine uses these as they are (no second quantisation).
    int8_4x1: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def nnz(self) -> int:
        return int(self.col.numel())

    @staticmethod
    def from_dense(w: torch.Tensor) -> "SparseMatrix":
        """The non-zeros of a dense ``[out, in]`` weight (exact zeros are not stored)."""
        import warnings

        with warnings.catch_warnings():  # torch: "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            csr = _f32(w).to_sparse_csr()
        return SparseMatrix(csr.crow_indices().to(torch.int64), csr.col_indices().to(torch.int64),
                            csr.values().contiguous(), tuple(w.shape))

    @staticmethod
    def vstack(mats: list["SparseMatrix"]) -> "SparseMatrix":
        """The rows of ``mats`` one after the other (Q, K and V as one ``[3 * hidden, hidden]`` matrix)."""
        n_in = mats[0].shape[1]
        if any(m.shape[1] != n_in for m in mats):
            raise ValueError(f"vstack: column counts differ: {[m.shape for m in mats]}")
        ptrs, offset = [mats[0].row_ptr[:1]], 0
        for m in mats:
            ptrs.append(m.row_ptr[1:] + offset)
            offset += m.nnz
        q8 = None
        if all(m.int8_4x1 is not None for m in mats):  # stored int8 blocks stack too (block rows, then scales)
            bptrs, boff = [mats[0].int8_4x1[0][:1].to(torch.int64)], 0
            for m in mats:
                bptrs.append(m.int8_4x1[0][1:].to(torch.int64) + boff)
                boff += m.int8_4x1[1].numel()
            q8 = (torch.cat(bptrs), torch.cat([m.int8_4x1[1].to(torch.int64) for m in mats]),
                  torch.cat([m.int8_4x1[2] for m in mats]), torch.cat([m.int8_4x1[3] for m in mats]))
        return SparseMatrix(torch.cat(ptrs), torch.cat([m.col for m in mats]), torch.cat([m.values for m in mats]),
                            (sum(m.shape[0] for m in mats), n_in), q8)

    def to_dense(self) -> torch.Tensor:
        out, n_in = self.shape
        rows = torch.repeat_interleave(torch.arange(out), self.row_ptr[1:] - self.row_ptr[:-1])
        dense = torch.zeros(out * n_in)
        dense[rows * n_in + self.col] = self.values
        return dense.reshape(out, n_in)

    def csr_arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(row_ptr int32, col, values fp32)`` as the C++ kernels read them (:func:`sparsebert.runtime.linear.csr_arrays`)."""
        from sparsebert.runtime.linear import kernel_columns

        return self.row_ptr.to(torch.int32).contiguous(), kernel_columns(self.col, self.shape[1]), self.values.contiguous()

    def blocks_4x1(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The 4x1-block CSR arrays (blocks of 4 consecutive output rows x 1 input column; a block is
        stored when any of its 4 weights is non-zero, its zeros filled in).

        Returns:
            ``(row_ptr int32 [out / 4 + 1], col [blocks] (int16 holding uint16 when in <= 65536, else
            int32), values fp32 [4 * blocks])``: block ``j`` of row group ``g`` (``row_ptr[g] <= j <
            row_ptr[g + 1]``) holds ``w[4g .. 4g + 4, col[j]]`` at ``values[4j .. 4j + 4)``.
        Raises:
            ValueError: ``out`` is not a multiple of 4.
        """
        out, n_in = self.shape
        if out % 4:
            raise ValueError(f"4x1 blocks need out_features divisible by 4, got {out}")
        rows = torch.repeat_interleave(torch.arange(out), self.row_ptr[1:] - self.row_ptr[:-1])
        keys, block = torch.unique(rows // 4 * n_in + self.col, sorted=True, return_inverse=True)
        vals = torch.zeros(keys.numel(), 4)
        vals[block, rows % 4] = self.values
        rp = torch.zeros(out // 4 + 1, dtype=torch.int64)
        rp[1:] = torch.cumsum(torch.bincount(keys // n_in, minlength=out // 4), 0)
        from sparsebert.runtime.linear import kernel_columns

        return rp.to(torch.int32), kernel_columns(keys % n_in, n_in), vals.reshape(-1).contiguous()


def blocks_4x1(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 4x1-block CSR arrays of a dense ``[out, in]`` weight (:meth:`SparseMatrix.blocks_4x1`)."""
    return SparseMatrix.from_dense(w).blocks_4x1()


def csr_tile(n_in: int) -> int:
    """Register tile of the CSR kernel (multiples of 16 tokens: 1, 2, 4 or 8) for ``n_in`` input features:
    the largest whose packed activations (``n_in x 16 * tile`` fp32) stay within 128 KiB (measured best on an AVX2 EPYC for 768 and 3,072 inputs)."""
    for tile in (8, 4, 2, 1):
        if n_in * 16 * tile * 4 <= _TILE_BYTES:
            return tile
    return 1


class EncoderEngine:
    """A transformers encoder (with its classification head, or none) run by the native engine.

    Args:
        model: a ``*ForSequenceClassification`` or base ``*Model`` of a supported family (module docstring),
            on CPU, with fp32, fp16 or bf16 weights (converted to fp32); pruned weights hold exact zeros.
        int8: run the six matrices of each layer as sparse int8: 4x1 blocks for 4x1-pruned matrices (those the
            fp32 engine runs on its 4x1 kernel), else 1x4 blocks (dense fp32 where those blocks would hold more
            than :data:`INT8_MAX_BLOCK_DENSITY` of the matrix).
        attention_dtype: ``"float32"`` or ``"bfloat16"`` (the attention core only).
        isa: ``"native"`` or ``"avx2"`` build of the extension (default ``$SPARSEBERT_ISA`` or native).
        csr_max_density: matrices at or below this density run as CSR (fp32 path).
        matrices: parameter name (``bert.encoder.layer.0.attention.self.query.weight``) -> its non-zeros, used
            instead of the module's weight (:meth:`from_checkpoint`: the compact checkpoint's arrays; the
            module's weight is then never read and may be on the ``meta`` device).
    Raises:
        EngineUnavailableError: the extension cannot be built (the reason is named).
        UnsupportedArchitectureError: another family, activation or embedding layout.
        InputError: a bad ``attention_dtype`` / ``isa``.
    """

    def __init__(self, model: nn.Module, *, int8: bool = False, attention_dtype: str = "float32",
                 isa: str | None = None, csr_max_density: float = CSR_MAX_DENSITY,
                 matrices: dict[str, SparseMatrix] | None = None):
        from sparsebert.runtime.build import build_error, load_kernel, resolve_isa

        if attention_dtype not in ATTENTION_DTYPES:
            raise InputError(f"attention_dtype must be one of {list(ATTENTION_DTYPES)}, got {attention_dtype!r}")
        t0 = time.perf_counter()
        isa = resolve_isa(isa)
        ext = load_kernel(isa=isa)
        if ext is None or not hasattr(ext, "Engine"):
            raise EngineUnavailableError(f"the native engine is not available ({isa} build): {build_error(isa)}")
        self._ext = ext
        self.model = model
        self.config = model.config
        fam = _family(model)
        if fam.act not in ACTIVATIONS:
            raise UnsupportedArchitectureError(f"activation {fam.act!r} is not supported by the engine; "
                                               f"supported: {sorted(ACTIVATIONS)}")
        self._fam = fam
        hidden = fam.word.weight.shape[1]
        heads = int(getattr(self.config, "num_attention_heads", getattr(self.config, "n_heads", 0)))
        self.hidden, self.heads = hidden, heads
        self.report = EngineReport(str(self.config.model_type), isa, str(ext.int8_isa()), attention_dtype, hidden)
        eng = ext.Engine(hidden, heads, ACTIVATIONS[fam.act], float(fam.emb_ln.eps), fam.eps,
                         attention_dtype == "bfloat16", fam.relative_bias is not None)
        eng.set_embeddings(_f32(fam.word.weight), _f32(fam.pos.weight),
                           None if fam.type is None else _f32(fam.type.weight), _f32(fam.emb_ln.weight),
                           _f32(fam.emb_ln.bias))
        names = {id(m): n for n, m in model.named_modules()}
        given = dict(matrices or {})

        def nonzeros(m: nn.Linear) -> SparseMatrix:
            key = f"{names[id(m)]}.weight"
            return given.pop(key) if key in given else SparseMatrix.from_dense(m.weight)

        for i, lyr in enumerate(fam.layers):
            q, k, v = lyr["q"], lyr["k"], lyr["v"]
            qkv = SparseMatrix.vstack([nonzeros(q), nonzeros(k), nonzeros(v)])
            qkv_b = torch.cat([_bias(q), _bias(k), _bias(v)])
            lins = {"qkv": self._linear(f"layer.{i}.qkv", qkv, qkv_b, int8, csr_max_density)}
            for name in ("o", "ffn_in", "ffn_out"):
                m = lyr[name]
                lins[name] = self._linear(f"layer.{i}.{name}", nonzeros(m), None if m.bias is None else _f32(m.bias),
                                          int8, csr_max_density)
            for ln in ("ln1", "ln2"):
                if abs(float(lyr[ln].eps) - fam.eps) > 1e-20:
                    raise UnsupportedArchitectureError(f"layer {i}: LayerNorm eps {lyr[ln].eps} differs from the "
                                                       f"config's {fam.eps}")
            eng.add_layer(lins["qkv"], lins["o"], lins["ffn_in"], lins["ffn_out"], _f32(lyr["ln1"].weight),
                          _f32(lyr["ln1"].bias), _f32(lyr["ln2"].weight), _f32(lyr["ln2"].bias))
        if given:
            raise InputError(f"matrices given for parameters the engine does not run: {sorted(given)[:3]}")
        self._engine = eng
        self._bias: torch.Tensor | None = None
        self.report.build_s = time.perf_counter() - t0

    def _linear(self, name: str, m: SparseMatrix, b: torch.Tensor | None, int8: bool, csr_max_density: float):
        """The engine linear of one matrix: with ``int8``, int8 4x1 blocks where the fp32 4x1 kernel would be
        chosen (4x1-pruned matrices; or the int8 blocks a checkpoint stores), else int8 1x4 blocks (the matrix is
        densified for the quantisation); without, or where int8 blocks would be too dense, 4x1 blocks, CSR, or
        dense (see the module docstring for the choice)."""
        from sparsebert.runtime.int8 import MAX_IN_FEATURES_4X1, blocks_1x4, quantize_blocks_4x1, quantize_weight, units_4x1

        n_out, n_in = m.shape
        numel = n_out * n_in
        if int8 and n_in <= MAX_IN_FEATURES_4X1 and (m.int8_4x1 is not None or bool(torch.isfinite(m.values).all())):
            q8 = m.int8_4x1
            if q8 is None and n_out % 4 == 0 and m.nnz <= csr_max_density * numel:
                brp, bcol, bvals = m.blocks_4x1()
                if bvals.numel() <= BLOCK4_MAX_FILL * m.nnz:
                    q8 = (brp, bcol, *quantize_blocks_4x1(brp, bvals, n_out))
            if q8 is not None:
                urp, ucol, uw = units_4x1(q8[0], q8[1], q8[2], n_in)
                self.report.kinds[name], self.report.nnz[name] = "int8-4x1", 4 * int(uw.numel())
                tile = int(self._ext.engine_max_tile_int8_4x1())
                return self._ext.engine_int8_4x1(urp, ucol, uw, q8[3].float().contiguous(), b, n_in, tile, 64)
        if int8 and bool(torch.isfinite(m.values).all()):
            wq, scale = quantize_weight(m.to_dense())
            rp, bcol, wv = blocks_1x4(wq)
            if 4 * bcol.numel() <= INT8_MAX_BLOCK_DENSITY * numel:
                self.report.kinds[name], self.report.nnz[name] = "int8", 4 * int(bcol.numel())
                tile = 32 if n_in <= 1024 else 16
                return self._ext.engine_int8(rp, bcol, wv, scale.float().contiguous(), b, n_in, tile, 64)
        if n_out % 4 == 0 and m.nnz <= csr_max_density * numel:
            brp, bcol, bvals = m.blocks_4x1()
            if bvals.numel() <= BLOCK4_MAX_FILL * m.nnz:
                self.report.kinds[name], self.report.nnz[name] = "4x1", int(bvals.numel())
                tile = min(csr_tile(n_in), int(self._ext.engine_max_tile_4x1()))
                return self._ext.engine_block4x1(brp, bcol, bvals, b, n_in, tile, 0)
        if m.nnz <= csr_max_density * numel:
            rp, ci, v = m.csr_arrays()
            self.report.kinds[name], self.report.nnz[name] = "csr", m.nnz
            return self._ext.engine_csr(rp, ci, v, b, n_in, csr_tile(n_in), 0)
        self.report.kinds[name], self.report.nnz[name] = "dense", numel
        return self._ext.engine_dense(m.to_dense(), b)

    # ------------------------------------------------------------------------------------------
    def pack(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
             token_type_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """The engine's packed inputs of a padded batch (only the tokens with mask 1, sequence by sequence).

        Args:
            input_ids: ``[batch, seq]`` integer token ids.
            attention_mask: ``[batch, seq]`` in {0, 1}, each row ones then zeros (right padding); None: all ones.
            token_type_ids: ``[batch, seq]`` or None (all 0).
        Returns:
            ``ids`` int64 [tokens], ``cu_seqlens`` int64 [batch + 1], ``positions`` int64 [tokens] (as the
            transformers model computes them), ``token_types`` int64 [tokens] or None, ``max_len``.
        Raises:
            InputError: shapes that disagree, a row whose mask is not ones-then-zeros or has no token,
                (naming the row); ids outside the vocabulary are refused by the native code (named too).
        """
        if input_ids.dim() != 2:
            raise InputError(f"input_ids must be [batch, seq], got shape {list(input_ids.shape)}")
        ids = input_ids.to(torch.int64).cpu()
        b, s = ids.shape
        if attention_mask is None:
            mask = torch.ones(b, s, dtype=torch.bool)
        else:
            if tuple(attention_mask.shape) != (b, s):
                raise InputError(f"attention_mask has shape {list(attention_mask.shape)}, input_ids {[b, s]}")
            mask = attention_mask.cpu() != 0
        lens = mask.sum(1)
        prefix = torch.arange(s)[None, :] < lens[:, None]
        bad = (prefix != mask).any(1) | (lens == 0)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise InputError(f"attention_mask row {row} is not ones followed by zeros with at least one token "
                             "(the engine packs right-padded batches; tokenizers pad on the right by default)")
        fam = self._fam
        if fam.padding_idx is not None:  # RoBERTa / MPNet: positions count the non-pad ids, from padding_idx + 1
            keep = ids.ne(fam.padding_idx).to(torch.int64)
            positions = torch.cumsum(keep, 1) * keep + fam.padding_idx
        else:
            positions = torch.arange(s, dtype=torch.int64).expand(b, s)
        types = None
        if token_type_ids is not None and fam.type is not None:
            if tuple(token_type_ids.shape) != (b, s):
                raise InputError(f"token_type_ids has shape {list(token_type_ids.shape)}, input_ids {[b, s]}")
            types = token_type_ids.to(torch.int64).cpu()[mask].contiguous()
        cu = torch.zeros(b + 1, dtype=torch.int64)
        cu[1:] = torch.cumsum(lens, 0)
        return {"ids": ids[mask].contiguous(), "cu_seqlens": cu, "positions": positions[mask].contiguous(),
                "token_types": types, "max_len": int(lens.max())}

    def _relative_bias(self, length: int) -> torch.Tensor | None:
        enc = self._fam.relative_bias
        if enc is None:
            return None
        if self._bias is None or self._bias.shape[1] < length:
            with torch.no_grad():
                x = torch.zeros(1, length, 1)
                self._bias = _f32(enc.compute_position_bias(x)[0])  # [heads, L, L]; depends on distances only
        return self._bias

    def _run(self, packed: dict, pooling: int) -> torch.Tensor:
        with torch.no_grad():
            return self._engine.forward(packed["ids"], packed["cu_seqlens"], packed["positions"],
                                        packed["token_types"], self._relative_bias(packed["max_len"]), pooling)

    def last_hidden_state(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's last hidden states, padded back to ``[batch, seq, hidden]`` (zeros on padding)."""
        packed = self.pack(input_ids, attention_mask, token_type_ids)
        h = self._run(packed, 0)
        b, s = input_ids.shape
        out = torch.zeros(b, s, self.hidden)
        mask = torch.ones(b, s, dtype=torch.bool) if attention_mask is None else attention_mask.cpu() != 0
        out[mask] = h
        return out

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
              token_type_ids: torch.Tensor | None = None, normalize: bool = False) -> torch.Tensor:
        """Sentence embeddings: the mean of each sequence's last hidden states (sentence-transformers'
        mean pooling, Reimers & Gurevych 2019), ``[batch, hidden]`` fp32; ``normalize``: unit L2 norm."""
        e = self._run(self.pack(input_ids, attention_mask, token_type_ids), 2)
        return torch.nn.functional.normalize(e, dim=-1) if normalize else e

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None, **unused):
        """The model's output for a padded batch: ``SequenceClassifierOutput`` (``.logits`` [batch, labels])
        for a classification model, ``BaseModelOutput`` (``.last_hidden_state`` [batch, seq, hidden]) for
        a base model. Other keyword arguments of a transformers call are ignored if None.

        Raises:
            InputError: see :meth:`pack`; a non-None keyword argument the engine does not take.
        """
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        extra = [k for k, v in unused.items() if v is not None and k not in ("return_dict",)]
        if extra:
            raise InputError(f"the engine does not take {extra} (inputs: input_ids, attention_mask, token_type_ids)")
        if self.model is self._fam.base:
            return BaseModelOutput(last_hidden_state=self.last_hidden_state(input_ids, attention_mask, token_type_ids))
        pooling = 2 if getattr(self.config, "sparsebert_pooling", "cls") == "mean" else 1
        pooled = self._run(self.pack(input_ids, attention_mask, token_type_ids), pooling)
        with torch.no_grad():
            logits = self._head(pooled)
        return SequenceClassifierOutput(logits=logits)

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        m, mt = self.model, self.config.model_type
        dtype = next(m.parameters()).dtype
        x = pooled.to(dtype)
        if mt == "bert":
            pooler = m.bert.pooler
            return m.classifier(pooler.activation(pooler.dense(x))).float()
        if mt == "distilbert":
            return m.classifier(torch.relu(m.pre_classifier(x))).float()
        return m.classifier(x[:, None, :]).float()  # RoBERTa / XLM-R / CamemBERT / MPNet / ELECTRA heads read [:, 0]

    # ------------------------------------------------------------------------------------------
    def profile(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, calls: int = 5) -> dict[str, float]:
        """Per-stage time of ``calls`` calls on one batch (ms per call): ``embeddings``, ``linears``,
        ``attention``, ``epilogue`` (passes after non-fused linears), ``pooling``, ``other`` (packing, the
        head, Python) and ``total``."""
        packed = self.pack(input_ids, attention_mask, token_type_ids)
        self._run(packed, 1)  # warm-up
        self._engine.reset_profile()
        self._engine.set_profile(True)
        t0 = time.perf_counter()
        try:
            for _ in range(calls):
                self(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        finally:
            self._engine.set_profile(False)
        total = (time.perf_counter() - t0) / calls
        p = self._engine.profile()
        out = {k[:-2]: 1e3 * v / calls for k, v in p.items() if k.endswith("_s")}
        out["other"] = max(0.0, 1e3 * total - sum(out.values()))
        out["total"] = 1e3 * total
        return out

    def nbytes(self) -> int:
        """Bytes of the model's weights as the engine holds them (matrices as stored
        (:meth:`EngineReport.matrix_bytes`), embedding tables fp32)."""
        fam = self._fam
        return self.report.matrix_bytes() + sum(4 * e.weight.numel() for e in (fam.word, fam.pos, fam.type)
                                                if e is not None)


__all__ = ["ACTIVATIONS", "BLOCK4_MAX_FILL", "CSR_MAX_DENSITY", "FP32_LOGIT_ATOL", "EncoderEngine", "EngineReport",
           "EngineUnavailableError", "SparseMatrix", "blocks_4x1", "csr_tile"]
