"""The comparison variants of the experiment grid: label-only pruning and small dense students."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from sparsebert import FinetuneRecipe, PruneRecipe, finetune, prune
from sparsebert.distill.small_dense import dense_size_for, encoder_weights, shrink_student
from sparsebert.targets import prunable_linears
from tests.test_pipeline import FAST, write_sst2
from tests.tiny import make_tiny_model


def test_dense_size_for_matches_the_target_or_takes_the_smallest_student():
    # MiniLM-L6-H384 at 95 %: 530,842 weights < one attention block (589,824) -> 1 layer, min FFN
    assert dense_size_for(530_842, 384, 6, 1536) == (1, 64)
    # BERT-base shape at 95 %: 4.25 M -> one layer with a ~1230-wide FFN
    layers, ffn = dense_size_for(int(0.05 * encoder_weights(12, 768, 3072)), 768, 12, 3072)
    assert layers == 1 and abs(encoder_weights(1, 768, ffn) - 0.05 * encoder_weights(12, 768, 3072)) < 768 * 2
    # 50 % of MiniLM: all 6 layers fit, with a quarter of the FFN
    layers, ffn = dense_size_for(int(0.5 * encoder_weights(6, 384, 1536)), 384, 6, 1536)
    assert (layers, ffn) == (6, 384)
    with pytest.raises(ValueError, match="positive"):
        dense_size_for(0, 384, 6, 1536)


def test_shrink_student_keeps_pretrained_rows_and_round_trips(tmp_path):
    src = make_tiny_model(tmp_path / "m", layers=4, hidden=32)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=2)
    before = {n: m.weight.detach().clone() for n, m in prunable_linears(model).items()}
    info = shrink_student(model, num_layers=2, ffn=16)
    assert info["layers_kept"] == [0, 2] and info["ffn"] == 16
    after = prunable_linears(model)
    assert len(after) == 12 and model.config.num_hidden_layers == 2
    assert torch.equal(after["layer.1.query"].weight, before["layer.2.query"])  # layer 2 became layer 1
    w_in, w_out = before["layer.2.ffn_in"], before["layer.2.ffn_out"]
    keep = (w_in.norm(dim=1) * w_out.norm(dim=0)).topk(16).indices.sort().values
    assert torch.equal(after["layer.1.ffn_in"].weight, w_in[keep])
    assert torch.equal(after["layer.1.ffn_out"].weight, w_out[:, keep])
    assert info["encoder_weights"] == sum(m.weight.numel() for m in after.values())
    ids = torch.tensor([[2, 10, 11, 3]])
    ref = model(input_ids=ids).logits
    model.save_pretrained(tmp_path / "small")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "small")
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    assert torch.allclose(again(input_ids=ids).logits, ref, atol=1e-6)
    with pytest.raises(ValueError, match="student_layers 5"):
        shrink_student(again, num_layers=5)
    with pytest.raises(ValueError, match="student_ffn 999"):
        shrink_student(again, ffn=999)


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    data = write_sst2(root / "glue")
    finetune(FinetuneRecipe(model=str(tiny_bert), task="sst2", data_dir=str(data), out=str(root / "teacher"), **FAST))
    return root, data


def test_label_only_pruning_needs_no_teacher(runs, tiny_bert):
    root, data = runs
    s = prune(PruneRecipe(student=str(root / "teacher"), task="sst2", data_dir=str(data), out=str(root / "ftp"),
                          sparsity=0.8, pruning_events=4, attention_weight=0, hidden_weight=0, prediction_weight=0,
                          label_weight=1, **FAST))
    assert s["teacher"] is None and s["loss_terms"] == {"attention": 0.0, "hidden": 0.0, "prediction": 0.0, "label": 1.0}
    assert s["sparsity"]["targets"]["sparsity"] == pytest.approx(0.8, abs=1e-3)
    records = [json.loads(line) for line in (root / "ftp" / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["event"] == "train"]
    assert train and all("label" in r and "attention" not in r for r in train)


def test_small_dense_student_is_distilled_without_pruning(runs, tiny_bert):
    root, data = runs
    s = prune(PruneRecipe(teacher=str(root / "teacher"), student=str(tiny_bert), task="sst2", data_dir=str(data),
                          out=str(root / "small"), sparsity=0.0, student_layers=1, student_ffn=8, **FAST))
    assert s["small_dense"] == {"layers_kept": [0], "ffn": 8, "encoder_weights": encoder_weights(1, 32, 8)}
    assert s["pruning_events"] == 0 and s["sparsity"]["targets"]["nnz"] == encoder_weights(1, 32, 8)
    model = AutoModelForSequenceClassification.from_pretrained(root / "small")
    assert model.config.num_hidden_layers == 1 and model.config.intermediate_size == 8
