"""README's engine table, generated from the committed bench results (results/bench_*_engine*.json).

    .venv/bin/python benchmarks/engine_table.py          # rewrite the block in README.md
    .venv/bin/python benchmarks/engine_table.py --check  # exit 1 if README's block is stale

Each row is one interleaved `sparsebert bench` run and batch size: the engine's median latency (fp32 and
int8 paths) beside OpenVINO int8 and the fastest dense path of the same run, and their ratios (speed-ups,
> 1 = the engine is faster). The CPU of each run is named from the run's own environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- engine-table:start (benchmarks/engine_table.py) -->", "<!-- engine-table:end -->"


def _cpu(env: dict) -> str:
    flags = set(env.get("cpu_flags", []))
    isa = "AVX-512 VNNI" if "avx512_vnni" in flags else ("AVX-512" if "avx512f" in flags else "AVX2")
    return f"{env.get('cpu_model', '?')} ({isa}), {env.get('cpu_count', '?')} cores"


def rows(results_dir: Path) -> list[str]:
    """One Markdown row per (bench file, batch size)."""
    out = []
    for path in sorted(results_dir.glob("bench_*_engine*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        env, st = res["environment"], res["settings"]
        title = res.get("title", path.stem).replace("sparsebert bench: ", "")
        for batch, paths in res["results"].items():
            by = {r["path"]: r["median_ms"] for r in paths if r.get("median_ms")}
            ref = res["summary"][batch].get("reference_best_dense") or {}
            fastest = min((by[p] for p in ("engine", "engine-int8") if p in by), default=None)

            def ms(p: str) -> str:
                return f"{by[p]:.1f}" if p in by else "–"

            def ratio(base: float | None) -> str:
                return f"**{base / fastest:.2f}x**" if base and fastest else "–"

            best = f"{ref['path']} {ref['median_ms']:.1f}" if ref else "–"
            out.append(f"| {title} | {batch} x {st['seq']} | {ms('engine')} | {ms('engine-int8')} | "
                       f"{ms('openvino-int8')} | {best} | {ratio(by.get('openvino-int8'))} | "
                       f"{ratio(ref.get('median_ms'))} | {_cpu(env)}, {st['threads']} threads | "
                       f"[{path.stem}](results/{path.stem}.md) |")
    return out


def block(results_dir: Path) -> str:
    head = ["| model | batch x seq | engine ms | engine int8 ms | OpenVINO int8 ms | best dense ms | fastest engine "
            "path vs OpenVINO int8 | vs best dense | CPU | source |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    return "\n".join([START, *head, *rows(results_dir), END])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README block differs")
    args = ap.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{args.readme}: no engine-table markers ({START} ... {END})", file=sys.stderr)
        return 2
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = before + block(args.results) + after
    if args.check:
        if new != text:
            print(f"{args.readme}: the engine table is stale; run benchmarks/engine_table.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        tmp = args.readme.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
