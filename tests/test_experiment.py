"""`sparsebert experiment`: spec validation, grid expansion, resume, results/table/plot writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sparsebert.cli import app
from sparsebert.experiment import Cell, SpecError, expand_grid, load_spec, run_experiment
from sparsebert.experiment.grid import cell_recipe, small_dense_size
from sparsebert.experiment.report import PAPER_BERT_BASE, write_results
from tests.test_pipeline import write_sst2


def write_spec(path: Path, **fields) -> Path:
    base = {"name": "t", "model": "m", "tasks": {"sst2": {}}, "variants": ["dense-teacher", "sparsebert"]}
    path.write_text(yaml.safe_dump({**base, **fields}))
    return path


@pytest.mark.parametrize("fields, message", [
    ({"tasks": {"nope": {}}}, "unknown task 'nope'"),
    ({"tasks": {"sst2": {"lr": 1}}}, "tasks.sst2: unknown setting"),
    ({"tasks": {"sst2": {"teacher": {"lr": 1}}}}, "tasks.sst2.teacher: must map settings"),
    ({"variants": ["sparsebert"]}, "add 'dense-teacher'"),
    ({"variants": ["dense-teacher", "magic"]}, "variants.1"),
    ({"sparsities": [0.5, 1.0]}, "sparsity 1.0 is not in"),
    ({"seeds": [1, 1]}, "seeds must be distinct"),
    ({"train": {"max_step": 3}}, "unknown setting(s) ['max_step']"),
    ({"prune": {"sparsity": 0.9}}, "unknown setting(s) ['sparsity']"),
    ({"teacher": {"model": "x"}}, "field 'teacher': Value error, unknown setting(s) ['model']"),
    ({"colour": "red"}, "colour"),
    ({"name": "a b"}, "name"),
])
def test_spec_errors_name_file_and_field(tmp_path, fields, message):
    path = write_spec(tmp_path / "spec.yaml", **fields)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_spec_yaml_and_path_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ntasks: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="data_dir.*does not exist"):
        load_spec(write_spec(tmp_path / "s.yaml", data_dir="./no/such/dir"))


def test_grid_expansion_sweeps_and_seeds(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", tasks={"mrpc": {}, "rte": {}}, seeds=[1, 2],
                                variants=["dense-teacher", "sparsebert", "finetune-then-prune", "small-dense"],
                                sparsities=[0.5, 0.95]))
    cells = expand_grid(spec)
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids))
    assert all(c.is_teacher for c in cells[:2]) and not any(c.is_teacher for c in cells[2:])  # teachers first
    # then s = 0.95 with seeds[0] for every task, then seed 2, then the rest of the sweep
    assert [(c.sparsity, c.seed) for c in cells[2:]] == [(0.95, 1)] * 6 + [(0.95, 2)] * 6 + [(0.5, 1)] * 4
    per_task = [c for c in cells if c.task == "mrpc"]
    # 1 teacher (sparsity 0 is not in all_seeds_at); sparsebert and ftp: 0.5 x seed 1 + 0.95 x 2 seeds;
    # small-dense at 0.95 x 2 seeds
    assert len(per_task) == 1 + 3 + 3 + 2
    spec.all_seeds_at = [0.0, 0.95]
    assert len([c for c in expand_grid(spec) if c.is_teacher]) == 4
    assert Cell("mrpc", "sparsebert", 0.5, 1) in cells and Cell("mrpc", "sparsebert", 0.5, 2) not in cells
    assert Cell("rte", "small-dense", 0.95, 2).id == "rte/small-dense-s0.95-seed2"


def test_variant_recipes(tmp_path):
    from transformers import BertConfig

    spec = load_spec(write_spec(tmp_path / "s.yaml", train={"max_steps": 7}, prune={"temperature": 2.0},
                                teacher={"max_steps": 50, "learning_rate": 5e-5},
                                variants=["dense-teacher", "sparsebert", "finetune-then-prune",
                                          "prune-from-pretrained-no-kd", "finetuned-student-kd", "small-dense"]))
    d = tmp_path / "cells"
    teacher = str(d / "sst2/dense-teacher-seed1")
    r = {v: cell_recipe(spec, Cell("sst2", v, 0.95, 1), d, BertConfig(hidden_size=384, num_hidden_layers=6,
                                                                       intermediate_size=1536))
         for v in spec.variants if v != "dense-teacher"}
    assert (r["sparsebert"].teacher, r["sparsebert"].student, r["sparsebert"].label_weight) == (teacher, "m", 0.0)
    assert r["sparsebert"].temperature == 2.0 and r["sparsebert"].max_steps == 7
    t = cell_recipe(spec, Cell("sst2", "dense-teacher", 0.0, 1), d)
    assert (t.stage, t.model, t.max_steps, t.learning_rate) == ("finetune", "m", 50, 5e-5)
    spec.tasks["sst2"] = {"max_length": 64, "teacher": {"max_steps": 80}}
    t = cell_recipe(spec, Cell("sst2", "dense-teacher", 0.0, 1), d)
    assert (t.max_steps, t.max_length, t.learning_rate) == (80, 64, 5e-5)
    assert cell_recipe(spec, Cell("sst2", "sparsebert", 0.95, 1), d).max_length == 64
    assert (r["finetune-then-prune"].teacher, r["finetune-then-prune"].student) == (None, teacher)
    assert not r["finetune-then-prune"].uses_teacher and r["finetune-then-prune"].label_weight == 1.0
    assert (r["prune-from-pretrained-no-kd"].student, r["prune-from-pretrained-no-kd"].uses_teacher) == ("m", False)
    assert (r["finetuned-student-kd"].teacher, r["finetuned-student-kd"].student) == (teacher, teacher)
    sd = r["small-dense"]
    assert (sd.sparsity, sd.student_layers, sd.student_ffn, sd.teacher) == (0.0, 1, 64, teacher)
    assert small_dense_size(BertConfig(hidden_size=384, num_hidden_layers=6, intermediate_size=1536), 0.5, 64) == (6, 384)
    # distillation cells use prune's default loss; the spec's `prune` may change weights and criterion
    from sparsebert.experiment.grid import KD_WEIGHTS
    from sparsebert.recipe import PruneRecipe

    defaults = {k: PruneRecipe.model_fields[k].default for k in KD_WEIGHTS}
    assert {k: getattr(r["sparsebert"], k) for k in KD_WEIGHTS} == defaults
    spec.prune = {"attention_weight": 0.5, "criterion": "movement", "hardness": 0.25}
    x = cell_recipe(spec, Cell("sst2", "sparsebert", 0.95, 1), d)
    assert (x.attention_weight, x.criterion, x.hardness) == (0.5, "movement", 0.25)
    y = cell_recipe(spec, Cell("sst2", "finetune-then-prune", 0.95, 1), d)
    assert (y.attention_weight, y.label_weight, y.criterion) == (0.0, 1.0, "movement")


def fake_summary(out: Path, cell: Cell, value: float, nnz: int = 100, layers: int = 2) -> None:
    d = out / "cells" / cell.id
    d.mkdir(parents=True)
    sparsity = 1 - nnz / 1000
    matrices = [{"name": f"layer.{i}.{r}", "sparsity": sparsity} for i in range(layers)
                for r in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")]
    (d / "summary.json").write_text(json.dumps({
        "metrics": {"dev": {"accuracy": value}}, "steps": 10, "train_examples": 5, "train_seconds": 1.0,
        "wall_seconds": 2.0, "sparsity": {"targets": {"sparsity": sparsity, "nnz": nnz, "numel": 1000},
                                          "matrices": matrices}}))


def test_results_tables_and_plots_on_a_synthetic_grid(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", seeds=[1, 2], sparsities=[0.5, 0.95], all_seeds_at=[0.0, 0.95],
                                variants=["dense-teacher", "sparsebert", "finetune-then-prune", "small-dense"],
                                bench=None))
    out = tmp_path / "out"
    cells = expand_grid(spec)
    values = {"dense-teacher": 0.90, "sparsebert": 0.85, "finetune-then-prune": 0.80, "small-dense": 0.70}
    for c in cells:
        if c != Cell("sst2", "finetune-then-prune", 0.5, 1):  # one cell left unfinished
            fake_summary(out, c, values[c.variant] + (0.02 if c.seed == 2 else 0.0) - (0.1 if c.sparsity == 0.5 else 0))
    results = write_results(spec, out, cells, spec_path=tmp_path / "s.yaml")
    assert results["missing"] == ["sst2/finetune-then-prune-s0.5-seed1"]
    agg = {(a["variant"], a["sparsity"]): a for a in results["aggregate"]}
    assert agg[("sparsebert", 0.95)]["n"] == 2 and agg[("sparsebert", 0.95)]["mean"] == pytest.approx(86.0)
    assert agg[("sparsebert", 0.95)]["std"] == pytest.approx(1.41421356, rel=1e-6)
    assert agg[("dense-teacher", 0.0)]["mean"] == pytest.approx(91.0)
    ret = {r["task"]: r for r in results["retention"]}
    assert ret["sst2"]["retention"] == pytest.approx(86 / 91)
    assert ret["mrpc"]["paper"]["retention"] == pytest.approx(88.5 / 88.6) and ret["mrpc"]["dense"] is None
    # gain retention over the majority-class floor: a collapsed student keeps 0 % of the gain
    from sparsebert.experiment.report import gain_retention, retention

    assert gain_retention(81.2, 86.9, 81.2) == 0.0 and gain_retention(80.0, 80.0, 80.0) is None
    ret = {r["task"]: r for r in retention(results["aggregate"], spec, {"sst2": 51.0, "mrpc": 81.2})}
    assert ret["sst2"]["gain_retention"] == pytest.approx((86 - 51) / (91 - 51))
    assert ret["mrpc"]["paper"]["gain_retention"] == pytest.approx((88.5 - 81.2) / (88.6 - 81.2))
    md = (out / "results.md").read_text()
    assert "| SST2 acc | – | 91.0 ± 1.4 (n=2) | 86.0 ± 1.4 (n=2) |" in md  # no data_dir: no majority floor
    assert "| sst2/finetune-then-prune-s0.5-seed1" not in md and "- `sst2/finetune-then-prune-s0.5-seed1`" in md
    assert "88.6 → 88.5 | 99.9 %" in md
    for name in ("metric_vs_sparsity.png", "layer_sparsity.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert json.loads((out / "results.json").read_text())["rows"][0]["cell"] == results["rows"][0]["cell"]
    assert set(PAPER_BERT_BASE) == {"qnli", "mrpc", "rte", "cola"}


def test_tiny_grid_runs_resumes_and_skips_finished_cells(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.setenv("SPARSEBERT_KERNEL_CACHE", str(tmp_path / "kernel_choices.json"))  # S4's bench caches choices
    data = write_sst2(tmp_path / "glue")
    spec = write_spec(tmp_path / "spec.yaml", model=str(tiny_bert), data_dir=str(data), sparsities=[0.5, 0.9],
                      sparsity=0.9, variants=["dense-teacher", "sparsebert", "small-dense"],
                      bench={"batches": [1, 2], "seq": 16, "budget_s": 0.05, "threads": 1},
                      train={"max_steps": 3, "batch_size": 16, "max_length": 32, "bf16": False},
                      prune={"pruning_events": 2})
    out = tmp_path / "out"
    first = run_experiment(spec, out, log=lambda s: None)
    assert [c.state for c in first["cells"]] == ["ran"] * 4, [(c.cell.id, c.message) for c in first["cells"]]
    rows = {r["cell"]: r for r in first["results"]["rows"]}
    assert rows["sst2/sparsebert-s0.9-seed1"]["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert rows["sst2/small-dense-s0.9-seed1"]["small_dense"]["layers_kept"] == [0]
    assert (out / "recipes" / "sst2" / "sparsebert-s0.5-seed1.yaml").is_file()
    assert (out / "logs" / "sst2" / "sparsebert-s0.5-seed1.log").read_text().startswith("$ ")
    # S4: the 0.9-sparse model, the small dense one and the teacher, each at its fastest path
    s4 = {e["model"]: e for e in first["results"]["s4"]}
    assert set(s4) == {"sparse", "small-dense", "teacher"}
    assert s4["small-dense"]["encoder_nnz"] < s4["teacher"]["encoder_nnz"]
    for e in s4.values():
        assert set(e["throughput"]) == {"1", "2"} and all(t["seq_per_s"] > 0 for t in e["throughput"].values())
    bench = json.loads((out / "bench" / "sst2.json").read_text())
    sparse_paths = [r["path"] for r in bench["sparse"]["bench"]["results"]["1"]]
    teacher_paths = [r["path"] for r in bench["teacher"]["bench"]["results"]["1"]]
    assert {"sparse-runtime", "sparse-runtime-int8", "onnxruntime-int8", "openvino-int8"} <= set(sparse_paths)
    assert "onnxruntime-opt-fp32" in teacher_paths and not {"sparse-runtime", "sparse-runtime-int8"} & set(teacher_paths)
    assert s4["sparse"]["throughput"]["1"]["best_path"] != "sparse-runtime-int8"
    assert s4["sparse"]["throughput"]["1"]["sparse_int8_seq_per_s"] > 0
    assert "## S4 comparison" in (out / "results.md").read_text()
    assert first["results"]["majority"] == {"sst2": 50.0}  # write_sst2's dev labels alternate

    # a lost cell is re-run, the finished ones are skipped (their outputs untouched)
    import shutil

    keep = (out / "cells/sst2/dense-teacher-seed1/summary.json").stat().st_mtime_ns
    shutil.rmtree(out / "cells/sst2/sparsebert-s0.5-seed1")
    # --report-only: the report of the finished cells, the lost one listed as missing, nothing trained
    res = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(out), "--report-only"])
    assert res.exit_code == 0, res.output
    reported = json.loads((out / "results.json").read_text())
    assert reported["missing"] == ["sst2/sparsebert-s0.5-seed1"] and len(reported["rows"]) == 3
    assert not (out / "cells/sst2/sparsebert-s0.5-seed1").exists()
    res = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(tmp_path / "none"), "--report-only"])
    assert res.exit_code != 0 and "does not exist" in res.output.replace("\n", " ")
    second = run_experiment(spec, out, log=lambda s: None)
    states = {c.cell.id: c.state for c in second["cells"]}
    assert states == {"sst2/dense-teacher-seed1": "done", "sst2/sparsebert-s0.5-seed1": "ran",
                      "sst2/sparsebert-s0.9-seed1": "done", "sst2/small-dense-s0.9-seed1": "done"}
    assert (out / "cells/sst2/dense-teacher-seed1/summary.json").stat().st_mtime_ns == keep

    # editing the spec re-runs exactly the cells whose recipe changed: the pruning cells
    text = spec.read_text().replace("pruning_events: 2", "pruning_events: 3")
    spec.write_text(text)
    res = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(out), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "stale sst2/sparsebert-s0.5-seed1: recipe changed: pruning_events" in res.output
    assert "stale sst2/small-dense" not in res.output and "stale sst2/dense-teacher" not in res.output
    third = run_experiment(spec, out, log=lambda s: None)
    states = {c.cell.id: c.state for c in third["cells"]}
    assert states == {"sst2/dense-teacher-seed1": "done", "sst2/sparsebert-s0.5-seed1": "ran",
                      "sst2/sparsebert-s0.9-seed1": "ran", "sst2/small-dense-s0.9-seed1": "done"}
    # a re-trained teacher makes its students stale
    spec.write_text(text + "teacher: {max_steps: 4}\n")
    fourth = run_experiment(spec, out, bench=False, log=lambda s: None)
    assert {c.state for c in fourth["cells"]} == {"ran"}


def test_failed_teacher_skips_only_its_students(tmp_path, tiny_bert):
    data = write_sst2(tmp_path / "glue")  # no RTE files: the rte teacher fails on its missing data
    spec = write_spec(tmp_path / "spec.yaml", model=str(tiny_bert), data_dir=str(data), tasks={"rte": {}, "sst2": {}},
                      sparsities=[0.5], sparsity=0.5, variants=["dense-teacher", "sparsebert"], bench=None, workers=2,
                      threads=1, train={"max_steps": 2, "batch_size": 8, "max_length": 32, "bf16": False})
    res = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(tmp_path / "out")])
    assert res.exit_code == 1
    states = {c.cell.id: (c.state, c.message) for c in run_experiment(spec, tmp_path / "out", log=lambda s: None)["cells"]}
    assert states["sst2/dense-teacher-seed1"][0] == "done" and states["sst2/sparsebert-s0.5-seed1"][0] == "done"
    assert states["rte/dense-teacher-seed1"][0] == "failed" and "RTE" in states["rte/dense-teacher-seed1"][1]
    assert states["rte/sparsebert-s0.5-seed1"] == ("skipped", "teacher rte/dense-teacher-seed1 failed")


def test_a_cell_finished_meanwhile_by_another_run_is_left_alone(tmp_path):
    """Two runs of one grid (the second started for an idle core): the first, reaching a cell the second has
    finished since, reports it done instead of failing on the existing output (or overwriting its log)."""
    from sparsebert.experiment.runner import cell_dir, run_cell

    spec = load_spec(write_spec(tmp_path / "spec.yaml", model="m", sparsities=[0.5], sparsity=0.5, bench=None))
    teacher, student = expand_grid(spec)
    out = tmp_path / "out"
    done = cell_dir(out, student)
    done.mkdir(parents=True)
    (done / "summary.json").write_text("{}")
    log = out / "logs" / f"{student.id}.log"
    log.parent.mkdir(parents=True)
    log.write_text("the other run's log\n")
    status = run_cell(spec, student, out)
    assert (status.state, status.message) == ("done", "finished meanwhile by another run of this grid")
    assert log.read_text() == "the other run's log\n" and not (out / "recipes" / f"{student.id}.yaml").exists()
    assert (done / "summary.json").read_text() == "{}"


def test_cells_run_through_the_launcher(tmp_path, tiny_bert):
    """`--launcher` (or the spec's `launcher`) starts every cell as `<launcher> -m sparsebert.cli <stage>
    --recipe FILE`: here a wrapper that records its arguments, then runs them with this Python (where
    `accelerate launch --num_processes N` would start N processes)."""
    import sys

    record = tmp_path / "argv.jsonl"
    wrapper = tmp_path / "launch.py"
    wrapper.write_text("import json, os, sys\n"
                       f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                       "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n")
    data = write_sst2(tmp_path / "glue")
    spec = write_spec(tmp_path / "spec.yaml", model=str(tiny_bert), data_dir=str(data), sparsities=[0.5], sparsity=0.5,
                      variants=["dense-teacher", "sparsebert"], bench=None, threads=1,
                      train={"max_steps": 2, "batch_size": 8, "max_length": 32, "bf16": False})
    res = CliRunner().invoke(app, ["experiment", str(spec), "--out", str(tmp_path / "out"),
                                   "--launcher", f"{sys.executable} {wrapper}"])
    assert res.exit_code == 0, res.output
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [c[:3] for c in calls] == [["-m", "sparsebert.cli", "finetune"], ["-m", "sparsebert.cli", "prune"]]
    assert all(c[3] == "--recipe" and c[4].endswith(".yaml") for c in calls)
    log = (tmp_path / "out" / "logs" / "sst2" / "sparsebert-s0.5-seed1.log").read_text()
    assert log.startswith(f"$ {sys.executable} {wrapper} -m sparsebert.cli prune --recipe ")


def test_s4_requests_every_dense_baseline_and_keeps_unchecked_int8_beside_the_main_figure(tmp_path, monkeypatch):
    """S4 asks the bench for the dense paths of every engine (each model's best dense path) and, for the
    sparse model, both sparse runtimes; the sparse int8 runtime's accuracy is not evaluated, so it is
    reported beside the main figure and never is it, even when fastest."""
    import sparsebert.bench.run as bench_run
    import sparsebert.export.checkpoint as checkpoint
    from sparsebert.experiment import s4

    spec = load_spec(write_spec(tmp_path / "s.yaml", variants=["dense-teacher", "sparsebert", "small-dense"],
                                sparsities=[0.9], sparsity=0.9, bench={"batches": [1], "seq": 8, "budget_s": 0.05,
                                                                       "threads": 1}))
    out = tmp_path / "out"
    cells = expand_grid(spec)
    for c in cells:
        fake_summary(out, c, {"dense-teacher": 0.9, "sparsebert": 0.85, "small-dense": 0.7}[c.variant])
    asked = {}

    def fake_bench(model, *, paths, **kw):  # sparse-runtime-int8 fastest, then onnxruntime-int8, then the rest
        asked[model] = paths
        ms = {"sparse-runtime-int8": 1.0, "onnxruntime-int8": 2.0, "sparse-runtime": 3.0}
        return {"results": {"1": [{"path": p, "median_ms": ms.get(p, 10.0), "seq_per_s": 1e3 / ms.get(p, 10.0)}
                                  for p in paths]}}

    monkeypatch.setattr(bench_run, "bench_model", fake_bench)
    monkeypatch.setattr(checkpoint, "load_any", lambda path: Path(path).name)
    s4.run_s4_benches(spec, out, log=lambda s: None)
    dense = ("dense-fp32", "dense-bf16", "dynamic-int8", "onnxruntime-opt-fp32", "onnxruntime-int8", "openvino-fp32",
             "openvino-int8")
    assert asked == {"dense-teacher-seed1": dense,
                     "sparsebert-s0.9-seed1": dense + ("sparse-runtime", "sparse-runtime-int8", "engine", "engine-int8"),
                     "small-dense-s0.9-seed1": dense}
    results = write_results(spec, out, cells, spec_path=tmp_path / "s.yaml")
    tp = {e["model"]: e["throughput"]["1"] for e in results["s4"]}
    assert tp["sparse"]["best_path"] == "onnxruntime-int8" and tp["sparse"]["seq_per_s"] == 500.0
    assert tp["sparse"]["sparse_int8_seq_per_s"] == 1000.0 and tp["sparse"]["sparse_int8_median_ms"] == 1.0
    assert tp["teacher"]["best_path"] == "onnxruntime-int8" and tp["teacher"]["sparse_int8_seq_per_s"] is None
    md = (out / "results.md").read_text()
    assert "| 500.0 (onnxruntime-int8); int8 sparse 1000.0 |" in md and "accuracy is not evaluated here" in md
    assert s4.best_path([{"path": "sparse-runtime-int8", "median_ms": 1.0}]) is None
    assert s4.best_path([{"path": "engine-int8", "median_ms": 1.0}]) is None  # int8: accuracy not checked here
