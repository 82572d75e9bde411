"""Paired significance of accuracy differences between students on one dev set (exact McNemar test).

Two students evaluated on the same 872 SST-2 sentences are not independent samples: the standard error of
the *difference* of their accuracies is set by the sentences on which they disagree, not by two separate
binomial errors. McNemar's test (McNemar 1947; the exact form: a two-sided binomial test of the discordant
pairs, b = A right and B wrong, c = A wrong and B right, against p = 0.5 —
``scipy.stats.binomtest(b, b + c)``) is the standard paired test for two classifiers on one test set
(Dietterich 1998, "Approximate statistical tests for comparing supervised classification learning
algorithms", §3.1).

Every model is evaluated with :func:`sparsebert.stages.evaluate.eval_logits` at the given max length, in fp32 or,
with ``--bf16``, under bf16 autocast (what training's own evaluation uses on a CPU with AVX512-BF16); its
accuracy is checked against the run's own ``summary.json`` where it has one. Classification tasks only.

Usage: .venv/bin/python studies/sst2_knowledge/paired_test.py --task sst2 --out results/NAME [--overwrite] [--bf16]
       --max-length 64 LABEL=MODEL_DIR LABEL=MODEL_DIR [...]
Writes ``NAME.json`` (per model: accuracy, predictions' agreement with gold; per pair: b, c, p) and ``NAME.md``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "glue"


def correct_vector(model_dir: Path, task: str, max_length: int, bf16: bool) -> np.ndarray:
    """``[N]`` bool: whether the model's prediction of each example of the task's first dev split is its gold
    label (:func:`sparsebert.stages.evaluate.eval_logits`: the loading and batching of ``sparsebert evaluate``)."""
    from sparsebert.data.tasks import get_task
    from sparsebert.stages.evaluate import eval_logits
    from sparsebert.metrics import predictions

    spec = get_task(task)
    if spec.is_regression:
        raise SystemExit(f"{task}: regression task; McNemar needs right / wrong per example")
    split = spec.eval_splits[0]
    logits, labels = eval_logits(model_dir, task, DATA, [split], max_length, bf16=bf16)[split]
    return predictions(spec, logits) == labels


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict:
    """Exact McNemar test of two ``[N]`` right/wrong vectors: discordant counts and the two-sided p-value."""
    from scipy.stats import binomtest

    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_first_right": only_a, "only_second_right": only_b, "p_value": float(p),
            "difference_points": 100.0 * (only_a - only_b) / len(a)}


def main() -> int:
    from sparsebert.io import read_json, write_json_atomic, write_text_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out", required=True, help="output stem: writes OUT.json and OUT.md")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast, as training's evaluation on AVX512-BF16")
    ap.add_argument("models", nargs="+", help="LABEL=MODEL_DIR, at least two")
    args = ap.parse_args()
    pairs = [m.split("=", 1) for m in args.models]
    if len(pairs) < 2 or any(len(p) != 2 or not p[0] for p in pairs):
        ap.error("give at least two models as LABEL=MODEL_DIR")
    out = Path(args.out)
    if not args.overwrite and (out.with_suffix(".json").exists() or out.with_suffix(".md").exists()):
        ap.error(f"{out}.json / .md exist; pass --overwrite to replace them")
    t0 = time.time()
    right, models = {}, []
    for label, d in pairs:
        path = Path(d)
        if not (path / "config.json").is_file():
            sys.exit(f"{path}: not a model directory (no config.json)")
        right[label] = correct_vector(path, args.task, args.max_length, args.bf16)
        acc = 100.0 * float(right[label].mean())
        reported = None
        if (path / "summary.json").is_file():
            dev = read_json(path / "summary.json").get("metrics", {}).get("dev", {})
            reported = 100.0 * dev["accuracy"] if "accuracy" in dev else None
        if reported is not None and abs(reported - acc) > 0.2:
            sys.exit(f"{path}: accuracy here {acc:.2f} differs from its summary.json's {reported:.2f} (evaluated "
                     f"{'with' if args.bf16 else 'without'} --bf16 at max length {args.max_length}: as the run?)")
        models.append({"label": label, "dir": d, "accuracy": acc, "summary_accuracy": reported})
    tests = [{"first": a, "second": b, **mcnemar(right[a], right[b])} for a, b in itertools.combinations(right, 2)]
    n = len(next(iter(right.values())))
    cmd = "`.venv/bin/python studies/sst2_knowledge/paired_test.py " + " ".join(sys.argv[1:]) + "`"
    mode = "bf16 autocast" if args.bf16 else "fp32"
    md = [f"# Paired test on {args.task} dev ({n} examples): exact McNemar", "", f"Command: {cmd} "
          f"({time.time() - t0:.0f} s).", "", f"| model | dev accuracy ({mode}, max length "
          f"{args.max_length}) |", "|---|---:|"]
    md += [f"| {m['label']} | {m['accuracy']:.2f} |" for m in models]
    md += ["", "| first | second | difference (points) | only first right | only second right | p (two-sided) |",
           "|---|---|---:|---:|---:|---:|"]
    md += [f"| {t['first']} | {t['second']} | {t['difference_points']:+.2f} | {t['only_first_right']} | "
           f"{t['only_second_right']} | {t['p_value']:.3g} |" for t in tests]
    write_json_atomic(out.with_suffix(".json"), {"task": args.task, "examples": n, "max_length": args.max_length,
                                                 "bf16": args.bf16,
                                                 "command": cmd, "models": models, "tests": tests})
    write_text_atomic(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
