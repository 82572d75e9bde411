"""Measured numbers in README and docs/ come from results/*.json (docs/gen/refs.py): every template page renders
(a broken reference is an error naming the page, line, file and path), and no page types by hand a decimal
that a results file cited next to it holds at the printed precision, apart from the allow-list below."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "gen"))

import refs  # noqa: E402  (docs/gen/refs.py)

# Numbers typed on purpose although a cited results/*.json holds the same digits: (page, number, text on the same
# line, why). An entry that no longer matches anything fails too, so the list cannot go stale.
FINDINGS = "docs/results/findings.md"
MPNET = "an MPNet-base training-time evaluation: results/mpnet_sst2.md only, no JSON"
ALLOWED = [
    ("docs/getting-started.md", "3.10", "Python ≥ 3.10", "a Python version"),
    ("docs/getting-started.md", "3.11", "CI: 3.11", "a Python version"),
    (FINDINGS, "13.5", "at 13.5 %", "the schedule's target sparsity at that evaluation (a setting)"),
    (FINDINGS, "69.4", "accuracy 69.4–71.1 %",
     "MRPC-90 accuracies of the knowledge grid: glue_knowledge.json holds only F1 (69.4 there is another run)"),
    (FINDINGS, "10.7", "gave 10.7 / 9.3", "the earlier AVX2 CoLA grid, superseded by the AVX-512 rerun; in no JSON"),
    (FINDINGS, "53.6", "(53.6 at 3e-5", MPNET),
    (FINDINGS, "50.5", "50.5 at the default 1e-4", MPNET),
    (FINDINGS, "85.6", "(85.6 vs 57.8 at step 500)", MPNET),
    (FINDINGS, "57.8", "(85.6 vs 57.8 at step 500)", MPNET),
    (FINDINGS, "68.2", "(64.8 / 68.2 at step 1,000)", MPNET),
    (FINDINGS, "82.9", "small dense twin 82.9 (GR 74 %)",
     MPNET + "; the S4 bench's JSON (another evaluation of the same model) has 83.0 in fp32"),
    (FINDINGS, "1.41", "faster (0.99–1.41x)",
     "the spread of per-path speed-ups between two S4 runs, in no JSON (1.41 there is a latency)"),
]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- the committed pages ---------------------------------------------------------------------------------------


def test_there_are_template_pages():
    names = {_rel(p) for p in refs.template_pages()}
    assert {"docs/results/findings.md", "docs/results/speed.md", "docs/results/history.md"} <= names


@pytest.mark.parametrize("page", refs.template_pages(), ids=_rel)
def test_every_template_page_renders(page):
    rel = page.relative_to(refs.DOCS).as_posix()
    source = page.read_text(encoding="utf-8")
    out = refs.render(source, rel)
    assert out.count("{{") == source.count("\\{{"), "only an escaped \\{{ may leave a {{ in the page"


def test_no_hand_typed_result_numbers():
    found = [t for p in refs.pages_to_scan(ROOT) for t in refs.scan(p.read_text(encoding="utf-8"), _rel(p))]
    left = [t for t in found if not any(t.page == page and t.text == number and near in t.context
                                        for page, number, near, _ in ALLOWED)]
    assert not left, "typed by hand, but a results file holds it: reference it ({{ r(...) }}, docs/gen/refs.py)\n" + \
        "\n".join(f"{t.page}:{t.line}: {t.text} = {t.where}" for t in left)
    unused = [a for a in ALLOWED if not any(t.page == a[0] and t.text == a[1] and a[2] in t.context for t in found)]
    assert not unused, f"allow-list entries that match nothing any more (remove them): {unused}"


def test_the_allow_list_says_why():
    assert all(len(entry) == 4 and entry[3].strip() for entry in ALLOWED)


# --- the scanner can fail ----------------------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "demo.json").write_text(json.dumps({
        "floor": 0.552, "teacher": 0.808, "missing": None, "nan": float("nan"), "text": "AMD EPYC",
        "rows": [{"variant": "hardness", "mean": 0.772, "gain_retention": 0.859, "seed": 42, "sparsity": 0.9499997},
                 {"variant": "taylor", "mean": 0.766, "gain_retention": 0.84, "seed": 42, "sparsity": 0.95},
                 {"variant": "taylor", "mean": 0.768, "gain_retention": 0.85, "seed": 7, "sparsity": 0.95}],
        "summary": {"1": {"ms": 32.41, "ratio": 1.4712}}, "odd keys": {"a.b": 1.5}, "neg": -0.0312,
        "tiny": 0.00047}), encoding="utf-8")
    (res / "demo.md").write_text("# demo\n\n| variant | mean | gr |\n|---|---:|---:|\n| hardness | 0.772 | 86% |\n"
                                 "| taylor | 0.766 | 84% |\n\ntext\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
                                 encoding="utf-8")
    return res


def test_a_hand_typed_copy_of_a_json_value_is_caught(results):
    page = "Demo ([results/demo.md](data/demo.md)): dev acc 0.772, 85.9 % of the gain, 32.4 ms, 1.47x.\n"
    found = refs.scan(page, "x.md", results)
    assert [t.text for t in found] == ["0.772", "85.9", "32.4", "1.47"]
    assert found[0].where == "demo.json: rows[0].mean" and found[1].where.endswith("(x100)")


def test_referenced_settings_and_uncited_numbers_are_not_flagged(results):
    page = ("Demo ([results/demo.md](data/demo.md)): dev acc {{ r(\"demo.json\", \"rows[variant=hardness].mean\", "
            "\".3f\") }}, lr 1e-4, 95 % sparsity, seq 128, `0.772` in code, a 4.25 M model, 0.99 (two digits).\n"
            "```\n0.772\n```\n")
    assert refs.scan(page, "x.md", results) == []
    # a block that cites only another results file (here one without JSON) is checked against that file alone
    (results / "other.md").write_text("# other\n", encoding="utf-8")
    assert refs.scan("See results/other.md: 0.772.\n\nSee [results/demo.md](data/demo.md).\n", "x.md",
                     results) == []


def test_a_page_that_cites_nothing_is_checked_against_every_json(results):
    assert [t.text for t in refs.scan("The teacher: 0.808.\n", "x.md", results)] == ["0.808"]


def test_generated_blocks_and_comments_are_not_scanned(results):
    page = ("[results/demo.md](data/demo.md)\n<!-- demo-table:start (docs/gen/tables.py) -->\n| 0.772 |\n"
            "<!-- demo-table:end -->\n<!-- 0.772 -->\n")
    assert refs.scan(page, "README.md", results) == []


# --- rendering ---------------------------------------------------------------------------------------------------


def _render(text: str, results: Path) -> str:
    return refs.render(text, "results/x.md", results)


def test_references_render(results):
    page = (
        "a {{ r(\"demo.json\", \"rows[variant=hardness].mean\", \".3f\") }} b\n"
        "{{ use(\"demo.json\", \"rows[variant=taylor,seed=7]\") }}\n"
        "c {{ r(\".mean\", \".3f\") }} ({{ pct(\".gain_retention\") }} %) "
        "{{ pct(\"rows[variant=hardness].gain_retention\", 1) }}\n"
        "d {{ r(\"rows[sparsity=0.95,variant=hardness].mean\", \".3f\") }} {{ r(\"summary.1.ms\", \",.1f\") }} "
        "{{ r('[\"odd keys\"][\"a.b\"]', \".1f\") }} {{ r(\"rows[-1].seed\") }}\n"
        "e {{ f(100 * (v(\"teacher\") - v(\"floor\")), \"+.1f\") }} {{ r(\"neg\", \".2f\") }} "
        "{{ r(\"tiny\", \".1se\") }} {{ f(mean(vs(\"rows[variant=taylor,*].mean\")), \".3f\") }} ± "
        "{{ f(std(vs(\"rows[variant=taylor,*].mean\")), \".4f\") }} "
        "{{ s(\"text\") }}\n"
        "`\\{{ r(...) }}` stays\n"
        "```\n{{ not rendered }}\n```\n"
    )
    assert _render(page, results) == (
        "a 0.772 b\n"
        "c 0.768 (85 %) 85.9\n"
        "d 0.772 32.4 1.5 7\n"
        "e +25.6 \u22120.03 4.7e-4 0.767 ± 0.0014 AMD EPYC\n"
        "`{{ r(...) }}` stays\n"
        "```\n{{ not rendered }}\n```\n"
    )


def test_whole_tables(results):
    out = _render("x\n{{ table(\"demo.md\", 1, columns=2, bold=\"taylor\") }}\ny\n", results)
    assert out == "x\n| variant | mean |\n| --- | ---: |\n| hardness | 0.772 |\n| **taylor** | 0.766 |\ny\n"
    assert _render("{{ table(\"demo.md\", 2) }}\n", results) == "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_a_tables_py_block_renders_with_links_relative_to_the_page():
    out = refs.render("{{ block(\"speed\") }}\n", "guides/x.md")
    assert out.startswith("| model |") and "](../results/data/bench_" in out


@pytest.mark.parametrize("expr, why", [
    ("r(\"nope.json\", \"floor\")", "nope.json: no such file"),
    ("r(\"demo.json\", \"flor\", \".3f\")", "demo.json: flor: at (top): no key 'flor'"),
    ("r(\"demo.json\", \"rows[variant=taylor].mean\")",
     "demo.json: rows[variant=taylor].mean: at rows: [variant=taylor] is ambiguous"),
    ("r(\"demo.json\", \"rows[variant=movement].mean\")", "no element with [variant=movement]"),
    ("r(\"demo.json\", \"rows[9].mean\")", "index 9 out of range"),
    ("r(\"demo.json\", \"missing\", \".1f\")", "demo.json: missing: missing value (null)"),
    ("r(\"demo.json\", \"nan\", \".1f\")", "demo.json: nan: missing value (nan)"),
    ("r(\"demo.json\", \"text\", \".1f\")", "not a number"),
    ("r(\"demo.json\", \"rows[variant=hardness]\")", "not a number"),
    ("r(\"demo.json\", \"floor\", \".1q\")", "format '.1q'"),
    ("r(\".mean\")", "no file"),
    ("v(\"demo.json\", \"floor\")", "renders a raw number"),
    ("r(\"demo.json\", \"floor\") + 1", "arithmetic needs numbers"),
    ("open(\"x\")", "not allowed in a reference"),
    ("table(\"demo.md\", 3)", "demo.md: table 3 of 2"),
    ("block(\"nope\")", "block 'nope'"),
])
def test_a_broken_reference_raises_naming_page_line_file_and_path(results, expr, why):
    with pytest.raises(refs.NumberError) as e:
        _render("first line\nsecond {{ " + expr + " }} line\n", results)
    msg = str(e.value)
    assert msg.startswith("results/x.md:2: {{ " + expr + " }}: "), msg
    assert why in msg, msg


def test_an_unclosed_reference_raises(results):
    with pytest.raises(refs.NumberError, match=r"results/x.md:1: an unclosed"):
        _render("a {{ r(\"demo.json\", \"floor\", \".3f\") }} {{ b\n", results)


def test_the_committed_check_command_passes():
    assert refs.main(["--check"]) == 0
