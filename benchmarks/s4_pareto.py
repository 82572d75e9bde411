"""S4's claim on this CPU: is a larger sparse model both more accurate and faster than a smaller dense one?

Yen, Xiao, Xu, *S4: a High-sparsity, High-performance AI Accelerator* (2022), §1/§5: with an engine
that exploits sparsity, a large sparse model beats a small dense model of equal (or more) weights in
accuracy and throughput. Issue 12, must-have 4: for each SST-2 model a user could choose between,
time every path that model can run on (:func:`sparsebert.bench.run.bench_model`: the paths of one
model interleaved round by round; 2 threads, seq 128, batch 1 and 32) and evaluate the dev accuracy
*of each path* on the same compiled graphs (``eval_data``): dense models on the dense paths (torch fp32 /
dynamic int8, ONNX Runtime optimised fp32 / int8, OpenVINO int8), sparse ones on torch fp32 and the sparse
runtime (fp32 and int8). Every (model, path) is a point; the table gives each model's fastest path and
its fastest path that keeps the accuracy (at most ``KEEP_POINTS`` below fp32: int8 can cost a model
much more), and the Pareto front is taken over all points.

Models (those whose run has finished; the others are listed as missing):

- MiniLM-L6 dense (the SST-2 teacher, runs/sst2/teacher), MiniLM-L6 at 90 / 95 % (runs/sst2/sparse{90,95}-default,
  ``studies/glue_ablation/run_sst2.sh``),
  the small-dense students of the knowledge grid at 2,000, 6,315 and 20,000 steps (runs/experiments/sst2-steps*;
  equal non-zeros to 95 %) and at 6,315 steps with MiniLM-L6 90 %'s non-zeros (``SPARSITIES=0.9``),
- MPNet-base dense (runs/sst2-mpnet/teacher) and MPNet-base at 90/95/97 % (runs/sst2-mpnet/sparse*-lr3e-5),
  ``studies/mpnet_sst2/run.sh``.

Speed only: MPNet-base's teacher magnitude-pruned one-shot to 95 / 97 / 98 / 99 % (real weights, so
the sparse runtime sees a real pattern; no training, so no accuracy), timed on the sparse int8 runtime
beside the model with its linear layers removed (the "linears-free" time: attention, embeddings,
LayerNorm, what no weight sparsity can remove). They answer the speed half of S4 at every sparsity:
where on the throughput axis a BERT-base-shaped sparse model could sit at all, drawn as vertical lines.

Each model's bench is saved in ``results/NAME/<key>.json`` and re-used (``--overwrite`` times
it again); models are timed one after another, never beside a training process (check ``uptime``).
Writes ``results/NAME.{json,md}`` and ``results/NAME.png`` (dev accuracy against sequences/s, one panel
per batch size, the Pareto front drawn). NAME is ``s4_pareto`` unless ``--name`` says otherwise: one
name per CPU, so that a run on another machine does not mix its timings with these (the tables name the
CPU from the benches' own environment, and a name whose benches come from two CPUs is refused). On a CPU
with AVX512-BF16 the dense models also run ``dense-bf16`` (the model cast to bf16), a fast dense path there.

Usage: .venv/bin/python benchmarks/s4_pareto.py [--name NAME] [--overwrite] [--only KEY ...] [--render-only]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from sparsebert.io import atomic_path, read_json, write_json_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "glue"
SEQ, BATCHES, THREADS = 128, (1, 32), 2
DENSE_PATHS = ("dense-fp32", "dynamic-int8", "onnxruntime-opt-fp32", "onnxruntime-int8", "openvino-int8")
BF16_PATH = "dense-bf16"  # added to DENSE_PATHS where the CPU has avx512_bf16
SPARSE_PATHS = ("dense-fp32", "sparse-runtime", "sparse-runtime-int8", "engine", "engine-int8")


def models() -> list[dict]:
    """The candidate models: key, label, run directory, kind (dense / sparse), and teacher: the key of the
    dense model of the same family (MiniLM-L6 or MPNet-base) that gain retention is measured against."""
    out = [{"key": "minilm-dense", "label": "MiniLM-L6 dense", "dir": ROOT / "runs/sst2/teacher", "kind": "dense"},
           {"key": "minilm-s90", "label": "MiniLM-L6 90 %", "dir": ROOT / "runs/sst2/sparse90-default", "kind": "sparse"},
           {"key": "minilm-s95", "label": "MiniLM-L6 95 %", "dir": ROOT / "runs/sst2/sparse95-default", "kind": "sparse"}]
    out.append({"key": "minilm-s95-20000", "label": "MiniLM-L6 95 % (20,000 steps)",
                "dir": ROOT / "runs/experiments/sst2-steps20000/cells/sst2/sparsebert-s0.95-seed42", "kind": "sparse"})
    for steps in (2000, 6315, 20000):  # the knowledge grid's small dense students (equal non-zeros to 95 %)
        out.append({"key": f"small-dense-{steps}", "label": f"small dense (MiniLM, 1 layer, FFN 64; {steps:,} steps)",
                    "dir": ROOT / f"runs/experiments/sst2-steps{steps}/cells/sst2/small-dense-s0.95-seed42",
                    "kind": "dense"})
    out.append({"key": "small-dense-s90-6315", "label": "small dense (MiniLM, 1 layer, FFN 614; 6,315 steps)",
                "dir": ROOT / "runs/experiments/sst2-steps6315/cells/sst2/small-dense-s0.9-seed42",
                "kind": "dense"})  # equal non-zeros to MiniLM-L6 90 %
    out.append({"key": "mpnet-dense", "label": "MPNet-base dense", "dir": ROOT / "runs/sst2-mpnet/teacher",
                "kind": "dense"})
    out.append({"key": "small-dense-mpnet", "label": "small dense (MPNet-base, 1 layer, FFN 1,229; 2,105 steps)",
                "dir": ROOT / "runs/sst2-mpnet/small-dense95", "kind": "dense"})  # equal non-zeros to MPNet-base 95 %
    for s in (90, 95, 97):  # lr 3e-5 (the paper's BERT-base lr): at 1e-4 MPNet-base collapsed (results/mpnet_sst2.md)
        out.append({"key": f"mpnet-s{s}", "label": f"MPNet-base {s} %", "dir": ROOT / f"runs/sst2-mpnet/sparse{s}-lr3e-5",
                    "kind": "sparse"})
    for m in out:
        m["teacher"] = "mpnet-dense" if "mpnet" in m["key"] else "minilm-dense"
    return out


def teacher_accuracy(table: list[dict], m: dict) -> float | None:
    """fp32 SST-2 dev accuracy (%) of ``m``'s teacher: its row in this table, else its run's summary.json
    (max length 64, as trained), else None (no gain retention is given)."""
    row = next((t for t in table if t["key"] == m["teacher"]), None)
    if row:
        return row["fp32_accuracy"]
    summary = next(t["dir"] for t in models() if t["key"] == m["teacher"]) / "summary.json"
    return 100 * read_json(summary)["metrics"]["dev"]["accuracy"] if summary.is_file() else None


#: speed-only points: (key, sparsity) of MPNet-base's fine-tuned teacher pruned one-shot
SPEED_ONLY = [(f"mpnet-oneshot-s{round(100 * s)}", s) for s in (0.95, 0.97, 0.98, 0.99)]
SPEED_ONLY_DIR = ROOT / "runs/sst2-mpnet/teacher"


def bench_speed_only(sparsity: float) -> dict:
    """Time MPNet-base's teacher pruned one-shot to ``sparsity`` on the sparse int8 runtime (and torch fp32,
    the reference, and the linears-free model); no accuracy (module docstring)."""
    from sparsebert.bench import magnitude_prune_
    from sparsebert.export.checkpoint import load_any

    model = load_any(SPEED_ONLY_DIR)
    magnitude_prune_(model, sparsity)
    res = timed(model, SPEED_ONLY_DIR, ("dense-fp32", "sparse-runtime-int8"), limit=True)
    res["sparsity"] = sparsity
    return res


def speed_rows(res: dict, key: str) -> list[dict]:
    """Per batch: the sparse int8 runtime's and the linears-free model's sequences/s of a speed-only bench."""
    out = []
    for b in BATCHES:
        r = {x["path"]: x for x in res["results"][str(b)]}["sparse-runtime-int8"]
        lim = res["summary"][str(b)].get("limit") or {}
        if not r.get("median_ms"):
            continue
        out.append({"key": key, "batch": b, "sparsity": res["sparsity"], "params_nonzero_targets": res["targets_nnz"],
                    "seq_per_s": b * 1000.0 / r["median_ms"],
                    "linears_free_seq_per_s": b * 1000.0 / lim["nonlinear_ms"] if lim.get("nonlinear_ms") else None})
    return out


def timed(model, model_dir: Path, paths: tuple[str, ...], eval_data=None, limit: bool = False) -> dict:
    """:func:`sparsebert.bench.run.bench_model` at this script's settings, with the wall time, the model's
    description, the non-zeros of its target matrices and ``model_dir`` added to the result."""
    from sparsebert.bench.run import bench_model, describe_model
    from sparsebert.report import sparsity_report

    t0 = time.time()
    res = bench_model(model, batches=BATCHES, seq=SEQ, threads=THREADS, paths=paths, eval_data=eval_data,
                      budget_s=8.0, min_iters=5, max_iters=30, limit=limit, log=print)
    res["command_wall_s"] = time.time() - t0
    res["timed_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    res["model_info"] = describe_model(model, SEQ)
    res["targets_nnz"] = sparsity_report(model, SEQ)["targets"]["nnz"]
    res["model_dir"] = str(model_dir.relative_to(ROOT))
    res["weights_sha256"] = weights_sha256(model_dir)
    if (model_dir / "summary.json").is_file():
        res["train_steps"] = read_json(model_dir / "summary.json").get("steps")
    return res


def timed_on(res: dict, saved: Path) -> str:
    """The UTC date a bench ran: its ``timed_utc``; for benches saved before that field, the date of the
    commit that last changed ``saved`` ("≤ YYYY-MM-DD"), or of its file when it is not committed."""
    if res.get("timed_utc"):
        return res["timed_utc"][:10]
    out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", saved.name], cwd=saved.parent,
                         capture_output=True, text=True, check=False).stdout.strip()
    if not out or subprocess.run(["git", "diff", "--quiet", "--", saved.name], cwd=saved.parent,
                                 check=False).returncode:
        out = datetime.fromtimestamp(saved.stat().st_mtime, timezone.utc).date().isoformat()
    return f"≤ {out}"


def weights_sha256(model_dir: Path) -> str | None:
    """sha256 of the run's model.safetensors as its MANIFEST.json records it (None without one): which weights
    a saved bench measured."""
    manifest = model_dir / "MANIFEST.json"
    if not manifest.is_file():
        return None
    return read_json(manifest).get("files", {}).get("model.safetensors", {}).get("sha256")


def bench_one(m: dict) -> dict:
    """Time and evaluate one model on its paths (see the module docstring); returns the bench result."""
    from sparsebert.bench.accuracy import load_eval_data
    from sparsebert.export.checkpoint import load_any
    from sparsebert.runtime.build import cpu_flags

    data = load_eval_data(m["dir"], "sst2", DATA, SEQ)
    dense = DENSE_PATHS + ((BF16_PATH,) if "avx512_bf16" in cpu_flags() else ())
    return timed(load_any(m["dir"]), m["dir"], SPARSE_PATHS if m["kind"] == "sparse" else dense, eval_data=data)


def wants_timing(args, key: str, saved: Path) -> bool:
    """Whether ``key`` is (re)timed in this call: not --render-only, not saved yet or --overwrite, and
    named by --only (when given)."""
    return (not args.render_only and (args.overwrite or not saved.is_file())
            and (not args.only or key in args.only))


def points(res: dict, batch: int) -> list[dict]:
    """Every timed path at ``batch`` with its own dev accuracy (%), and the model's fp32 accuracy."""
    acc = {p["path"]: p["metrics"]["dev"]["accuracy"] for p in res["accuracy"]["paths"] if p["status"] == "ok"}
    return [{"path": r["path"], "median_ms": r["median_ms"], "seq_per_s": batch * 1000.0 / r["median_ms"],
             "accuracy": 100 * acc[r["path"]], "fp32_accuracy": 100 * acc["dense-fp32"]}
            for r in res["results"][str(batch)] if r.get("median_ms") and r["path"] in acc]


def fastest(pts: list[dict], keep_points: float | None = None) -> dict | None:
    """The fastest point; with ``keep_points``, the fastest within that many points of fp32's accuracy."""
    ok = [p for p in pts if keep_points is None or p["accuracy"] >= p["fp32_accuracy"] - keep_points]
    return max(ok, key=lambda p: p["seq_per_s"]) if ok else None


def pareto(pts: list[dict]) -> list[str]:
    """Ids of the points no other point beats in both accuracy and sequences/s."""
    return [p["id"] for p in pts
            if not any(q is not p and q["accuracy"] >= p["accuracy"] and q["seq_per_s"] >= p["seq_per_s"]
                       and (q["accuracy"] > p["accuracy"] or q["seq_per_s"] > p["seq_per_s"]) for q in pts)]


#: a path "keeps" the model's accuracy when it loses at most this many points against fp32
KEEP_POINTS = 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overwrite", action="store_true", help="time again the models already saved")
    ap.add_argument("--only", nargs="*", help="keys to (re)time")
    ap.add_argument("--render-only", action="store_true",
                    help="time nothing: tables and plot from the saved benches (e.g. while a training run is going)")
    ap.add_argument("--name", default="s4_pareto",
                    help="results/NAME/ holds the benches, results/NAME.{json,md,png} the tables: one per CPU")
    args = ap.parse_args()
    out_dir = ROOT / "results" / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    table, missing, cpus = [], [], {}
    for m in models():
        saved = out_dir / f"{m['key']}.json"
        trained = (m["dir"] / "summary.json").is_file()
        if not trained and not saved.is_file():  # a saved bench stays usable when its run is not on this machine
            started = m["dir"].exists() or (m["dir"].parent / f".{m['dir'].name}.partial").exists()
            state = "not finished" if started else "not trained on this machine"
            missing.append(f"{m['label']} ({m['dir'].relative_to(ROOT)}: {state})")
            continue
        if trained and wants_timing(args, m["key"], saved):
            print(f"== {m['key']}", flush=True)
            write_json_atomic(saved, bench_one(m))
        if not saved.is_file():
            missing.append(f"{m['label']} ({m['dir'].relative_to(ROOT)}: trained, not timed yet)")
            continue
        res = read_json(saved)
        cpus[saved] = cpu_label(res["environment"])
        if res.get("model_dir", str(m["dir"].relative_to(ROOT))) != str(m["dir"].relative_to(ROOT)):
            sys.exit(f"{saved} was measured on {res['model_dir']}, not {m['dir'].relative_to(ROOT)}: "
                     "time it again with --overwrite --only " + m["key"])
        now = weights_sha256(m["dir"]) if trained else None
        if now and res.get("weights_sha256") and res["weights_sha256"] != now:
            sys.exit(f"{saved} was measured on other weights than {m['dir'].relative_to(ROOT)}/model.safetensors "
                     f"has now (a retrained model): time it again with --name NEW or --overwrite --only {m['key']}")
        steps = res.get("train_steps") or (read_json(m["dir"] / "summary.json").get("steps") if trained else None)
        when = timed_on(res, saved)
        for b in BATCHES:
            for pt in points(res, b):
                table.append({**pt, "id": f"{m['key']}/{pt['path']}", "key": m["key"], "label": m["label"],
                              "kind": m["kind"], "batch": b, "params_nonzero_targets": res.get("targets_nnz"),
                              "train_steps": steps, "bench_wall_s": res.get("command_wall_s"),
                              "timed_on": when})
    speed = []
    for key, sparsity in SPEED_ONLY:
        saved = out_dir / f"{key}.json"
        if not (SPEED_ONLY_DIR / "summary.json").is_file():
            break
        if wants_timing(args, key, saved):
            print(f"== {key}", flush=True)
            write_json_atomic(saved, bench_speed_only(sparsity))
        if saved.is_file():
            res = read_json(saved)
            cpus[saved] = cpu_label(res["environment"])
            speed += speed_rows(res, key)
    if len(set(cpus.values())) > 1:
        sys.exit(f"results/{args.name}/ holds benches of different CPUs ("
                 + "; ".join(f"{p.name}: {c}" for p, c in cpus.items()) + "): time them again with --overwrite")
    from sparsebert.experiment.report import gain_retention, majority_baseline

    floor = majority_baseline("sst2", str(DATA))
    for m in models():
        teacher = teacher_accuracy(table, m)
        for t in (t for t in table if t["key"] == m["key"]):
            t["teacher_accuracy"] = teacher
            t["gain_retention"] = gain_retention(t["fp32_accuracy"], teacher, floor)
    fronts = {b: pareto([t for t in table if t["batch"] == b]) for b in BATCHES}
    write(args.name, next(iter(cpus.values()), "no bench yet"), table, fronts, missing, speed, floor)
    return 0


def cpu_label(env: dict) -> str:
    """The CPU a bench ran on, from its ``environment``: "2-core AMD EPYC, AVX-512 VNNI + AVX512-BF16, no AMX"."""
    flags = set(env.get("cpu_flags", []))
    if "avx512_vnni" in flags:
        isa = "AVX-512 VNNI" + (" + AVX512-BF16" if "avx512_bf16" in flags else "")
    elif "avx512f" in flags:
        isa = "AVX-512 (no VNNI)"
    else:
        isa = "AVX2 (no AVX-512, VNNI or native bf16)" if "avx2" in flags else "no AVX2"
    amx = "AMX" if {"amx_int8", "amx_bf16"} & flags else "no AMX"
    return f"{env.get('cpu_count', '?')}-core {env.get('cpu_model', 'CPU')}, {isa}, {amx}"


def write(name: str, cpu: str, table: list[dict], fronts: dict[int, list[str]], missing: list[str],
          speed: list[dict] | None = None, floor: float | None = None) -> None:
    """results/NAME.{json,md,png}; ``cpu`` names the machine in the title, ``floor`` is the majority-class
    dev accuracy (%) that gain retention is measured from."""
    md = [f"# S4 on this CPU: SST-2 dev accuracy against throughput ({cpu}; seq 128)", "",
          "Every model on every path it runs on (dense models: torch fp32 / dynamic int8, ONNX Runtime optimised "
          "fp32 / int8, OpenVINO int8, and torch bf16 (the model cast to bf16) on a CPU with AVX512-BF16; sparse "
          "models: torch fp32, the sparse runtime fp32 / int8), with the accuracy "
          "*of that path* on the 872 dev sentences (padded to 128 tokens, the same compiled graphs as timed). The "
          "paths of one model are interleaved round by round; the models are timed one after another on a quiet "
          f"machine. A path *keeps* the model's accuracy when it loses at most {KEEP_POINTS:g} point against fp32; "
          "the Pareto front is taken over all (model, path) points. *timed on*: the UTC date of a model's bench "
          "(\"≤\": benches saved before the date was recorded, dated by their commit). Benches of different "
          "sessions ran on different hosts of the same CPU model: on the AVX-512 EPYC, dense MiniLM-L6's paths "
          "timed up to 1.45x apart (most within 1.3x) across two sessions and two runs of one session "
          "(results/s4_pareto_avx512vnni_repeat.md), while two MiniLM-L6 95 % models with equal non-zeros timed "
          "1.7-1.9x apart across sessions at batch 1 (their patterns or the hosts; not separated). Read margins "
          "under 1.3x as ties, and across dates only margins of 2x and more.",
          "",
          (f"Majority-class floor {floor:.1f}; GR = (fp32 accuracy − floor) / (teacher − floor), the teacher being "
           "the dense model of the same family (MiniLM-L6 or MPNet-base) in this table (fp32, seq 128), or its "
           "run's own dev accuracy (max length 64) when it was not timed here."
           + (" The 20,000-step MiniLM students were distilled from another MiniLM-L6 teacher (89.7)."
              if any(t["train_steps"] == 20000 for t in table) else "") if floor is not None else
           "No majority-class floor: the SST-2 data is not on this machine, so no gain retention is given."),
          "",
          f"Command: `.venv/bin/python benchmarks/s4_pareto.py{'' if name == 's4_pareto' else ' --name ' + name}` "
          f"(per-model benches in results/{name}/).", ""]
    for b in BATCHES:
        rows = [t for t in table if t["batch"] == b]
        md += [f"## batch {b}", "", "| model | fastest path: seq/s, accuracy | fastest path keeping the accuracy: "
               "seq/s, accuracy | fp32 accuracy (GR) | non-zeros (Q,K,V,O,FFN) | training steps (batch 32) | "
               "on the Pareto front | timed on |", "|---|---|---|---:|---:|---:|---|---|"]
        keys = sorted({t["key"] for t in rows}, key=lambda k: -fastest([t for t in rows if t["key"] == k])["seq_per_s"])
        for k in keys:
            pts = [t for t in rows if t["key"] == k]
            f, fk, t0 = fastest(pts), fastest(pts, KEEP_POINTS), pts[0]
            keep = f"{fk['path']}: {fk['seq_per_s']:.1f}, {fk['accuracy']:.1f}" if fk else "none"
            on = ", ".join(t["path"] for t in pts if t["id"] in fronts[b])
            gr = f" ({100 * t0['gain_retention']:.0f} %)" if t0.get("gain_retention") is not None else ""
            md.append(f"| {t0['label']} | {f['path']}: {f['seq_per_s']:.1f}, {f['accuracy']:.1f} | {keep} | "
                      f"{t0['fp32_accuracy']:.1f}{gr} | {t0['params_nonzero_targets'] / 1e6:.2f} M | {t0['train_steps']} | "
                      f"{on} | {t0['timed_on']} |")
        md.append("")
    speed = speed or []
    if speed:
        md += ["## Speed only: MPNet-base pruned one-shot (no training, no accuracy)", "",
               "MPNet-base's fine-tuned teacher magnitude-pruned one-shot per matrix (real weights, so a real pattern), "
               "timed on the sparse int8 runtime beside the same model with its linear layers removed: *linears-free* "
               "is the attention, embeddings and LayerNorm that no weight sparsity removes, the ceiling of any "
               "BERT-base-shaped sparse model on this CPU. Vertical lines in the plot.", "",
               "| sparsity | non-zeros (Q,K,V,O,FFN) | sparse int8 runtime, batch 1: seq/s | batch 32: seq/s | "
               "linears-free ceiling, batch 1 / 32: seq/s |", "|---:|---:|---:|---:|---|"]
        for key in dict.fromkeys(r["key"] for r in speed):
            by_b = {r["batch"]: r for r in speed if r["key"] == key}
            r0 = next(iter(by_b.values()))
            cells = [f"{by_b[b]['seq_per_s']:.1f}" if b in by_b else "–" for b in BATCHES]
            ceil = " / ".join(f"{by_b[b]['linears_free_seq_per_s']:.1f}" if b in by_b and
                              by_b[b]["linears_free_seq_per_s"] else "–" for b in BATCHES)
            md.append(f"| {100 * r0['sparsity']:g} % | {r0['params_nonzero_targets'] / 1e6:.2f} M | {cells[0]} | "
                      f"{cells[1]} | {ceil} |")
        md.append("")
    if missing:
        md += ["Not yet measured: " + "; ".join(missing) + ".", ""]
    md += [f"![accuracy vs throughput]({name}.png)", ""]
    write_json_atomic(ROOT / "results" / f"{name}.json", {"cpu": cpu, "rows": table, "pareto": fronts, "missing": missing,
                                                          "keep_points": KEEP_POINTS, "speed_only": speed,
                                                          "majority_floor": floor})
    write_text_atomic(ROOT / "results" / f"{name}.md", "\n".join(md) + "\n")
    print("\n".join(md))
    if not table:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BATCHES), figsize=(12, 5.8))
    keys = list(dict.fromkeys(t["key"] for t in table))
    cmap = plt.get_cmap("tab20")  # 20 colours: the dark ten first, then their light twins
    colors = {k: f"C{i}" if len(keys) <= 10 else cmap((2 * i) % 20 + (2 * i) // 20) for i, k in enumerate(keys)}
    for ax, b in zip(axes, BATCHES):
        pts = [t for t in table if t["batch"] == b]
        for t in pts:
            keeps = t["accuracy"] >= t["fp32_accuracy"] - KEEP_POINTS
            ax.scatter(t["seq_per_s"], t["accuracy"], marker="o" if t["path"].startswith("sparse") else "s",
                       facecolors=colors[t["key"]] if keeps else "none", edgecolors=colors[t["key"]], s=28)
        lines = sorted((r for r in speed if r["batch"] == b), key=lambda r: r["seq_per_s"])
        for r in lines:  # where a BERT-base-shaped sparse model can sit at all
            ax.axvline(r["seq_per_s"], color="0.6", ls="--", lw=0.8)
        if lines:
            ax.text(lines[0]["seq_per_s"], 0.02, " MPNet-base one-shot "
                    + " / ".join(f"{100 * r['sparsity']:g}" for r in lines) + " %\n (speed only)", fontsize=6,
                    color="0.4", rotation=90, transform=ax.get_xaxis_transform(), va="bottom", ha="right")
        ceilings = [r["linears_free_seq_per_s"] for r in speed if r["batch"] == b and r["linears_free_seq_per_s"]]
        if ceilings:
            ax.axvline(statistics.median(ceilings), color="0.3", ls="-.", lw=0.8)
            ax.text(statistics.median(ceilings), 0.98, " MPNet-base\n linears free", fontsize=6, color="0.3",
                    transform=ax.get_xaxis_transform(), va="top")
        front = sorted((t for t in pts if t["id"] in fronts[b]), key=lambda t: t["seq_per_s"])
        ax.plot([t["seq_per_s"] for t in front], [t["accuracy"] for t in front], "k:", lw=1)
        ax.set_xscale("log")
        ax.margins(x=0.1)
        ax.set_xlabel("sequences / s")
        ax.set_ylabel("SST-2 dev accuracy, % (of that path)")
        ax.set_title(f"batch {b} x {SEQ} tokens, 2 threads")
    labels = {t["key"]: t["label"] for t in table}
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=labels[k]) for k, c in colors.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle(f"{cpu}\nevery model on every path; circles: sparse runtime, squares: dense paths; hollow: the path loses "
                 f"> {KEEP_POINTS:g} point vs fp32; dotted: Pareto front; dashed: MPNet-base pruned one-shot (speed only), "
                 "dash-dot: its linears-free ceiling", fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * math.ceil(len(colors) / 3), 1, 1))
    with atomic_path(ROOT / "results" / f"{name}.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")


if __name__ == "__main__":
    sys.exit(main())
