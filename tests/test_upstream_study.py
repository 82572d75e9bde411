"""studies/upstream/collect.py: task cells of both models are found by run.sh's names, unfinished runs are left
out, GR is taken against the better dense teacher of the model and task (either head), seeds are averaged, the
knowledge studies' rows are cited only where the study has no cell, and the mean GR needs all four tasks."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"upstream_{name}", ROOT / "studies" / "upstream" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


collect = _load("collect")
FLOORS = {"mrpc": 80.0, "stsb": 0.0, "sst2": 50.0, "cola": 0.0}


def _summary(run: Path, metrics: dict, head: str = "cross-encoder", sparsity: float = 0.95, nnz: int = 500,
             seconds: float = 3600.0, threads: int = 1, steps: int = 690, student: str | None = None) -> None:
    """The fields of a finished run's summary.json that the collector reads."""
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "stage": "prune", "metrics": {"dev": metrics}, "steps": steps, "train_seconds": seconds,
        "recipe": {"head": head, "threads": threads, **({"student": student} if student else {})}, "environment": {"cpu": "Test CPU (AVX2)", "threads": threads},
        "sparsity": {"targets": {"sparsity": sparsity, "nnz": nnz}}}))


@pytest.fixture
def runs(tmp_path):
    r = tmp_path / "upstream"
    _summary(r / "mrpc-teacher", {"f1": 0.85})
    _summary(r / "mrpc-bi-teacher", {"f1": 0.87}, head="bi-encoder")
    _summary(r / "seed42" / "mrpc-transfer-95", {"f1": 0.84}, threads=2)
    _summary(r / "seed7" / "mrpc-transfer-95", {"f1": 0.86}, threads=2)
    _summary(r / "seed42" / "mrpc-bi-small-dense-95", {"f1": 0.83}, head="bi-encoder", sparsity=0.0, nnz=640)
    (r / "seed42" / "mrpc-task-prune-95").mkdir()  # unfinished: no summary.json
    (r / "seed42" / ".mrpc-bi-task-prune-95.partial").mkdir()  # in progress
    _summary(r / "mpnet-stsb-teacher", {"pearson": 0.88})
    _summary(r / "seed42" / "mpnet-stsb-transfer-95", {"pearson": 0.80}, steps=1080)
    return r


def _answer(rows, model, task, kind, head):
    (row,) = [r for r in rows if (r["model"], r["task"], r["kind"], r["head"]) == (model, task, kind, head)]
    return row


def test_gr_against_the_better_teacher_of_the_family_over_seeds(runs, tmp_path):
    tasks = collect.task_rows(runs, floor=FLOORS.get)
    assert sorted((r["model"], r["task"], r["variant"], r["seed"]) for r in tasks) == [
        ("minilm", "mrpc", "bi-small-dense-95", 42), ("minilm", "mrpc", "transfer-95", 7),
        ("minilm", "mrpc", "transfer-95", 42), ("mpnet", "stsb", "transfer-95", 42)]
    own = next(r for r in tasks if (r["model"], r["variant"], r["seed"]) == ("minilm", "transfer-95", 42))
    assert own["teacher"] == pytest.approx(85.0) and own["gain_retention"] == pytest.approx((84 - 80) / (85 - 80))
    assert own["cpu_hours"] == pytest.approx(2.0) and own["nominal_sparsity"] == 0.95
    teachers = collect.teacher_rows(runs)
    assert sorted((t["model"], t["task"], t["head"]) for t in teachers) == [
        ("minilm", "mrpc", "bi-encoder"), ("minilm", "mrpc", "cross-encoder"), ("mpnet", "stsb", "cross-encoder")]
    data = collect.build([], teachers, tasks, None, glue_knowledge=tmp_path / "none.json",
                         sst2_knowledge=tmp_path / "none.json", s4_pareto=tmp_path / "none.json")
    transfer = _answer(data["answer"], "minilm", "mrpc", "transfer", "cross-encoder")
    # the cross-encoder cells distilled from the 85.0 teacher, but the better MiniLM-L6 MRPC model is the bi-encoder
    assert (transfer["gr_teacher"], transfer["gr_teacher_head"]) == (pytest.approx(87.0), "bi-encoder")
    assert transfer["n"] == 2 and transfer["seeds"] == [7, 42]
    assert transfer["mean"] == pytest.approx(85.0) and transfer["std"] == pytest.approx(math.sqrt(2))
    assert transfer["gain_retention"] == pytest.approx((85 - 80) / (87 - 80))
    assert transfer["own_teacher"] == pytest.approx(85.0) and transfer["cpu_hours"] == pytest.approx(2.0)
    small = _answer(data["answer"], "minilm", "mrpc", "small-dense", "bi-encoder")
    assert small["sparsity"] == 0.95 and small["std"] is None
    assert small["gain_retention"] == pytest.approx((83 - 80) / (87 - 80))
    mpnet = _answer(data["answer"], "mpnet", "stsb", "transfer", "cross-encoder")
    assert mpnet["gain_retention"] == pytest.approx(80 / 88)  # MPNet's own teacher, never MiniLM's
    summary = {(s["model"], s["sparsity"], s["group"]): s for s in data["summary"]}
    s = summary[("minilm", 0.95, "sparse")]
    assert s["tasks"]["mrpc"]["kind"] == "transfer" and s["missing"] == ["sst2", "stsb", "cola"]
    assert s["mean_gr"] is None and s["min_gr"] is None
    md = collect.markdown(data)
    assert "87.0 (bi-encoder)" in md and "85.0 ± 1.4" in md and "missing: sst2, stsb, cola" in md


def test_transfer_cells_from_another_upstream_run_are_kept_apart_and_named(tmp_path):
    r = tmp_path / "upstream"
    _summary(r / "mpnet-sst2-teacher", {"accuracy": 0.93}, steps=2105)
    _summary(r / "seed42" / "mpnet-sst2-transfer-95", {"accuracy": 0.80}, student=str(r / "mpnet-s95"))
    _summary(r / "seed7" / "mpnet-sst2-transfer-95", {"accuracy": 0.86}, student=str(r / "mpnet-s95-lr3e-5"))
    data = collect.build([], collect.teacher_rows(r), collect.task_rows(r, floor=FLOORS.get), None,
                         glue_knowledge=tmp_path / "none.json", sst2_knowledge=tmp_path / "none.json", s4_pareto=tmp_path / "none.json")
    rows = {a["upstream"]: a for a in data["answer"]}
    assert sorted(rows) == ["mpnet-s95", "mpnet-s95-lr3e-5"]  # never averaged together
    assert rows["mpnet-s95"]["n"] == 1 and rows["mpnet-s95-lr3e-5"]["mean"] == pytest.approx(86.0)
    assert collect.variant_label(rows["mpnet-s95"]) == "transfer"  # run.sh's default upstream run: not named
    assert collect.variant_label(rows["mpnet-s95-lr3e-5"]) == "transfer (mpnet-s95-lr3e-5)"
    s = next(s for s in data["summary"] if (s["model"], s["sparsity"], s["group"]) == ("mpnet", 0.95, "sparse"))
    assert s["tasks"]["sst2"]["mean"] == pytest.approx(86.0)  # the better of the two
    md = collect.markdown(data)
    assert "| transfer (mpnet-s95-lr3e-5) |" in md and "86.0 (84 %, transfer (mpnet-s95-lr3e-5))" in md
    assert "| transfer-95 (mpnet-s95-lr3e-5) | cross-encoder | 7 |" in md and "| transfer-95 | cross-encoder | 42 |" in md


def test_mean_gr_takes_the_best_sparse_variant_per_task_and_needs_all_four():
    def row(task, kind, gr, model="mpnet", head="cross-encoder"):
        return {"model": model, "task": task, "sparsity": 0.95, "kind": kind, "head": head, "mean": 1.0,
                "gain_retention": gr, "cited": None}

    answer = [row("sst2", "task-prune", 0.70), row("sst2", "transfer", 0.90), row("mrpc", "transfer", 0.60),
              row("stsb", "transfer", 0.95, head="bi-encoder"), row("stsb", "task-prune", 0.20),
              row("cola", "small-dense", 0.55), row("cola", "transfer", 0.50), row("sst2", "transfer", 0.99, "minilm")]
    rows = {s["group"]: s for s in collect.summary_rows(answer) if (s["model"], s["sparsity"]) == ("mpnet", 0.95)}
    s = rows["sparse"]
    # the small dense model (0.55 on CoLA) is never counted as the sparse model's result, even where it is better
    assert {t: (v["kind"], v["head"]) for t, v in s["tasks"].items()} == {
        "sst2": ("transfer", "cross-encoder"), "mrpc": ("transfer", "cross-encoder"),
        "stsb": ("transfer", "bi-encoder"), "cola": ("transfer", "cross-encoder")}
    assert s["missing"] == [] and s["mean_gr"] == pytest.approx((0.90 + 0.60 + 0.95 + 0.50) / 4)
    assert s["min_gr"] == pytest.approx(0.50)
    twin = rows["small-dense"]
    assert list(twin["tasks"]) == ["cola"] and twin["missing"] == ["sst2", "mrpc", "stsb"] and twin["mean_gr"] is None


def test_knowledge_rows_are_cited_only_where_the_study_has_no_cell(tmp_path):
    gk = tmp_path / "glue_knowledge.json"
    base = {"task": "mrpc", "seed": 42, "metric": "f1", "floor": 81.0, "teacher": 86.0, "encoder_nnz": 1,
            "steps": collect.BUDGET_STEPS["mrpc"], "wall_seconds": 360.0, "source": "runs/x"}
    gk.write_text(json.dumps({"rows": [
        {**base, "variant": "dense-teacher", "sparsity": 0.0, "value": 86.0},
        {**base, "variant": "sparsebert", "sparsity": 0.95, "value": 79.0},  # the study has this cell
        {**base, "variant": "small-dense", "sparsity": 0.95, "value": 82.0},
        {**base, "variant": "small-dense", "sparsity": 0.9, "value": 83.0, "steps": 99},  # another budget
        {**base, "variant": "finetune-then-prune", "sparsity": 0.95, "value": 84.0}]}))  # not a study kind
    local = [{"model": "minilm", "task": "mrpc", "nominal_sparsity": 0.95, "kind": "task-prune",
              "head": "cross-encoder"}]
    rows, teachers = collect.cited_rows(local, gk, tmp_path / "none.json", tmp_path / "none.json")
    assert [(r["kind"], r["nominal_sparsity"], r["student"]) for r in rows] == [("small-dense", 0.95, 82.0)]
    assert rows[0]["gain_retention"] == pytest.approx((82 - 81) / (86 - 81)) and rows[0]["cited"].endswith(gk.name)
    assert [(t["task"], t["head"], t["value"]) for t in teachers] == [("mrpc", "cross-encoder", 86.0)]
    gk.write_text(json.dumps({"rows": [{"task": "mrpc", "variant": "small-dense"}]}))
    with pytest.raises(SystemExit, match=r"rows\[0\]: no field 'sparsity'"):
        collect.cited_rows([], gk, tmp_path / "none.json", tmp_path / "none.json")


def test_mpnet_sst2_rows_are_cited_from_the_s4_pareto_run_at_mpnets_budget(tmp_path):
    s4 = tmp_path / "s4_pareto_avx512vnni.json"

    def row(key, acc, path="dense-fp32", batch=1, steps=2105):
        return {"key": key, "path": path, "batch": batch, "accuracy": acc, "teacher_accuracy": 93.7,
                "params_nonzero_targets": 4_246_728, "train_steps": steps}

    s4.write_text(json.dumps({"cpu": "Test CPU (AVX-512)", "majority_floor": 50.9, "rows": [
        row("mpnet-dense", 93.7), row("mpnet-s95", 75.5), row("mpnet-s95", 74.0, path="sparse-runtime-int8"),
        row("mpnet-s95", 75.5, batch=32), row("small-dense-mpnet", 83.0), row("mpnet-s97", 70.8, steps=999),
        row("minilm-s90", 85.0)]}))
    local = [{"model": "mpnet", "task": "sst2", "nominal_sparsity": 0.95, "kind": "small-dense", "head": "cross-encoder"}]
    rows, teachers = collect.cited_rows(local, tmp_path / "none.json", tmp_path / "none.json", s4)
    # the fp32 batch-1 row only; small-dense 95 % is a local cell here; 97 % has another budget; MiniLM rows are
    # cited from the knowledge studies, never from here
    assert [(r["model"], r["kind"], r["nominal_sparsity"], r["student"]) for r in rows] == [
        ("mpnet", "task-prune", 0.95, 75.5)]
    assert rows[0]["gain_retention"] == pytest.approx((75.5 - 50.9) / (93.7 - 50.9))
    assert rows[0]["cpu"] == "Test CPU (AVX-512)" and rows[0]["cpu_hours"] is None and rows[0]["steps"] == 2105
    assert [(t["model"], t["task"], t["value"]) for t in teachers] == [("mpnet", "sst2", 93.7)]
    data = collect.build([], [], [], None, glue_knowledge=tmp_path / "none.json",
                         sst2_knowledge=tmp_path / "none.json", s4_pareto=s4)
    assert "| MPNet-base | sst2 (accuracy) | 95 % | task-prune † |" in collect.markdown(data)


@pytest.mark.parametrize("variant,parsed", [("transfer-95", ("transfer", "cross-encoder", 0.95)),
                                            ("bi-small-dense-97", ("small-dense", "bi-encoder", 0.97)),
                                            ("task-prune-90", ("task-prune", "cross-encoder", 0.9))])
def test_variant_names(variant, parsed):
    assert collect.parse_variant(variant) == parsed


@pytest.mark.parametrize("variant", ["transfer", "foo-95", "bi-transfer-x"])
def test_an_unknown_variant_is_an_error_naming_it(variant):
    with pytest.raises(ValueError, match=variant):
        collect.parse_variant(variant)


def test_a_cell_lr_suffix_is_split_off_and_named():
    assert collect.split_lr("transfer-95-lr1e-4") == ("transfer-95", "1e-4")
    assert collect.split_lr("bi-small-dense-90") == ("bi-small-dense-90", None)
    with pytest.raises(ValueError, match="transfer-95-lrx"):
        collect.split_lr("transfer-95-lrx")
    row = {"model": "mpnet", "sparsity": 0.95, "kind": "transfer", "upstream": "mpnet-s95-lr3e-5", "cell_lr": "1e-4"}
    assert collect.variant_label(row) == "transfer (mpnet-s95-lr3e-5, lr 1e-4)"
    assert collect.variant_label({**row, "upstream": "mpnet-s95"}) == "transfer (lr 1e-4)"


def test_cell_lr_cells_are_their_own_rows(tmp_path):
    r = tmp_path / "upstream"
    _summary(r / "mpnet-sst2-teacher", {"accuracy": 0.93}, steps=2105)
    _summary(r / "seed42" / "mpnet-sst2-transfer-95", {"accuracy": 0.80}, student=str(r / "mpnet-s95"))
    _summary(r / "seed42" / "mpnet-sst2-transfer-95-lr1e-4", {"accuracy": 0.88}, student=str(r / "mpnet-s95"))
    tasks = collect.task_rows(r, floor=FLOORS.get)
    assert sorted((t["variant"], t["cell_lr"], t["nominal_sparsity"]) for t in tasks) == [
        ("transfer-95", None, 0.95), ("transfer-95-lr1e-4", "1e-4", 0.95)]
    data = collect.build([], collect.teacher_rows(r), tasks, None, glue_knowledge=tmp_path / "none.json",
                         sst2_knowledge=tmp_path / "none.json", s4_pareto=tmp_path / "none.json")
    assert sorted((a["cell_lr"] or "", a["mean"]) for a in data["answer"]) == [("", pytest.approx(80.0)),
                                                                                ("1e-4", pytest.approx(88.0))]
    md = collect.markdown(data)
    assert "| transfer (lr 1e-4) |" in md and "| transfer-95-lr1e-4 | cross-encoder | 42 |" in md


def test_run_sh_names_cells_run_at_another_lr():
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "RUNS": "runs/upstream", "CELLLR": "2e-4"}
    out = subprocess.run(["bash", str(ROOT / "studies" / "upstream" / "run.sh"), "cola:small-dense-95"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--learning-rate 2e-4 --sparsity 0 " in out.stdout
    assert "--out runs/upstream/seed42/cola-small-dense-95-lr2e-4 >" in out.stdout


def test_cell_names_of_both_models():
    assert collect.parse_cell("mrpc-bi-transfer-95") == ("minilm", "mrpc", "bi-transfer-95")
    assert collect.parse_cell("mpnet-sst2-small-dense-90") == ("mpnet", "sst2", "small-dense-90")


def test_run_sh_mpnet_upstream_is_the_running_command_and_names_are_kept(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "RUNS": "runs/upstream"}
    out = subprocess.run(["bash", str(ROOT / "studies" / "upstream" / "run.sh"), "UP:0.95"],
                         env={**env, "MODEL": "mpnet"}, capture_output=True, text=True)
    if "make mpnet" in out.stderr:
        pytest.skip("no local MPNet checkpoint (make mpnet)")
    assert out.returncode == 0, out.stderr
    assert (".venv/bin/sparsebert upstream .cache/models/all-mpnet-base-v2 --text general --sparsity 0.95 "
            "--max-steps 1200 --eval-every 300 --batch-size 32 --max-length 64 --threads 1 --save-every 25 "
            "--sts-data-dir ../shared/data/glue --out runs/upstream/mpnet-s95 > runs/logs/upstream-mpnet-s95.log"
            ) in out.stdout
    bad = subprocess.run(["bash", str(ROOT / "studies" / "upstream" / "run.sh"), "mrpc:foo-95"],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown variant in mrpc:foo-95" in bad.stderr


def test_an_upstream_row_names_what_it_changed_from_the_default_recipe():
    from sparsebert.recipe import UpstreamRecipe

    assert collect.UPSTREAM_LR == UpstreamRecipe.model_fields["learning_rate"].default
    assert collect.recipe_label({"learning_rate": 3e-5}) == "lr 3e-05"
    assert collect.recipe_label({"learning_rate": collect.UPSTREAM_LR, "criterion": "magnitude",
                                 "scope": "per-matrix", "embedding_weight": 0.0}) == ""
    assert collect.recipe_label({}) == ""  # archived rows from before the fields
    assert collect.recipe_label({"criterion": "obs", "pruning_events": 10, "scope": "global",
                                 "embedding_weight": 1.0}) == "obs (10 events) + global scope + embedding term"
    assert collect.recipe_label({"embedding_weight": 1.0, "hidden_weight": 0.0, "attention_weight": 0.0}) == \
        "embedding term only"
    assert collect.recipe_label({"embedding_weight": 1.0, "hidden_weight": 0.0}) == "embedding term"
    assert collect.recipe_label({"student_dropout": 0.0}) == "student dropout 0"
    assert collect.recipe_label({"text": ["general"]}) == ""
    assert collect.recipe_label({"text": ["general", ".cache/corpus/glue-train/no-stsb.jsonl"]}) == \
        "text glue-train/no-stsb.jsonl"


def test_run_sh_names_minilm_upstream_variants_and_rejects_unknown_ones():
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "RUNS": "runs/upstream"}
    run = ["bash", str(ROOT / "studies" / "upstream" / "run.sh")]
    out = subprocess.run(run + ["UP:0.95:obs", "UP:0.90:global", "UP:0.95:embonly", "UP:0.95:nodrop"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--sparsity 0.95 --criterion obs --pruning-events 10 --max-steps 1200 " in out.stdout
    assert "--out runs/upstream/minilm-l6-s95-obs " in out.stdout
    assert "--scope global --max-steps 1200 " in out.stdout and "--out runs/upstream/minilm-l6-s90-global " in out.stdout
    assert ("--embedding-weight 1 --attention-weight 0 --hidden-weight 0 --max-steps 1200 " in out.stdout
            and "--out runs/upstream/minilm-l6-s95-embonly " in out.stdout)
    assert "--student-dropout 0 --max-steps 1200 " in out.stdout and "--out runs/upstream/minilm-l6-s95-nodrop " in out.stdout
    long = subprocess.run(run + ["UP:0.95"], env={**env, "UPSTEPS": "2400"}, capture_output=True, text=True)
    assert "--max-steps 2400 " in long.stdout and "--out runs/upstream/minilm-l6-s95-2400steps " in long.stdout
    bad = subprocess.run(run + ["UP:0.95:foo"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown upstream variant in UP:0.95:foo" in bad.stderr


def _glue_dir(root):
    """A tiny glue_data tree: the four train tasks of glue_text.py plus an STS-B dev set."""
    def write(task, split, text):
        (root / task).mkdir(parents=True, exist_ok=True)
        (root / task / f"{split}.tsv").write_text(text, encoding="utf-8")

    write("SST-2", "train", "sentence\tlabel\na gripping and moving film about two brothers\t1\ngood\t1\n"
          "a gripping and moving film about two brothers\t1\n")
    write("SST-2", "dev", "sentence\tlabel\nthe plot is thin and the acting is wooden throughout\t0\n")
    mrpc = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    write("MRPC", "train", mrpc + "1\t1\t2\tThe company said its quarterly profit rose sharply on strong sales .\t"
          "Quarterly profit rose sharply , the company said .\n")
    write("MRPC", "dev", mrpc + "0\t3\t4\tShares fell in early trading on Monday in New York .\tStocks dropped .\n")
    write("RTE", "train", "index\tsentence1\tsentence2\tlabel\n0\tThe bridge was opened to traffic in 1932 by the mayor.\t"
          "The bridge opened in 1932.\tentailment\n")
    write("RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\tA new museum opened downtown last spring.\tA museum opened.\t"
          "entailment\n")
    write("CoLA", "train", "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one.\n")
    write("CoLA", "dev", "gj04\t1\t\tThe cat sat quietly on the warm mat by the door.\n")
    sts = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    # an STS-B dev sentence that is also an MRPC train sentence (STS-B's MSRpar pairs come from MRPC's corpus)
    write("STS-B", "dev", sts + "0\tmain-news\tMSRpar\t2012\t1\tnone\tnone\tQuarterly profit rose sharply , the company "
          "said .\tProfit rose .\t4.0\n")


def test_glue_text_leaves_out_stsb_dev_sentences_short_and_duplicate_texts(tmp_path):
    glue_text = _load("glue_text")
    root = tmp_path / "glue"
    _glue_dir(root)
    texts, counts = glue_text.glue_train_texts(root, min_words=4)
    assert "Quarterly profit rose sharply , the company said ." not in texts  # an STS-B dev sentence
    assert counts["mrpc"] == {"read": 2, "kept": 1, "short": 0, "duplicate": 0, "dev_match": 1}
    assert counts["sst2"] == {"read": 3, "kept": 1, "short": 1, "duplicate": 1, "dev_match": 0}
    assert sorted(counts) == ["cola", "mrpc", "rte", "sst2"] and len(texts) == 5
    out = tmp_path / "c" / "no-stsb.jsonl"
    assert glue_text.main(["--glue-dir", str(root), "--out", str(out)]) == 0
    lines = [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == texts and json.loads((out.parent / "PROVENANCE.json").read_text())["documents"] == 5
    assert glue_text.main(["--glue-dir", str(root), "--out", str(out)]) == 2  # no overwrite without --overwrite
    (root / "RTE" / "train.tsv").unlink()
    assert glue_text.main(["--glue-dir", str(root), "--out", str(out), "--overwrite"]) == 2


def test_run_sh_never_takes_a_transfer_cell_of_another_upstream_run_for_this_one(tmp_path):
    r = tmp_path / "upstream"
    for up in ("minilm-l6-s95", "minilm-l6-s95-obs"):
        (r / up).mkdir(parents=True)
        (r / up / "summary.json").write_text("{}")
    cell = r / "seed42" / "mrpc-transfer-95"
    cell.mkdir(parents=True)
    (cell / "summary.json").write_text(json.dumps({"recipe": {"student": str(r / "minilm-l6-s95-obs")}}))
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "RUNS": str(r)}
    run = ["bash", str(ROOT / "studies" / "upstream" / "run.sh"), "mrpc:transfer-95"]
    other = subprocess.run(run, env=env, capture_output=True, text=True)
    assert other.returncode == 2 and "was transferred from" in other.stderr and "UPFROM=minilm-l6-s95-obs" in other.stderr
    same = subprocess.run(run, env={**env, "UPFROM": "minilm-l6-s95-obs"}, capture_output=True, text=True)
    assert same.returncode == 0, same.stderr
    assert "sparsebert prune" not in same.stdout  # finished: nothing to run (only its teacher, which is missing here)
