"""The repository layout: results/ holds data only, every study is one folder under studies/, and the study and
benchmark scripts at least parse (they need runs/ to do anything, so they are not run here)."""

from __future__ import annotations

import py_compile
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_SUFFIXES = {".json", ".md", ".png", ".yaml"}


def _tracked(*paths: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.splitlines() if (ROOT / p).exists()]


def test_results_holds_data_only():
    code = [p.relative_to(ROOT) for p in _tracked("results") if p.suffix not in DATA_SUFFIXES]
    assert not code, f"scripts belong in studies/<study>/ or benchmarks/, not results/: {code}"


def test_every_study_folder_holds_its_scripts():
    folders = {p.relative_to(ROOT / "studies").parts[0] for p in _tracked("studies") if p.parent != ROOT / "studies"}
    for name in sorted(folders):
        scripts = [p for p in (ROOT / "studies" / name).iterdir() if p.suffix in {".sh", ".py"}]
        assert scripts, f"studies/{name}/ has no run script or collector"


@pytest.mark.parametrize("script", [p for p in _tracked("studies", "benchmarks") if p.suffix == ".py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_scripts_compile(script, tmp_path):
    py_compile.compile(str(script), cfile=str(tmp_path / "x.pyc"), doraise=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("script", [p for p in _tracked("studies", "benchmarks") if p.suffix == ".sh"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_scripts_parse_and_cd_to_the_root(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text(encoding="utf-8")
    depth = len(script.relative_to(ROOT).parts) - 1
    if 'cd "$(dirname "$0")' in text:
        assert f'cd "$(dirname "$0")/{"/".join([".."] * depth)}"' in text, "the script must cd to the repository root"
