"""The teacher-logit disk cache (sparsebert.distill.logit_cache): hit, miss on any change, repair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from sparsebert.distill.logit_cache import teacher_logits
from sparsebert.training import predict_logits


@pytest.fixture
def teacher(tiny_bert):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()


def _features(n=10, seed=0):
    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        length = int(g.integers(3, 9))
        out.append({"input_ids": [2, *g.integers(5, 60, length - 2).tolist(), 3], "attention_mask": [1] * length,
                    "token_type_ids": [0] * length, "labels": int(g.integers(0, 2))})
    return out


def test_second_call_reads_the_cache_and_gives_the_same_logits(teacher, tmp_path):
    feats = _features()
    ref = predict_logits(teacher, feats, 4, 0, None)
    logits, hit = teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    assert not hit and np.array_equal(logits, ref)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    again, hit = teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    assert hit and np.array_equal(again, ref) and again.shape == (10, 2)


def test_a_changed_teacher_or_data_misses(teacher, tmp_path):
    feats = _features()
    teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    other = _features(seed=1)
    _, hit = teacher_logits(teacher, other, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    assert not hit
    _, hit = teacher_logits(teacher, feats, 8, 0, None, cache_dir=tmp_path, log=lambda m: None)  # other padding
    assert not hit
    with torch.no_grad():
        teacher.classifier.weight[0, 0] += 1.0
    logits, hit = teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    assert not hit and np.array_equal(logits, predict_logits(teacher, feats, 4, 0, None))
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_a_corrupt_or_misfit_file_is_computed_again(teacher, tmp_path):
    from safetensors.numpy import save_file

    feats = _features()
    teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=lambda m: None)
    (path,) = tmp_path.glob("*.safetensors")
    save_file({"logits": np.zeros((3, 2), np.float32)}, str(path))  # wrong number of rows
    msgs = []
    logits, hit = teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=msgs.append)
    assert not hit and logits.shape == (10, 2) and "does not fit 10 examples" in msgs[0]
    path.write_bytes(b"not a safetensors file")
    msgs.clear()
    logits, hit = teacher_logits(teacher, feats, 4, 0, None, cache_dir=tmp_path, log=msgs.append)
    assert not hit and "unreadable" in msgs[0] and np.array_equal(logits, predict_logits(teacher, feats, 4, 0, None))


def test_off_neither_reads_nor_writes(teacher, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBERT_TEACHER_LOGIT_CACHE", "off")
    _, hit = teacher_logits(teacher, _features(), 4, 0, None, log=lambda m: None)
    assert not hit
    monkeypatch.setenv("SPARSEBERT_TEACHER_LOGIT_CACHE", str(tmp_path))
    teacher_logits(teacher, _features(), 4, 0, None, log=lambda m: None)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
