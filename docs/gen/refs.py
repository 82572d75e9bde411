"""Numbers in the docs that come from ``results/*.json``: a page references a value instead of typing it.

A reference is a ``{{ ... }}`` expression on one line of a Markdown page; ``docs/gen/pages.py`` renders every
page under ``docs/`` that holds one when the site is built (the page stays where it is, so the nav does not
change), and ``tests/test_docs_numbers.py`` renders them all and looks for measured numbers typed by hand.

    {{ r("demo_ablation.json", "rows[variant=hardness].mean", ".3f") }}     -> 0.772
    {{ pct("demo_ablation.json", "rows[variant=hardness].gain_retention") }} %   -> 86 %
    {{ use("glue_ablation.json", "rows[task=stsb,variant=s90]") }}           (a line of its own; renders nothing)
    {{ r(".mean", ".1f") }} ({{ pct(".gain_retention") }} %)                 -> 46.5 (55 %)
    {{ f(v(".teacher") - v(".mean"), ".1f") }}                               -> arithmetic on values
    {{ table("demo_ablation.md", 1) }}                                       (a line of its own: a whole table)
    {{ block("speed") }}                                                     (one of docs/gen/tables.py's tables)

Addressing a value: ``FILE`` is a path under ``results/`` ending in ``.json``; ``PATH`` walks into it:

- ``key`` or ``.key``: a key of an object (``rows``, ``summary.1``, ``seed42``); ``["any key"]`` quotes a key
  that holds ``.``, ``[``, ``]`` or ``=``;
- ``[3]``: the element of a list at that index (negative counts from the end); on an object, the key ``"3"``;
- ``[field=value]``, ``[a=x,b=y]``: the one element of a list whose fields have these values (numbers compare
  as numbers, to 1e-6 relative: ``[sparsity=0.95]`` finds 0.9499997; a value holding ``,`` or ``]`` is
  quoted: ``[config="a, b"]``); none or more than one is an error; ``[a=x,*]`` takes every element that
  matches (at least one), for ``vs()``;
- a ``PATH`` starting with ``.`` (or empty) continues the prefix that the page's last ``use(FILE, PREFIX)`` set
  (``.["key"]`` quotes a key there); ``r(PATH, ...)`` without a file reads the file of the last ``use``.

Functions:

- ``r(ref..., fmt)``: a number formatted with a Python format spec (``.3f``, ``,.1f``, ``+.1f``; ints default
  to ``,``; ``.1se`` is scientific with the shortest exponent, ``4.7e-4``);
- ``pct(ref..., digits=0)``: 100 x a fraction, with ``digits`` decimals (the page types the ``%``);
- ``v(ref...)``: the raw number, for arithmetic (``+ - * /``, ``abs``, ``min``, ``max``), formatted by
  ``f(number, fmt)``; ``vs(ref...)``: the numbers of a ``[...,*]`` selection, for ``mean``, ``std`` (sample,
  n - 1), ``min`` and ``max``;
- ``s(ref...)``: a text value;
- ``use(FILE, PREFIX="")``: sets the file and prefix of the references after it (a line holding only
  ``use()`` references is dropped from the page);
- ``table(MD, n, columns=0, bold="")``: the n-th table of ``results/MD`` as the collector wrote it (its first
  ``columns`` columns; the row whose first cell is ``bold`` in bold), on a line of its own;
- ``block(NAME)``: one of ``docs/gen/tables.py``'s tables (``demo``, ``accuracy``, ``upstream``, ``speed``).

A negative number is written with the typographic minus (−), as the pages write it.

Errors (:class:`NumberError`) name the page, the line, the file and the path: an unknown file or key, an index
out of range, a selection that matches no or several elements, a missing value (``null``, NaN) or a value of
the wrong type. Nothing renders ``None`` or an empty cell.

    .venv/bin/python docs/gen/refs.py --check              # render every page; exit 1 on a broken reference
    .venv/bin/python docs/gen/refs.py --scan               # list hand-typed numbers that a results/*.json holds
    .venv/bin/python docs/gen/refs.py --find 82.7 --in glue_ablation.json   # where a printed number is
"""

from __future__ import annotations

import argparse
import ast
import functools
import itertools
import json
import math
import operator
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
DOCS = ROOT / "docs"
REFERENCE = re.compile(r"\{\{(.*?)\}\}")
FENCE = re.compile(r"^\s*(```|~~~)")
MINUS = "\u2212"


class NumberError(ValueError):
    """A reference that cannot be rendered; the message names the page, line, file and path."""


# --- reading a value -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _load_cached(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load(file: str, results: Path = RESULTS) -> Any:
    """The parsed JSON of ``results/FILE`` (cached).

    Args:
        file: a path under ``results``, ending in ``.json`` (``demo_ablation.json``, ``s4_pareto/mpnet-s95.json``).
        results: the results folder.

    Returns:
        The parsed JSON document.

    Raises:
        NumberError: the file is not a ``.json`` file under ``results`` or does not exist.
    """
    if not file.endswith(".json"):
        raise NumberError(f"{file}: not a .json file")
    path = (results / file).resolve()
    if results.resolve() not in path.parents or not path.is_file():
        raise NumberError(f"{file}: no such file under {results}")
    return _load_cached(str(path))


_STEP = re.compile(r"""\.?\[\s*"((?:[^"\\]|\\.)*)"\s*\]|\.?\[([^\]]*)\]|\.?([^.\[\]]+)""")


def parse_path(path: str) -> list[tuple[str, Any]]:
    """The steps of a PATH: ``("key", name)``, ``("index", n)`` or ``("select", [(field, value), ...])``.

    Args:
        path: a path as the module docstring describes it (``rows[variant=hardness].mean``).

    Returns:
        The steps in order (an empty path has none).

    Raises:
        NumberError: the path does not parse (an empty key, a ``[...]`` that is neither an index nor conditions).
    """
    steps: list[tuple[str, Any]] = []
    pos, text = 0, path.strip()
    while pos < len(text):
        m = _STEP.match(text, pos)
        if not m or m.end() == pos:
            raise NumberError(f"path {path!r}: cannot parse at {text[pos:]!r}")
        quoted, bracket, key = m.groups()
        if quoted is not None:
            steps.append(("key", quoted.replace('\\"', '"')))
        elif bracket is not None:
            b = bracket.strip()
            if re.fullmatch(r"-?\d+", b):
                steps.append(("index", int(b)))
            else:
                conds = []
                for part in _split_conditions(b):
                    if part.strip() == "*":
                        conds.append(("*", "*"))
                        continue
                    field, eq, value = part.partition("=")
                    if not eq or not field.strip():
                        raise NumberError(f"path {path!r}: [{bracket}] is neither an index nor field=value conditions")
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                        value = value[1:-1]
                    conds.append((field.strip(), value))
                steps.append(("select", conds))
        else:
            if not key.strip():
                raise NumberError(f"path {path!r}: empty key")
            steps.append(("key", key.strip()))
        pos = m.end()
    return steps


def _split_conditions(text: str) -> list[str]:
    parts, cur, quote = [], "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def _matches(field_value: Any, wanted: str) -> bool:
    if isinstance(field_value, bool):
        return str(field_value).lower() == wanted.lower()
    if isinstance(field_value, (int, float)):
        try:
            w = float(wanted)
        except ValueError:
            return False
        return math.isclose(float(field_value), w, rel_tol=1e-6, abs_tol=1e-12)
    return str(field_value) == wanted


def lookup(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data``.

    Args:
        data: a parsed JSON document (or part of one).
        path: a PATH (see the module docstring), without ``*``.

    Returns:
        Whatever is there (a number, string, list or object).

    Raises:
        NumberError: a key is missing, an index is out of range, a selection matches no or several elements, or a
            step meets a value it cannot walk into; the message names the step.
    """
    found = lookup_all(data, path)
    if len(found) != 1:
        raise NumberError(f"{path}: a [...,*] selection gives several values; read them with vs()")
    return found[0]


def lookup_all(data: Any, path: str) -> list[Any]:
    """The values at ``path`` in ``data``, where a selection ending in ``*`` (``[task=cola,*]``) takes every
    element that matches (at least one) and the rest of the path applies to each.

    Args:
        data: a parsed JSON document (or part of one).
        path: a PATH (see the module docstring).

    Returns:
        The values, in document order (one value for a path without ``*``).

    Raises:
        NumberError: as :func:`lookup`; a ``*`` selection that matches nothing.
    """
    curs, done = [data], ""
    for kind, arg in parse_path(path):
        here = f"at {done or '(top)'!s}"
        nxt = []
        for cur in curs:
            if kind == "key":
                if not isinstance(cur, dict):
                    raise NumberError(f"{here}: {type(cur).__name__} has no key {arg!r}")
                if arg not in cur:
                    raise NumberError(f"{here}: no key {arg!r} (keys: {', '.join(map(str, list(cur)[:20]))})")
                nxt.append(cur[arg])
            elif kind == "index":
                if isinstance(cur, dict):
                    if str(arg) not in cur:
                        raise NumberError(f"{here}: no key {str(arg)!r}")
                    nxt.append(cur[str(arg)])
                elif isinstance(cur, list):
                    if not -len(cur) <= arg < len(cur):
                        raise NumberError(f"{here}: index {arg} out of range (length {len(cur)})")
                    nxt.append(cur[arg])
                else:
                    raise NumberError(f"{here}: {type(cur).__name__} cannot be indexed")
            else:
                if not isinstance(cur, list):
                    raise NumberError(f"{here}: a selection needs a list, found {type(cur).__name__}")
                many = ("*", "*") in arg
                conds = [c for c in arg if c != ("*", "*")]
                hits = [e for e in cur if isinstance(e, dict)
                        and all(f in e and _matches(e[f], w) for f, w in conds)]
                sel = ",".join(f"{f}={w}" for f, w in arg)
                if not hits:
                    raise NumberError(f"{here}: no element with [{sel}]")
                if len(hits) > 1 and not many:
                    raise NumberError(f"{here}: [{sel}] is ambiguous ({len(hits)} elements match; add a field)")
                nxt.extend(hits)
        if kind == "key":
            done = f"{done}.{arg}" if done else arg
        elif kind == "index":
            done += f"[{arg}]"
        else:
            done += "[" + ",".join(f"{f}={w}" if f != "*" else "*" for f, w in arg) + "]"
        curs = nxt
    return curs


def number(value: Any) -> float | int:
    """``value`` if it is a finite number.

    Args:
        value: a value read from a JSON document.

    Returns:
        ``value``, unchanged.

    Raises:
        NumberError: ``value`` is missing (``None``), NaN or infinite, a bool, or not a number.
    """
    if value is None:
        raise NumberError("missing value (null)")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NumberError(f"not a number: {value!r}"[:120])
    if not math.isfinite(value):
        raise NumberError(f"missing value ({value})")
    return value


def fmt(value: float | int, spec: str | None = None) -> str:
    """``value`` formatted with the Python format ``spec`` (ints default to ``,``, floats to ``g``); a negative
    number gets the typographic minus, and a rounded-away sign (``-0.0``) is dropped.

    Args:
        value: the number.
        spec: a Python format spec; one ending in ``se`` is scientific with the shortest exponent
            (``.1se``: ``4.7e-4``).

    Returns:
        The text as a page prints it.

    Raises:
        NumberError: ``value`` is not a finite number or ``spec`` is not a valid format spec.
    """
    value = number(value)
    if spec is None:
        spec = "," if isinstance(value, int) else "g"
    short = spec.endswith("se")  # scientific with the shortest exponent: 4.7e-4, not 4.7e-04
    try:
        text = format(value, spec[:-2] + "e" if short else spec)
    except ValueError as e:
        raise NumberError(f"format {spec!r}: {e}") from None
    if short:
        text = re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)
    if text.startswith("-") and not re.search(r"[1-9]", text):
        text = text[1:]
    return MINUS + text[1:] if text.startswith("-") else text


# --- rendering a page ----------------------------------------------------------------------------------------


@dataclass
class _Context:
    page: str
    results: Path
    file: str | None = None
    prefix: str = ""
    line: int = 0


def _join(prefix: str, path: str) -> str:
    if path.startswith(".") or path == "":
        return prefix + path if path != "." else prefix
    return path


class _Evaluator:
    """Evaluates one ``{{ ... }}`` expression: calls of the functions below on literals, and arithmetic."""

    BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def __init__(self, ctx: _Context):
        self.ctx = ctx
        self.funcs = {"r": self.r, "pct": self.pct, "v": self.v, "vs": self.vs, "f": self.f, "s": self.s,
                      "use": self.use, "table": self.table, "block": self.block, "abs": abs, "min": self.min,
                      "max": self.max, "mean": self.mean, "std": self.std}

    # addressing: (FILE, PATH, ...) or (PATH, ...) with the file of the last use()
    def _ref(self, args: tuple) -> tuple[str, str, tuple]:
        if args and isinstance(args[0], str) and args[0].endswith(".json"):
            if len(args) < 2 or not isinstance(args[1], str):
                raise NumberError(f"{args[0]}: a path must follow the file")
            return args[0], args[1], args[2:]
        if not args or not isinstance(args[0], str):
            raise NumberError("a reference needs a PATH (or FILE, PATH)")
        if self.ctx.file is None:
            raise NumberError(f"{args[0]!r}: no file (name one, or use(FILE) earlier on the page)")
        return self.ctx.file, _join(self.ctx.prefix, args[0]), args[1:]

    def _get(self, file: str, path: str) -> Any:
        try:
            return lookup(load(file, self.ctx.results), path)
        except NumberError as e:
            raise NumberError(f"{file}: {path}: {e}") from None

    def vs(self, *args):
        file, path, rest = self._ref(args)
        if rest:
            raise NumberError(f"{file}: {path}: vs() takes no format")
        try:
            return [number(x) for x in lookup_all(load(file, self.ctx.results), path)]
        except NumberError as e:
            raise NumberError(f"{file}: {path}: {e}") from None

    @staticmethod
    def _numbers(args: tuple) -> list:
        vals = [x for a in args for x in (a if isinstance(a, list) else [a])]
        if not vals or any(isinstance(x, str) for x in vals):
            raise NumberError("needs numbers (v() or vs(), not r())")
        return vals

    def mean(self, *args):
        vals = self._numbers(args)
        return sum(vals) / len(vals)

    def std(self, *args):
        """The sample standard deviation (n - 1) of two or more numbers."""
        vals = self._numbers(args)
        if len(vals) < 2:
            raise NumberError(f"std() of {len(vals)} value(s)")
        m = sum(vals) / len(vals)
        return math.sqrt(sum((x - m) ** 2 for x in vals) / (len(vals) - 1))

    def min(self, *args):
        return min(self._numbers(args))

    def max(self, *args):
        return max(self._numbers(args))

    def v(self, *args):
        file, path, rest = self._ref(args)
        if rest:
            raise NumberError(f"{file}: {path}: v() takes no format")
        try:
            return number(self._get(file, path))
        except NumberError as e:
            raise NumberError(f"{file}: {path}: {e}" if not str(e).startswith(file) else str(e)) from None

    def r(self, *args, fmt_: str | None = None):
        file, path, rest = self._ref(args)
        if len(rest) > 1:
            raise NumberError(f"{file}: {path}: r() takes one format after the path")
        spec = rest[0] if rest else fmt_
        try:
            return fmt(number(self._get(file, path)), spec)
        except NumberError as e:
            raise NumberError(e.args[0] if str(e).startswith(file) else f"{file}: {path}: {e}") from None

    def pct(self, *args, digits: int = 0):
        file, path, rest = self._ref(args)
        if rest:
            digits = rest[0]
        try:
            return fmt(100 * number(self._get(file, path)), f".{int(digits)}f")
        except NumberError as e:
            raise NumberError(e.args[0] if str(e).startswith(file) else f"{file}: {path}: {e}") from None

    def f(self, value, spec: str | None = None):
        return fmt(value, spec)

    def s(self, *args):
        file, path, _ = self._ref(args)
        value = self._get(file, path)
        if value is None or not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise NumberError(f"{file}: {path}: not a text value: {value!r}"[:160])
        return str(value)

    def use(self, file: str, prefix: str = ""):
        load(file, self.ctx.results)  # an unknown file fails here, on the line of the use()
        if prefix:
            self._get(file, prefix)
        self.ctx.file, self.ctx.prefix = file, prefix
        return ""

    def table(self, file: str, n: int = 1, columns: int = 0, bold: str = ""):
        """The n-th Markdown table (1-based) of results/FILE.md, as the collector wrote it; ``columns`` keeps the
        first so many columns (0: all), ``bold`` puts the row whose first cell is that text in bold."""
        path = self.ctx.results / file
        if not file.endswith(".md") or not path.is_file():
            raise NumberError(f"{file}: no such Markdown file under results/")
        tables, cur = [], []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("|"):
                cur.append(line)
            elif cur:
                tables.append(cur)
                cur = []
        if cur:
            tables.append(cur)
        if not 1 <= n <= len(tables):
            raise NumberError(f"{file}: table {n} of {len(tables)}")
        rows = tables[n - 1]
        if columns:
            cells = [row.strip().strip("|").split("|") for row in rows]
            if any(len(c) < columns for c in cells):
                raise NumberError(f"{file}: table {n} has fewer than {columns} columns")
            rows = ["| " + " | ".join(c.strip() for c in cell[:columns]) + " |" for cell in cells]
        if bold:
            hits = [i for i, row in enumerate(rows) if row.strip().strip("|").split("|")[0].strip() == bold]
            if not hits:
                raise NumberError(f"{file}: table {n} has no row {bold!r}")
            for i in hits:
                rows[i] = "| " + " | ".join(f"**{c.strip()}**" if j == 0 else c.strip() for j, c in
                                           enumerate(rows[i].strip().strip("|").split("|"))) + " |"
        return "\n".join(rows)

    def block(self, name: str):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import tables  # docs/gen/tables.py

        if name not in tables.BLOCKS:
            raise NumberError(f"block {name!r}: not one of {', '.join(tables.BLOCKS)}")
        page_dir = (DOCS / self.ctx.page).parent if not os.path.isabs(self.ctx.page) else Path(self.ctx.page).parent
        prefix = os.path.relpath(DOCS / "results" / "data", page_dir).replace(os.sep, "/") + "/"
        try:
            return getattr(tables, tables.BLOCKS[name])(self.ctx.results, prefix)
        except (KeyError, IndexError, StopIteration, TypeError, ValueError) as e:
            raise NumberError(f"block {name!r}: {type(e).__name__}: {e}") from None

    def eval(self, expr: str) -> Any:
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as e:
            raise NumberError(f"not an expression: {e.msg}") from None
        return self._node(tree.body)

    def _node(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            x = self._node(node.operand)
            return -x if isinstance(node.op, ast.USub) else +x
        if isinstance(node, ast.BinOp) and type(node.op) in self.BINOPS:
            a, b = self._node(node.left), self._node(node.right)
            if not all(isinstance(x, (int, float)) for x in (a, b)):
                raise NumberError("arithmetic needs numbers (v(), not r(); mean(vs(...)), not vs(...))")
            try:
                return self.BINOPS[type(node.op)](a, b)
            except ZeroDivisionError:
                raise NumberError("division by zero") from None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.funcs:
            args = [self._node(a) for a in node.args]
            kwargs = {k.arg: self._node(k.value) for k in node.keywords if k.arg}
            if node.func.id == "r" and "fmt" in kwargs:
                kwargs["fmt_"] = kwargs.pop("fmt")
            try:
                return self.funcs[node.func.id](*args, **kwargs)
            except TypeError as e:
                raise NumberError(f"{node.func.id}(): {e}") from None
        raise NumberError(f"not allowed in a reference: {ast.unparse(node)!r} (functions: {', '.join(self.funcs)})")


def render(text: str, page: str, results: Path = RESULTS) -> str:
    """The page with every ``{{ ... }}`` reference replaced by what ``results/`` holds now.

    References in fenced code blocks are left as they are; elsewhere ``\\{{`` writes a literal ``{{``. A line that
    holds only ``use()`` references is dropped.

    Args:
        text: the page's Markdown source.
        page: the page's name in messages (e.g. ``results/findings.md``, relative to ``docs/``).
        results: the results folder.

    Returns:
        The rendered Markdown.

    Raises:
        NumberError: a reference is broken; the message is ``PAGE:LINE: {{ expr }}: FILE: PATH: why``.
    """
    ctx = _Context(page=page, results=results)
    ev = _Evaluator(ctx)
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        ctx.line = n
        if FENCE.match(line):
            fenced = not fenced
            out.append(line)
            continue
        if fenced or "{{" not in line:
            out.append(line.replace("\\{{", "{{") if not fenced else line)
            continue
        only_use = re.fullmatch(r"\s*(\{\{\s*use\(.*?\)\s*\}\}\s*)+", line) is not None

        def sub(m: re.Match) -> str:
            try:
                value = ev.eval(m.group(1))
            except NumberError as e:
                raise NumberError(f"{page}:{n}: {m.group(0).strip()}: {e}") from None
            if not isinstance(value, str):
                raise NumberError(f"{page}:{n}: {m.group(0).strip()}: renders a raw number; format it with f()")
            return value

        rendered = "".join(sub(m) if kind == "ref" else m for kind, m in _pieces(line))
        if re.search(r"(?<!\\)\{\{", rendered):
            raise NumberError(f"{page}:{n}: an unclosed or nested {{{{ ... }}}}")
        if not only_use:
            out.append(rendered.replace("\\{{", "{{"))
    return "".join(out)


def _pieces(line: str) -> Iterator[tuple[str, Any]]:
    """The line cut into ('text', str) and ('ref', match) pieces; ``\\{{`` is a literal ``{{``, not a reference."""
    pos = 0
    for m in REFERENCE.finditer(line):
        if m.start() and line[m.start() - 1] == "\\":
            continue
        yield "text", line[pos:m.start()]
        yield "ref", m
        pos = m.end()
    yield "text", line[pos:]


def _strip_code(line: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def template_pages(docs: Path = DOCS) -> list[Path]:
    """Every Markdown page under ``docs/`` (``docs/gen/`` excluded) that holds a ``{{`` outside fenced code: a
    reference, or an escaped ``\\{{`` that rendering turns into a literal ``{{``.

    Args:
        docs: the docs folder.

    Returns:
        The pages, sorted; ``docs/gen/pages.py`` renders each of them in place.
    """
    out = []
    for p in sorted(docs.rglob("*.md")):
        if "gen" in p.relative_to(docs).parts[:1]:
            continue
        if any("{{" in line for line in _code_free_lines(p.read_text(encoding="utf-8"))):
            out.append(p)
    return out


def _code_free_lines(text: str) -> Iterator[str]:
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


# --- finding hand-typed numbers ------------------------------------------------------------------------------

# A number in prose: not part of a word, version, path or scientific literal; "1.47x" counts, "4.25 M" (a size) not.
NUMBER = re.compile(r"(?<![\w.,/#@\-+=])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![^\Wx]|x\w|\.\d|,\d{3}|e[-+]?\d| ?M\b)")
GENERATED = re.compile(r"<!-- ([\w-]+):start.*?-->.*?<!-- \1:end -->", re.S)
# A results file that a page names: a link or path (results/NAME.md, data/NAME.json, results/NAME/...), or the
# FILE of a reference.
CITED = re.compile(r"(?:results|data)/([\w.\-]+(?:/[\w.\-]+)*?)(?:\.(?:md|json|png|yaml)\b|\.\*|/)"
                   r"|\b(?:r|v|vs|pct|s|use)\(\s*[\"']([\w.\-/]+)\.json[\"']")
# Fractions that pages print as percentages (x100): retentions, accuracies, shares, agreement, rates, metrics.
PERCENT_KEYS = re.compile(r"retention|accuracy|acc\b|f1|share|agree|rate|spearman|pearson|mcc|corr|gr_|^dev$|^\d+\]?$")
# Subtrees that hold raw measurements, per-matrix tables or the machine's state, not numbers a page quotes.
SKIP_KEYS = {"matrices", "times_ms", "predictions", "logits", "per_example", "environment", "loadavg_start",
             "loadavg_end", "conversions", "conversions_int8"}


@dataclass(frozen=True)
class Typed:
    """A hand-typed number on a page that a results/*.json holds at the printed precision."""

    page: str
    line: int
    text: str
    where: str  # one of the JSON values it equals: FILE: PATH (x100 when the page prints a fraction as a percentage)
    context: str


def _key(path: str, key: Any) -> str:
    key = str(key)
    if re.fullmatch(r"[\w-]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _leaves(x: Any, path: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(x, dict):
        for k, v in x.items():
            if k not in SKIP_KEYS:
                yield from _leaves(v, _key(path, k))
    elif isinstance(x, list):
        if len(x) > 8 and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in x):
            return  # a list of raw measurements
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        yield path, x


@functools.lru_cache(maxsize=None)
def _file_index(path: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for where, y in _leaves(_load_cached(path)):
        for scale, tag in ((1, ""), (100, " (x100)")):
            if scale == 100 and (abs(y) > 1.5 or not PERCENT_KEYS.search(where.rsplit(".", 1)[-1])):
                continue  # only a fraction of a kind that pages print as a percentage
            for d in range(1, 5):
                index.setdefault(f"{abs(y) * scale:.{d}f}", where + tag)
    return index


def value_index(files: list[Path], results: Path = RESULTS) -> dict[str, str]:
    """Every number in ``files`` as it prints with 1 to 4 decimals (and x100 for a fraction, as a percentage),
    mapped to one place that holds it (``FILE: PATH``); raw measurement lists, per-matrix tables and the
    machine's environment are left out.

    Args:
        files: JSON files under ``results``.
        results: the results folder (for the names in the answer).

    Returns:
        ``{"82.7": "glue_ablation.json: rows[0].mean", ...}``.
    """
    index: dict[str, str] = {}
    for p in files:
        rel = p.relative_to(results).as_posix()
        for key, where in _file_index(str(p)).items():
            index.setdefault(key, f"{rel}: {where}")
    return index


def cited_files(text: str, results: Path = RESULTS) -> list[Path] | None:
    """The ``results/*.json`` files that ``text`` names: ``NAME.json`` for a named ``NAME.md``/``.png``/``.json``,
    every JSON file under a named folder ``results/NAME/``, and the files of its references.

    Args:
        text: Markdown (a page, a section or a paragraph).
        results: the results folder.

    Returns:
        The files (an empty list where the text names only results files without JSON, such as a collector's
        Markdown), or None where it names no results file at all.
    """
    out: list[Path] = []
    named = False
    for m in CITED.finditer(text):
        name = m.group(1) or m.group(2)
        folder = sorted((results / name).rglob("*.json")) if (results / name).is_dir() else []
        for cand in [results / f"{name}.json", *folder]:
            if cand.is_file() and cand not in out:
                out.append(cand)
        named = named or bool(folder) or any((results / f"{name}{ext}").is_file() for ext in (".md", ".json", ".png"))
    return out if named or out else None


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, last line), 1-based, of each block of the page: a paragraph, a list item (with its
    continuation lines) or a table, with the blank lines and the heading before it."""
    starts = [1]
    for n, line in enumerate(lines, 1):
        if n == 1:
            continue
        prev = lines[n - 2]
        item = re.match(r"\s*([*+-]|\d+\.) ", line) is not None
        table_start = line.lstrip().startswith("|") and not prev.lstrip().startswith("|")
        after_blank = not prev.strip() and line.strip()
        if (item or table_start or after_blank or re.match(r"#{1,6} ", line)) and n != starts[-1]:
            starts.append(n)
    ends = [s - 1 for s in starts[1:]] + [len(lines)]
    return list(zip(starts, ends))


def _sections(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, last line), 1-based, of each part of the page between headings."""
    starts = [1] + [n for n, line in enumerate(lines, 1) if n > 1 and re.match(r"#{1,6} ", line)]
    ends = [s - 1 for s in starts[1:]] + [len(lines)]
    return list(zip(starts, ends))


def _scope(lines: list[str], results: Path) -> dict[int, list[Path]]:
    """For each line, the results files a number on it is checked against: those its block cites, else those its
    section cites, else those the page cites, else every results/**/*.json."""
    page = cited_files("\n".join(lines), results)
    page = sorted(results.rglob("*.json")) if page is None else page
    scope: dict[int, list[Path]] = {}
    for s_first, s_last in _sections(lines):
        section = cited_files("\n".join(lines[s_first - 1:s_last]), results)
        section = page if section is None else section
        for first, last in _blocks(lines[s_first - 1:s_last]):
            first, last = first + s_first - 1, last + s_first - 1
            block = cited_files("\n".join(lines[first - 1:last]), results)
            block = section if block is None else block
            for n in range(first, last + 1):
                scope[n] = block
    return scope


def scan(text: str, page: str, results: Path = RESULTS) -> list[Typed]:
    """The decimals with at least 3 significant digits (``0.772``, ``83.8``, ``1.47x``, ``32.4 ms``, ``1,220.8``;
    not ``1.00``, a reference's own ratio)
    that the page types by hand and that equal, at the printed precision, a value of the results files that the
    number's context cites: its paragraph, list item or table (a link or path to ``results/NAME.md``, ``.json``,
    ``.png``, a folder ``results/NAME/``, or the FILE of a reference), else its section, else the page; a page
    that cites no results file is checked against every ``results/**/*.json``.

    Code blocks, inline code, ``{{ ... }}`` references, link targets, HTML comments and generated blocks
    (``<!-- NAME:start ... -->`` ... ``<!-- NAME:end -->``) are not looked at.

    Args:
        text: the page's Markdown source.
        page: the page's name in the findings.
        results: the results folder.

    Returns:
        One :class:`Typed` per such number, in page order.
    """
    lines = text.splitlines()
    scope = _scope(lines, results)
    clean = GENERATED.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    clean = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), clean, flags=re.S).splitlines()
    found, fenced = [], False
    for n, line in enumerate(clean, 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        plain = "".join(piece if kind == "text" else " " for kind, piece in _pieces(line))
        plain = _strip_code(plain)
        plain = re.sub(r"\]\([^)]*\)", "]", plain)
        plain = re.sub(r"https?://\S+", " ", plain)
        index = None
        for m in NUMBER.finditer(plain):
            if not m.group(2):
                continue
            digits = (m.group(1) + m.group(2)[1:]).replace(",", "").lstrip("0")
            if len(digits) < 3 or not digits.strip("0") or float(m.group(1).replace(",", "") + m.group(2)) == 1:
                continue  # two digits, zero, or 1.00 (a reference's own ratio)
            index = index if index is not None else value_index(scope.get(n, []), results)
            key = m.group(1).replace(",", "") + m.group(2)
            if key in index:
                found.append(Typed(page, n, m.group(0), index[key], line.strip()))
    return found


def pages_to_scan(root: Path = ROOT) -> list[Path]:
    """The pages whose numbers :func:`scan` checks.

    Args:
        root: the repository root.

    Returns:
        README.md and every Markdown page under ``docs/`` (``docs/gen/`` excluded).
    """
    return [root / "README.md"] + [p for p in sorted((root / "docs").rglob("*.md"))
                                   if p.relative_to(root / "docs").parts[0] != "gen"]


def find(text: str, files: list[str] | None = None, results: Path = RESULTS) -> list[str]:
    """Where a printed number is in ``results/*.json``: ``FILE: PATH`` of every value that prints as ``text``
    (with as many decimals as ``text`` has; also x100), list elements named by a field selection when one is
    unique. A maintainer's aid for writing references.

    Args:
        text: the number as a page prints it (``82.7``, ``0.772``, ``1,080``).
        files: only these files (paths under ``results/``); all when None.
        results: the results folder.

    Returns:
        The places, ``FILE: PATH`` (`` (x100)`` when the page's number is the value x100).
    """
    t = text.replace(",", "").replace(MINUS, "-").lstrip("+")
    d = len(t.split(".")[1]) if "." in t else 0
    out = []
    paths = [results / f for f in files if f.endswith(".json")] if files else sorted(results.rglob("*.json"))
    for p in paths:
        rel = p.relative_to(results).as_posix()
        data = _load_cached(str(p))
        for path, y in _leaves(data):
            for scale, tag in ((1, ""), (100, " (x100)")):
                if f"{y * scale:.{d}f}" == t:
                    out.append(f"{rel}: {readable(data, path)}{tag}")
    return out


def readable(data: Any, path: str) -> str:
    """``path`` with each list index replaced by the smallest field selection that picks the same element
    (``rows[3].mean`` -> ``rows[task=stsb,variant=s90].mean``), where one exists.

    Args:
        data: the parsed JSON document.
        path: a PATH into it made of keys and indices (as :func:`find` walks the document).

    Returns:
        The readable PATH.
    """
    out, cur = "", data
    for kind, arg in parse_path(path):
        if kind == "key" or isinstance(cur, dict):
            out, cur = _key(out, arg), cur[str(arg)]
            continue
        elem = cur[arg]
        sel = _selector(cur, elem) if isinstance(elem, dict) else None
        out += f"[{sel}]" if sel else f"[{arg}]"
        cur = elem
    return out


_SELECT_NUMBERS = {"seed", "steps", "step", "sparsity", "batch", "p", "train_steps", "epochs"}


def _selector(siblings: list, elem: dict) -> str | None:
    fields = [k for k, v in elem.items() if isinstance(v, str) and len(v) < 60 and "," not in v and "]" not in v]
    fields += [k for k, v in elem.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in fields and k in _SELECT_NUMBERS]
    for size in (1, 2, 3, 4):
        for combo in itertools.combinations(fields, size):
            hits = [e for e in siblings if isinstance(e, dict)
                    and all(k in e and _matches(e[k], _show(elem[k])) for k in combo)]
            if len(hits) == 1:
                return ",".join(f"{k}={_show(elem[k])}" for k in combo)
    return None


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring): ``--check``, ``--scan``, ``--find NUMBER ... [--in FILE ...]``.

    Args:
        argv: the arguments (``sys.argv[1:]`` when None).

    Returns:
        0, or 1 when ``--check`` met a broken reference (printed to stderr).
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="render every template page; exit 1 on a broken reference")
    ap.add_argument("--scan", action="store_true", help="list hand-typed numbers that a results/*.json holds")
    ap.add_argument("--find", metavar="NUMBER", nargs="+", help="where printed numbers are in results/*.json")
    ap.add_argument("--in", dest="files", nargs="*", metavar="FILE", help="with --find: only these results files")
    args = ap.parse_args(argv)
    rc = 0
    for text in args.find or []:
        print(f"== {text}")
        for hit in find(text, args.files or None):
            print(f"   {hit}")
    if args.check:
        for p in template_pages():
            try:
                render(p.read_text(encoding="utf-8"), p.relative_to(DOCS).as_posix())
            except NumberError as e:
                print(e, file=sys.stderr)
                rc = 1
    if args.scan:
        for p in pages_to_scan():
            for t in scan(p.read_text(encoding="utf-8"), p.relative_to(ROOT).as_posix()):
                print(f"{t.page}:{t.line}: {t.text} = {t.where}   | {t.context[:120]}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
