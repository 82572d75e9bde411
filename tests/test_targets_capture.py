"""Target discovery per architecture, and pre-softmax attention scores vs the eager implementation."""

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from sparsebert.distill import AttentionScoreTap
from sparsebert.targets import ROLES, UnsupportedArchitectureError, prunable_linears, qualified_names

ARCHS = ["bert", "roberta", "distilbert", "mpnet", "electra"]


def tiny(model_type: str, attn: str = "eager"):
    if model_type == "distilbert":
        cfg = AutoConfig.for_model(model_type, dim=32, hidden_dim=64, n_layers=3, n_heads=4, vocab_size=100)
    else:
        cfg = AutoConfig.for_model(model_type, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=4, vocab_size=100)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(cfg, attn_implementation=attn).eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_six_linears_per_layer_and_nothing_else(arch):
    model = tiny(arch)
    targets = prunable_linears(model)
    assert len(targets) == 6 * 3
    assert all(isinstance(m, nn.Linear) for m in targets.values())
    assert list(targets)[:6] == [f"layer.0.{r}" for r in ROLES]
    names = qualified_names(model).values()
    for bad in ("embeddings", "pooler", "classifier", "pre_classifier"):
        assert not any(bad in n for n in names), f"{bad} must stay dense"


def test_unsupported_architecture_is_named():
    model = nn.Linear(2, 2)
    model.config = type("C", (), {"model_type": "gpt2"})()
    with pytest.raises(UnsupportedArchitectureError, match="gpt2"):
        prunable_linears(model)


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "electra"])
def test_scores_are_pre_softmax_of_eager_attention(arch):
    model = tiny(arch)
    ids = torch.randint(5, 100, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0  # padding in the second sequence
    with AttentionScoreTap(model) as tap, torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
        scores = tap.scores()
    assert len(scores) == 3 and scores[0].shape == (2, 4, 7, 7)
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for s, probs in zip(scores, out.attentions):
        assert torch.allclose(torch.softmax(s + additive, -1), probs, atol=1e-5)


def test_scores_identical_under_sdpa():
    eager, sdpa = tiny("bert", "eager"), tiny("bert", "sdpa")
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(5, 100, (2, 6))
    with AttentionScoreTap(eager) as a, AttentionScoreTap(sdpa) as b, torch.no_grad():
        eager(input_ids=ids), sdpa(input_ids=ids)
        for x, y in zip(a.scores(), b.scores()):
            assert torch.allclose(x, y, atol=1e-6)


def test_scores_before_forward_raise():
    with AttentionScoreTap(tiny("bert")) as tap, pytest.raises(RuntimeError, match="before"):
        tap.scores()
