"""The option vocabulary of the ``sparsebert`` command line: one name per concept, the same name in
every subcommand, each with its meaning and its ``--help`` panel (issue 33).

Rules:

* **MODEL** (positional) is the model a command reads and acts on: ``evaluate``, ``predict``,
  ``report``, ``export``, ``bench``. The training stages take every setting as a recipe key, their
  starting models included (``finetune --model``, ``prune --student/--teacher``), so that a
  ``--recipe`` file can hold them; ``augment`` and ``demo`` name the encoder they use with ``--model``.
* ``--out DIR`` is always a **directory** the command creates (a run, an export, augmented data, an
  experiment grid). A single result file is ``--json FILE``.
* ``--json FILE`` writes the command's result as JSON (``predict``: JSON lines; ``bench``: also a
  Markdown table beside it, ``FILE`` with ``.md``); ``--json -`` writes it to stdout and nothing
  else goes there.
* ``--max-length`` is the sequence length (tokens per example) everywhere, ``--batch-size`` the batch
  size, ``--threads`` the torch threads, ``--seed`` the random seed; a boolean is ``--x/--no-x``.

Old spellings stay for one release as hidden options that print a one-line deprecation notice
(:data:`DEPRECATED`). ``tests/test_cli_vocabulary.py`` walks every subcommand and fails on a name
outside :data:`OPTIONS` or one concept under two names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# --help panels, in the order a reader needs them
RECIPE = "Recipe"
DATA = "Data"
MODEL = "Model"
PRUNING = "Pruning"
DISTILLATION = "Distillation"
OPTIMISATION = "Optimisation"
COMPUTE = "Compute"
AUGMENTATION = "Augmentation"
BENCHMARK = "Benchmark"
OUTPUT = "Output"
#: the order of the panels in ``--help``
PANELS = (RECIPE, DATA, MODEL, PRUNING, DISTILLATION, OPTIMISATION, AUGMENTATION, BENCHMARK, COMPUTE, OUTPUT)


@dataclass(frozen=True)
class Term:
    """One option name: the ``concept`` it stands for (no other name may stand for it), what it means,
    its ``--help`` panel, whether it is a boolean ``flag`` and its metavar (None: typer's)."""

    concept: str
    meaning: str
    panel: str | None
    flag: bool = False
    metavar: str | None = None


def _t(concept: str, meaning: str, panel: str | None, *, flag: bool = False, metavar: str | None = None) -> Term:
    return Term(concept, meaning, panel, flag, metavar)


#: every option name of every subcommand (and the app's own), with its meaning
OPTIONS: dict[str, Term] = {
    # the app
    "--version": _t("version", "print the version and exit", None, flag=True),
    "--install-completion": _t("install completion", "install shell completion", None, flag=True),
    "--show-completion": _t("show completion", "print the shell completion script", None, flag=True),
    "--help": _t("help", "show the help and exit", None, flag=True),
    # recipe
    "--recipe": _t("recipe file", "YAML recipe; options given on the command line override it", RECIPE,
                   metavar="FILE"),
    "--dry-run": _t("dry run", "check and print what would run; run nothing", RECIPE, flag=True),
    # data
    "--task": _t("GLUE task", "GLUE task name", DATA),
    "--data-dir": _t("GLUE data directory", "glue_data root or task directory", DATA),
    "--train": _t("own train file", "your own train file (.csv, .tsv, .jsonl)", DATA, metavar="FILE"),
    "--dev": _t("own dev file", "your own dev file (.csv, .tsv, .jsonl)", DATA, metavar="FILE"),
    "--input": _t("input texts", "a file of texts to predict (.csv, .tsv, .jsonl)", DATA, metavar="FILE"),
    "--text-column": _t("text column", "own data: the text column / JSON key", DATA),
    "--text-pair-column": _t("text pair column", "own data: the second text of a pair", DATA),
    "--label-column": _t("label column", "own data: the label column / JSON key", DATA),
    "--task-type": _t("task type", "own data: auto | classification | regression", DATA),
    "--split": _t("eval split", "evaluation split(s)", DATA),
    "--max-length": _t("sequence length", "max tokens per example (truncation; the length timed by bench, the "
                       "length FLOPs are counted at by report)", DATA),
    "--max-train-examples": _t("train subsample", "fixed-seed subsample of the train split", DATA),
    "--max-eval-examples": _t("eval subsample", "first N examples of each eval split", DATA),
    "--augment": _t("augmented data", "train on augmented data (a directory or 'auto')", DATA),
    "--augment-filter": _t("augmented data filter", "which augmented copies to keep", DATA),
    "--sdist": _t("demo source", "the vaderSentiment sdist the demo's data comes from", DATA),
    "--text": _t("general text", "upstream: general text to distil on (repeatable)", DATA),
    "--sts-data-dir": _t("STS-B directory", "upstream: glue_data root for the zero-shot STS-B evaluation", DATA),
    "--min-length": _t("shortest segment", "upstream: shortest training segment in tokens", DATA),
    # model
    "--model": _t("encoder used", "the encoder a command starts from or uses (dir, hub id, pypi:<package>)", MODEL),
    "--teacher": _t("teacher", "fine-tuned teacher directory", MODEL),
    "--student": _t("student", "encoder the pruned student starts from", MODEL),
    "--student-layers": _t("student layers", "small dense student: layers kept", MODEL),
    "--student-ffn": _t("student FFN width", "small dense student: FFN neurons kept", MODEL),
    "--pooling": _t("pooling", "what the classification head reads: cls | mean", MODEL),
    "--head": _t("pair head", "how a sentence pair is scored: cross-encoder | bi-encoder", MODEL),
    "--head": _t("pair head", "how a sentence pair is scored: cross-encoder | bi-encoder", MODEL),
    "--synthetic": _t("synthetic model", "a random model of a named shape instead of MODEL", MODEL),
    "--engine": _t("engine", "use the native engine: auto | on | off", MODEL),
    "--int8": _t("int8", "the engine's sparse-int8 matrices", MODEL, flag=True),
    # pruning
    "--sparsity": _t("sparsity", "final sparsity", PRUNING),
    "--sparse-transfer": _t("sparse transfer", "keep the student's zeros (an upstream-pruned encoder)", PRUNING,
                            flag=True),
    "--initial-sparsity": _t("initial sparsity", "sparsity at the first pruning event", PRUNING),
    "--prune-start": _t("pruning start", "first pruning step, fraction of training", PRUNING),
    "--prune-end": _t("pruning end", "step the final sparsity is reached, fraction of training", PRUNING),
    "--pruning-events": _t("pruning events", "mask updates on the cubic schedule", PRUNING),
    "--scope": _t("ranking scope", "per-matrix | global ranking of the scores", PRUNING),
    "--pattern": _t("sparsity pattern", "shape of the zeros: unstructured | RxC | N:M", PRUNING),
    "--criterion": _t("pruning criterion", "magnitude | movement | taylor | obs", PRUNING),
    "--min-event-lr-ratio": _t("lr floor of pruning", "least lr fraction after a pruning event", PRUNING),
    "--taylor-beta1": _t("PLATON beta1", "PLATON sensitivity smoothing", PRUNING),
    "--taylor-beta2": _t("PLATON beta2", "PLATON uncertainty smoothing", PRUNING),
    "--obs-block-size": _t("oBERT block size", "oBERT Fisher block size", PRUNING),
    "--obs-num-grads": _t("oBERT gradients", "oBERT gradients per pruning event", PRUNING),
    "--obs-damp": _t("oBERT dampening", "oBERT Fisher dampening", PRUNING),
    # distillation
    "--temperature": _t("temperature", "softmax temperature of the logit term", DISTILLATION),
    "--hardness": _t("hardness", "gold-label share of the prediction term", DISTILLATION),
    "--attention-loss": _t("attention loss", "mse | kl", DISTILLATION),
    "--normalize-terms": _t("normalised terms", "divide each term by its running mean", DISTILLATION, flag=True),
    "--prediction-only-from": _t("prediction-only phase", "when only the prediction terms train", DISTILLATION),
    "--cache-teacher": _t("teacher logit cache", "teacher logits once per example", DISTILLATION, flag=True),
    "--attention-weight": _t("attention weight", "weight of the attention term", DISTILLATION),
    "--hidden-weight": _t("hidden weight", "weight of the hidden-state term", DISTILLATION),
    "--embedding-weight": _t("embedding weight", "upstream: weight of the sentence-embedding cosine term", DISTILLATION),
    "--prediction-weight": _t("prediction weight", "weight of the logit term", DISTILLATION),
    "--label-weight": _t("label weight", "weight of the hard-label loss", DISTILLATION),
    # optimisation
    "--epochs": _t("epochs", "training epochs", OPTIMISATION),
    "--learning-rate": _t("learning rate", "peak learning rate", OPTIMISATION),
    "--student-dropout": _t("student dropout", "upstream: dropout of the student while it trains", OPTIMISATION),
    "--lr-schedule": _t("lr schedule", "linear | constant | rewind", OPTIMISATION),
    "--batch-size": _t("batch size", "examples (texts, rows) per step or call", OPTIMISATION),
    "--max-steps": _t("steps", "optimizer steps (overrides --epochs)", OPTIMISATION),
    "--eval-every": _t("evaluation interval", "steps between evaluations", OPTIMISATION),
    "--group-by-length": _t("length grouping", "batch examples of similar length", OPTIMISATION, flag=True),
    "--seed": _t("seed", "random seed", OPTIMISATION),
    # compute
    "--threads": _t("threads", "torch intra-op threads", COMPUTE),
    "--bf16": _t("bf16", "bf16 autocast", COMPUTE, flag=True),
    "--workers": _t("parallel cells", "experiment cells run in parallel", COMPUTE),
    "--launcher": _t("launcher", "command that starts each experiment cell", COMPUTE),
    # augmentation (the augment command)
    "--copies": _t("augmented copies", "augmented copies per example", AUGMENTATION),
    "--p": _t("replacement probability", "replacement probability per word", AUGMENTATION),
    "--top-k": _t("candidates", "candidate words per word", AUGMENTATION),
    "--word-vectors": _t("word vectors", "GloVe text file for neighbour candidates", AUGMENTATION),
    "--max-word-vectors": _t("word vector count", "read only the first N word vectors", AUGMENTATION),
    "--mlm": _t("MLM candidates", "auto | on | off", AUGMENTATION),
    "--mlm-mask": _t("MLM masking", "each | all", AUGMENTATION),
    # benchmark
    "--path": _t("bench path", "an inference path to time (repeatable)", BENCHMARK),
    "--kernel": _t("kernel family", "a sparse kernel family to consider (repeatable)", BENCHMARK),
    "--remeasure-kernels": _t("kernel re-measurement", "time the kernel candidates again", BENCHMARK, flag=True),
    "--deepsparse-python": _t("DeepSparse python", "python of a DeepSparse venv", BENCHMARK),
    "--warmup": _t("warm-up calls", "untimed calls per path", BENCHMARK),
    "--min-iters": _t("least timed calls", "timed calls per path, at least", BENCHMARK),
    "--max-iters": _t("most timed calls", "timed calls per path, at most", BENCHMARK),
    "--budget": _t("time budget", "seconds per path", BENCHMARK),
    "--timing": _t("timing", "time the paths (--no-timing: only their dev metric)", BENCHMARK, flag=True),
    "--sizes": _t("sizes on disk", "also report bytes on disk", BENCHMARK, flag=True),
    "--bench": _t("experiment bench", "run the experiment's throughput bench", BENCHMARK, flag=True),
    # output
    "--out": _t("output directory", "the directory a command creates", OUTPUT, metavar="DIR"),
    "--json": _t("JSON output", "write the result as JSON to FILE (- : stdout)", OUTPUT, metavar="FILE"),
    "--overwrite": _t("overwrite", "replace an existing output", OUTPUT, flag=True),
    "--save-every": _t("training state interval", "steps between resumable training states", OUTPUT),
    "--resume": _t("resume", "require a partial run to continue", OUTPUT, flag=True),
    "--push-to-hub": _t("Hub upload", "upload the output to this Hub model repo", OUTPUT, metavar="REPO"),
    "--format": _t("export format", "sparse | onnx | compressed-tensors", OUTPUT),
    "--values": _t("value dtype", "dtype of the stored non-zeros", OUTPUT),
    "--layout": _t("matrix layout", "auto | csr | bitmask | int8-4x1", OUTPUT),
    "--embedding-dtype": _t("embedding storage", "fp16 | int8 | fp32 storage of the embedding tables", OUTPUT),
    "--per-matrix": _t("per-matrix table", "also the per-matrix table", OUTPUT, flag=True),
    "--embeddings": _t("embeddings", "sentence embeddings instead of labels", OUTPUT, flag=True),
    "--progress": _t("progress bars", "show progress bars", OUTPUT, flag=True),
    "--report-only": _t("report only", "report on the finished cells; run nothing", OUTPUT, flag=True),
}

#: positional arguments: name -> meaning
ARGUMENTS: dict[str, str] = {
    "model": "MODEL: the model a command reads (a run directory, a sparse checkpoint)",
    "spec": "SPEC: an experiment spec (YAML)",
}

#: command -> {old spelling: the name that replaced it}; hidden, kept for one release, with a notice
DEPRECATED: dict[str, dict[str, str]] = {
    "finetune": {"--lr": "--learning-rate"},
    "prune": {"--lr": "--learning-rate"},
    "bench": {"--seq": "--max-length", "--batch": "--batch-size", "--eval-examples": "--max-eval-examples",
              "--out": "--json"},
    "report": {"--seq-len": "--max-length", "--totals-only": "--no-per-matrix"},
    "predict": {"--out": "--json"},
}


def format_default(value: Any) -> str | None:
    """A default as ``--help`` shows it (floats in ``%g``; None and required: not shown)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def recipe_help(cls: type, field: str) -> str:
    """The ``--help`` text of the recipe option ``field`` of ``cls`` (a :class:`~sparsebert.recipe.TrainRecipe`):
    its ``Field(description=...)`` (the nearest base class's when ``cls`` redefines the field without one)
    and its default, ``[default: 0.0001]``; a required field says so. Square brackets are escaped for
    typer's rich markup (``\\[default: ...]`` prints as ``[default: ...]``).

    Raises:
        KeyError: ``field`` is not a field of ``cls``.
        ValueError: no class in ``cls``'s bases describes ``field`` (every recipe option must be described).
    """
    info = cls.model_fields[field]
    description = next((base.model_fields[field].description for base in cls.__mro__
                        if field in getattr(base, "model_fields", {}) and base.model_fields[field].description), None)
    if description is None:
        raise ValueError(f"{cls.__name__}.{field} has no description (Field(description=...))")
    description = description.replace("[", "\\[")
    if info.is_required():
        return f"{description} \\[required: here or in --recipe]"
    shown = format_default(info.get_default(call_default_factory=True))
    return description if shown is None else f"{description} \\[default: {shown}]"
