"""Size on disk for ``sparsebert bench``: the model exported as a sparse checkpoint, dense vs compressed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn


def export_sizes(model: nn.Module, source: str | Path | None = None,
                 values: tuple[str, ...] = ("fp32", "fp16")) -> list[dict]:
    """Export ``model`` to a temporary directory once per value dtype and measure the bytes.

    Args:
        model: a pruned model (exact zeros in its target matrices).
        source: the directory it was loaded from; its dense weight file, when present, is the
            dense size of the whole checkpoint (else the fp32 state dict's size).
        values: value dtypes of the compressed matrices to try.
    Returns:
        Two rows per value dtype, ``{"what", "dense_mb", "compressed_mb", "ratio"}`` (MB = 10^6 bytes):
        the target matrices (dense fp32 vs compressed) and the whole checkpoint (dense file vs
        ``model.sparse.safetensors``, with the export's default fp16 embedding tables). ``ratio`` is dense / compressed.
    Raises:
        InputError: an unknown value dtype, or a model without target matrices.
        UnsupportedArchitectureError: not a supported model.
    """
    from sparsebert.export.checkpoint import export_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="sparsebert-bench-export-") as tmp:
        for v in values:
            s = export_model(model, Path(tmp) / v, values=v, source=source)
            t, ck = s["targets"], s["checkpoint"]
            rows.append({"what": f"target matrices ({v} values)", "dense_mb": t["dense_fp32_bytes"] / 1e6,
                         "compressed_mb": t["compressed_bytes"] / 1e6, "ratio": t["ratio_vs_dense_fp32"]})
            dense_b = ck["dense_file_bytes"] or ck["dense_estimate_bytes"]
            dense_what = "model.safetensors" if ck["dense_file_bytes"] else "fp32 state dict"
            rows.append({"what": f"whole checkpoint ({v} values, {s['embeddings']} embedding tables; dense = {dense_what})",
                         "dense_mb": dense_b / 1e6, "compressed_mb": ck["sparse_file_bytes"] / 1e6,
                         "ratio": dense_b / ck["sparse_file_bytes"]})
    return rows
