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
    raw = {k: terms[k] for k in ("attention", "hidden", "prediction")}
    assert all(v > 1e-4 for v in raw.values()), terms
    assert total.item() == pytest.approx(sum(raw.values()), rel=1e-5)  # weights 1, T = 1
    assert all(terms[f"weighted/{k}"] == pytest.approx(v, rel=1e-6) for k, v in raw.items())
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
    # KL·T² (Hinton et al. 2015) by hand at T = 4, on logits far apart enough for fp32
    with torch.no_grad():
        student.classifier.weight.mul_(50.0)
    warm, _ = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(0.0, 0.0, 1.0, 4.0)))
    ids = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    with torch.no_grad():
        zs = student(input_ids=ids, attention_mask=mask).logits.double() / 4
        zt = teacher(input_ids=ids, attention_mask=mask).logits.double() / 4
    pt, ps = torch.softmax(zt, -1), torch.softmax(zs, -1)
    by_hand = 16 * (pt * (pt.log() - ps.log())).sum(-1).mean()
    assert warm.item() == pytest.approx(by_hand.item(), rel=1e-4)
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
    total, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, regression=True), labels)
    assert terms["attention"] == pytest.approx(0.0, abs=1e-6)
    assert terms["hard"] > 1.0 and "prediction" not in terms  # paper: MSE to the labels only (hardness 1)
    assert total.item() == pytest.approx(terms["hard"], rel=1e-5)
    # hardness 0: MSE to the teacher's output, which the copy matches exactly
    total, terms = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(hardness=0.0), regression=True))
    assert terms["prediction"] == pytest.approx(0.0, abs=1e-10) and total.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, regression=True))


def test_attention_kl_matches_hand_computation():
    """KL(softmax(A_t) || softmax(A_s)) per real query over real keys (MiniLM, Wang et al. 2020)."""
    from sparsebert.distill.loss import attention_kl

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 2, 4, 4, generator=g), torch.randn(2, 2, 4, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    total, count = 0.0, 0
    for b in range(2):
        n = int(mask[b].sum())
        for h in range(2):
            for q in range(n):
                pt = torch.softmax(t[b, h, q, :n].double(), -1)
                ps = torch.softmax(s[b, h, q, :n].double(), -1)
                total += float((pt * (pt.log() - ps.log())).sum())
                count += 1
    assert attention_kl(s, t, mask).item() == pytest.approx(total / count, rel=1e-5)
    assert attention_kl(t, t, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_hardness_mixes_gold_labels():
    teacher, student = tiny_bert(seed=0), tiny_bert(seed=1)
    labels = torch.tensor([0, 2, 1])
    w = dict(attention=0.0, hidden=0.0, temperature=2.0)
    soft, t_soft = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(**w, hardness=0.0)), labels)
    hard, t_hard = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(**w, hardness=1.0)), labels)
    mix, _ = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(**w, hardness=0.25)), labels)
    assert mix.item() == pytest.approx(0.75 * soft.item() + 0.25 * hard.item(), rel=1e-5)
    assert "hard" not in t_soft and "prediction" not in t_hard
    with pytest.raises(ValueError, match="labels"):
        run_loss(student, teacher, DistillationLoss(2, 2, 32, 32, DistillWeights(**w, hardness=0.5)))
    with pytest.raises(ValueError, match="hardness"):
        DistillationLoss(2, 2, 32, 32, DistillWeights(hardness=1.5))


def test_normalized_terms_contribute_their_weight_and_shares_are_logged():
    from sparsebert.distill.loss import add_shares

    teacher, student = tiny_bert(seed=0), tiny_bert(seed=1)
    with torch.no_grad():
        student.classifier.weight.mul_(50.0)
    loss_fn = DistillationLoss(2, 2, 32, 32, DistillWeights(attention=1.0, hidden=2.0, prediction=1.0, normalize=True))
    total, terms = run_loss(student, teacher, loss_fn)
    # first update: each term divided by (bias-corrected) running mean = itself -> its weight
    assert terms["weighted/attention"] == pytest.approx(1.0, rel=1e-4)
    assert terms["weighted/hidden"] == pytest.approx(2.0, rel=1e-4)
    assert terms["weighted/prediction"] == pytest.approx(1.0, rel=1e-4)
    assert total.item() == pytest.approx(4.0, rel=1e-4)
    assert loss_fn.updates.tolist() == [1.0, 1.0, 1.0]  # buffers: saved in the training state
    shares = add_shares(terms)
    assert shares["share/hidden"] == pytest.approx(0.5, rel=1e-4) and not any(k.startswith("weighted/") for k in shares)
    _, plain = run_loss(student, teacher, DistillationLoss(2, 2, 32, 32))
    assert plain["attention"] / plain["prediction"] != pytest.approx(1.0, rel=0.5)  # unbalanced without it


def test_prediction_only_phase_skips_attention_and_hidden():
    teacher, student = tiny_bert(seed=0), tiny_bert(seed=1)
    loss_fn = DistillationLoss(2, 2, 32, 32)
    ids = torch.randint(5, 100, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 9, dtype=torch.long)
    s, t = student(input_ids=ids, attention_mask=mask), teacher(input_ids=ids, attention_mask=mask)
    total, terms = loss_fn(None, None, None, None, s.logits, t.logits, mask, prediction_only=True)
    assert set(terms) == {"prediction", "weighted/prediction"}
    assert total.item() == pytest.approx(terms["prediction"], rel=1e-6)
