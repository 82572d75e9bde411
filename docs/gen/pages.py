"""Pages the docs site generates at build time (run by mkdocs-gen-files; nothing here is committed output):

- ``reference/cli.md``: every ``sparsebert`` command with its usage, options (grouped by help panel), types and
  defaults, read from the Typer app's Click command tree (so a renamed or removed option changes the page);
- ``reference/recipe-defaults.md``: every field of the finetune and prune recipes with its default and
  description, read from the pydantic models in ``sparsebert.recipe``;
- ``results/index.md``: the accuracy and speed tables of README (``docs/gen/tables.py``) and a list of every
  committed result, and ``results/data/...``: each ``results/`` Markdown page, plot and JSON file as it is
  committed (the collectors generate the Markdown from the JSON);
- every page under ``docs/`` that references results (``{{ r("FILE.json", "PATH", ".1f") }}``,
  ``docs/gen/refs.py``; the findings, speed and history pages and some guides): rendered in place, each
  reference replaced by the value the committed JSON holds, so no measured number is typed into the docs by
  hand. A broken reference fails the build, naming the page, line, file and path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import refs  # noqa: E402  (docs/gen/refs.py)
import tables  # noqa: E402  (docs/gen/tables.py)


def _plain(text: str | None) -> str:
    """Help text without Rich markup, on one line per paragraph, with table pipes escaped."""
    if not text:
        return ""
    try:
        from rich.text import Text

        text = Text.from_markup(text).plain
    except Exception:  # noqa: BLE001 - text that is not Rich markup stays as it is
        pass
    return text.strip().replace("|", "\\|")


# Typer builds on Click (recent Typer vendors its own copy), so the command tree is read by duck typing.
def _is_argument(p) -> bool:
    return getattr(p, "param_type_name", "") == "argument"


def _is_flag(p) -> bool:
    return bool(getattr(p, "is_flag", False))


def _default(p) -> str:
    if _is_flag(p) and p.secondary_opts:
        return f"`{p.opts[0] if p.default else p.secondary_opts[0]}`"
    d = p.default
    if d is None or callable(d) or d == () or (_is_flag(p) and not d):
        return "–"
    if isinstance(d, (list, tuple)):
        d = " ".join(map(str, d))
    if hasattr(d, "value"):  # an Enum
        d = d.value
    return f"`{d}`"


def _type(p) -> str:
    import enum
    import typing

    if _is_flag(p):
        return "flag"
    t = getattr(p, "type", None)
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if ann is not None and typing.get_origin(ann) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), ann)
    choices = getattr(t, "choices", None)
    if not choices and isinstance(ann, type) and issubclass(ann, enum.Enum):
        choices = [m.value for m in ann]
    if not choices and typing.get_origin(ann) is typing.Literal:
        choices = list(typing.get_args(ann))
    if choices:
        return " \\| ".join(f"`{c}`" for c in choices)
    if getattr(p, "metavar", None):
        return p.metavar
    if ann is not None:
        return getattr(ann, "__name__", str(ann)).lower()
    return getattr(t, "name", "text").lower()


def _command(name: str, cmd, parent) -> list[str]:
    ctx = cmd.context_class(cmd, info_name=name, parent=parent)
    md = [f"## `{ctx.command_path}`", ""]
    help_text = (cmd.help or "").split("\f")[0]
    if help_text:
        md += [_plain(help_text), ""]
    md += ["```", cmd.get_usage(ctx).replace("Usage: ", ""), "```", ""]
    panels: dict[str, list] = {}
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name in {"help"}:
            continue
        panel = getattr(p, "rich_help_panel", None) or ("Arguments" if _is_argument(p) else "Options")
        panels.setdefault(panel, []).append(p)
    for panel, params in panels.items():
        md += [f"**{panel}**", "", "| option | type | default | description |", "|---|---|---|---|"]
        for p in params:
            if _is_argument(p):
                names = f"`{(getattr(p, 'metavar', None) or p.name).upper()}`" + ("" if p.required else " (optional)")
            else:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            req = " **required**" if p.required and not _is_argument(p) else ""
            md.append(f"| {names}{req} | {_type(p)} | {_default(p)} | {_plain(getattr(p, 'help', None))} |")
        md.append("")
    return md


def cli_reference() -> str:
    import typer

    from sparsebert.cli import app

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="sparsebert")
    md = ["# Command line reference", "",
          "Generated from the `sparsebert` Typer app when the docs are built (`docs/gen/pages.py`): every command, "
          "its options grouped as `--help` groups them, their types and defaults. `python -m sparsebert` is the "
          "same command line.", "", "```", group.get_usage(ctx).replace("Usage: ", ""), "```", ""]
    if group.help:
        md += [_plain(group.help.split("\f")[0]), ""]
    names = group.list_commands(ctx) if hasattr(group, "list_commands") else []
    if not names:
        raise SystemExit("docs/gen/pages.py: the sparsebert app lists no commands")
    md += ["| command | what it does |", "|---|---|"]
    for n in names:
        c = group.get_command(ctx, n)
        md.append(f"| [`{n}`](#sparsebert-{n}) | {_plain(c.get_short_help_str(limit=120))} |")
    md.append("")
    for n in names:
        md += _command(n, group.get_command(ctx, n), ctx)
    return "\n".join(md) + "\n"


def recipe_defaults() -> str:
    from pydantic_core import PydanticUndefined

    from sparsebert import recipe

    md = ["# Recipe fields and defaults", "",
          "Generated from the pydantic models in `sparsebert.recipe` when the docs are built. Every field is a "
          "YAML key of `--recipe FILE` and, with dashes, a command-line option (`learning_rate` is "
          "`--learning-rate`); `sparsebert prune --dry-run` prints the resolved recipe of a run.", ""]
    models = [getattr(recipe, n) for n in ("FinetuneRecipe", "PruneRecipe", "UpstreamRecipe") if hasattr(recipe, n)]
    for model in models:
        md += [f"## `{model.__name__}`", "", _plain((model.__doc__ or "").strip().split("\n\n")[0]), "",
               "| field | default | description |", "|---|---|---|"]
        for name, f in model.model_fields.items():
            d = f.default
            if d is PydanticUndefined:
                d = "required" if f.default_factory is None else f.default_factory()
                d = d if d == "required" else f"`{d!r}`"
            else:
                d = f"`{d!r}`"
            md.append(f"| `{name}` | {d} | {_plain(f.description)} |")
        md.append("")
    return "\n".join(md) + "\n"


def modules_page() -> str:
    """Every module of src/sparsebert, in the package's order, with the first line of its docstring (read with
    ``ast``, nothing is imported)."""
    import ast

    src = ROOT / "src"
    md = ["# Modules", "", "Generated from `src/sparsebert` when the docs are built: every module and the first line "
          "of its docstring.", "", "| module | what it is |", "|---|---|"]
    for path in sorted((src / "sparsebert").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except SyntaxError:
            doc = "(does not parse)"
        first = " ".join(doc.strip().split("\n\n")[0].split())
        md.append(f"| `{name}` | {_plain(first) or '–'} |")
    return "\n".join(md) + "\n"


def results_pages() -> None:
    """Copy every committed result (Markdown, plots, JSON) under results/data/ and write results/index.md."""
    files = sorted(p for p in RESULTS.rglob("*") if p.is_file() and p.suffix in {".md", ".png", ".json", ".yaml"}
                   and "__pycache__" not in p.parts)
    for p in files:
        rel = p.relative_to(RESULTS)
        with mkdocs_gen_files.open(f"results/data/{rel.as_posix()}", "wb") as f:
            f.write(p.read_bytes())
    pages = [p.relative_to(RESULTS).as_posix() for p in files if p.suffix == ".md"]
    groups: dict[str, list[str]] = {}
    for rel in pages:
        key = re.split(r"[_/]", rel, maxsplit=1)[0]
        groups.setdefault(key, []).append(rel)
    md = ["# Results", "",
          "Every number on these pages is generated from `results/*.json` when the docs are built: the two tables "
          "below by `docs/gen/tables.py` (the same tables as README), every page under *All results* is the "
          "Markdown that the study's collector or `sparsebert bench` wrote beside its JSON. What the numbers say, "
          "study by study: [Findings](findings.md).", "",
          "## Accuracy at 95 % (and STS-B at 90 %)", "",
          "Floor = the dev metric of always predicting the majority class; gain retention = (student − floor) / "
          "(teacher − floor).", "", tables.accuracy_block(RESULTS, "data/"), "",
          "## Speed: the native engine against the best dense paths", "",
          "Each row is one `sparsebert bench` run, every path of a batch size timed interleaved, seq 128, synthetic "
          "BERT-base with random weights magnitude-pruned.", "", tables.speed_block(RESULTS, "data/"), "",
          "## All results", ""]
    for key, rels in sorted(groups.items()):
        md.append(f"- **{key}**: " + ", ".join(f"[{r.removesuffix('.md')}](data/{r})" for r in rels))
    with mkdocs_gen_files.open("results/index.md", "w") as f:
        f.write("\n".join(md) + "\n")


def template_pages() -> None:
    """Render every docs page that holds ``{{ ... }}`` references to results/*.json in place (same path, so the
    nav is unchanged; an "edit this page" link points at the template).

    Raises:
        refs.NumberError: a reference is broken (the message names the page, line, file and path); the build
            stops.
    """
    for path in refs.template_pages():
        rel = path.relative_to(refs.DOCS).as_posix()
        text = refs.render(path.read_text(encoding="utf-8"), rel)
        with mkdocs_gen_files.open(rel, "w") as f:
            f.write(text)
        mkdocs_gen_files.set_edit_path(rel, rel)


with mkdocs_gen_files.open("reference/cli.md", "w") as f:
    f.write(cli_reference())
with mkdocs_gen_files.open("reference/recipe-defaults.md", "w") as f:
    f.write(recipe_defaults())
with mkdocs_gen_files.open("reference/modules.md", "w") as f:
    f.write(modules_page())
results_pages()
template_pages()
