"""Sparsity report of a model or run directory: per matrix and total.

What ``sparsebert report RUN`` prints and what ``summary.json`` stores under ``sparsity``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sparsebert.flops import encoder_flops_per_token
from sparsebert.targets import prunable_linears

MB = 1e6


@torch.no_grad()
def block_sparsity(weight: torch.Tensor, rows: int = 1, cols: int = 4) -> float | None:
    """Fraction of the R x C blocks of ``weight`` ``[out, in]`` that are entirely zero (what a block-sparse
    kernel can skip; 1x4 = the VNNI int8 block); None when the block does not tile the shape."""
    out_f, in_f = weight.shape
    if out_f % rows or in_f % cols:
        return None
    nz = (weight != 0).reshape(out_f // rows, rows, in_f // cols, cols).any(dim=3).any(dim=1)
    return 1.0 - float(nz.sum()) / nz.numel()


def sparsity_report(model: nn.Module, seq_len: int = 128) -> dict:
    """Sparsity of every target matrix and of the whole model (the ``sparsity`` of every ``summary.json``;
    the target matrices: :func:`sparsebert.targets.prunable_linears`).

    Args:
        model: a supported transformers model.
        seq_len: sequence length for the FLOPs estimate.
    Returns:
        A JSON-able dict: ``matrices`` (one entry per target: name, shape, numel, nnz, sparsity, and
        ``block_sparsity_1x4``: the fraction of 1x4 blocks, 1 output row x 4 consecutive input features,
        that are all zero, i.e. that an int8 VNNI block-sparse kernel skips; None when in_features is not
        a multiple of 4), ``targets`` (totals over targets: numel, nnz, sparsity, compression = numel / nnz,
        ``block_sparsity_1x4`` over the matrices that have it, None if none does),
        ``model`` (all parameters: numel, nnz, dense fp32 MB, and MB of the non-zeros
        (values only, no index overhead), ``flops_per_token``.
    Raises:
        UnsupportedArchitectureError: a model family without known target matrices.
    """
    matrices = []
    for name, lin in prunable_linears(model).items():
        w = lin.weight
        nnz = int((w != 0).sum())
        matrices.append(
            {"name": name, "shape": list(w.shape), "numel": w.numel(), "nnz": nnz,
             "sparsity": 1.0 - nnz / w.numel(), "block_sparsity_1x4": block_sparsity(w, 1, 4)}
        )
    t_numel = sum(m["numel"] for m in matrices)
    t_nnz = sum(m["nnz"] for m in matrices)
    tiled = [m for m in matrices if m["block_sparsity_1x4"] is not None]  # blocks of 4 weights each
    blocks_1x4 = (sum(m["block_sparsity_1x4"] * m["numel"] for m in tiled) / sum(m["numel"] for m in tiled)
                  if tiled else None)
    params = list(model.parameters())
    all_numel = sum(p.numel() for p in params)
    all_nnz = sum(int((p != 0).sum()) for p in params)
    return {
        "matrices": matrices,
        "targets": {"numel": t_numel, "nnz": t_nnz, "sparsity": 1.0 - t_nnz / t_numel,
                    "compression": t_numel / max(t_nnz, 1), "block_sparsity_1x4": blocks_1x4},
        "model": {"numel": all_numel, "nnz": all_nnz, "sparsity": 1.0 - all_nnz / all_numel,
                  "dense_fp32_mb": all_numel * 4 / MB, "nonzero_fp32_mb": all_nnz * 4 / MB},
        "flops_per_token": encoder_flops_per_token(model, seq_len),
    }


@torch.no_grad()
def report_run(run_dir: str | Path, seq_len: int = 128) -> dict:
    """Load a saved model directory (any ``from_pretrained`` directory) and report its sparsity.

    What ``sparsebert report`` prints for a run directory (a sparse checkpoint goes through
    :func:`sparsebert.export.report.report_any`).

    Args:
        run_dir: a directory with ``config.json`` and the weights (a finetune / prune output).
        seq_len: the sequence length the FLOPs per token are counted at.
    Returns:
        :func:`sparsity_report` of the loaded model: ``matrices`` (per target matrix), ``targets``
        (totals) and ``model`` (all parameters, sizes, ``flops_per_token``).
    Raises:
        ModelNotFoundError: ``run_dir`` is not a model directory.
        CorruptCheckpointError, UnsafeCheckpointError: see :func:`sparsebert.models.check_local_model`.
    """
    from transformers import AutoModelForSequenceClassification

    from sparsebert.models import ModelNotFoundError, check_local_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ModelNotFoundError(f"{run_dir}: not a model directory (no config.json)")
    model = AutoModelForSequenceClassification.from_pretrained(run_dir, **check_local_model(run_dir))
    report = sparsity_report(model, seq_len)
    weights = run_dir / "model.safetensors"
    report["checkpoint_mb"] = weights.stat().st_size / MB if weights.is_file() else None
    return report
