"""The whole-encoder engine (sparsebert.engine; C++ in runtime/csrc/engine.cpp) against the transformers
model it was built from (the reference path: torch eager fp32), for every family, on random and padded
batches of odd shapes, fp32 and int8, on every ISA build the machine has (the AVX2 build forced on an
AVX-512 machine); malformed native inputs are refused before any kernel runs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from sparsebert.engine import FP32_LOGIT_ATOL, EncoderEngine
from sparsebert.errors import InputError
from sparsebert.runtime.build import cpu_flags, load_kernel
from sparsebert.targets import UnsupportedArchitectureError

pytestmark = pytest.mark.skipif(load_kernel() is None, reason="the native extension cannot be built here")

FAMILIES = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra")
#: ISA builds to test: native, and the AVX2 build where it differs (an AVX-512 CPU)
ISAS = ("native", "avx2") if "avx512f" in cpu_flags() else ("native",)


def _config(model_type: str, hidden: int = 48, heads: int = 4, layers: int = 2, act: str = "gelu"):
    if model_type == "distilbert":
        return AutoConfig.for_model("distilbert", dim=hidden, hidden_dim=3 * hidden, n_layers=layers, n_heads=heads,
                                    vocab_size=97, max_position_embeddings=64, activation=act, num_labels=3)
    extra = {"embedding_size": hidden} if model_type == "electra" else {}
    return AutoConfig.for_model(model_type, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, vocab_size=97, max_position_embeddings=66, pad_token_id=1,
                                hidden_act=act, type_vocab_size=2 if model_type == "bert" else 1, num_labels=3,
                                **extra)


def _prune_(model, sparsity: float, seed: int = 0) -> None:
    """Zero a random ``sparsity`` of every encoder matrix; scale the rest up so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name and any(
                    k in name for k in ("layer.", "transformer.layer")):
                keep = torch.rand(p.shape, generator=g) >= sparsity
                p.mul_(keep / math.sqrt(max(1e-3, 1 - sparsity)))


def _model(model_type: str, head: bool = True, sparsity: float = 0.8, seed: int = 0, **kw):
    torch.manual_seed(seed)
    cfg = _config(model_type, **kw)
    model = (AutoModelForSequenceClassification if head else AutoModel).from_config(cfg).eval()
    with torch.no_grad():  # larger weights than the init's 0.02 so that every layer matters in the logits
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15)
    _prune_(model, sparsity, seed)
    return model


def _batch(b: int, s: int, lens: list[int] | None = None, vocab: int = 97, seed: int = 0, types: bool = False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    for i, n in enumerate(lens or []):
        mask[i, n:] = 0
        ids[i, n:] = 1  # the pad id of the configs above
    tt = torch.randint(0, 2, (b, s), generator=g) if types else None
    return ids, mask, tt


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_type", FAMILIES)
def test_logits_match_transformers_on_padded_batches(model_type, isa):
    model = _model(model_type)
    engine = EncoderEngine(model, isa=isa)
    assert engine.report.counts() == {"csr": 8}  # 2 layers x (qkv, o, ffn_in, ffn_out) at 80 %
    ids, mask, tt = _batch(4, 23, lens=[23, 5, 17, 1], types=model_type == "bert")
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
    out = engine(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
    assert ref.abs().max() > 0.1  # the comparison means something
    torch.testing.assert_close(out, ref, atol=FP32_LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_hidden_states_and_embeddings_of_base_models(model_type):
    model = _model(model_type, head=False)
    engine = EncoderEngine(model)
    ids, mask, _ = _batch(3, 19, lens=[19, 7, 12], seed=1)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state
    out = engine(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.bool()
    torch.testing.assert_close(out[m], ref[m], atol=1e-4, rtol=0)
    assert out[~m].abs().max() == 0
    emb = engine.embed(ids, mask)
    expect = (ref * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(emb, expect, atol=1e-4, rtol=0)
    torch.testing.assert_close(engine.embed(ids, mask, normalize=True).norm(dim=-1), torch.ones(3))


def test_padding_costs_no_work_and_changes_nothing():
    """A sequence gives the same logits alone, in a batch of equal lengths and padded among longer ones."""
    model = _model("bert", sparsity=0.9)
    engine = EncoderEngine(model)
    ids, mask, _ = _batch(3, 31, lens=[9, 31, 20], seed=2)
    together = engine(input_ids=ids, attention_mask=mask).logits
    alone = engine(input_ids=ids[:1, :9], attention_mask=mask[:1, :9]).logits
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=0)
    same = engine(input_ids=ids[:1, :9].repeat(3, 1), attention_mask=None).logits
    torch.testing.assert_close(same, alone.repeat(3, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_4x1_block_pruned_models_run_on_the_4x1_kernel(model_type, isa):
    """Weights pruned in 4x1 blocks (`--pattern 4x1`, the pruner's exact-count block masks) run on the 4x1
    kernel, with logits as the transformers model gives them; GELU and add + LayerNorm fused as with CSR."""
    from sparsebert.bench.synthetic import magnitude_prune_

    model = _model(model_type, sparsity=0.0)
    magnitude_prune_(model, 0.9, "4x1")
    engine = EncoderEngine(model, isa=isa)
    assert engine.report.counts() == {"4x1": 8}
    ids, mask, _ = _batch(3, 29, lens=[29, 2, 17], seed=8)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)


def test_blocks_4x1_arrays():
    from sparsebert.engine.model import blocks_4x1

    w = torch.zeros(8, 5)
    w[0:4, 1] = torch.tensor([1.0, 0.0, 2.0, 3.0])  # a block with one zero inside is stored whole
    w[4:8, 4] = torch.tensor([4.0, 5.0, 6.0, 7.0])
    w[4:8, 0] = torch.tensor([0.0, 0.0, 0.0, 8.0])
    rp, col, vals = blocks_4x1(w)
    assert rp.tolist() == [0, 1, 3] and col.tolist() == [1, 0, 4]
    assert vals.tolist() == [1.0, 0.0, 2.0, 3.0, 0.0, 0.0, 0.0, 8.0, 4.0, 5.0, 6.0, 7.0]
    ext = load_kernel()
    lin = ext.engine_block4x1(rp, col, vals, None, 5, 1, 0)
    assert lin.kind == "4x1" and lin.n_out == 8 and lin.nnz == 12
    with pytest.raises(RuntimeError, match="4x1 values has shape"):
        ext.engine_block4x1(rp, col, vals[:-1], None, 5, 1, 0)
    with pytest.raises(RuntimeError, match="4x1 column index 4 at entry 2 is outside"):
        ext.engine_block4x1(rp, col, vals, None, 4, 1, 0)
    with pytest.raises(RuntimeError, match="4x1 tile must be a power of two"):
        ext.engine_block4x1(rp, col, vals, None, 5, 8, 0)
    with pytest.raises(RuntimeError, match="multiple of 16"):
        ext.engine_block4x1(rp, col, vals, None, 5, 1, 20)


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_activations(act):
    model = _model("bert", act=act, sparsity=0.5)
    engine = EncoderEngine(model)
    ids, mask, _ = _batch(2, 13, lens=[13, 4], seed=3)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)


def test_dense_matrices_and_mean_pooling():
    """Low sparsity runs through dense addmm with the epilogue pass; config.sparsebert_pooling = mean is honoured."""
    from sparsebert.pooling import apply_pooling

    model = _model("bert", sparsity=0.1)
    apply_pooling(model, "mean")
    engine = EncoderEngine(model)
    assert engine.report.counts() == {"dense": 8}
    ids, mask, _ = _batch(3, 11, lens=[11, 3, 8], seed=4)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("model_type", ["bert", "mpnet", "distilbert"])
def test_int8_engine_stays_within_its_tolerance(model_type, isa):
    """int8 matrices (1x4 blocks, per-token activation scales) keep the logits within 2 % of their range."""
    model = _model(model_type, sparsity=0.9)
    engine = EncoderEngine(model, int8=True, isa=isa)
    assert set(engine.report.counts()) == {"int8"}
    ids, mask, _ = _batch(3, 21, lens=[21, 6, 14], seed=5)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    err = (engine(input_ids=ids, attention_mask=mask).logits - ref).abs().max()
    assert 0 < err <= 0.02 * ref.abs().max()


def test_bf16_attention_tolerance():
    model = _model("roberta", sparsity=0.8)
    engine = EncoderEngine(model, attention_dtype="bfloat16")
    ids, mask, _ = _batch(2, 17, lens=[17, 9], seed=6)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    err = (engine(input_ids=ids, attention_mask=mask).logits - ref).abs().max()
    assert err <= 0.02 * ref.abs().max()


@settings(max_examples=12, deadline=None)
@given(b=st.integers(1, 4), s=st.integers(1, 40), seed=st.integers(0, 1000))
def test_random_shapes_match(b, s, seed):
    model = _MODELS.setdefault("mpnet", _model("mpnet", sparsity=0.85, seed=3))
    engine = _ENGINES.setdefault("mpnet", EncoderEngine(model))
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, s + 1, (b,), generator=g).tolist()
    ids, mask, _ = _batch(b, s, lens=lens, seed=seed)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)


_MODELS: dict = {}
_ENGINES: dict = {}


# ------------------------------------------------------------------------------------------------
# Bad input: refused with a clear error, before native code reads out of bounds


def test_bad_batches_are_refused_naming_the_problem():
    engine = EncoderEngine(_model("bert"))
    ids, mask, _ = _batch(2, 8, lens=[8, 4])
    left = mask.flip(1)
    with pytest.raises(InputError, match="attention_mask row 1 is not ones followed by zeros"):
        engine(input_ids=ids, attention_mask=left)
    empty = mask.clone()
    empty[0] = 0
    with pytest.raises(InputError, match="row 0"):
        engine(input_ids=ids, attention_mask=empty)
    with pytest.raises(RuntimeError, match=r"token id 97 at token 2 is outside \[0, 97\)"):
        bad = ids.clone()
        bad[0, 2] = 97
        engine(input_ids=bad, attention_mask=mask)
    with pytest.raises(RuntimeError, match="position 66"):
        engine(input_ids=torch.full((1, 67), 5), attention_mask=None)
    with pytest.raises(InputError, match=r"input_ids must be \[batch, seq\]"):
        engine(input_ids=ids[0])
    with pytest.raises(InputError, match="does not take"):
        engine(input_ids=ids, attention_mask=mask, output_hidden_states=True)


def test_malformed_sparse_matrices_are_refused_before_the_kernel_runs():
    ext = load_kernel()
    bias = torch.zeros(2)
    good = (torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int16),
            torch.tensor([1.0, 2.0]))
    assert ext.engine_csr(*good, bias, 4, 1, 0).nnz == 2
    cases = {
        "column index 4 at entry 1 is outside": (good[0], torch.tensor([0, 4], dtype=torch.int16), good[2]),
        "row_ptr decreases at row 1": (torch.tensor([0, 2, 1], dtype=torch.int32), *good[1:]),
        r"row_ptr\[2\] = 3 but 2 entries": (torch.tensor([0, 1, 3], dtype=torch.int32), *good[1:]),
        "row_ptr\\[0\\] = 1": (torch.tensor([1, 1, 2], dtype=torch.int32), *good[1:]),
        "csr values has shape": (good[0], good[1], torch.tensor([1.0])),
    }
    for msg, (rp, col, vals) in cases.items():
        with pytest.raises(RuntimeError, match=msg):
            ext.engine_csr(rp, col, vals, bias, 4, 1, 0)
    with pytest.raises(RuntimeError, match="int8 block column 2 at block 0 is outside"):
        ext.engine_int8(torch.tensor([0, 1, 1], dtype=torch.int32), torch.tensor([2], dtype=torch.int16),
                        torch.tensor([1], dtype=torch.int32), torch.ones(2), bias, 8, 8, 0)
    with pytest.raises(RuntimeError, match="int8 weight scale of row 1 is nan"):
        ext.engine_int8(torch.tensor([0, 1, 1], dtype=torch.int32), torch.tensor([0], dtype=torch.int16),
                        torch.tensor([1], dtype=torch.int32), torch.tensor([1.0, float("nan")]), bias, 8, 8, 0)
    eng = ext.Engine(8, 2, 1, 1e-12, 1e-12, False, False)
    lin = ext.engine_dense(torch.zeros(8, 8), None)
    with pytest.raises(RuntimeError, match=r"qkv is dense\[8x8\], expected \[24x8\]"):
        eng.add_layer(lin, lin, lin, lin, *[torch.ones(8)] * 4)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzzed_csr_arrays_never_reach_the_kernel_unchecked(data):
    """Any int32 row pointers / int16 columns: either a consistent matrix that computes x W^T, or an error."""
    ext = load_kernel()
    n_out = data.draw(st.integers(1, 5))
    n_in = data.draw(st.integers(1, 6))
    nnz = data.draw(st.integers(0, 8))
    rp = torch.tensor(data.draw(st.lists(st.integers(-3, 10), min_size=n_out + 1, max_size=n_out + 1)), dtype=torch.int32)
    col = torch.tensor(data.draw(st.lists(st.integers(-32768, 32767), min_size=nnz, max_size=nnz)), dtype=torch.int16)
    vals = torch.randn(nnz)
    try:
        lin = ext.engine_csr(rp, col, vals, None, n_in, 1, 0)
    except RuntimeError as err:
        assert str(err).startswith("engine: ")
        return
    c = col.to(torch.int64) % 65536
    assert int(rp[0]) == 0 and int(rp[-1]) == nnz and bool((rp[1:] >= rp[:-1]).all()) and bool((c < n_in).all())
    assert lin.nnz == nnz


def test_unsupported_models_are_refused():
    cfg = AutoConfig.for_model("electra", hidden_size=32, embedding_size=16, intermediate_size=64,
                               num_hidden_layers=1, num_attention_heads=4, vocab_size=50)
    with pytest.raises(UnsupportedArchitectureError, match="embedding size 16 != hidden size 32"):
        EncoderEngine(AutoModelForSequenceClassification.from_config(cfg).eval())
    with pytest.raises(UnsupportedArchitectureError, match="activation 'silu'"):
        EncoderEngine(_model("bert", act="silu"))
    with pytest.raises(InputError, match="attention_dtype"):
        EncoderEngine(_model("bert"), attention_dtype="fp8")


def test_profile_names_every_stage():
    engine = EncoderEngine(_model("bert"))
    ids, mask, _ = _batch(2, 16)
    prof = engine.profile(ids, mask, calls=2)
    assert set(prof) == {"embeddings", "linears", "attention", "epilogue", "pooling", "other", "total"}
    assert prof["linears"] > 0 and prof["attention"] > 0
    assert sum(v for k, v in prof.items() if k != "total") == pytest.approx(prof["total"], rel=1e-6)


# ------------------------------------------------------------------------------------------------
# The compact checkpoint is what the engine loads


@pytest.mark.parametrize("layout,values", [("csr", "fp32"), ("bitmask", "fp16"), ("auto", "fp32")])
def test_engine_from_a_compact_checkpoint_matches_sparsebert_load(tmp_path, layout, values):
    import sparsebert
    from sparsebert.export.checkpoint import export_model, load_engine
    from sparsebert.pooling import apply_pooling

    model = _model("mpnet", sparsity=0.9, seed=11)
    apply_pooling(model, "mean")
    export_model(model, tmp_path / "ckpt", values=values, layout=layout)
    engine = load_engine(tmp_path / "ckpt")
    assert engine.report.counts() == {"csr": 8}
    loaded = sparsebert.load(tmp_path / "ckpt")  # the dense reconstruction, the reference
    ids, mask, _ = _batch(3, 21, lens=[21, 9, 14], seed=12)
    with torch.no_grad():
        ref = loaded(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(engine(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)
    # the encoder matrices were never materialised in the module: they came from the stored parts
    assert model.mpnet.encoder.layer[0].attention.attn.q.weight.device.type == "cpu"
    assert engine.model.mpnet.encoder.layer[0].attention.attn.q.weight.device.type == "meta"
    via_load = sparsebert.load(tmp_path / "ckpt", engine=True)
    torch.testing.assert_close(via_load(input_ids=ids, attention_mask=mask).logits, ref, atol=FP32_LOGIT_ATOL, rtol=0)


def test_corrupt_compact_checkpoint_is_refused_before_the_engine(tmp_path):
    from safetensors.torch import load_file, save_file

    from sparsebert.export.checkpoint import WEIGHTS, SparseCheckpointError, export_model, load_engine, read_header

    export_model(_model("bert", sparsity=0.95), tmp_path / "ckpt", layout="csr")
    file = tmp_path / "ckpt" / WEIGHTS
    meta, _ = read_header(file)
    tensors = load_file(str(file))
    key = next(k for k in tensors if k.endswith("csr.col"))
    tensors[key] = tensors[key].clone()
    tensors[key][0] = 60000  # a column index far outside the matrix
    save_file(tensors, str(file), metadata=meta)
    with pytest.raises(SparseCheckpointError, match="sha256 mismatch"):
        load_engine(tmp_path / "ckpt")
    with pytest.raises(SparseCheckpointError, match="column index out of range"):
        load_engine(tmp_path / "ckpt", verify=False)  # the index check does not depend on the hashes


def test_bench_times_the_engine_paths_with_their_profile():
    """`sparsebert bench` paths engine / engine-int8: timed interleaved with the others, checked against torch
    fp32, and each with its per-stage profile, FLOP rate and matrix bytes in the Markdown."""
    from sparsebert.bench.render import markdown
    from sparsebert.bench.run import bench_model

    model = _model("bert", sparsity=0.9)
    res = bench_model(model, batches=(1, 2), seq=12, threads=1, paths=("dense-fp32", "engine", "engine-int8"),
                      warmup=1, min_iters=2, max_iters=2, budget_s=0.0, limit=False)
    for batch in ("1", "2"):
        rows = {r["path"]: r for r in res["results"][batch]}
        assert rows["engine"]["max_abs_diff"] < FP32_LOGIT_ATOL and rows["engine"]["median_ms"] > 0
        assert rows["engine-int8"]["max_abs_diff"] < 0.05 and len(rows["engine-int8"]["times_ms"]) == 2
        prof = rows["engine"]["extra"]["profile_ms"]
        assert prof["linears"] > 0 and prof["total"] > 0
    assert res["engines"]["engine"]["counts"] == {"csr": 8} and res["engines"]["engine-int8"]["counts"] == {"int8": 8}
    assert res["engines"]["engine"]["matrix_bytes"] > 0
    md = markdown({**res, "title": "t", "command": "c"})
    assert "*engine profile* (ms per call)" in md and "GOP/s per core" in md and "MB of matrices read per call" in md
