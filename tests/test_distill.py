import copy

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights, uniform_layer_map


def tiny_bert(layers=2, hidden=32, seed=0):
    cfg = AutoConfig.for_model("bert", hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=4, vocab_size=100, num_labels=3)
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(cfg).eval()


def run_loss(student, teacher, loss_fn, labels=None):
    ids = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    with AttentionScoreTap(student) as s_tap, AttentionScoreTap(teacher) as t_tap:
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        t = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return loss_fn(s_tap.scores(), t_tap.scores(), s.hidden_states, t.hidden_states, s.logits, t.logits, mask, labels)


def test_uniform_layer_map():
    assert uniform_layer_map(4, 12) == [3, 6, 9, 12]
    assert uniform_layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="multiple"):
        uniform_layer_map(5, 12)


def test_loss_is_zero_when_student_equals_teacher():
    teacher = tiny_bert()
    student = copy.deepcopy(teacher)
    total, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32))
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in terms.values())


def test_every_term_positive_when_student_differs():
    teacher, student = tiny_bert(seed=0), tiny_bert(seed=1)
    with torch.no_grad():
        student.classifier.weight.mul_(50.0)  # random-init logits are all near 0: make them differ
    total, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32))
    assert all(v > 1e-4 for v in terms.values()), terms
    assert total.item() == pytest.approx(sum(terms.values()), rel=1e-5)
    total.backward()
    assert student.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_weights_and_temperature_are_applied():
    teacher, student = tiny_bert(seed=0), tiny_bert(seed=1)
    _, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32))
    total, _ = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(0.0, 2.0, 0.0)))
    assert total.item() == pytest.approx(2.0 * terms["hidden"], rel=1e-5)  # only the hidden term, doubled
    hot, _ = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(0.0, 0.0, 1.0, 1.0)))
    warm, _ = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(0.0, 0.0, 1.0, 4.0)))
    assert hot.item() == pytest.approx(terms["prediction"], rel=1e-5)
    assert warm.item() < hot.item()  # a higher temperature softens both distributions
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(2, 2, 32, 32, DistillWeights(temperature=0.0))


def test_deeper_teacher_and_wider_hidden_use_mapping_and_projection():
    teacher, student = tiny_bert(layers=4, hidden=48), tiny_bert(layers=2, hidden=32, seed=1)
    loss_fn = DistillationLoss(2, 4, 32, 48)
    assert loss_fn.projection is not None and loss_fn.layer_map == [2, 4]
    total, terms = run_loss(student, teacher, loss_fn)
    assert torch.isfinite(total) and terms["hidden"] > 0


def test_regression_prediction_term_is_mse_to_labels():
    cfg = AutoConfig.for_model("bert", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, vocab_size=100, num_labels=1)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(cfg).eval()
    student = copy.deepcopy(teacher)
    labels = torch.tensor([0.0, 2.5, 5.0])
    _, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, regression=True), labels)
    assert terms["attention"] == pytest.approx(0.0, abs=1e-6)
    assert terms["prediction"] > 1.0  # untrained outputs are far from 0..5 scores
    with pytest.raises(ValueError, match="labels"):
        run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, regression=True))
