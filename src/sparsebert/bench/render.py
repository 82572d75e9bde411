"""Markdown tables of a benchmark result (what ``sparsebert bench`` writes beside the JSON)."""

from __future__ import annotations

from typing import Any


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def batch_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown table: a row per path."""
    head = ("| path | median ms | p90 ms | seq/s | vs dense fp32 | vs best dense | max abs Δ logits | uses sparsity | note |\n"
            "|---|---:|---:|---:|---:|---:|---:|:---:|---|")
    lines = [head]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['path']} | — | — | — | — | — | — | {'yes' if r['uses_sparsity'] else 'no'} | {r['skipped']} |")
            continue
        ratio = lambda v: "—" if v is None else f"{v:.2f}x"  # noqa: E731
        diff = "ref" if r["path"] == "dense-fp32" else _f(r.get("max_abs_diff"), ".1e")
        lines.append(
            f"| {r['path']} | {_f(r['median_ms'], '.2f')} | {_f(r['p90_ms'], '.2f')} | {_f(r['seq_per_s'], '.1f')} | "
            f"{ratio(r['vs_dense_fp32'])} | {ratio(r['vs_best_dense'])} | {diff} | "
            f"{'yes' if r['uses_sparsity'] else 'no'} | {r.get('note', '')} |")
    return "\n".join(lines)


def _summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line: the sparse runtime against dense fp32, the best dense path and DeepSparse."""
    by = {r["path"]: r for r in rows if r.get("median_ms")}
    sp = by.get("sparse-runtime")
    if not sp:
        return []
    line = f"**sparse runtime: {sp['vs_dense_fp32']:.2f}x dense fp32"
    if sp.get("vs_best_dense") is not None:
        line += f", {sp['vs_best_dense']:.2f}x the best dense path ({sp['extra'].get('best_dense')})"
    ds = by.get("deepsparse")
    if ds:
        line += f"; DeepSparse / sparse runtime latency = {ds['median_ms'] / sp['median_ms']:.2f}"
    return [line + "**", ""]


def markdown(result: dict[str, Any]) -> str:
    """The whole report: title, command, environment, one table per batch size, warnings."""
    env, st = result["environment"], result["settings"]
    out = [f"# {result.get('title', 'sparsebert bench')}", "", "```", result.get("command", ""), "```", ""]
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "transformers", "onnxruntime", "deepsparse", "sparsebert")
                         if env.get(k))
    out += [f"- CPU: {env['cpu_model']}, {env['cpu_count']} cores; flags: {' '.join(env['cpu_flags'])}; "
            f"torch CPU capability {env.get('torch_cpu_capability')}",
            f"- threads: {st['threads']}; sequence length {st['seq']}; warm-up {st['warmup']}, "
            f"{st['min_iters']}-{st['max_iters']} timed calls per path (budget {st['budget_s']} s)",
            f"- versions: {versions}; Python {env['python']}",
            f"- load average at start / end: {env.get('loadavg_start')} / {env.get('loadavg_end')}",
            f"- sparse kernel: {env.get('sparse_kernel')}", ""]
    if result.get("model_info"):
        out += [f"- model: {result['model_info']}", ""]
    for batch, rows in result["results"].items():
        out += [f"## batch {batch} x {st['seq']} tokens", "", batch_table(rows), ""]
        out += _summary(rows)
        conv = result.get("conversions", {}).get(str(int(batch) * st["seq"]))
        if conv:
            out += [f"Sparse runtime conversion: {conv['seconds']} s; kernels per matrix: "
                    + ", ".join(f"{k} x{v}" for k, v in sorted(conv["counts"].items())), ""]
    if result.get("sizes"):
        s = result["sizes"]
        out += ["## size on disk", "", "| what | dense | compressed | ratio |", "|---|---:|---:|---:|"]
        for row in s:
            out.append(f"| {row['what']} | {row['dense_mb']:.2f} MB | {row['compressed_mb']:.2f} MB | {row['ratio']:.1f}x |")
        out.append("")
    if result.get("warnings"):
        out += ["## warnings", ""] + [f"- {w}" for w in result["warnings"]] + [""]
    out += ["Ratios are speed-ups (> 1 = faster than the reference path). *best dense* = the fastest path that "
            "ignores sparsity in the same run. max abs Δ logits is against dense fp32 on the same inputs.", ""]
    return "\n".join(out)
