"""GLUE metrics against hand-computed values (not against sklearn itself)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsebert.data import TASKS
from sparsebert.metrics import compute_metrics, main_metric


def _assert_floats(metrics: dict) -> None:
    assert all(type(v) is float for v in metrics.values()), metrics


def test_mcc_perfect_inverted_and_known():
    assert compute_metrics("cola", [0, 1, 1, 0], [0, 1, 1, 0]) == {"mcc": 1.0}
    assert compute_metrics("cola", [1, 0, 0, 1], [0, 1, 1, 0]) == {"mcc": -1.0}
    # TP=2 FN=1 FP=1 TN=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    m = compute_metrics("cola", [1, 1, 0, 0, 1], [1, 1, 1, 0, 0])
    _assert_floats(m)
    assert m["mcc"] == pytest.approx(1 / 6)


def test_mcc_constant_prediction_is_zero():
    assert compute_metrics("cola", [1, 1, 1, 1], [0, 1, 0, 1]) == {"mcc": 0.0}


def test_accuracy_tasks():
    assert compute_metrics("sst2", [0, 1, 0, 0], [0, 1, 1, 0]) == {"accuracy": 0.75}
    assert compute_metrics("rte", np.array([1, 1]), np.array([0, 1])) == {"accuracy": 0.5}
    assert compute_metrics("qnli", [0], [0]) == {"accuracy": 1.0}
    m = compute_metrics("mnli", [0, 1, 2, 2, 1], [0, 1, 2, 0, 0])
    assert m == {"accuracy": 0.6}


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_f1_known_confusion_matrix(task):
    # gold: 4 positives, 6 negatives; predicted: TP=3 FN=1 FP=2 TN=4
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    preds = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    m = compute_metrics(task, preds, labels)
    _assert_floats(m)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["f1"] == pytest.approx(2 / 3)  # 2TP / (2TP + FP + FN) = 6/9
    assert m["acc_and_f1"] == pytest.approx((0.7 + 2 / 3) / 2)


def test_f1_no_positive_predictions_is_zero():
    m = compute_metrics("mrpc", [0, 0, 0], [1, 0, 1])
    assert m["f1"] == 0.0 and m["accuracy"] == pytest.approx(1 / 3)


def test_stsb_correlations():
    x = [0.0, 1.0, 2.5, 4.0, 5.0]
    m = compute_metrics("stsb", [2 * v + 1 for v in x], x)  # perfectly linear
    _assert_floats(m)
    assert m == pytest.approx({"pearson": 1.0, "spearman": 1.0, "corr": 1.0})
    m = compute_metrics("stsb", [-v for v in x], x)
    assert m == pytest.approx({"pearson": -1.0, "spearman": -1.0, "corr": -1.0})
    # monotone but not linear: y = x^3 on 1..4. Pearson by hand: deviations of x
    # (-1.5,-.5,.5,1.5), of y (-24,-17,2,39): 104 / sqrt(5 * 2390)
    m = compute_metrics("stsb", [1.0, 8.0, 27.0, 64.0], [1.0, 2.0, 3.0, 4.0])
    r = 104 / math.sqrt(5 * 2390)
    assert m["pearson"] == pytest.approx(r)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["corr"] == pytest.approx((r + 1) / 2)
    # Spearman with a swap: ranks (1,2,3,4) vs (1,3,2,4): 1 - 6*2/(4*15) = 0.8
    assert compute_metrics("stsb", [1, 3, 2, 4], [1, 2, 3, 4])["spearman"] == pytest.approx(0.8)


def test_stsb_constant_prediction_warns_and_gives_zero():
    with pytest.warns(RuntimeWarning, match="constant"):
        m = compute_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert m == {"pearson": 0.0, "spearman": 0.0, "corr": 0.0}


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    m = compute_metrics("sst2", torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1]))
    assert m["accuracy"] == pytest.approx(2 / 3)
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2]], requires_grad=True)
    assert compute_metrics("sst2", logits.argmax(-1), [1, 0]) == {"accuracy": 1.0}


def test_integer_valued_floats_accepted_for_classes():
    assert compute_metrics("sst2", np.array([1.0, 0.0]), [1, 0]) == {"accuracy": 1.0}


@pytest.mark.parametrize(
    "task,preds,labels,match",
    [
        ("sst2", [0, 1], [0, 1, 1], "differ in shape"),
        ("sst2", [], [], "empty"),
        ("stsb", [], [], "empty"),
        ("sst2", [[0.2, 0.8]], [1], r"shape \(N,\).*argmax"),
        ("sst2", [0, 2], [0, 1], r"class id 2 outside \[0, 2\)"),
        ("mnli", [0, 1], [0, -1], r"class id -1"),
        ("sst2", [0.3, 0.7], [0, 1], "integer class ids"),
        ("stsb", [1.0, float("nan")], [1.0, 2.0], "NaN"),
        ("stsb", [1.0], [1.0], "at least 2"),
        ("sst2", ["a", "b"], [0, 1], "numeric"),
    ],
)
def test_invalid_inputs(task, preds, labels, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(task, preds, labels)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown GLUE task"):
        compute_metrics("wnli", [0], [0])


def test_every_task_returns_its_main_metric():
    for name, spec in TASKS.items():
        if spec.is_regression:
            m = compute_metrics(spec, [0.0, 1.0, 2.0], [0.0, 1.0, 2.0])
        else:
            m = compute_metrics(spec, [0, 1, 1, 0], [0, 1, 0, 0])
        value = main_metric(name, m)
        assert type(value) is float and -1.0 <= value <= 1.0
        assert value == m[spec.main_metric]


def test_main_metric_missing_key():
    with pytest.raises(ValueError, match=r"'f1'.*\['accuracy'\]"):
        main_metric("mrpc", {"accuracy": 0.5})
