"""The sparse runtime's attention: SDPA by default where transformers has it, eager on request.

Reference everywhere: the same pruned model with dense ``nn.Linear`` and transformers' eager
attention in fp32. Tolerances: fp32 SDPA 1e-4 absolute on the logits (measured <= 1.5e-6 with
sparse kernels, logits up to 4.4); the opt-in bf16 attention core 1 % of the largest |logit|
(measured 0.09-0.37 %).
The models are initialised with a large ``initializer_range`` so that attention is far from
uniform: ignoring the padding mask moves the logits by far more than the tolerance (checked).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification

from sparsebert.errors import InputError
from sparsebert.runtime import convert, target_modules
from sparsebert.runtime.attention import SDPA_BF16, check_attention, set_attention
from sparsebert.targets import ARCHITECTURES

TOL = 1e-4  # fp32 SDPA vs eager, absolute, on logits
TOL_BF16 = 1e-2  # bf16 attention core vs fp32 eager, relative to the largest |logit|
LAYERS = 2
NO_SDPA = {"mpnet"}  # transformers 5 has no SDPA attention for these families


def sharp_model(arch: str, sparsity: float = 0.9, seed: int = 0):
    """A random 2-layer ``arch`` classifier (hidden 32, 4 heads), weights N(0, 0.3), pruned by
    magnitude to ``sparsity`` per target matrix; eval mode, transformers' default attention."""
    from sparsebert.bench.synthetic import magnitude_prune_

    common = dict(vocab_size=120, initializer_range=0.3, num_labels=3)
    if arch == "distilbert":
        cfg = AutoConfig.for_model(arch, dim=32, hidden_dim=64, n_layers=LAYERS, n_heads=4, **common)
    else:
        cfg = AutoConfig.for_model(arch, hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                                   num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, **common)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(cfg).eval()
    magnitude_prune_(model, sparsity)
    return model


def batch(model, seq: int = 19) -> dict[str, torch.Tensor]:
    """4 sequences: full length, right-padded by 5 and by 13, left-padded by 7."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, model.config.vocab_size, (4, seq), generator=g)
    mask = torch.ones(4, seq, dtype=torch.long)
    mask[1, seq - 5:] = 0
    mask[2, seq - 13:] = 0
    mask[3, :7] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}


def eager_reference(model):
    ref = copy.deepcopy(model)
    set_attention(ref, "eager")
    assert ref.config._attn_implementation == "eager"
    return ref


def forced_sparse_timer(modules, x):
    """Every matrix gets a sparse kernel (sbk where the extension is built, else torch CSR)."""
    return {label: {"dense": 1.0, "sbk": 1e-6, "torch-csr": 1e-3}.get(label.split("[")[0], 1.0) for label in modules}


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Records (query dtype, mask dtype or None) of every ``F.scaled_dot_product_attention`` call."""
    calls: list[tuple[torch.dtype, torch.dtype | None]] = []
    real = F.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, *args, **kwargs):
        calls.append((query.dtype, None if attn_mask is None else attn_mask.dtype))
        return real(query, key, value, attn_mask, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_sdpa_runtime_logits_match_eager_fp32(arch, sdpa_calls):
    model = sharp_model(arch)
    x = batch(model)
    ref_model = eager_reference(model)
    with torch.no_grad():
        ref = ref_model(**x).logits
        unmasked = ref_model(input_ids=x["input_ids"]).logits
    # the check below can fail: dropping the padding mask is visible far above the tolerance
    assert (unmasked[1:] - ref[1:]).abs().max() > 100 * TOL
    assert (unmasked[0] - ref[0]).abs().max() < TOL  # the unpadded row does not change
    assert not sdpa_calls  # eager attention never calls SDPA

    rep = convert(model, tokens=x["input_ids"].numel(), cache=False, timer=forced_sparse_timer)
    assert set(rep.counts()) <= {"sbk", "torch-csr"} and sum(rep.counts().values()) == 6 * LAYERS
    assert rep.to_dict()["attention"] == rep.attention == model.config._attn_implementation
    assert rep.attention_dtype == "float32"
    with torch.no_grad():
        out = model(**x).logits
        one = model(**{k: v[:1] for k, v in x.items()}).logits  # batch 1, no padding: SDPA without a mask
    if arch in NO_SDPA:
        assert rep.attention == "eager" and "no SDPA" in rep.attention_note and not sdpa_calls
    else:
        assert rep.attention == "sdpa" and rep.attention_note is None
        assert len(sdpa_calls) == 2 * LAYERS  # every layer, both forward passes
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)
    torch.testing.assert_close(one, ref[:1], atol=TOL, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_eager_opt_out_and_keep(arch, sdpa_calls):
    model = sharp_model(arch)
    x = batch(model)
    with torch.no_grad():
        ref = eager_reference(model)(**x).logits
    rep = convert(model, tokens=16, cache=False, timer=forced_sparse_timer, attention="eager")
    assert rep.attention == "eager" and rep.attention_note is None
    with torch.no_grad():
        torch.testing.assert_close(model(**x).logits, ref, atol=TOL, rtol=0)
    assert not sdpa_calls
    # attention=None leaves whatever the model runs
    for impl in ("eager", "sdpa"):
        other = sharp_model(arch)
        other.set_attn_implementation(impl)
        rep = convert(other, tokens=16, cache=False, timer=forced_sparse_timer, attention=None)
        assert rep.attention == other.config._attn_implementation == impl


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "electra"])
def test_bf16_attention_core_is_opt_in_and_close(arch, sdpa_calls):
    model = sharp_model(arch)
    x = batch(model)
    with torch.no_grad():
        ref = eager_reference(model)(**x).logits
    rep = convert(model, tokens=16, cache=False, timer=forced_sparse_timer, attention_dtype=torch.bfloat16)
    assert rep.attention == SDPA_BF16 and rep.attention_dtype == "bfloat16"
    with torch.no_grad():
        out = model(**x).logits
    assert out.dtype == torch.float32
    assert sdpa_calls and all(q == torch.bfloat16 for q, _ in sdpa_calls)
    err = (out - ref).abs().max().item()
    assert err < TOL_BF16 * ref.abs().max().item()
    assert err > 0  # bf16 did run: the logits are not the fp32 ones
    # projections stay fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bad_arguments_are_refused_before_any_timing():
    model = sharp_model("bert")
    seen = []

    def timer(modules, x):
        seen.append(1)
        return forced_sparse_timer(modules, x)

    with pytest.raises(InputError, match="'flash'"):
        convert(model, tokens=8, cache=False, timer=timer, attention="flash")
    with pytest.raises(InputError, match="float16"):
        convert(model, tokens=8, cache=False, timer=timer, attention_dtype=torch.float16)
    with pytest.raises(InputError, match="attention='eager'"):
        convert(model, tokens=8, cache=False, timer=timer, attention="eager", attention_dtype=torch.bfloat16)
    with pytest.raises(InputError, match="mpnet"):
        convert(sharp_model("mpnet"), tokens=8, cache=False, timer=timer, attention_dtype=torch.bfloat16)
    assert not seen
    assert all(type(m) is torch.nn.Linear for m in target_modules(model).values())  # nothing converted
    check_attention("sdpa", torch.float32)  # accepted


def test_load_runtime_records_attention(tmp_path, sdpa_calls):
    import sparsebert
    from sparsebert.export import export_model

    model = sharp_model("bert")
    x = batch(model)
    with torch.no_grad():
        ref = eager_reference(model)(**x).logits
    export_model(model, tmp_path / "exp", embeddings="fp32")  # lossless: compared with the source model at TOL
    fast = sparsebert.load(tmp_path / "exp", runtime=True, tokens=16, cache=False, timer=forced_sparse_timer)
    assert fast.runtime_report.attention == fast.config._attn_implementation == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(fast(**x).logits, ref, atol=TOL, rtol=0)
    assert len(sdpa_calls) == LAYERS
    slow = sparsebert.load(tmp_path / "exp", runtime=True, tokens=16, cache=False, timer=forced_sparse_timer,
                           attention="eager")
    assert slow.runtime_report.attention == slow.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(slow(**x).logits, ref, atol=TOL, rtol=0)
    assert len(sdpa_calls) == LAYERS
    assert not hasattr(sparsebert.load(tmp_path / "exp"), "runtime_report")
