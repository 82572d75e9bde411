"""Collect studies/upstream: results/upstream_minilm.{json,md} (MiniLM-L6 and MPNet-base).

From the finished runs under runs/upstream (a run is finished when its ``summary.json`` exists; rows of the
committed JSON whose runs this machine lacks are kept, marked archived):

1. **Upstream encoders, zero-shot**: STS-B dev Spearman of the cosine of mean-pooled embeddings, no task
   training, for the dense encoder, one-shot magnitude pruning (results/upstream_oneshot_{minilm,mpnet}.json,
   studies/upstream/oneshot_sts.py) and the upstream-pruned encoder (``minilm-l6-sSS``, ``mpnet-sSS``, with
   ``-lrLR`` when run at another learning rate); retention = Spearman / dense Spearman (the issue's targets:
   >= 95 % at 90 % sparsity, >= 90 % at 95 %).
2. **Task cells, per seed**: dev metric of each cell (``seedN/[mpnet-]TASK-VARIANT``) with the majority floor,
   the teacher it was distilled from and GR against that teacher.
3. **The study's answer** (issue 32), per task: model x sparsity x variant (task-prune, transfer, small-dense)
   x head (cross-encoder, bi-encoder); student = mean ± sample std over seeds (n). The issue's rule: GR =
   (student - floor) / (teacher - floor) against the *better* dense model of the same family: the best of every
   dense teacher measured for that model and task, cross-encoder or bi-encoder (runs/upstream/[mpnet-]TASK-teacher,
   [mpnet-]TASK-bi-teacher; for MiniLM-L6 also the teachers of the cited studies); the row names the teacher's
   head. Where the local study has no MiniLM-L6 cross-encoder task-prune or small-dense cell, the rows of
   results/glue_knowledge.json and results/sst2_knowledge.json at the same task-step budget are cited, marked.
4. **Summary per model x sparsity**: mean (and lowest) GR over SST-2 (acc), MRPC (F1), STS-B (Pearson) and CoLA
   (MCC), taking per task the variant with the best GR, only when all four tasks have a row (else the missing
   tasks are listed).

Usage: .venv/bin/python studies/upstream/collect.py
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "upstream"
DATA = ROOT.parent / "shared" / "data" / "glue"
OUT = ROOT / "results" / "upstream_minilm"
#: one-shot magnitude pruning's zero-shot STS-B per model (studies/upstream/oneshot_sts.py), where measured
ONESHOT = {"minilm": ROOT / "results" / "upstream_oneshot_minilm.json",
           "mpnet": ROOT / "results" / "upstream_oneshot_mpnet.json"}
GLUE_KNOWLEDGE = ROOT / "results" / "glue_knowledge.json"
SST2_KNOWLEDGE = ROOT / "results" / "sst2_knowledge.json"
ME = "studies/upstream/collect.py"

#: model key -> label, upstream run prefix and task-cell / teacher prefix (studies/upstream/run.sh's names).
MODELS = {"minilm": {"label": "MiniLM-L6", "upstream": "minilm-l6-s", "prefix": ""},
          "mpnet": {"label": "MPNet-base", "upstream": "mpnet-s", "prefix": "mpnet-"}}
#: the study's grid: sparsities and variant kinds (a small-dense row is at the sparsity whose non-zeros it matches)
SPARSITIES = (0.9, 0.95, 0.97)
KINDS = ("task-prune", "transfer", "small-dense")
HEADS = ("cross-encoder", "bi-encoder")
#: the tasks of the issue's summary, in its order, with the metric each is judged by
SUMMARY_TASKS = ("sst2", "mrpc", "stsb", "cola")
#: run.sh's task-step budget (EPOCHS x steps of batch 32 per epoch: SST-2 3 x 2,105, the others 6 epochs): a
#: cited row must have the same budget
BUDGET_STEPS = {"sst2": 6315, "mrpc": 690, "stsb": 1080, "cola": 1608}
#: MPNet-base's budget (run.sh: SST-2 in 1 epoch, as studies/mpnet_sst2)
MPNET_BUDGET_STEPS = {**BUDGET_STEPS, "sst2": 2105}
#: the S4 Pareto run that measured studies/mpnet_sst2's MPNet-base SST-2 models in fp32 (the study's cited MPNet
#: rows): its row key -> (study kind, nominal sparsity); "mpnet-dense" is their teacher
S4_PARETO = ROOT / "results" / "s4_pareto_avx512vnni.json"
S4_MPNET = {"mpnet-s90": ("task-prune", 0.9), "mpnet-s95": ("task-prune", 0.95), "mpnet-s97": ("task-prune", 0.97),
            "small-dense-mpnet": ("small-dense", 0.95)}
#: variants of the knowledge studies cited, and the study kind each one is
CITED_KINDS = {"sparsebert": "task-prune", "small-dense": "small-dense"}
CITED_NOTE = ("from {src}, same task-step budget, cross-encoder, MiniLM-L6 ([CLS] pooling, the 6-epoch knowledge "
              "study's recipe; 1 thread, CPU-h = the cell's wall time)")
CITED_NOTE_MPNET = ("MPNet-base rows: from {src}, the fp32 dev accuracy of studies/mpnet_sst2's SST-2 models (same "
                    "1-epoch budget and lr 3e-5, cross-encoder, [CLS] pooling, trained on 1 thread with bf16 autocast on "
                    "the AVX-512 EPYC; their training time is in results/mpnet_sst2.md, not in that JSON)")


def cpu_of(summary: dict) -> str:
    """The CPU a run trained on (``environment.cpu``); runs from before that field get this machine's, marked."""
    from sparsebert.io import cpu_label

    return summary["environment"].get("cpu") or f"{cpu_label()} [collecting machine]"


def parse_variant(variant: str) -> tuple[str, str, float]:
    """``(kind, head, nominal sparsity)`` of a run.sh variant, e.g. ``bi-small-dense-95`` ->
    ``("small-dense", "bi-encoder", 0.95)``.

    Raises:
        ValueError: a variant that is not ``[bi-]KIND-SS`` with KIND in :data:`KINDS` and SS a number.
    """
    head = "bi-encoder" if variant.startswith("bi-") else "cross-encoder"
    kind, _, pct = variant.removeprefix("bi-").rpartition("-")
    if kind not in KINDS or not pct.isdigit():
        raise ValueError(f"variant {variant!r}: expected [bi-]KIND-SS with KIND one of {', '.join(KINDS)} and SS the "
                         "sparsity in percent (studies/upstream/run.sh's names)")
    return kind, head, int(pct) / 10 ** len(pct)


def split_lr(variant: str) -> tuple[str, str | None]:
    """A cell variant without run.sh's ``-lrLR`` suffix (CELLLR=LR), and LR as written: ``transfer-95-lr1e-4`` ->
    ``("transfer-95", "1e-4")``; ``("transfer-95", None)`` without one.

    Raises:
        ValueError: a suffix that is not a number.
    """
    base, sep, lr = variant.rpartition("-lr")
    if not sep:
        return variant, None
    try:
        float(lr)
    except ValueError:
        raise ValueError(f"variant {variant!r}: the learning rate after -lr is not a number") from None
    return base, lr


def parse_cell(name: str) -> tuple[str, str, str]:
    """``(model, task, variant)`` of a task-cell folder name, e.g. ``mpnet-sst2-transfer-95`` ->
    ``("mpnet", "sst2", "transfer-95")``; MiniLM-L6 cells have no prefix (``mrpc-transfer-95``)."""
    model = next((m for m, spec in MODELS.items() if spec["prefix"] and name.startswith(spec["prefix"])), "minilm")
    task, _, variant = name.removeprefix(MODELS[model]["prefix"]).partition("-")
    return model, task, variant


def default_floor(task_name: str) -> float | None:
    """The task's majority-class floor of the main dev metric in percent (STS-B and other regressions: 0), from the
    GLUE data next to the checkout; None when the data is not there."""
    from sparsebert.data.tasks import get_task
    from sparsebert.experiment.report import majority_baseline

    return 0.0 if get_task(task_name).is_regression else majority_baseline(task_name, str(DATA))


def _score(task_name: str, summary: dict, where: Path) -> float:
    """Main dev metric of ``summary`` in percent; a missing split or metric exits naming the file."""
    from sparsebert.data.tasks import get_task
    from sparsebert.metrics import main_metric

    task = get_task(task_name)
    split = task.eval_splits[0]
    try:
        return 100 * main_metric(task, summary["metrics"][split])
    except (KeyError, TypeError, ValueError) as e:
        sys.exit(f"{where / 'summary.json'}: no {task.main_metric!r} under metrics.{split} ({e!r})")


def _cpu_hours(summary: dict) -> float:
    """Training CPU time in hours: train seconds x the torch threads the run used."""
    threads = summary.get("environment", {}).get("threads") or summary["recipe"].get("threads") or 1
    return summary["train_seconds"] * threads / 3600


def upstream_rows(runs: Path = RUNS) -> list[dict]:
    """One row per finished upstream run (MiniLM-L6 and MPNet-base): sparsity, zero-shot Spearman (dense and
    pruned), steps, tokens, hours."""
    from sparsebert.experiment.collect import read_summary

    rows = []
    for model, spec in MODELS.items():
        for run in sorted(runs.glob(f"{spec['upstream']}*")):
            s = read_summary(run)
            if s is None or s.get("stage") != "upstream":
                continue
            zs, dense = s["metrics"].get("stsb_dev_zero_shot"), (s.get("dense_metrics") or {}).get("stsb_dev_zero_shot")
            if zs is None or dense is None:
                continue
            r = s["recipe"]
            rows.append({"model": model, "run": run.name, "sparsity": r["sparsity"],
                         "embedding_weight": r.get("embedding_weight", 0.0), "learning_rate": r.get("learning_rate"),
                         "hidden_weight": r.get("hidden_weight", 1.0), "attention_weight": r.get("attention_weight", 1.0),
                         "student_dropout": r.get("student_dropout"),
                         "criterion": r.get("criterion", "magnitude"), "scope": r.get("scope", "per-matrix"),
                         "pruning_events": r.get("pruning_events"),
                         "spearman": zs["spearman"], "pearson": zs["pearson"],
                         "dense_spearman": dense["spearman"], "retention": zs["spearman"] / dense["spearman"],
                         "steps": s["steps"], "batch_size": r["batch_size"], "max_length": r["max_length"],
                         "tokens_seen": s["tokens_seen"], "text": s["text"]["sources"],
                         "train_hours": s["train_seconds"] / 3600, "cpu_hours": _cpu_hours(s),
                         "history": [{"step": h["step"], "spearman": h["score"], "target_sparsity": h.get("target_sparsity")}
                                     for h in s["eval_history"]],
                         "cpu": cpu_of(s), "threads": r.get("threads")})
    return rows


def teacher_rows(runs: Path = RUNS) -> list[dict]:
    """One row per finished dense teacher under ``runs``: ``[mpnet-]TASK-teacher`` (cross-encoder) and
    ``[mpnet-]TASK-bi-teacher`` (bi-encoder)."""
    from sparsebert.data.tasks import get_task
    from sparsebert.experiment.collect import read_summary

    rows = []
    for run in sorted(runs.glob("*-teacher")):
        s = read_summary(run)
        if s is None:
            continue
        model, rest = ("minilm", run.name)
        for m, spec in MODELS.items():
            if spec["prefix"] and run.name.startswith(spec["prefix"]):
                model, rest = m, run.name.removeprefix(spec["prefix"])
        head = "bi-encoder" if rest.endswith("-bi-teacher") else "cross-encoder"
        task_name = rest.removesuffix("-teacher").removesuffix("-bi")
        rows.append({"model": model, "task": task_name, "head": head, "metric": get_task(task_name).main_metric,
                     "value": _score(task_name, s, run), "steps": s["steps"], "run": run.name,
                     "source": f"runs/upstream/{run.name}", "train_hours": s["train_seconds"] / 3600,
                     "cpu_hours": _cpu_hours(s), "cpu": cpu_of(s)})
    return rows


def task_rows(runs: Path = RUNS, floor: Callable[[str], float | None] = default_floor) -> list[dict]:
    """One row per finished task cell ``runs/seedN/[mpnet-]TASK-VARIANT``: floor, the teacher it distilled from
    (``[mpnet-]TASK-[bi-]teacher``; None when that run is not here) and GR against it, nominal sparsity, steps,
    CPU hours."""
    from sparsebert.data.tasks import get_task
    from sparsebert.experiment.collect import read_summary

    rows = []
    for run in sorted(runs.glob("seed*/*-*")):
        if run.name.startswith("."):  # a run still in progress (.NAME.partial) or its lock
            continue
        s = read_summary(run)
        if s is None:
            continue
        model, task_name, variant = parse_cell(run.name)
        try:
            base, cell_lr = split_lr(variant)
            kind, head, nominal = parse_variant(base)
        except ValueError as e:
            sys.exit(f"{run}: {e}")
        task = get_task(task_name)
        own = read_summary(runs / f"{MODELS[model]['prefix']}{task_name}-{'bi-' if head == 'bi-encoder' else ''}teacher")
        student = _score(task_name, s, run)
        teach = None if own is None else _score(task_name, own, run)
        fl = floor(task_name)
        gr = None if fl is None or teach is None else (student - fl) / (teach - fl)
        rows.append({"model": model, "task": task_name, "variant": variant, "kind": kind,
                     "head": s["recipe"].get("head", "cross-encoder"), "seed": int(run.parent.name[4:]),
                     "metric": task.main_metric, "floor": fl, "teacher": teach, "student": student,
                     "gain_retention": gr, "sparsity": s["sparsity"]["targets"]["sparsity"], "nominal_sparsity": nominal,
                     "encoder_nnz": s["sparsity"]["targets"]["nnz"], "steps": s["steps"],
                     "train_hours": s["train_seconds"] / 3600, "cpu_hours": _cpu_hours(s), "cpu": cpu_of(s),
                     "upstream": Path(s["recipe"]["student"]).name if kind == "transfer" and s["recipe"].get("student")
                     else None, "cell_lr": cell_lr, "learning_rate": s["recipe"].get("learning_rate"),
                     "run": f"{run.parent.name}/{run.name}"})
    return rows


def complete_row(r: dict) -> dict:
    """An archived task row of an older collector with the fields this one adds (model, kind, nominal sparsity)."""
    kind, _, nominal = parse_variant(split_lr(r["variant"])[0])
    return {"model": "minilm", "kind": kind, "nominal_sparsity": nominal, "encoder_nnz": None,
            "cpu_hours": r.get("train_hours"), **r}


def _need(row: dict, key: str, where: str):
    try:
        return row[key]
    except KeyError:
        sys.exit(f"{where}: no field {key!r}; restore the file from git or rerun its collector")


def cited_rows(local: list[dict], glue_knowledge: Path = GLUE_KNOWLEDGE, sst2_knowledge: Path = SST2_KNOWLEDGE,
               s4_pareto: Path = S4_PARETO) -> tuple[list[dict], list[dict]]:
    """The MiniLM-L6 task-pruning and small-dense rows of the knowledge studies at run.sh's task-step budget
    (:data:`BUDGET_STEPS`), and MPNet-base's SST-2 rows measured by the S4 Pareto run (:data:`S4_MPNET`, budget
    :data:`MPNET_BUDGET_STEPS`), for the (model, task, sparsity, kind) the local study has no cross-encoder cell
    of, and the dense teachers those studies measured (GR candidates). Missing files give no rows.

    Returns:
        ``(rows, teachers)``; each row has ``cited`` = the JSON's path relative to the repository.
    """
    have = {(r["model"], r["task"], round(r["nominal_sparsity"], 4), r["kind"]) for r in local
            if r["head"] == "cross-encoder"}
    rows, teachers = [], []

    def rel(p: Path) -> str:
        return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)

    def add(task: str, variant: str, where: str, sparsity: float, value: float, teacher: float, floor: float,
            seed: int, nnz, steps: int, wall: float | None, src: str, metric: str, model: str = "minilm",
            cpu: str | None = None) -> None:
        budget = MPNET_BUDGET_STEPS if model == "mpnet" else BUDGET_STEPS
        if variant not in CITED_KINDS or task not in SUMMARY_TASKS or steps != budget[task]:
            return
        if (model, task, round(sparsity, 4), CITED_KINDS[variant]) in have:
            return
        hours = None if wall is None else wall / 3600
        rows.append({"model": model, "task": task, "variant": variant, "kind": CITED_KINDS[variant],
                     "head": "cross-encoder", "seed": seed, "metric": metric, "floor": floor, "teacher": teacher,
                     "student": value, "gain_retention": (value - floor) / (teacher - floor), "sparsity": sparsity,
                     "nominal_sparsity": sparsity, "encoder_nnz": nnz, "steps": steps, "train_hours": hours,
                     "cpu_hours": hours, "cpu": cpu, "cited": src, "run": where})

    if glue_knowledge.is_file():
        src = rel(glue_knowledge)
        d = json.loads(glue_knowledge.read_text(encoding="utf-8"))
        for i, r in enumerate(_need(d, "rows", src)):
            where = f"{src} rows[{i}]"
            task, variant = _need(r, "task", where), _need(r, "variant", where)
            if task not in SUMMARY_TASKS:
                continue
            if variant == "dense-teacher":
                if any(t["task"] == task and t["value"] == r.get("value") for t in teachers):
                    continue  # the same teacher cell, listed once per grid that reused it
                teachers.append({"model": "minilm", "task": task, "head": "cross-encoder", "metric": r.get("metric"),
                                 "value": _need(r, "value", where), "steps": r.get("steps"),
                                 "run": r.get("source"), "source": src})
                continue
            add(task, variant, r.get("source", where), _need(r, "sparsity", where), _need(r, "value", where),
                _need(r, "teacher", where), _need(r, "floor", where), _need(r, "seed", where), r.get("encoder_nnz"),
                _need(r, "steps", where), _need(r, "wall_seconds", where), src, _need(r, "metric", where))
    if sst2_knowledge.is_file():
        src = rel(sst2_knowledge)
        d = json.loads(sst2_knowledge.read_text(encoding="utf-8"))
        floor = _need(d, "floor", src)
        for t in sorted(set(_need(d, "teachers", src))):
            teachers.append({"model": "minilm", "task": "sst2", "head": "cross-encoder", "metric": "accuracy",
                             "value": t, "steps": None, "run": None, "source": src})
        for i, r in enumerate(_need(d, "rows", src)):
            where = f"{src} rows[{i}]"
            add("sst2", _need(r, "variant", where), r.get("source", where), _need(r, "sparsity", where),
                _need(r, "accuracy", where), _need(r, "teacher", where), floor, _need(r, "seed", where),
                r.get("encoder_nnz"), _need(r, "steps", where), _need(r, "wall_s", where), src, "accuracy")
    if s4_pareto.is_file():
        src = rel(s4_pareto)
        d = json.loads(s4_pareto.read_text(encoding="utf-8"))
        floor = _need(d, "majority_floor", src)
        fp32 = {r["key"]: r for r in _need(d, "rows", src) if r.get("path") == "dense-fp32" and r.get("batch") == 1}
        if "mpnet-dense" in fp32:
            t = fp32["mpnet-dense"]
            teachers.append({"model": "mpnet", "task": "sst2", "head": "cross-encoder", "metric": "accuracy",
                             "value": _need(t, "accuracy", f"{src} rows[key=mpnet-dense]"),
                             "steps": t.get("train_steps"), "run": None, "source": src})
        for key, (kind, sparsity) in S4_MPNET.items():
            if key not in fp32:
                continue
            r, where = fp32[key], f"{src} rows[key={key},path=dense-fp32,batch=1]"
            variant = next(v for v, k in CITED_KINDS.items() if k == kind)
            add("sst2", variant, where, sparsity, _need(r, "accuracy", where), _need(r, "teacher_accuracy", where),
                floor, 42, r.get("params_nonzero_targets"), _need(r, "train_steps", where), None, src, "accuracy",
                model="mpnet", cpu=d.get("cpu"))
    return rows, teachers


def best_teachers(teachers: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (model, task) the better dense model of the family: the teacher row with the highest dev metric, any
    head (the issue's GR rule)."""
    best: dict[tuple[str, str], dict] = {}
    for t in teachers:
        k = (t["model"], t["task"])
        if k not in best or t["value"] > best[k]["value"]:
            best[k] = t
    return best


def answer_rows(rows: list[dict], teachers: list[dict]) -> list[dict]:
    """The study's answer: one row per (model, task, sparsity, kind, head) with the student's mean ± sample std
    over seeds and GR against the best dense teacher of that model and task (:func:`best_teachers`)."""
    best = best_teachers(teachers)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["task"], round(r["nominal_sparsity"], 4), r["kind"], r["head"], r.get("cited"),
                r.get("upstream"), r.get("cell_lr"))].append(r)
    out = []
    order = {m: i for i, m in enumerate(MODELS)}
    for (model, task, sp, kind, head, cited, upstream, cell_lr), rs in sorted(
            groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1], kv[0][2],
                                            KINDS.index(kv[0][3]) if kv[0][3] in KINDS else 99, kv[0][4])):
        vals = [r["student"] for r in rs]
        mean = statistics.fmean(vals)
        floors = [r["floor"] for r in rs if r["floor"] is not None]
        floor = floors[0] if floors else None
        ref = best.get((model, task))
        gr = None if floor is None or ref is None else (mean - floor) / (ref["value"] - floor)
        own = [r["teacher"] for r in rs if r["teacher"] is not None]
        nnz = [r["encoder_nnz"] for r in rs if r.get("encoder_nnz") is not None]
        cpus = sorted({r["cpu"] for r in rs if r.get("cpu")})
        out.append({"model": model, "task": task, "metric": rs[0]["metric"], "sparsity": sp, "kind": kind,
                    "head": head, "n": len(rs), "seeds": sorted(r["seed"] for r in rs), "mean": mean,
                    "std": statistics.stdev(vals) if len(vals) > 1 else None, "floor": floor,
                    "gr_teacher": None if ref is None else ref["value"],
                    "gr_teacher_head": None if ref is None else ref["head"],
                    "gr_teacher_source": None if ref is None else ref["source"],
                    "gain_retention": gr, "own_teacher": statistics.fmean(own) if own else None,
                    "encoder_nnz": round(statistics.fmean(nnz)) if nnz else None,
                    "steps": sorted({r["steps"] for r in rs}),
                    "cpu_hours": statistics.fmean(r["cpu_hours"] for r in rs) if all(
                        r.get("cpu_hours") is not None for r in rs) else None,
                    "cpu": ", ".join(cpus) or None, "cited": cited, "upstream": upstream, "cell_lr": cell_lr,
                    "archived": any(r.get("archived") for r in rs)})
    return out


#: the summary's two kinds of row: the sparse model (what the issue's targets judge) and its small dense twin
SUMMARY_GROUPS = {"sparse": ("task-prune", "transfer"), "small-dense": ("small-dense",)}


def summary_rows(answer: list[dict]) -> list[dict]:
    """Per model x sparsity of the grid and per group of :data:`SUMMARY_GROUPS` (``sparse``: task-prune or
    transfer, what the issue's targets judge; ``small-dense``: the dense model of equal non-zeros it must beat): per
    task of :data:`SUMMARY_TASKS` the answer row of the group with the best GR; mean and lowest GR over the four
    tasks when all four have one, else ``missing`` lists the tasks without a row."""
    out = []
    for model in MODELS:
        for sp in SPARSITIES:
            for group, kinds in SUMMARY_GROUPS.items():
                out.append(_summary_row(answer, model, sp, group, kinds))
    return out


def _summary_row(answer: list[dict], model: str, sp: float, group: str, kinds: tuple[str, ...]) -> dict:
    """One summary row: ``kinds``' best answer row per task at ``model`` x ``sp`` (:func:`summary_rows`)."""
    best = {}
    for r in answer:
        if ((r["model"], round(r["sparsity"], 4)) != (model, round(sp, 4)) or r["gain_retention"] is None
                or r["kind"] not in kinds):
            continue
        if r["task"] in SUMMARY_TASKS and (r["task"] not in best
                                           or r["gain_retention"] > best[r["task"]]["gain_retention"]):
            best[r["task"]] = r
    missing = [t for t in SUMMARY_TASKS if t not in best]
    grs = [best[t]["gain_retention"] for t in SUMMARY_TASKS if t in best]
    return {"model": model, "sparsity": sp, "group": group,
            "tasks": {t: {k: best[t].get(k) for k in ("model", "sparsity", "kind", "head", "mean",
                                                      "gain_retention", "cited", "upstream", "cell_lr")}
                      for t in SUMMARY_TASKS if t in best},
            "missing": missing, "mean_gr": None if missing else statistics.fmean(grs),
            "min_gr": None if missing else min(grs)}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def other_upstream(model: str, sparsity: float, upstream: str | None) -> str | None:
    """``upstream`` when it is not run.sh's default upstream run of ``model`` at ``sparsity`` (``mpnet-s95``), so
    that the tables name it; None otherwise."""
    return upstream if upstream and upstream != f"{MODELS[model]['upstream']}{round(100 * sparsity)}" else None


def variant_label(r: dict) -> str:
    """The answer row's variant as the tables print it: ``transfer``, ``small-dense``, ``task-prune †``; a transfer
    row from another upstream run than run.sh's default for its sparsity names it, and a cell run at another lr
    (CELLLR) gives it: ``transfer (mpnet-s95-lr3e-5, lr 1e-4)``."""
    up = other_upstream(r["model"], r["sparsity"], r.get("upstream"))
    extra = ([up] if up else []) + ([f"lr {r['cell_lr']}"] if r.get("cell_lr") else [])
    return (r["kind"] + (f" ({', '.join(extra)})" if extra else "") + (" †" if r.get("cited") else "")
            + (" *" if r.get("archived") else ""))


#: ``sparsebert upstream``'s default learning rate (an upstream row names any other)
UPSTREAM_LR = 1e-4


def recipe_label(row: dict) -> str:
    """What an upstream row changed from the default recipe (magnitude, per-matrix scope, embedding term off,
    lr :data:`UPSTREAM_LR`, the general corpus only), joined by `` + ``: ``"obs (10 events) + lr 3e-05"``,
    ``"text glue-train/no-stsb.jsonl"`` (text added to the general corpus); ``""`` for the default. Rows
    archived from before a field count as its default."""
    parts = []
    if row.get("criterion", "magnitude") != "magnitude":
        events = row.get("pruning_events")
        parts.append(row["criterion"] + (f" ({events} events)" if events else ""))
    if row.get("scope", "per-matrix") != "per-matrix":
        parts.append(f"{row['scope']} scope")
    if row.get("embedding_weight"):
        alone = not row.get("hidden_weight", 1.0) and not row.get("attention_weight", 1.0)
        parts.append("embedding term only" if alone else "embedding term")
    if row.get("student_dropout") is not None:
        parts.append(f"student dropout {row['student_dropout']:g}")
    lr = row.get("learning_rate")
    if lr is not None and lr != UPSTREAM_LR:
        parts.append(f"lr {lr:g}")
    text = [t for t in row.get("text") or ["general"] if t != "general"]
    if text:
        parts.append("text " + ", ".join(Path(t).parent.name + "/" + Path(t).name if "/" in t else t for t in text))
    return " + ".join(parts)


def markdown(data: dict) -> str:
    labels = {m: spec["label"] for m, spec in MODELS.items()}
    md = ["# Upstream (task-agnostic) pruning of MiniLM-L6 and MPNet-base, and sparse transfer", "",
          f"Generated by `{ME}` from runs/upstream (commands: studies/upstream/run.sh, `MODEL=mpnet` for MPNet-base). "
          "Only finished runs (with summary.json) appear. * = archived row (run not on this machine).", "",
          "## Zero-shot STS-B dev (Spearman of the cosine of mean-pooled embeddings, no task training)", "",
          "| model | sparsity | one-shot magnitude | upstream-pruned | retention of dense | steps x batch (max length) | "
          "tokens seen | train h | CPU |", "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    oneshot = {m: {round(r["sparsity"], 4): r for r in d["rows"]} for m, d in (data["oneshot"] or {}).items()}
    for m, one in oneshot.items():
        if 0.0 in one:
            md.append(f"| {labels[m]} | 0 (dense) | {one[0.0]['spearman']:.3f} | – | 100 % | – | – | – | – |")
    for r in data["upstream"]:
        model = r.get("model", "minilm")
        one = oneshot.get(model, {}).get(round(r["sparsity"], 4))
        label = f"{r['sparsity']:.2f}" + (f" + {r['recipe_label']}" if r["recipe_label"] else "")
        one_s = f"{one['spearman']:.3f} ({one['retention']:.0%})" if one else "–"
        md.append(f"| {labels[model]} (dense {r['dense_spearman']:.3f}) | {label}{' *' if r.get('archived') else ''} | "
                  f"{one_s} | {r['spearman']:.3f} | {r['retention']:.1%} | {r['steps']:,} x {r['batch_size']} "
                  f"({r['max_length']}) | {r['tokens_seen']:,} | {r['train_hours']:.2f} | {r['cpu']} |")
    if data["answer"]:
        md += ["", "## The study's answer: task pruning vs sparse transfer vs small dense, per task (dev)", "",
               "Same task-step budget in every row (studies/upstream/run.sh). Student = mean ± sample std over the n "
               "seeds. GR = (student − floor) / (teacher − floor) against the **better dense model of the same family**"
               ": the best dense teacher measured for that model and task, cross-encoder or bi-encoder (its head is "
               "named; *own teacher* is the one the row distilled from). Floor = always the majority class (STS-B: "
               "0). small-dense = the dense student cut to about the encoder non-zeros of the row's sparsity. "
               "Train CPU-h = training seconds x threads, per seed.", "",
               "† = " + CITED_NOTE.format(src="results/glue_knowledge.json or results/sst2_knowledge.json (row's "
                                               "source)") + "; " + CITED_NOTE_MPNET.format(src=S4_PARETO.relative_to(ROOT))
               + ": the local study has no such cell yet.", "",
               "| model | task (metric) | sparsity | variant | head | n | floor | teacher for GR | student | GR | "
               "own teacher | encoder non-zeros | steps | train CPU-h | CPU |",
               "|---|---|---:|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in data["answer"]:
            std = f" ± {r['std']:.1f}" if r["std"] is not None else ""
            floor = "–" if r["floor"] is None else f"{r['floor']:.1f}"
            ref = "–" if r["gr_teacher"] is None else f"{r['gr_teacher']:.1f} ({r['gr_teacher_head']})"
            own = "–" if r["own_teacher"] is None else f"{r['own_teacher']:.1f}"
            nnz = "–" if r["encoder_nnz"] is None else f"{r['encoder_nnz'] / 1e6:.2f} M"
            cpu_h = "–" if r["cpu_hours"] is None else f"{r['cpu_hours']:.2f}"
            cpu = r["cpu"] or (f"not recorded ({r['cited']})" if r["cited"] else "–")
            md.append(f"| {labels[r['model']]} | {r['task']} ({r['metric']}) | {100 * r['sparsity']:.0f} % | "
                      f"{variant_label(r)} | {r['head']} | {r['n']} | {floor} | {ref} | {r['mean']:.1f}{std} | "
                      f"{_pct(r['gain_retention'])} | {own} | {nnz} | {', '.join(f'{s:,}' for s in r['steps'])} | "
                      f"{cpu_h} | {cpu} |")
        md += ["", "## Summary: mean GR over SST-2 (acc), MRPC (F1), STS-B (Pearson), CoLA (MCC), best sparse variant per task",
               "", "Per task the row above with the best GR (variant, head) among the sparse variants (task-prune, "
               "transfer), which the issue's targets judge: MPNet-base at 95 % mean ≥ 80 %, no task under 60 %; "
               "MiniLM-L6 at 90 % mean ≥ 80 %; and, in its own row, the small dense model of equal non-zeros that the "
               "sparse model must beat.", "",
               "| model | sparsity | " + " | ".join(SUMMARY_TASKS) + " | mean GR | lowest GR |",
               "|---|---:|" + "---|" * len(SUMMARY_TASKS) + "---:|---:|"]
        for s in data["summary"]:
            if len(s["missing"]) == len(SUMMARY_TASKS):
                continue
            cells = [summary_cell(s["tasks"][t]) if t in s["tasks"] else "missing" for t in SUMMARY_TASKS]
            mean = _pct(s["mean_gr"]) if not s["missing"] else "– (missing: " + ", ".join(s["missing"]) + ")"
            twin = " (small dense, equal non-zeros)" if s.get("group") == "small-dense" else ""
            md.append(f"| {labels[s['model']]} | {100 * s['sparsity']:.0f} %{twin} | " + " | ".join(cells)
                      + f" | {mean} | {_pct(s['min_gr'])} |")
        empty = [f"{labels[s['model']]} {100 * s['sparsity']:.0f} %" for s in data["summary"]
                 if len(s["missing"]) == len(SUMMARY_TASKS) and s.get("group", "sparse") == "sparse"]
        if empty:
            md += ["", "No row yet: " + ", ".join(empty) + "."]
        md += ["", "## Dense teachers (GR candidates)", "",
               "| model | task (metric) | head | dev | steps | source | GR reference |", "|---|---|---|---:|---:|---|---|"]
        best = best_teachers(data["teachers"])
        for t in data["teachers"]:
            steps = "–" if t.get("steps") is None else f"{t['steps']:,}"
            mark = "**yes**" if best.get((t["model"], t["task"])) is t else ""
            md.append(f"| {labels[t['model']]} | {t['task']} ({t['metric']}) | {t['head']} | {t['value']:.1f} | {steps} "
                      f"| {t['source']}{' *' if t.get('archived') else ''} | {mark} |")
    if data["tasks"]:
        md += ["", "## Task cells of this study, per seed", "",
               "GR here against the teacher the cell distilled from (its own); floor = always the majority class "
               "(STS-B: 0).", "",
               "| model | task | variant | head | seed | metric | floor | own teacher | student | GR | sparsity | steps "
               "| train h |", "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in data["tasks"]:
            floor = "–" if r["floor"] is None else f"{r['floor']:.1f}"
            teach = "–" if r["teacher"] is None else f"{r['teacher']:.1f}"
            up = other_upstream(r["model"], r["nominal_sparsity"], r.get("upstream"))
            up = f" ({up})" if up else ""
            md.append(f"| {labels[r['model']]} | {r['task']} | {r['variant']}{up}{' *' if r.get('archived') else ''} | "
                      f"{r['head']} | {r['seed']} | {r['metric']} | {floor} | {teach} | {r['student']:.1f} | "
                      f"{_pct(r['gain_retention'])} | {r['sparsity']:.3f} | {r['steps']:,} | {r['train_hours']:.2f} |")
    return "\n".join(md) + "\n"


def summary_cell(t: dict) -> str:
    """``83.8 (94 %, transfer bi)``: the best row of a task in the summary table (a transfer row from another
    upstream run than the default names it, as :func:`variant_label`)."""
    head = " bi" if t["head"] == "bi-encoder" else ""
    kind = variant_label({**t, "cited": None, "archived": False})
    return f"{t['mean']:.1f} ({_pct(t['gain_retention'])}, {kind}{head}{' †' if t.get('cited') else ''})"


def build(ups: list[dict], teachers: list[dict], tasks: list[dict], oneshot: dict | None,
          glue_knowledge: Path = GLUE_KNOWLEDGE, sst2_knowledge: Path = SST2_KNOWLEDGE, s4_pareto: Path = S4_PARETO) -> dict:
    """The collected data (what the JSON holds) from the rows: cited rows and teachers added, answer and summary
    computed. ``oneshot``: ``{model: the JSON of oneshot_sts.py}`` for the models measured (or None)."""
    tasks = [complete_row(r) if "kind" not in r else r for r in tasks]
    ups = [{**r, "recipe_label": recipe_label(r)} for r in ups]
    cited, cited_teachers = cited_rows(tasks, glue_knowledge, sst2_knowledge, s4_pareto)
    all_teachers = teachers + cited_teachers
    answer = answer_rows(tasks + cited, all_teachers)
    return {"collector": ME, "upstream_default_learning_rate": UPSTREAM_LR, "oneshot": oneshot, "teachers": all_teachers, "tasks": tasks, "cited": cited,
            "answer": answer, "summary": summary_rows(answer),
            "upstream": sorted(ups, key=lambda r: (list(MODELS).index(r.get("model", "minilm")), r["sparsity"],
                                                   r["recipe_label"], r["steps"]))}


def main() -> int:
    from sparsebert.experiment.collect import archived_rows, write_outputs

    committed = OUT.with_suffix(".json")
    ups, teachers, tasks = upstream_rows(), teacher_rows(), task_rows()
    ups += archived_rows(committed, ME, [r["run"] for r in ups], key=lambda r: r["run"], rows=lambda d: d["upstream"])
    for r in ups:
        r.setdefault("model", "mpnet" if r["run"].startswith(MODELS["mpnet"]["upstream"]) else "minilm")
    teachers += archived_rows(committed, ME, [(r["model"], r["task"], r["head"]) for r in teachers],
                              key=lambda r: (r["model"], r["task"], r["head"]),
                              rows=lambda d: [t for t in d.get("teachers", []) if t["source"].startswith("runs/")])
    task_key = lambda r: (r.get("model", "minilm"), r["task"], r["variant"], r["seed"])  # noqa: E731
    tasks += archived_rows(committed, ME, [task_key(r) for r in tasks], key=task_key, rows=lambda d: d["tasks"])
    if not ups and not tasks:
        sys.exit("no finished run under runs/upstream and no committed results: run studies/upstream/run.sh first")
    oneshot = {m: json.loads(p.read_text()) for m, p in ONESHOT.items() if p.is_file()} or None
    data = build(ups, teachers, tasks, oneshot)
    write_outputs(OUT, data, markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
