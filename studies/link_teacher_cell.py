"""Hard-link an already fine-tuned teacher into an experiment grid as its ``dense-teacher`` cell.

The grid would otherwise fine-tune the teacher again (34 min for SST-2). The teacher's recipe must be
the grid's ``dense-teacher`` recipe (differences allowed: ``out``, ``threads``; ``data_dir`` spelled
differently but the same directory; ``pooling`` absent = ``cls``, the only pooling when the older
teachers were trained). The cell's ``recipe.yaml`` and its ``MANIFEST.json`` entry are replaced by the
grid's recipe (new files: the source folder is not touched).

Usage: .venv/bin/python studies/link_teacher_cell.py TEACHER_DIR GRID_OUT SPEC TASK
Exits non-zero, naming the differing settings, when the recipes differ; does nothing when the
cell already has a summary.json, or when TEACHER_DIR holds no finished run (no summary.json: runs/ is
not kept across machines), and then the grid fine-tunes its own teacher with the same recipe.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from sparsebert.experiment.grid import teacher_cell
from sparsebert.experiment.spec import load_spec
from sparsebert.integrity import sha256_file
from sparsebert.io import write_json_atomic


def main(src: Path, out: Path, spec: Path, task: str) -> int:
    cell_id = teacher_cell(load_spec(spec), task).id  # e.g. sst2/dense-teacher-seed42: the grid's own naming
    cell = out / "cells" / cell_id
    if (cell / "summary.json").is_file():
        return 0
    if not (src / "summary.json").is_file():
        print(f"no finished teacher in {src}: the grid fine-tunes its own ({cell_id})")
        return 0
    subprocess.run([sys.executable, "-m", "sparsebert", "experiment", str(spec), "--out", str(out), "--dry-run"],
                   check=True, stdout=subprocess.DEVNULL)
    want_path = out / "recipes" / f"{cell_id}.yaml"
    have, want = (yaml.safe_load(p.read_text()) for p in (src / "recipe.yaml", want_path))
    diff = {k for k in set(have) | set(want) if have.get(k) != want.get(k)} - {"out", "threads"}
    ok = (diff <= {"data_dir", "pooling"} and Path(have["data_dir"]).resolve() == Path(want["data_dir"]).resolve()
          and have.get("pooling", "cls") == want["pooling"])
    if not ok:
        sys.exit(f"{src} was trained with other settings than the grid's teacher ({want_path}): "
                 + ", ".join(f"{k}: {have.get(k)!r} vs {want.get(k)!r}" for k in sorted(diff)))
    if cell.exists():
        shutil.rmtree(cell)
    cell.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, cell, copy_function=os.link)
    (cell / "recipe.yaml").unlink()
    shutil.copyfile(want_path, cell / "recipe.yaml")
    manifest = json.loads((src / "MANIFEST.json").read_text())  # the same manifest, with the new recipe's hash
    manifest["files"]["recipe.yaml"] = {"sha256": sha256_file(cell / "recipe.yaml"),
                                        "bytes": (cell / "recipe.yaml").stat().st_size}
    (cell / "MANIFEST.json").unlink()
    write_json_atomic(cell / "MANIFEST.json", manifest)
    print(f"hard-linked {src} as the grid's teacher cell {cell}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]))
