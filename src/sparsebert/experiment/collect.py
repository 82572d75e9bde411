"""The shared pieces of the study collectors under ``studies/<study>/collect*.py``.

A study's run script trains into ``runs/`` (outside git, not kept across machines); its collector reads
those runs and writes ``results/<name>.json`` (the source) and ``results/<name>.md`` (generated from it).
Because a machine rarely has every run, a collector keeps the rows of the committed JSON whose runs it
cannot see, marked ``"archived": true``, instead of dropping them: a cell run on another machine adds
to the table rather than replacing it. This module holds that logic once:

- :func:`read_committed`: the committed JSON (or ``None``), a one-line error naming the file when it is
  not the collector's format;
- :func:`archived_rows`: its rows whose key no live run has, marked archived;
- :func:`read_summary`: a finished run's ``summary.json`` (``None`` while the run is missing or unfinished);
- :func:`write_outputs`: the JSON and the Markdown, each written atomically (a crash leaves the old pair).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from sparsebert.io import write_json_atomic, write_text_atomic

__all__ = ["archived_rows", "read_committed", "read_summary", "write_outputs"]


def read_committed(path: str | Path, collector: str, extract: Callable[[Any], Any] = lambda d: d) -> Any | None:
    """The collector's committed JSON at ``path`` passed through ``extract``, or ``None`` when there is no file.

    Args:
        path: the committed ``results/<name>.json``.
        collector: the collector's path, named in the error (e.g. ``studies/glue_ablation/collect.py``).
        extract: picks what the caller needs (``lambda d: d["rows"]``); a ``KeyError`` / ``TypeError`` in it
            means the file is not this collector's output.

    Raises:
        SystemExit: the file is not valid JSON or ``extract`` fails on it; the message names the file and says
            to restore it from git.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return extract(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:
        sys.exit(f"{path}: not a {collector} result ({e!r}); restore it from git")


def archived_rows(path: str | Path, collector: str, live: Iterable[Hashable], key: Callable[[dict], Hashable],
                  rows: Callable[[Any], list[dict]] = lambda d: d["rows"]) -> list[dict]:
    """The committed rows whose ``key`` is not among ``live`` (the cells this machine's runs hold), each marked
    ``"archived": true``, in their committed order; ``[]`` without a committed file.

    Args:
        path: the committed ``results/<name>.json``.
        collector: the collector's path, named in the error.
        live: the keys of the rows collected from runs on this machine.
        key: a row's cell, e.g. ``lambda r: (r["task"], r["variant"])``.
        rows: the row list of the committed JSON (default: its ``"rows"``).

    Raises:
        SystemExit: as :func:`read_committed` (also when a row lacks a field ``key`` reads).
    """
    live = set(live)
    return read_committed(path, collector,
                          lambda d: [{**r, "archived": True} for r in rows(d) if key(r) not in live]) or []


def read_summary(run: str | Path) -> dict | None:
    """``run/summary.json`` of a finished run (``sparsebert finetune`` / ``prune``), or ``None`` when the run
    folder or its summary is missing (not trained on this machine, or stopped before the end)."""
    path = Path(run) / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_outputs(stem: str | Path, data: Any, markdown: str, echo: bool = True) -> None:
    """Write ``stem.json`` (``data``, indented) and ``stem.md`` (``markdown`` as given), each atomically, and
    print the Markdown unless ``echo`` is false. ``stem`` is e.g. ``ROOT / "results" / "glue_ablation"``."""
    stem = Path(stem)
    write_json_atomic(stem.with_name(stem.name + ".json"), data)
    write_text_atomic(stem.with_name(stem.name + ".md"), markdown)
    if echo:
        print(markdown.rstrip("\n"))
