"""The rich tables the command line prints (key/value summaries and metrics)."""

from __future__ import annotations

from rich.table import Table


def kv_table(title: str, rows: list[tuple[str, str]] = ()) -> Table:
    """A two-column (quantity, value) table with ``rows`` (more can be added with ``add_row``)."""
    table = Table(title=title)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def metrics_table(title: str, metrics: dict[str, dict[str, float]]) -> Table:
    """One row per (split, metric) of ``{split: {metric: value}}``, values to 4 decimals."""
    table = Table(title=title)
    table.add_column("split")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for split, values in metrics.items():
        for k, v in values.items():
            table.add_row(split, k, f"{v:.4f}")
    return table
