"""S4's speed half on this CPU, in one interleaved run: can a BERT-base-shaped sparse model be faster than
dense MiniLM-L6 at all?

Yen, Xiao, Xu, *S4: a High-sparsity, High-performance AI Accelerator* (2022), §1/§5: with an engine that
exploits sparsity, a large sparse model beats a small dense one in accuracy *and* throughput. A sparse
model cannot run faster than its own *linears-free* time (:mod:`sparsebert.bench.limits`: the model with
every target linear — Q, K, V, attention output, FFN in/out — stubbed out; attention's matmuls,
softmax, embeddings and LayerNorm stay, and weight sparsity removes none of them). If MPNet-base's
linears-free time is slower than dense MiniLM-L6 on its fastest path, no sparsity and no accuracy can
make MPNet-base the faster choice on this CPU.

One rotation (:func:`sparsebert.timing.time_calls`, rotating order, 2 threads, seq 128) per batch size
(1 and 32) times together:

- MiniLM-L6 dense (a fine-tuned MiniLM-L6 of the knowledge grid; the head does not change the speed) on
  the dense paths that are fastest on this CPU: OpenVINO int8, ONNX Runtime int8, torch bf16;
- MiniLM-L6 at 90 % and 95 % (the grid's trained sparsebert students) on the sparse int8 runtime;
- MPNet-base dense (the SST-2 teacher of studies/mpnet_sst2/run.sh) on OpenVINO int8, and magnitude-pruned
  one-shot per matrix to 90 / 95 / 97 % (real weights, so a real pattern; speed only, no accuracy) on
  the sparse int8 runtime;
- both models' linears-free time (torch fp32 eager: the non-linear part the sparse runtime runs).

Never run beside a training process (check ``uptime``). Writes results/s4_speed_ceiling.{json,md}
(refuses to replace them without ``--overwrite``).

Usage: .venv/bin/python benchmarks/s4_speed_ceiling.py [--overwrite] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from sparsebert.io import write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
SEQ, BATCHES, THREADS = 128, (1, 32), 2
MINILM = {"dense": "runs/experiments/cola-s0.9/cells/cola/dense-teacher-seed42",
          0.9: "runs/experiments/cola-s0.9/cells/cola/sparsebert-s0.9-seed42",
          0.95: "runs/experiments/cola-s0.95/cells/cola/sparsebert-s0.95-seed42"}
MPNET = "runs/sst2-mpnet/teacher"
MPNET_SPARSITIES = (0.9, 0.95, 0.97)
DENSE_PATHS = ("openvino-int8", "onnxruntime-int8", "dense-bf16")
OUT = ROOT / "results" / "s4_speed_ceiling"


def _entries() -> list[dict]:
    """(key, label, model, paths) of every model timed; raises SystemExit naming a missing run folder."""
    from sparsebert.bench import magnitude_prune_
    from sparsebert.export.checkpoint import load_any
    from sparsebert.report import sparsity_report

    for rel in [*MINILM.values(), MPNET]:
        if not (ROOT / rel / "config.json").is_file():
            sys.exit(f"{rel}: no trained model (studies/glue_knowledge/run.sh cola 0.9 / 0.95, "
                     "studies/mpnet_sst2/run.sh teacher)")
    out = [{"key": "minilm-dense", "label": "MiniLM-L6 dense", "model": load_any(ROOT / MINILM["dense"]),
            "paths": DENSE_PATHS, "linears_free": True}]
    for s in (0.9, 0.95):
        out.append({"key": f"minilm-s{round(100 * s)}", "label": f"MiniLM-L6 {100 * s:g} % (trained)",
                    "model": load_any(ROOT / MINILM[s]), "paths": ("sparse-runtime-int8",)})
    mpnet = load_any(ROOT / MPNET)
    out.append({"key": "mpnet-dense", "label": "MPNet-base dense", "model": mpnet, "paths": ("openvino-int8",),
                "linears_free": True})
    for s in MPNET_SPARSITIES:
        m = copy.deepcopy(mpnet)
        magnitude_prune_(m, s)
        out.append({"key": f"mpnet-oneshot-s{round(100 * s)}", "label": f"MPNet-base {100 * s:g} % (one-shot)",
                    "model": m, "paths": ("sparse-runtime-int8",)})
    for e in out:
        e["targets_nnz"] = sparsity_report(e["model"], SEQ)["targets"]["nnz"]
    return out


@torch.inference_mode()
def measure(budget_s: float) -> dict:
    """Build every (model, path) call and time them interleaved per batch size; returns the result record."""
    from sparsebert.bench.run import PathResult, PathRunners, bench_environment, make_inputs
    from sparsebert.timing import time_calls

    torch.set_num_threads(THREADS)
    env = bench_environment(THREADS)
    entries = _entries()
    by_key = {e["key"]: e for e in entries}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        runners = {}
        for e in entries:
            (Path(tmp) / e["key"]).mkdir()
            runners[e["key"]] = PathRunners(e["model"], THREADS, Path(tmp) / e["key"], print, None,
                                            env.get("cpu_flags"))
        for b in BATCHES:
            calls, notes = {}, {}
            for e in entries:
                inputs = make_inputs(e["model"], b, SEQ)
                for path in e["paths"]:
                    print(f"building {e['key']} / {path} at batch {b} ...", flush=True)
                    call, _, note = runners[e["key"]].runner(path, inputs)
                    calls[(e["key"], path)], notes[(e["key"], path)] = call, note
                if e.get("linears_free"):
                    calls[(e["key"], "linears-free")] = runners[e["key"]].linears_free(inputs)
                    notes[(e["key"], "linears-free")] = "torch fp32 eager, target linears stubbed (the ceiling)"
            print(f"timing {len(calls)} calls at batch {b}, interleaved ...", flush=True)
            labels = list(calls)
            times = time_calls({f"{k}|{p}": calls[(k, p)] for k, p in labels}, warmup=2, min_iters=5,
                               max_iters=40, budget_s=budget_s * len(labels), rotate=True)
            for k, p in labels:
                e = by_key[k]
                r = PathResult(path=p, batch=b, seq=SEQ, uses_sparsity=p.startswith("sparse-runtime"),
                               times_ms=[1e3 * t for t in times[f"{k}|{p}"]])
                r.fill_stats()  # the bench tables' median / p10 / p90
                rows.append({"batch": b, "key": k, "label": e["label"], "path": p, "targets_nnz": e["targets_nnz"],
                             "note": notes[(k, p)], "median_ms": r.median_ms, "p10_ms": r.p10_ms,
                             "p90_ms": r.p90_ms, "seq_per_s": r.seq_per_s, "times_ms": r.times_ms})

    env["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return {"environment": env, "seq": SEQ, "threads": THREADS, "rows": rows}


def render(res: dict, command: str, wall_s: float) -> str:
    """The Markdown report: one table per batch size and the ceiling comparison."""
    env = res["environment"]
    md = ["# S4's speed half on this CPU: BERT-base-shaped sparse vs dense MiniLM-L6, one interleaved run", "",
          f"Command: `{command}` ({wall_s / 60:.1f} min). CPU: {env.get('cpu_model', '?')}, {THREADS} threads, seq {SEQ}; "
          f"flags: {' '.join(f for f in env.get('cpu_flags', []) if 'avx512' in f or 'vnni' in f) or 'no AVX-512'}; "
          f"load average at start / end {env.get('loadavg_start')} / {env.get('loadavg_end')}. "
          "Every (model, path) of a batch size timed in one rotation (time_calls, rotating order). "
          "*linears-free*: the model with every target linear stubbed out, the time no weight sparsity can go "
          "under on the sparse runtime (its non-linear part is this torch fp32 code).", ""]
    for b in BATCHES:
        rs = sorted((r for r in res["rows"] if r["batch"] == b), key=lambda r: -r["seq_per_s"])
        best_small = max((r for r in rs if r["key"] == "minilm-dense" and r["path"] != "linears-free"),
                         key=lambda r: r["seq_per_s"])
        md += [f"## batch {b} x {SEQ} tokens", "",
               f"| model | path | encoder non-zeros | median ms | p10–p90 ms | seq/s | vs MiniLM-L6 dense ({best_small['path']}) |",
               "|---|---|---:|---:|---:|---:|---:|"]
        for r in rs:
            nnz = "– (linears stubbed)" if r["path"] == "linears-free" else f"{r['targets_nnz'] / 1e6:.2f} M"
            md.append(f"| {r['label']} | {r['path']} | {nnz} | {r['median_ms']:.2f} | "
                      f"{r['p10_ms']:.2f}–{r['p90_ms']:.2f} | {r['seq_per_s']:.1f} | "
                      f"{r['seq_per_s'] / best_small['seq_per_s']:.2f}x |")
        ceil = next(r for r in rs if r["key"] == "mpnet-dense" and r["path"] == "linears-free")
        fastest_mp = max((r for r in rs if r["key"].startswith("mpnet-oneshot")), key=lambda r: r["seq_per_s"])
        verdict = ("on the sparse runtime (its non-linear part is this torch fp32 code) no sparsity of the "
                   "BERT-base shape can be faster than dense MiniLM-L6 on this CPU, whatever its accuracy"
                   if ceil["seq_per_s"] < best_small["seq_per_s"] else
                   "the ceiling leaves room: a sparse MPNet-base faster than dense MiniLM-L6 is not ruled out")
        md += ["", f"MPNet-base's linears-free ceiling: **{ceil['seq_per_s']:.1f} seq/s** against dense MiniLM-L6's "
               f"**{best_small['seq_per_s']:.1f}** ({best_small['path']}): {verdict}. The fastest pruned MPNet-base "
               f"here ({fastest_mp['label']}) runs at {fastest_mp['seq_per_s']:.1f} seq/s "
               f"({fastest_mp['seq_per_s'] / best_small['seq_per_s']:.2f}x).", ""]
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--overwrite", action="store_true", help="replace results/s4_speed_ceiling.{json,md}")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds of timing per call label (default 8)")
    a = ap.parse_args()
    if not a.overwrite and (OUT.with_suffix(".json").exists() or OUT.with_suffix(".md").exists()):
        sys.exit(f"{OUT}.json / .md exist: pass --overwrite to replace them")
    if a.budget <= 0:
        sys.exit(f"--budget {a.budget}: must be > 0 seconds")
    t0 = time.time()
    res = measure(a.budget)
    wall = time.time() - t0
    command = ".venv/bin/python benchmarks/s4_speed_ceiling.py" + (f" --budget {a.budget:g}" if a.budget != 8.0 else "")
    res.update(command=command, wall_s=wall)
    md = render(res, command, wall)
    write_json_atomic(OUT.with_suffix(".json"), res)
    write_text_atomic(OUT.with_suffix(".md"), md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
