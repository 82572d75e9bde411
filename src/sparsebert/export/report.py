"""Storage side of ``sparsebert report``: dense vs compressed bytes, target matrices and checkpoint.

Works on a sparse checkpoint (what was written) and on an ordinary model directory (what
``sparsebert export`` would write, computed without writing: same layouts, same byte counts).
:func:`report_tables` and :func:`export_table` render what ``sparsebert report`` and
``sparsebert export`` print.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sparsebert.export.format import INT8_4X1, choose_layout, int8_4x1_bytes, layout_bytes, value_dtype
from sparsebert.targets import qualified_names

MB = 1e6


def is_sparse_checkpoint(path: str | Path) -> bool:
    from sparsebert.export.checkpoint import WEIGHTS

    return (Path(path) / WEIGHTS).is_file()


def storage_estimate(model: nn.Module, values: str = "fp32", layout: str = "auto", embeddings: str = "fp16") -> dict:
    """Bytes of the target matrices and of the whole state dict, dense vs exported (``embeddings``: how the
    embedding tables are stored, as :func:`sparsebert.export.checkpoint.export_model` takes it)."""
    from sparsebert.export.checkpoint import embedding_tables

    vbytes = torch.tensor([], dtype=value_dtype(values)).element_size()
    targets = set(qualified_names(model).values())
    tables = set(embedding_tables(model)) if embeddings != "fp32" else set()
    t_dense = t_fp32 = t_comp = other = other_dense = 0
    layouts = {"csr": 0, "bitmask": 0, INT8_4X1: 0}
    for name, t in model.state_dict().items():
        if name in targets:
            rows, cols = t.shape
            nnz = int((t != 0).sum())
            lay = choose_layout(layout, rows, cols, nnz, vbytes)
            layouts[lay] += 1
            t_dense += t.numel() * t.element_size()
            t_fp32 += t.numel() * 4
            t_comp += int8_4x1_bytes(t) if lay == INT8_4X1 else layout_bytes(lay, rows, cols, nnz, vbytes)
        else:
            other_dense += t.numel() * t.element_size()
            if name in tables and t.is_floating_point() and t.dim() == 2:
                other += t.numel() * 2 if embeddings == "fp16" else t.numel() + 4 * t.shape[0]
            else:
                other += t.numel() * t.element_size()
    return {"values": values, "embeddings": embeddings, "layouts": layouts, "targets_dense_bytes": t_dense,
            "targets_dense_fp32_bytes": t_fp32, "targets_compressed_bytes": t_comp,
            "targets_ratio": t_fp32 / max(t_comp, 1), "other_bytes": other, "checkpoint_dense_bytes": t_dense + other_dense,
            "checkpoint_sparse_bytes": t_comp + other,
            "checkpoint_ratio": (t_dense + other_dense) / max(t_comp + other, 1)}


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


# --- what `sparsebert report` and `sparsebert export` print --------------------------------------

def _mb(b: float | None) -> str:
    return "—" if b is None else f"{b / 1e6:.2f} MB"


def _storage_rows(st: dict | None) -> list[tuple[str, str]]:
    """Dense vs compressed bytes of the target matrices and of the checkpoint (:func:`storage_report`)."""
    if not st:
        return []
    rows = [("target matrices: dense fp32 -> compressed",
             f"{_mb(st.get('targets_dense_fp32_bytes'))} -> {_mb(st.get('targets_compressed_bytes'))} "
             f"({st.get('targets_ratio') or 0:.1f}x, {st.get('values') or 'fp32'} values)")]
    if st.get("fp16_values"):
        f16 = st["fp16_values"]
        rows.append(("target matrices: with fp16 values",
                     f"{_mb(f16['targets_compressed_bytes'])} ({f16['targets_ratio']:.1f}x)"))
    rows.append(("checkpoint: dense -> sparse",
                 f"{_mb(st.get('checkpoint_dense_bytes'))} -> {_mb(st.get('checkpoint_sparse_bytes'))} "
                 f"({st.get('checkpoint_ratio') or 0:.2f}x)"))
    return rows


def report_tables(rep: dict, model_dir: str | Path, seq_len: int, per_matrix: bool = True) -> list:
    """The tables ``sparsebert report`` prints for ``rep`` (:func:`report_any` of ``model_dir``).

    Args:
        seq_len: the sequence length the FLOPs of ``rep`` were counted for (tokens).
        per_matrix: also a table with shape, non-zeros and sparsity of every target matrix.
    Returns:
        ``rich.table.Table`` objects: the per-matrix table (with ``per_matrix``), then the totals
        (sparsity, non-zeros, sizes in MB, GFLOPs per token, storage).
    """
    from rich.table import Table

    from sparsebert.tables import kv_table

    tables = []
    if per_matrix:
        table = Table(title=f"{model_dir}: target matrices")
        for col in ("matrix", "shape", "nnz", "sparsity"):
            table.add_column(col, justify="left" if col == "matrix" else "right")
        for m in rep["matrices"]:
            table.add_row(m["name"], "x".join(map(str, m["shape"])), f"{m['nnz']:,}", f"{m['sparsity']:.2%}")
        tables.append(table)
    t, md, f = rep["targets"], rep["model"], rep["flops_per_token"]
    totals = kv_table("totals", [
        ("target matrices: sparsity", f"{t['sparsity']:.2%}"),
        ("target matrices: non-zeros / weights", f"{t['nnz']:,} / {t['numel']:,}"),
        ("target matrices: compression", f"{t['compression']:.1f}x"),
        ("target matrices: all-zero 1x4 blocks (int8 VNNI)",
         "—" if t.get("block_sparsity_1x4") is None else f"{t['block_sparsity_1x4']:.2%}"),
        ("all parameters: non-zeros / total", f"{md['nnz']:,} / {md['numel']:,}"),
        ("dense fp32 size (MB)", f"{md['dense_fp32_mb']:.1f}"),
        ("non-zero values fp32 (MB)", f"{md['nonzero_fp32_mb']:.1f}"),
    ])
    if rep.get("checkpoint_mb") is not None:
        totals.add_row("checkpoint file (MB)", f"{rep['checkpoint_mb']:.1f}")
    totals.add_row("linear GFLOPs/token dense -> sparse",
                   f"{f['linear_dense']/1e9:.4f} -> {f['linear_sparse']/1e9:.4f} ({f['linear_reduction']:.1f}x)")
    totals.add_row(f"encoder GFLOPs/token @ {seq_len} dense -> sparse",
                   f"{f['total_dense']/1e9:.4f} -> {f['total_sparse']/1e9:.4f} ({f['total_reduction']:.1f}x)")
    for row in _storage_rows(rep.get("storage")):
        totals.add_row(*row)
    tables.append(totals)
    return tables


def export_table(summary: dict, title: str):
    """The table ``sparsebert export`` prints for the summary of
    :func:`sparsebert.export.checkpoint.export_model` (sizes in MB, ratios, layouts, content hash)."""
    from sparsebert.tables import kv_table

    t, ck = summary["targets"], summary["checkpoint"]
    rows = [
        ("target matrices", f"{t['count']} ({', '.join(f'{k} {v}' for k, v in t['layouts'].items() if v)})"),
        ("target matrices: dense fp32 -> compressed",
         f"{_mb(t['dense_fp32_bytes'])} -> {_mb(t['compressed_bytes'])} ({t['ratio_vs_dense_fp32']:.1f}x)"),
    ]
    emb = summary.get("embedding_tables")
    if emb and emb.get("tables"):
        rows.append((f"embedding tables ({emb['encoding']})", f"{_mb(emb['dense_bytes'])} -> {_mb(emb['stored_bytes'])}"))
    rows.append(("checkpoint: dense -> sparse",
                 f"{_mb(ck['dense_file_bytes'] or ck['dense_estimate_bytes'])} -> {_mb(ck['sparse_file_bytes'])} "
                 f"({ck['ratio']:.2f}x)"))
    if ck.get("ratio_vs_dense_fp32"):
        rows.append(("whole model vs dense fp32", f"{_mb(ck['dense_fp32_bytes'])} -> {_mb(ck['sparse_file_bytes'])} "
                                                  f"({ck['ratio_vs_dense_fp32']:.2f}x)"))
    rows.append(("content sha256", summary["content_sha256"][:16] + "…"))
    return kv_table(title, rows)
