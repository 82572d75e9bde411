"""Markdown tables of a benchmark result (what ``sparsebert bench`` writes beside the JSON).

Each batch size gets a table with a row per path (a skipped or failed path is a ⚠ row with its
reason), the two reference paths by name (fastest fp32, best dense), how the paths were timed,
and the physical limit (FLOP reduction, the non-linear part's time, each path over it), then a
bottom line per sparse runtime path (``sparse-runtime``, ``sparse-runtime-int8``: its speed-up over
the fastest fp32 and the best dense path) and its conversion (seconds, kernel choices from the
cache or measured in this run). With a dev set (``--task``), a section with each path's dev metric
(:func:`accuracy_table`); without timing (``--no-timing``) the latency tables are left out.
"""

from __future__ import annotations

from typing import Any

WARN = "⚠"


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _ratio(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def _ref_name(ref: dict | None) -> str:
    return ref["path"] if ref else "none measured"


def batch_table(rows: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> str:
    """One Markdown table: a row per path; the ratio columns name their reference paths.

    Args:
        rows: the :class:`sparsebert.bench.run.PathResult` dicts of one batch size.
        summary: that batch size's ``summary`` entry (reference paths); without it the headers
            say only "fastest fp32" / "best dense".
    """
    summary = summary or {}
    fp32 = _ref_name(summary.get("reference_fp32")) if summary else "fastest fp32"
    best = _ref_name(summary.get("reference_best_dense")) if summary else "best dense"
    head = (f"| path | median ms | p10–p90 ms | seq/s | vs fp32 ({fp32}) | vs best dense ({best}) | "
            f"vs torch eager fp32 | × linears-free | max abs Δ logits | uses sparsity | note |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---|")
    lines = [head]
    for r in rows:
        sparse = "yes" if r["uses_sparsity"] else "no"
        if r.get("skipped") or not r.get("median_ms"):
            status = r.get("status") or "skipped"
            reason = r.get("skipped") or "no time"
            if not reason.startswith(status):
                reason = f"{status}: {reason}"
            lines.append(f"| {WARN} {r['path']} | — | — | — | — | — | — | — | — | {sparse} | {WARN} {reason} |")
            continue
        diff = "ref" if r["path"] == "dense-fp32" else _f(r.get("max_abs_diff"), ".1e")
        spread = f"{r['p10_ms']:.2f}–{r['p90_ms']:.2f}"
        note = r.get("note", "")
        if r.get("timing", "").startswith("own block"):
            note = f"{note}; timed in its own block (separate process), not interleaved".lstrip("; ")
        lines.append(
            f"| {r['path']} | {r['median_ms']:.2f} | {spread} | {_f(r['seq_per_s'], '.1f')} | "
            f"{_ratio(r.get('vs_fp32'))} | {_ratio(r.get('vs_best_dense'))} | {_ratio(r.get('vs_torch_fp32'))} | "
            f"{_ratio(r.get('x_linears_free'))} | {diff} | {sparse} | {note} |")
    return "\n".join(lines)


def build_table(rows: list[dict[str, Any]]) -> str:
    """The paths of an untimed batch size (``--no-timing``): status, max abs Δ logits against torch
    fp32 on the bench's random inputs, and the note (kernels, precision) or the reason it did not run."""
    lines = ["| path | status | max abs Δ logits (random inputs) | uses sparsity | note |", "|---|---|---:|:---:|---|"]
    for r in rows:
        sparse = "yes" if r["uses_sparsity"] else "no"
        if r.get("skipped"):
            lines.append(f"| {WARN} {r['path']} | {r['status']} | — | {sparse} | {WARN} {r['skipped']} |")
            continue
        diff = "ref" if r["path"] == "dense-fp32" else _f(r.get("max_abs_diff"), ".1e")
        lines.append(f"| {r['path']} | ok | {diff} | {sparse} | {r.get('note', '')} |")
    return "\n".join(lines)


def _references(summary: dict[str, Any]) -> list[str]:
    """The reference paths of the ratios, and the dense paths that are missing from "best dense"."""
    out = []
    for prefix, dev in (("", ""), ("cuda_", "CUDA ")):
        if f"{prefix}reference_fp32" not in summary:
            continue
        fp32, best = summary.get(f"{prefix}reference_fp32"), summary.get(f"{prefix}reference_best_dense")
        line = (f"{dev}References: fastest fp32 = **{_ref_name(fp32)}**"
                + (f" ({fp32['median_ms']:.2f} ms)" if fp32 else "")
                + f"; best dense = **{_ref_name(best)}**" + (f" ({best['median_ms']:.2f} ms)" if best else "") + ".")
        missing = summary.get(f"{prefix}dense_not_measured") or []
        if missing:
            line += (f" {WARN} best dense is the best of the dense paths *measured*; requested but not measured: "
                     + "; ".join(f"{m['path']} ({m['reason']})" for m in missing) + ".")
        out.append(line)
    return out


def _timing(summary: dict[str, Any]) -> list[str]:
    t = summary.get("timing")
    if not t:
        return []
    line = (f"Timing: {', '.join(t['interleaved'])} interleaved over {t['rounds']} rounds, one call each per round "
            f"in {t.get('order', 'rotating')} order")
    if t.get("cuda_interleaved"):
        line += f"; CUDA paths {', '.join(t['cuda_interleaved'])} interleaved among themselves"
    if t.get("own_block"):
        line += f"; {', '.join(t['own_block'])} timed in its own block (separate process, after the others)"
    return [line + "."]


def _limit(summary: dict[str, Any]) -> list[str]:
    lim = summary.get("limit")
    if not lim:
        return []
    fl = lim["flops"]
    out = [f"Physical limit: FLOP reduction {fl['linear_reduction']:.1f}x on the target linears, "
           f"{fl['total_reduction']:.1f}x on the whole encoder incl. attention's matmuls (seq {fl['seq_len']}). "
           f"Non-linear part alone: {lim['nonlinear_ms']:.2f} ms (p10–p90 {lim['nonlinear_p10_ms']:.2f}–"
           f"{lim['nonlinear_p90_ms']:.2f})"]
    if lim.get("nonlinear_share_of_torch_fp32") is not None:
        out[0] += (f" = {lim['nonlinear_share_of_torch_fp32']:.0%} of torch fp32; torch fp32 with its linears "
                   f"{fl['linear_reduction']:.1f}x cheaper would take {lim['ideal_sparse_ms_torch']:.2f} ms")
    out[0] += (f". Method: {lim['method']}. *× linears-free* = a path's median / the non-linear part "
               f"(1.00x = as if its linears cost nothing in torch eager; < 1 where its other operators are faster "
               f"than torch eager's).")
    return out


#: the sparse runtime paths and how their bottom line names them
SPARSE_LINES = (("sparse-runtime", "sparse runtime", "conversions"),
                ("sparse-runtime-int8", "sparse runtime int8", "conversions_int8"),
                ("engine", "engine", None), ("engine-int8", "engine int8", None))


def _sparse_line(rows: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The bottom line: each sparse runtime path (fp32, int8) against the fastest fp32 path, the best
    dense path and the linears-free time, and DeepSparse against the fp32 sparse runtime."""
    by = {r["path"]: r for r in rows if r.get("median_ms")}
    out = []
    for path, name, _ in SPARSE_LINES:
        sp = by.get(path)
        if not sp:
            continue
        parts = []
        if sp.get("vs_fp32") is not None:
            parts.append(f"{sp['vs_fp32']:.2f}x the fastest fp32 path ({_ref_name(summary.get('reference_fp32'))})")
        if sp.get("vs_best_dense") is not None:
            best = _ref_name(summary.get("reference_best_dense"))
            if summary.get("dense_not_measured"):
                best += f"; {WARN} without {', '.join(m['path'] for m in summary['dense_not_measured'])}"
            parts.append(f"{sp['vs_best_dense']:.2f}x the best dense path ({best})")
        if sp.get("x_linears_free") is not None:
            parts.append(f"{sp['x_linears_free']:.2f}x the linears-free time")
        if path in ("sparse-runtime-int8", "engine-int8") and sp.get("max_abs_diff") is not None:
            parts.append(f"max abs Δ logits {sp['max_abs_diff']:.1e} vs torch fp32")
        line = f"**{name}: " + ", ".join(parts)
        ds = by.get("deepsparse")
        if ds and path == "sparse-runtime":
            line += f"; DeepSparse / sparse runtime latency = {ds['median_ms'] / sp['median_ms']:.2f}"
        out += [line + "**", ""]
    return out


def _conversion_lines(result: dict[str, Any], tokens: int) -> list[str]:
    """Per sparse runtime path: how long its conversion took and whether the kernel choices came from
    the kernel-choice cache or were timed in this run."""
    out = []
    for path, _, key in SPARSE_LINES:
        conv = result.get(key, {}).get(str(tokens)) if key else None
        if not conv:
            continue
        n = len(conv["matrices"])
        source = conv.get("source")
        if source == "cache":
            how = (f"all {n} kernel choices from the kernel-choice cache (timed in an earlier run on this machine; "
                   f"`--remeasure-kernels` times them again)")
        elif source in ("measured", "mixed"):
            how = (f"kernel choices measured in this run{' (--remeasure-kernels)' if conv.get('remeasured') else ''}: "
                   f"{conv['timed']} distinct shapes timed, the other {n - conv['timed'] - conv['from_cache']} "
                   f"matrices share their measurement")
            if source == "mixed":
                how += f", {conv['from_cache']} from the kernel-choice cache"
        else:  # results written before the cache was used by bench
            how = "kernel choices measured in this run"
        out += [f"Sparse runtime conversion ({path}): {conv['seconds']} s; {how}; kernels per matrix: "
                + ", ".join(f"{k} x{v}" for k, v in sorted(conv["counts"].items())), ""]
    return out


def bottom_lines(result: dict[str, Any], batch: str | int) -> list[str]:
    """What follows a batch size's table and its references: the sparse runtime paths' ratios and their
    conversions (Markdown lines, blank-line separated; also printed by ``sparsebert bench``)."""
    rows = result["results"][str(batch)]
    summ = result.get("summary", {}).get(str(batch), {})
    return _sparse_line(rows, summ) + _conversion_lines(result, int(batch) * result["settings"]["seq"])


def _points(x: float | None) -> str:
    return "—" if x is None else f"{x:+.2f}"


def accuracy_table(acc: dict[str, Any]) -> str:
    """The dev-metric table of :func:`sparsebert.bench.accuracy.accuracy_result`: a row per path (a
    path without a metric is a ⚠ row with the reason); metrics in percent, differences in points,
    agreement with ``dense-fp32`` in percent of the examples."""
    splits = list(acc["examples"])
    main = acc["main_metric"]
    ok = [r for r in acc["paths"] if r["status"] == "ok"]
    names = list(next(iter(ok[0]["metrics"].values()))) if ok else [main]
    tag = (lambda s: f" {s}") if len(splits) > 1 else (lambda s: "")
    cols = [f"{m}{tag(s)} %" for s in splits for m in names]
    cols += [f"Δ {main}{tag(s)} vs {ref}" for ref in ("dense-fp32", "sparse-runtime") for s in splits]
    bi = acc.get("head") == "bi-encoder"
    cols += [f"agree with dense-fp32{tag(s)} %" for s in splits]
    cols += [f"max abs Δ {'scores' if bi else 'logits'}{tag(s)}" for s in splits]
    if bi:
        cols += [f"min cos of embeddings vs dense-fp32{tag(s)}" for s in splits]
    lines = ["| path | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in acc["paths"]:
        if r["status"] != "ok":
            dashes = " | ".join(["—"] * (len(cols) - 1))
            lines.append(f"| {WARN} {r['path']} | {dashes} | {WARN} {r['reason']} |")
            continue
        cells = [f"{100 * r['metrics'][s][m]:.2f}" for s in splits for m in names]
        for key in ("vs_dense_fp32_points", "vs_sparse_runtime_points"):
            cells += [_points((r.get(key) or {}).get(s, {}).get(main)) for s in splits]
        agree, diff = r.get("agreement_dense_fp32") or {}, r.get("max_abs_diff_logits") or {}
        cells += [_f(100 * agree[s] if s in agree else None, ".2f") for s in splits]
        cells += ["ref" if r["path"] == "dense-fp32" else _f(diff.get(s), ".1e") for s in splits]
        if bi:
            cos = r.get("embedding_cosine_min_dense_fp32") or {}
            cells += ["ref" if r["path"] == "dense-fp32" else _f(cos.get(s), ".6f") for s in splits]
        lines.append(f"| {r['path']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_lines(acc: dict[str, Any]) -> list[str]:
    """The dev-metric section: what was run and how, the table, the sparse-int8 check (Markdown lines)."""
    examples = ", ".join(f"{s} {n} examples" for s, n in acc["examples"].items())
    out = [f"## dev metric per path: {acc['task']} ({examples}, from {acc['source']})", "",
           f"Inputs: {acc['inputs']}. Examples at the {acc['max_length']}-token limit (truncated or exactly that "
           f"long): " + ", ".join(f"{s} {n}" for s, n in acc["at_max_length"].items()) + "."
           + (f" The model was trained and evaluated with max_length {acc['trained_max_length']}."
              if acc.get("trained_max_length") else ""), "",
           accuracy_table(acc), "",
           "Metrics in percent (official GLUE metrics, `sparsebert.metrics`); Δ in points (100 x the difference of "
           "the fractions); *agree* = examples whose prediction equals dense-fp32's; max abs Δ logits against "
           "dense-fp32 on the same dev batches."
           + (" Bi-encoder: the scores are the pairs' outputs of the saved head (cosines for regression); *min cos "
              "of embeddings* = the smallest cosine between a text's mean-pooled embedding on the path and on "
              "dense-fp32, over both texts of every pair." if acc.get("head") == "bi-encoder" else ""), ""]
    check = acc.get("int8_check")
    if check:
        verdict = "within" if check["within"] else f"{WARN} NOT within"
        kernels = (f" ({check['int8_matrices']} of {check['matrices']} matrices on an int8 kernel)"
                   if check.get("matrices") else "")
        out += [f"**sparse-int8 check: sparse-runtime-int8{kernels} {check['metric']} on {check['split']} is "
                f"{check['delta_points']:+.2f} points from sparse-runtime (fp32): {verdict} the tolerance of "
                f"±{check['tolerance_points']} points.**", ""]
    for ec in acc.get("engine_check") or []:
        verdict = "within" if ec["within"] else f"{WARN} NOT within"
        out += [f"**engine check: {ec['path']} {ec['metric']} on {ec['split']} is {ec['delta_points']:+.2f} points from "
                f"dense-fp32 (the fp32 sparse model): {verdict} the tolerance of ±{ec['tolerance_points']} points.**",
                ""]
    return out


def engine_profile_lines(result: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """Where the engine's time goes (one profiled call after the timing): each stage in ms and % of the
    call, the linears' work (2 x non-zeros x tokens) and achieved GOP/s per core, the bytes of the matrices
    one call reads, the attention's (QK^T and PV: 4 x seq^2 x hidden x layers per sequence) and its GFLOP/s
    per core, and the engine's own linears-free time (the call's total minus its linears: the floor that
    faster linears cannot go below) with the call's distance from it and the shares of linears / attention /
    the rest."""
    st = result["settings"]
    out = []
    for r in rows:
        prof = r.get("extra", {}).get("profile_ms")
        rep = result.get("engines", {}).get(r["path"])
        if not prof or not rep:
            continue
        total = prof["total"] or float("nan")
        stages = ", ".join(f"{k} {v:.2f} ms ({100 * v / total:.0f} %)" for k, v in prof.items()
                           if k != "total" and v >= 0.005)
        tokens = r["batch"] * r["seq"]
        lin_gop = 2 * sum(rep["nnz"].values()) * tokens / 1e9
        layers = len({k.split(".")[1] for k in rep["kinds"]})
        hidden = rep.get("hidden")
        line = (f"*{r['path']} profile* (ms per call): {stages}; total {total:.2f} ms. Linears: {lin_gop:.2f} GOP "
                "(2 x stored values x tokens)")
        if prof.get("linears"):
            line += f", {lin_gop / (prof['linears'] / 1e3) / st['threads']:.1f} GOP/s per core"
        if rep.get("matrix_bytes"):
            mb = rep["matrix_bytes"] / 1e6
            line += f", {mb:.1f} MB of matrices read per call"
            if prof.get("linears"):
                line += f" ({mb / 1e3 / (prof['linears'] / 1e3):.1f} GB/s)"
        if hidden and prof.get("attention"):
            att = 4 * r["seq"] ** 2 * hidden * layers * r["batch"] / 1e9
            line += f"; attention: {att:.2f} GFLOP, {att / (prof['attention'] / 1e3) / st['threads']:.1f} GFLOP/s per core"
        lin_ms, att_ms = prof.get("linears", 0.0), prof.get("attention", 0.0)
        rest = total - lin_ms
        if lin_ms and rest > 0:
            line += (f"; without its linears the call takes {rest:.2f} ms (its own linears-free time): the whole call "
                     f"is {total / rest:.2f}x that; shares: linears {100 * lin_ms / total:.0f} %, attention "
                     f"{100 * att_ms / total:.0f} %, the rest {100 * (rest - att_ms) / total:.0f} %")
        out.append(line + ".")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The whole report: title, command, environment, one table per batch size (with references,
    timing and physical limit), sizes, warnings."""
    env, st = result["environment"], result["settings"]
    out = [f"# {result.get('title', 'sparsebert bench')}", "", "```", result.get("command", ""), "```", ""]
    versions = ", ".join(f"{k} {env[k]}" for k in ("torch", "transformers", "onnxruntime", "openvino", "nncf",
                                                    "deepsparse", "sparsebert") if env.get(k))
    timed = st.get("timed", True)
    calls = (f"; warm-up {st['warmup']}, {st['min_iters']}-{st['max_iters']} timed calls per path (budget "
             f"{st['budget_s']} s per path)") if timed else ""
    out += [f"- CPU: {env['cpu_model']}, {env['cpu_count']} cores; flags: {' '.join(env['cpu_flags'])}; "
            f"torch CPU capability {env.get('torch_cpu_capability')}",
            f"- threads: {st['threads']}; sequence length {st['seq']}{calls}",
            f"- timing: {st.get('timing', 'one path after the other')}",
            f"- versions: {versions}; Python {env['python']}",
            f"- load average at start / end: {env.get('loadavg_start')} / {env.get('loadavg_end')}",
            f"- sparse kernel: {env.get('sparse_kernel')}"]
    if result.get("wall_s") is not None:
        out.append(f"- wall time: {result['wall_s']} s (the bench)"
                   + (f", {result['command_wall_s']} s (the whole command)" if result.get("command_wall_s") else ""))
    out.append("")
    if result.get("model_info"):
        out += [f"- model: {result['model_info']}", ""]
    summaries = result.get("summary", {})
    if result.get("accuracy"):
        out += accuracy_lines(result["accuracy"])
    for batch, rows in result["results"].items():
        if not timed:
            out += [f"## batch {batch} x {st['seq']} tokens: paths built (not timed)", "",
                    "Timing not measured (`--no-timing`: accuracy only).", "", build_table(rows), ""]
            out += _conversion_lines(result, int(batch) * st["seq"])
            continue
        summ = summaries.get(batch, {})
        out += [f"## batch {batch} x {st['seq']} tokens", "", batch_table(rows, summ), ""]
        for extra in (_references(summ), _timing(summ), _limit(summ), engine_profile_lines(result, rows)):
            if extra:
                out += extra + [""]
        out += bottom_lines(result, batch)
    if result.get("sizes"):
        s = result["sizes"]
        out += ["## size on disk", "", "| what | dense | compressed | ratio |", "|---|---:|---:|---:|"]
        for row in s:
            out.append(f"| {row['what']} | {row['dense_mb']:.2f} MB | {row['compressed_mb']:.2f} MB | {row['ratio']:.1f}x |")
        out.append("")
    if result.get("warnings"):
        out += ["## warnings", ""] + [f"- {WARN} {w}" for w in result["warnings"]] + [""]
    if timed:
        out += ["Ratios are speed-ups (> 1 = faster than the reference path). *vs fp32* is against the fastest fp32 "
                "path of the batch size (torch eager, ONNX Runtime plain or optimised, OpenVINO), *vs best dense* "
                "against the fastest path that ignores sparsity, *vs torch eager fp32* against `dense-fp32`. max abs "
                "Δ logits is against torch eager fp32 on the same inputs.", ""]
    return "\n".join(out)
