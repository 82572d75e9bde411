"""The int8 kernel for 4x1 blocks (runtime/csrc/spmm_int8_4x1.cpp) and the engine's choice of it: the kernel
against the exact int8 reference and the 1x4 int8 kernel (same quantisation, so the same values), every SIMD
path of the build (the AVX2 build forced on an AVX-512 machine; the VNNI data flow with vpdpbusd emulated
where the CPU has no VNNI), engines of 4x1-pruned models against the fp32 model within the int8 tolerance, and
malformed arrays refused before the kernel runs. Runs under ``make asan``."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsebert.engine import EncoderEngine
from sparsebert.engine.model import SparseMatrix
from sparsebert.runtime.build import cpu_flags, load_kernel
from sparsebert.runtime.int8 import (
    blocks_1x4,
    int8_linear_reference,
    quantize_blocks_4x1,
    quantize_weight,
    units_4x1,
)

pytestmark = pytest.mark.skipif(load_kernel() is None, reason="the native extension cannot be built here")

#: ISA builds to test: native, and the AVX2 build where it differs (an AVX-512 CPU)
ISAS = ("native", "avx2") if "avx512f" in cpu_flags() else ("native",)
#: impl 0: the build's SIMD path (VNNI or AVX2), 1: generic C++, 2: the VNNI data flow, vpdpbusd emulated in AVX2
IMPLS = (0, 1, 2) if "avx2" in cpu_flags() else (0, 1)
#: the int8 engine's stated tolerance (tests/test_engine.py): logits within 2 % of their range
INT8_REL_TOL = 0.02


def _pruned_4x1(n_out: int, n_in: int, density: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_out, n_in, generator=g)
    keep = (torch.rand(n_out // 4, n_in, generator=g) < density).repeat_interleave(4, 0)
    return w * keep


def _arrays(w: torch.Tensor):
    m = SparseMatrix.from_dense(w)
    brp, bcol, bvals = m.blocks_4x1()
    q, scale = quantize_blocks_4x1(brp, bvals, w.shape[0])
    return (*units_4x1(brp, bcol, q, w.shape[1]), scale)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n_out,n_in,tokens", [(48, 48, 5), (144, 48, 37), (48, 144, 16), (64, 300, 33), (8, 7, 1),
                                               (16, 1000, 70)])
def test_kernel_matches_the_exact_reference_and_the_1x4_kernel(isa, n_out, n_in, tokens):
    ext = load_kernel(isa=isa)
    w = _pruned_4x1(n_out, n_in, 0.3, seed=n_out + n_in)
    urp, ucol, uw, scale = _arrays(w)
    wq, scale_dense = quantize_weight(w)
    assert torch.equal(scale, scale_dense)  # the blocks' quantisation is the dense one
    x = torch.randn(tokens, n_in, generator=torch.Generator().manual_seed(tokens))
    x[0] *= 40.0  # tokens of very different ranges: per-token scales
    b = torch.randn(n_out)
    ref = int8_linear_reference(x, wq, scale_dense, b)
    rp, bc, wv = blocks_1x4(wq)
    y_1x4 = ext.int8_block_linear(x, rp, bc, wv, scale_dense, b, 16, 0, 0)
    outs = [ext.int8_4x1_linear(x, urp, ucol, uw, scale, b, tile, rows, impl)
            for impl in IMPLS for tile in (16, 32) for rows in (0, 16)]
    for y in outs:
        assert torch.equal(y, outs[0])  # every path, tile and split: the same accumulators, the same epilogue
    torch.testing.assert_close(outs[0], ref, atol=1e-5 * float(ref.abs().max()), rtol=1e-6)
    torch.testing.assert_close(outs[0], y_1x4, atol=1e-6 * float(ref.abs().max()), rtol=1e-6)


def test_zero_and_non_finite_tokens():
    ext = load_kernel()
    w = _pruned_4x1(16, 40, 0.5, seed=3)
    urp, ucol, uw, scale = _arrays(w)
    x = torch.randn(18, 40)
    x[3] = 0.0
    x[5, 7] = float("inf")
    b = torch.arange(16, dtype=torch.float32)
    for impl in IMPLS:
        y = ext.int8_4x1_linear(x, urp, ucol, uw, scale, b, 16, 0, impl)
        assert torch.equal(y[3], b)  # an all-zero token: the bias alone
        assert torch.isnan(y[5]).all() and torch.isfinite(y[torch.arange(18) != 5]).all()


def test_unit_layout():
    """Blocks taken 4 at a time per block-row; the last unit padded with zero weights at a real column."""
    w = torch.zeros(8, 10)
    w[0:4, [1, 3, 4, 6, 9]] = torch.arange(1, 21, dtype=torch.float32).reshape(4, 5)  # 5 blocks: 2 units
    w[4:8, 2] = 1.0  # 1 block: 1 unit
    m = SparseMatrix.from_dense(w)
    brp, bcol, bvals = m.blocks_4x1()
    q, scale = quantize_blocks_4x1(brp, bvals, 8)
    urp, ucol, uw = units_4x1(brp, bcol, q, 10)
    assert urp.tolist() == [0, 2, 3]
    assert ucol.tolist() == [1, 3, 4, 6, 9, 9, 9, 9, 2, 2, 2, 2]
    words = uw.view(torch.int8).reshape(3, 4, 4)  # [unit, row, column]
    wq, _ = quantize_weight(w)
    assert torch.equal(words[0], wq[0:4, [1, 3, 4, 6]])
    assert torch.equal(words[1, :, 0], wq[0:4, 9]) and not words[1, :, 1:].any()
    assert torch.equal(words[2, :, 0], wq[4:8, 2]) and not words[2, :, 1:].any()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_type", ["bert", "mpnet", "distilbert"])
def test_engine_runs_4x1_pruned_models_on_the_int8_4x1_kernel(model_type, isa):
    """int8 on a 4x1-pruned model (`--pattern 4x1`): every matrix on the 4x1 int8 kernel, logits within the int8
    tolerance of the fp32 model and equal to those of the 1x4 int8 kernel (same quantisation)."""
    from test_engine import _batch, _model

    from sparsebert.bench.synthetic import magnitude_prune_

    model = _model(model_type, sparsity=0.0)
    magnitude_prune_(model, 0.9, "4x1")
    engine = EncoderEngine(model, int8=True, isa=isa)
    assert engine.report.counts() == {"int8-4x1": 8}
    assert engine.report.matrix_bytes() > 0
    ids, mask, _ = _batch(3, 29, lens=[29, 2, 17], seed=8)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    out = engine(input_ids=ids, attention_mask=mask).logits
    err = (out - ref).abs().max()
    assert 0 < err <= INT8_REL_TOL * ref.abs().max()
    as_1x4 = EncoderEngine(model, int8=True, isa=isa, csr_max_density=0.0)  # the 4x1 choice needs a sparse matrix
    assert as_1x4.report.counts() == {"int8": 8}
    torch.testing.assert_close(as_1x4(input_ids=ids, attention_mask=mask).logits, out, atol=1e-5, rtol=0)


def test_unstructured_matrices_keep_the_1x4_int8_kernel():
    from test_engine import _model

    engine = EncoderEngine(_model("bert", sparsity=0.9), int8=True)
    assert engine.report.counts() == {"int8": 8}


# ------------------------------------------------------------------------------------------------
# Malformed arrays: refused before the kernel runs


def test_malformed_arrays_are_refused():
    ext = load_kernel()
    urp = torch.tensor([0, 1, 1], dtype=torch.int32)
    ucol = torch.tensor([0, 1, 2, 3], dtype=torch.int16)
    uw = torch.tensor([1, 2, 3, 4], dtype=torch.int32)
    scale = torch.ones(8)
    bias = torch.zeros(8)
    assert ext.engine_int8_4x1(urp, ucol, uw, scale, bias, 4, 16, 0).nnz == 16
    bad_byte = uw.clone()
    bad_byte[2] = -128  # byte 0 of row 2's word
    cases = {
        r"column index 4 at entry 3 is outside \[0, 4\)": (urp, torch.tensor([0, 1, 2, 4], dtype=torch.int16), uw, scale),
        r"column index 65535 at entry 0": (urp, torch.tensor([-1, 1, 2, 3], dtype=torch.int16), uw, scale),
        "row_ptr decreases at block-row 1": (torch.tensor([0, 1, 0], dtype=torch.int32), ucol, uw, scale),
        r"row_ptr\[2\] = 2 but 1 units": (torch.tensor([0, 1, 2], dtype=torch.int32), ucol, uw, scale),
        r"row_ptr\[0\] = 1": (torch.tensor([1, 1, 1], dtype=torch.int32), ucol, uw, scale),
        r"unit weights must be .* \[4\]": (urp, ucol, uw[:3], scale),
        r"unit columns must be .* \[4 \* units\]": (urp, ucol[:3], uw[:3], scale),
        r"weight scales must be .* \[8\]": (urp, ucol, uw, torch.ones(4)),
        "weight scale of row 5 is nan": (urp, ucol, uw, torch.tensor([1.0] * 5 + [math.nan, 1.0, 1.0])),
        "weight -128 in unit 0": (urp, ucol, bad_byte, scale),
        "has 2 units, more than the 1 that 4 input columns allow": (
            torch.tensor([0, 2, 2], dtype=torch.int32), ucol.repeat(2), uw.repeat(2), scale),
    }
    for msg, (rp, uc, w, s) in cases.items():
        with pytest.raises(RuntimeError, match=msg):
            ext.engine_int8_4x1(rp, uc, w, s, bias, 4, 16, 0)
        with pytest.raises(RuntimeError, match=msg):
            ext.int8_4x1_linear(torch.zeros(3, 4), rp, uc, w, s, bias, 16, 0, 0)
    with pytest.raises(RuntimeError, match="n_in must be in"):
        ext.engine_int8_4x1(urp, ucol, uw, scale, bias, 70000, 16, 0)
    with pytest.raises(RuntimeError, match="tile must be 16"):
        ext.engine_int8_4x1(urp, ucol, uw, scale, bias, 4, 8, 0)
    with pytest.raises(RuntimeError, match="bias has shape"):
        ext.engine_int8_4x1(urp, ucol, uw, scale, torch.zeros(4), 4, 16, 0)
    with pytest.raises(RuntimeError, match="impl must be"):
        ext.int8_4x1_linear(torch.zeros(3, 4), urp, ucol, uw, scale, bias, 16, 0, 7)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzzed_unit_arrays_never_reach_the_kernel_unchecked(data):
    """Any int32 row pointers / int16 columns / weight words: a consistent matrix that computes what the
    generic path computes, or an error naming the engine."""
    ext = load_kernel()
    groups = data.draw(st.integers(1, 3))
    n_in = data.draw(st.integers(1, 9))
    units = data.draw(st.integers(0, 4))
    urp = torch.tensor(data.draw(st.lists(st.integers(-2, 5), min_size=groups + 1, max_size=groups + 1)),
                       dtype=torch.int32)
    ucol = torch.tensor(data.draw(st.lists(st.integers(-32768, 32767), min_size=4 * units, max_size=4 * units)),
                        dtype=torch.int16)
    uw = torch.tensor(data.draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=4 * units, max_size=4 * units)),
                      dtype=torch.int32)
    scale = torch.rand(4 * groups)
    try:
        lin = ext.engine_int8_4x1(urp, ucol, uw, scale, None, n_in, 16, 0)
    except RuntimeError as err:
        assert str(err).startswith("engine: ")
        return
    assert int(urp[0]) == 0 and int(urp[-1]) == units and bool((urp[1:] >= urp[:-1]).all())
    assert bool(((ucol.to(torch.int64) % 65536) < n_in).all()) and not bool((uw.view(torch.int8) == -128).any())
    assert lin.nnz == 16 * units and lin.kind == "int8-4x1"
    x = torch.randn(5, n_in)
    y = [ext.int8_4x1_linear(x, urp, ucol, uw, scale, None, 16, 0, impl) for impl in IMPLS]
    assert all(torch.equal(v, y[0]) for v in y)
