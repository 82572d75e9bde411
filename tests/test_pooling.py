"""Mean pooling in front of the classification head (sparsebert.pooling): exact, padding-invariant,
recorded in config.json and re-applied by every sparsebert load (run dir, sparse export, runtime)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from sparsebert.data.tasks import get_task
from sparsebert.errors import InputError
from sparsebert.models import load_for_task
from sparsebert.pooling import apply_pooling, config_pooling

from tiny import make_tiny_model

TASK = get_task("sst2")


def _inputs():
    torch.manual_seed(0)
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return ids, mask


def _masked_mean(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1)


def test_bert_mean_pooling_is_the_masked_mean_and_ignores_padding(tiny_bert):
    model = load_for_task(str(tiny_bert), TASK, pooling="mean").eval()
    ids, mask = _inputs()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        pooled = model.bert.pooler.activation(model.bert.pooler.dense(_masked_mean(out.hidden_states[-1], mask)))
        expected = model.classifier(pooled)
        short = model(input_ids=ids[1:2, :5], attention_mask=mask[1:2, :5]).logits  # the same example, unpadded
        positional = model(ids, mask).logits  # attention_mask as the second positional argument
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(short[0], out.logits[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(positional, out.logits)
    assert model.config.sparsebert_pooling == "mean"


def test_cls_is_the_plain_head_and_removes_mean_hooks(tiny_bert):
    model = load_for_task(str(tiny_bert), TASK).eval()
    ids, mask = _inputs()
    with torch.no_grad():
        cls = model(input_ids=ids, attention_mask=mask).logits
        apply_pooling(model, "mean")
        apply_pooling(model, "mean")  # idempotent: one set of hooks
        assert len(model._forward_pre_hooks) == 1 and len(model.bert.pooler._forward_pre_hooks) == 1
        mean = model(input_ids=ids, attention_mask=mask).logits
        apply_pooling(model, "cls")
        back = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(cls, mean)
    torch.testing.assert_close(back, cls)
    assert not hasattr(model.config, "sparsebert_pooling") and config_pooling(model.config) == "cls"


def test_unknown_pooling_is_named(tiny_bert):
    model = load_for_task(str(tiny_bert), TASK)
    with pytest.raises(InputError, match="'max'"):
        apply_pooling(model, "max")
    model.config.sparsebert_pooling = "first"
    with pytest.raises(InputError, match="config.json: sparsebert_pooling = 'first'"):
        config_pooling(model.config)


def test_mpnet_head_reads_the_mean(tmp_path):
    path = make_tiny_model(tmp_path / "mpnet", model_type="mpnet")
    model = load_for_task(str(path), TASK, pooling="mean").eval()
    ids, mask = _inputs()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        expected = model.classifier(_masked_mean(out.hidden_states[-1], mask).unsqueeze(1))
    torch.testing.assert_close(out.logits, expected)


def test_saved_mean_model_reloads_with_mean_everywhere(tiny_bert, tmp_path):
    """load_for_task, sparse export + sparsebert.load (dense and runtime) all re-apply mean pooling;
    a plain from_pretrained reads [CLS] (the model card warns about it)."""
    from sparsebert.export.checkpoint import export_model, load

    model = load_for_task(str(tiny_bert), TASK, pooling="mean").eval()
    for lin in (model.bert.encoder.layer[0].intermediate.dense, model.bert.encoder.layer[1].output.dense):
        with torch.no_grad():
            lin.weight[torch.rand_like(lin.weight) < 0.9] = 0  # sparse enough for the sparse export
    run = tmp_path / "run"
    model.save_pretrained(run)
    ids, mask = _inputs()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
        again = load_for_task(str(run), TASK, require_head=True).eval()
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).logits, ref)
        plain = AutoModelForSequenceClassification.from_pretrained(run).eval()
        assert not torch.allclose(plain(input_ids=ids, attention_mask=mask).logits, ref)
        export_model(again, tmp_path / "export", source=run)
        dense = load(tmp_path / "export")
        torch.testing.assert_close(dense(input_ids=ids, attention_mask=mask).logits, ref, atol=1e-5, rtol=1e-4)
        fast = load(tmp_path / "export", runtime=True, tokens=16)
        torch.testing.assert_close(fast(input_ids=ids, attention_mask=mask).logits, ref, atol=1e-4, rtol=1e-3)
