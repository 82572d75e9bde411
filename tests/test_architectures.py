"""`prune` runs on every supported encoder family (tiny random models, a few steps each)."""

import pytest
from transformers import AutoModelForSequenceClassification

from sparsebert import PruneRecipe, prune
from sparsebert.models import load_for_task
from sparsebert.data.tasks import get_task
from sparsebert.targets import prunable_linears
from test_pipeline import write_sst2
from tiny import make_tiny_model


@pytest.mark.parametrize("arch", ["roberta", "distilbert", "mpnet", "electra"])
def test_prune_each_architecture(arch, tmp_path):
    pre = make_tiny_model(tmp_path / arch, model_type=arch)
    data = write_sst2(tmp_path / "glue", 32, 8)
    teacher = load_for_task(str(pre), get_task("sst2"))  # an untrained head is enough to distil from
    teacher.save_pretrained(tmp_path / "teacher")
    (tmp_path / "teacher").joinpath("vocab.txt").write_text((pre / "vocab.txt").read_text())
    for f in pre.glob("tokenizer*"):
        (tmp_path / "teacher" / f.name).write_bytes(f.read_bytes())
    summary = prune(PruneRecipe(teacher=str(tmp_path / "teacher"), student=str(pre), task="sst2", data_dir=str(data),
                                out=str(tmp_path / "sparse"), sparsity=0.8, max_steps=4, batch_size=8, max_length=32,
                                pruning_events=2, bf16=False))
    assert summary["sparsity"]["targets"]["sparsity"] == pytest.approx(0.8, abs=2e-3)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "sparse")
    assert model.config.model_type == arch
    for lin in prunable_linears(model).values():
        assert float((lin.weight == 0).float().mean()) == pytest.approx(0.8, abs=2e-3)
