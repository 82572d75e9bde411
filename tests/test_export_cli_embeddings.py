"""`sparsebert export --embedding-dtype / --layout int8-4x1` (the compact checkpoint's size options:
tests/test_export_compact.py)."""

from __future__ import annotations

import json

from test_export_compact import _model


def test_cli_export_embeddings_option(tmp_path):
    from typer.testing import CliRunner

    from sparsebert.cli import app

    model = _model()
    model.save_pretrained(tmp_path / "run")
    r = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "e"), "--embedding-dtype", "int8",
                                 "--layout", "int8-4x1"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "embedding tables (int8)" in r.output and "whole model vs dense fp32" in r.output
    s = json.loads((tmp_path / "e" / "sparse_export.json").read_text())
    assert s["embeddings"] == "int8" and s["targets"]["layouts"]["int8-4x1"] == 12
