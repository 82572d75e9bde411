"""README's generated tables (demo, accuracy, speed) are what docs/gen/tables.py makes of the committed
results/*.json (no hand-typed numbers), and the check notices a stale block."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "docs" / "gen" / "tables.py"


def test_readme_tables_are_generated_from_results():
    r = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("edit", [("| engine ms |", "| engine ms (edited) |"),
                                  ("| dense teacher |", "| dense teacher (edited) |"),
                                  ("| majority class |", "| majority class (edited) |")])
def test_the_check_fails_on_a_stale_block(tmp_path, edit):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert edit[0] in text
    stale = tmp_path / "README.md"
    stale.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    r = subprocess.run([sys.executable, str(GEN), "--check", "--readme", str(stale), "--results", str(ROOT / "results")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "stale" in r.stderr


def test_a_readme_without_the_markers_is_an_error(tmp_path):
    bare = tmp_path / "README.md"
    bare.write_text("# x\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(GEN), "--check", "--readme", str(bare)], capture_output=True, text=True)
    assert r.returncode == 2 and "markers" in r.stderr


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
