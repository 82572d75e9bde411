"""Expand a spec into cells and turn each cell into a stage recipe.

The six variants (all with the spec's ``train`` settings, i.e. the same step budget and data):

=============================  ===============  =====================  =========================
variant                        student starts   teacher / loss         pruning
=============================  ===============  =====================  =========================
dense-teacher                  pre-trained      labels (fine-tuning)   none
sparsebert                     pre-trained      fine-tuned; att+hid+   GMP to s (Xu et al. 2021)
                                                logits
finetune-then-prune            fine-tuned       labels only            GMP to s
prune-from-pretrained-no-kd    pre-trained      labels only            GMP to s
finetuned-student-kd           fine-tuned       fine-tuned; att+hid+   GMP to s
                                                logits
small-dense                    pre-trained,     fine-tuned; att+hid+   none (same non-zeros as s,
                               fewer layers /   logits (TinyBERT)      :func:`dense_size_for`)
                               narrower FFN
=============================  ===============  =====================  =========================

The teacher of every cell is the ``dense-teacher`` cell of the same task with ``seeds[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsebert.distill.small_dense import dense_size_for, encoder_weights
from sparsebert.experiment.spec import ExperimentSpec
from sparsebert.recipe import FinetuneRecipe, PruneRecipe, TrainRecipe


@dataclass(frozen=True, order=True)
class Cell:
    """One training run of the grid."""

    task: str
    variant: str
    sparsity: float
    seed: int

    @property
    def id(self) -> str:
        """Path-safe identifier, e.g. ``mrpc/sparsebert-s0.95-seed1``."""
        if self.variant == "dense-teacher":
            return f"{self.task}/dense-teacher-seed{self.seed}"
        return f"{self.task}/{self.variant}-s{self.sparsity:g}-seed{self.seed}"

    @property
    def is_teacher(self) -> bool:
        """True for fine-tuning cells (they run first: the others depend on them)."""
        return self.variant == "dense-teacher"


def expand_grid(spec: ExperimentSpec) -> list[Cell]:
    """All cells of ``spec``, in run order.

    Sweep variants run at every ``spec.sparsities``; the others at ``spec.sparsity``. Cells at a
    sparsity in ``spec.seed_sparsities`` run with every seed, the rest with ``seeds[0]``
    (``dense-teacher`` counts as sparsity 0).
    """
    def seeds_at(s: float) -> list[int]:
        return spec.seeds if any(abs(s - x) < 1e-9 for x in spec.seed_sparsities) else spec.seeds[:1]

    cells: list[Cell] = []
    for task in spec.tasks:
        for variant in spec.variants:
            if variant == "dense-teacher":
                cells += [Cell(task, variant, 0.0, seed) for seed in seeds_at(0.0)]
                continue
            levels = spec.sparsities if variant in spec.sweep_variants else [spec.sparsity]
            cells += [Cell(task, variant, s, seed) for s in levels for seed in seeds_at(s)]
    # Teachers first (the others need them); then the cells at `spec.sparsity` with seeds[0] for every
    # task, then the other seeds, then the rest of the sweep: an interrupted grid has the main table first.
    tasks = list(spec.tasks)
    return sorted(cells, key=lambda c: (not c.is_teacher, abs(c.sparsity - spec.sparsity) > 1e-9, c.seed != spec.seeds[0],
                                        tasks.index(c.task), spec.variants.index(c.variant), c.sparsity, c.seed))


def teacher_cell(spec: ExperimentSpec, task: str) -> Cell:
    """The fine-tuned model the other cells of ``task`` distil from or start from."""
    return Cell(task, "dense-teacher", 0.0, spec.seeds[0])


def small_dense_size(model_config, sparsity: float, min_ffn: int) -> tuple[int, int]:
    """(layers, FFN width) of the dense student with ~ (1 − s) of the model's encoder weights."""
    h, layers, ffn = model_config.hidden_size, model_config.num_hidden_layers, model_config.intermediate_size
    target = round((1 - sparsity) * encoder_weights(layers, h, ffn))
    return dense_size_for(target, h, layers, ffn, min_ffn)


#: Loss weights set per variant (distillation vs label-only).
KD_WEIGHTS = ("attention_weight", "hidden_weight", "prediction_weight", "label_weight")
#: Loss settings that also apply to the small dense student (distilled, not pruned).
LOSS_KEYS = ("temperature", "hardness", "attention_loss", "normalize_terms", "prediction_only_from", "cache_teacher")


def cell_recipe(spec: ExperimentSpec, cell: Cell, cells_dir: Path, model_config=None) -> TrainRecipe:
    """The stage recipe of ``cell`` (output ``cells_dir/<cell.id>``).

    Settings, later ones winning: ``spec.train``, ``spec.tasks[task]``; for dense-teacher cells
    then ``spec.teacher`` and ``spec.tasks[task].teacher``; for pruning cells ``spec.prune``.

    Args:
        model_config: the pre-trained model's config (needed for ``small-dense`` only).
    Raises:
        ValueError: ``small-dense`` without ``model_config``; RecipeError-like pydantic errors.
    """
    task_overrides = {k: v for k, v in spec.tasks[cell.task].items() if k != "teacher"}
    common = {**spec.train, **task_overrides, "task": cell.task, "data_dir": spec.data_dir,
              "seed": cell.seed, "out": str(cells_dir / cell.id), "threads": spec.threads}
    if cell.is_teacher:
        return FinetuneRecipe(model=spec.model, **{**common, **spec.teacher, **spec.tasks[cell.task].get("teacher", {})})
    teacher = str(cells_dir / teacher_cell(spec, cell.task).id)
    # the distillation variants use prune's default loss (the measured recipe) unless the spec's
    # `prune` settings change its weights; the label-only variants switch distillation off
    prune_settings = {k: v for k, v in spec.prune.items() if k not in KD_WEIGHTS}
    kd = {k: spec.prune.get(k, PruneRecipe.model_fields[k].default) for k in KD_WEIGHTS}
    labels_only = {"attention_weight": 0.0, "hidden_weight": 0.0, "prediction_weight": 0.0, "label_weight": 1.0}
    extra: dict = {}
    if cell.variant == "sparsebert":
        extra = {"teacher": teacher, "student": spec.model, **kd}
    elif cell.variant == "finetuned-student-kd":
        extra = {"teacher": teacher, "student": teacher, **kd}
    elif cell.variant == "finetune-then-prune":
        extra = {"student": teacher, **labels_only}
    elif cell.variant == "prune-from-pretrained-no-kd":
        extra = {"student": spec.model, **labels_only}
    elif cell.variant == "small-dense":
        if model_config is None:
            raise ValueError("small-dense cells need the pre-trained model's config")
        layers, ffn = small_dense_size(model_config, cell.sparsity, spec.small_dense_min_ffn)
        loss = {k: v for k, v in prune_settings.items() if k in LOSS_KEYS}
        return PruneRecipe(**common, **loss, teacher=teacher, student=spec.model, sparsity=0.0,
                           student_layers=layers, student_ffn=ffn, **kd)
    else:  # pragma: no cover - the spec's Literal type rules this out
        raise ValueError(f"unknown variant {cell.variant!r}")
    return PruneRecipe(**common, **prune_settings, sparsity=cell.sparsity, **extra)
