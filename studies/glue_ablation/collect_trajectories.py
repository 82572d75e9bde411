"""Dev metric against target sparsity over each 95 % prune run on MRPC, STS-B and CoLA, finished or stopped.

Reads ``log.jsonl`` of every run under ``runs/glue-ablation/seed<N>/`` — the finished cells
(``<task>-<variant>/``) and the stopped ones (``.<task>-<variant>.partial/``, whose evaluations are
kept in the training state) — and writes ``results/glue_trajectories.{json,md}``: one row per
evaluation (step, target sparsity s_t, the task's main dev metric, the mean training loss of the
evaluation interval). A stopped run is marked ``stopped at step k of n``; its last evaluation is not
a final result. Commands of the runs: ``studies/glue_ablation/run.sh`` (see each cell's flags in
results/glue_ablation.md).

Runs are outside git: the committed entries of ``results/glue_trajectories.json`` whose (seed, cell) has no
log on this machine are kept as they are (``"archived": true``).

Usage: .venv/bin/python studies/glue_ablation/collect_trajectories.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from sparsebert.data.tasks import get_task
from sparsebert.experiment.collect import archived_rows, write_outputs

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "glue-ablation"


def runs() -> list[tuple[str, str, Path, bool]]:
    """(seed, cell, log.jsonl, finished) of every run with a log, finished ones first."""
    out = []
    for log in sorted(RUNS.glob("seed*/*/log.jsonl")):
        if log.parent.name.startswith("."):
            continue
        out.append((log.parent.parent.name, log.parent.name, log, True))
    for log in sorted(RUNS.glob("seed*/.*.partial/log.jsonl")):
        cell = log.parent.name.removeprefix(".").removesuffix(".partial")
        if not (log.parent.parent / cell / "summary.json").exists():
            out.append((log.parent.parent.name, cell, log, False))
    return out


def trajectory(log: Path, metric: str) -> dict:
    """Evaluations of one run: step, s_t, dev metric (x100) and the mean training loss since the last one."""
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    end = next((e.get("end_step") for e in events if e.get("event") == "schedule"), None)
    rows, losses, last_step = [], [], 0
    for e in events:
        if e.get("event") == "train":
            losses.append(e["loss"])
            last_step = e["step"]
        elif e.get("event") == "eval" and f"dev/{metric}" in e:
            rows.append({"step": e["step"], "target_sparsity": round(e["target_sparsity"], 3),
                         "metric": round(100 * e[f"dev/{metric}"], 1),
                         "all": {k[4:]: round(100 * v, 1) for k, v in e.items() if k.startswith("dev/")},
                         "train_loss": round(statistics.mean(losses), 3) if losses else None})
            losses = []
    return {"rows": rows, "last_step": last_step, "pruning_end_step": end}


def section(r: dict) -> list[str]:
    """Markdown of one run's evaluations."""
    names = list(r["rows"][0]["all"]) if r["rows"] else [r["metric"]]
    note = "; from the committed JSON, its run is not on this machine" if r.get("archived") else ""
    md = [f"## {r['cell']} ({r['seed']}, {r['status']}{note})", "",
          "| step | s_t | " + " | ".join(names) + " | loss |", "|---:|---:|" + "---:|" * len(names) + "---:|"]
    md += [f"| {x['step']} | {x['target_sparsity']:.3f} | " + " | ".join(f"{x['all'][n]:.1f}" for n in names)
           + f" | {x['train_loss']} |" for x in r["rows"]]
    return md + [""]


def main() -> int:
    out, md = [], ["# 95 % prune runs on MRPC, STS-B and CoLA: dev metric against sparsity", "",
                   "Every evaluation of every run under `runs/glue-ablation/` (finished or stopped), "
                   "MiniLM-L6, batch 32, one thread per run. Dev metrics x100 (floors: MRPC F1 81.2 / accuracy 68.4, "
                   "STS-B 0, CoLA MCC 0); "
                   "`loss` is the mean training loss since the previous evaluation.", "",
                   "Command: `.venv/bin/python studies/glue_ablation/collect_trajectories.py`; runs from "
                   "`studies/glue_ablation/run.sh` (cell flags in results/glue_ablation.md).", ""]
    for seed, cell, log, finished in runs():
        task = cell.split("-", 1)[0]
        metric = get_task(task).main_metric
        t = trajectory(log, metric)
        status = (("finished" if finished else f"stopped at step {t['last_step']}")
                  + f"; s_f reached at step {t['pruning_end_step']}")
        out.append({"seed": seed, "cell": cell, "metric": metric, "status": status, **t})
    out += archived_rows(ROOT / "results" / "glue_trajectories.json", "studies/glue_ablation/collect_trajectories.py",
                         {(r["seed"], r["cell"]) for r in out}, lambda r: (r["seed"], r["cell"]), rows=lambda d: d)
    out.sort(key=lambda r: (r["seed"], r["cell"]))
    for r in out:
        md += section(r)
    write_outputs(ROOT / "results" / "glue_trajectories", out, "\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
