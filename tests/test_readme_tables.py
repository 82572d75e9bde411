"""README's generated tables are what their generators make of the committed results (no hand-typed numbers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_table_is_generated_from_results():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engine_table.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_engine_table_check_fails_on_a_stale_block(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = tmp_path / "README.md"
    stale.write_text(text.replace("| engine ms |", "| engine ms (edited) |"), encoding="utf-8")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "engine_table.py"), "--check", "--readme", str(stale),
                        "--results", str(ROOT / "results")], capture_output=True, text=True)
    assert r.returncode == 1 and "stale" in r.stderr
