"""Storage side of ``sparsebert report``: dense vs compressed bytes, target matrices and checkpoint.

Works on a sparse checkpoint (what was written) and on an ordinary model directory (what
``sparsebert export`` would write, computed without writing: same layouts, same byte counts).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sparsebert.export.format import choose_layout, layout_bytes, value_dtype
from sparsebert.targets import qualified_names

MB = 1e6


def is_sparse_checkpoint(path: str | Path) -> bool:
    from sparsebert.export.checkpoint import WEIGHTS

    return (Path(path) / WEIGHTS).is_file()


def storage_estimate(model: nn.Module, values: str = "fp32", layout: str = "auto") -> dict:
    """Bytes of the target matrices and of the whole state dict, dense vs exported."""
    vbytes = torch.tensor([], dtype=value_dtype(values)).element_size()
    targets = set(qualified_names(model).values())
    t_dense = t_fp32 = t_comp = other = 0
    layouts = {"csr": 0, "bitmask": 0}
    for name, t in model.state_dict().items():
        if name in targets:
            rows, cols = t.shape
            nnz = int((t != 0).sum())
            lay = choose_layout(layout, rows, cols, nnz, vbytes)
            layouts[lay] += 1
            t_dense += t.numel() * t.element_size()
            t_fp32 += t.numel() * 4
            t_comp += layout_bytes(lay, rows, cols, nnz, vbytes)
        else:
            other += t.numel() * t.element_size()
    return {"values": values, "layouts": layouts, "targets_dense_bytes": t_dense, "targets_dense_fp32_bytes": t_fp32,
            "targets_compressed_bytes": t_comp, "targets_ratio": t_fp32 / max(t_comp, 1),
            "other_bytes": other, "checkpoint_dense_bytes": t_dense + other,
            "checkpoint_sparse_bytes": t_comp + other, "checkpoint_ratio": (t_dense + other) / max(t_comp + other, 1)}


def storage_report(model_dir: str | Path, model: nn.Module | None = None) -> dict:
    """Storage numbers for ``report``: from ``sparse_export.json`` for a sparse checkpoint, else
    estimated from the model (fp32 and fp16 values), with the real dense file size."""
    from sparsebert.export.checkpoint import SUMMARY, WEIGHTS
    from sparsebert.io import read_json

    model_dir = Path(model_dir)
    if is_sparse_checkpoint(model_dir):
        s = read_json(model_dir / SUMMARY) if (model_dir / SUMMARY).is_file() else {}
        t = s.get("targets", {})
        ck = s.get("checkpoint", {})
        return {"kind": "sparse checkpoint", "values": s.get("values"),
                "targets_dense_fp32_bytes": t.get("dense_fp32_bytes"), "targets_compressed_bytes": t.get("compressed_bytes"),
                "targets_ratio": t.get("ratio_vs_dense_fp32"), "layouts": t.get("layouts"),
                "checkpoint_dense_bytes": ck.get("dense_file_bytes") or ck.get("dense_estimate_bytes"),
                "checkpoint_sparse_bytes": (model_dir / WEIGHTS).stat().st_size,
                "checkpoint_ratio": ck.get("ratio")}
    if model is None:
        raise ValueError("storage_report needs the model for a dense directory")
    est = {v: storage_estimate(model, v) for v in ("fp32", "fp16")}
    dense_file = model_dir / "model.safetensors"
    out = {"kind": "dense checkpoint (compressed sizes are what `sparsebert export` writes)", **est["fp32"],
           "fp16_values": {k: est["fp16"][k] for k in ("targets_compressed_bytes", "targets_ratio",
                                                        "checkpoint_sparse_bytes", "checkpoint_ratio")}}
    if dense_file.is_file():
        out["checkpoint_dense_bytes"] = dense_file.stat().st_size
        out["checkpoint_ratio"] = out["checkpoint_dense_bytes"] / out["checkpoint_sparse_bytes"]
    return out


def report_any(model_dir: str | Path, seq_len: int = 128) -> dict:
    """:func:`sparsebert.report.report_run` for a model directory *or* a sparse checkpoint, plus
    ``storage`` (:func:`storage_report`)."""
    from sparsebert.export.checkpoint import WEIGHTS, load_any
    from sparsebert.report import sparsity_report

    model_dir = Path(model_dir)
    model = load_any(model_dir)  # loaded once, for both reports
    sparse = is_sparse_checkpoint(model_dir)
    rep = sparsity_report(model, seq_len)
    weights = model_dir / (WEIGHTS if sparse else "model.safetensors")
    rep["checkpoint_mb"] = weights.stat().st_size / MB if weights.is_file() else None
    rep["storage"] = storage_report(model_dir) if sparse else storage_report(model_dir, model)
    return rep
