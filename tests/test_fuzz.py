"""Property and fuzz tests (hypothesis) of the parts that take outside input or carry invariants.

* GLUE readers: arbitrary bytes / rows either read or fail with :class:`DataError` naming the
  file; well-formed rows with awkward texts round-trip exactly, for every task layout.
* Recipes: arbitrary settings give a valid recipe or a :class:`RecipeError` naming the field.
* :class:`CubicSchedule`: monotone, bounded, s_f at the end, events sorted inside the window.
* :func:`magnitude_mask`: exact zero count, largest |w| kept, pruned weights stay pruned.

Settings are modest (<= 60 examples, no deadline) so the file runs in seconds.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from sparsebert.data.glue import DataError, Example, read_glue_split
from sparsebert.data.tasks import TASKS, TaskSpec
from sparsebert.pruning.masks import global_magnitude_masks, magnitude_mask
from sparsebert.pruning.schedule import CubicSchedule
from sparsebert.recipe import FinetuneRecipe, PruneRecipe, RecipeError, build_recipe

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One glue_data root reused by every example (each example rewrites its task's train.tsv)."""
    return tmp_path_factory.mktemp("fuzz_glue")


def _train_file(root: Path, spec: TaskSpec) -> Path:
    d = root / spec.glue_dir
    d.mkdir(exist_ok=True)
    return d / "train.tsv"


# --- GLUE readers: well-formed rows round-trip ---------------------------------------------------

# Any text without the field/line separators the format cannot escape (tab, CR, LF) and with a
# non-blank character: quotes (quoting is off), unicode, NUL, other line-ish separators.
_awkward = st.sampled_from(['"', '"unbalanced', "it's", '""', "\u00e9t\u00e9", "\U0001F600", " padded ", "a\x0bb",
                            "x\u2028y", "\x85z", "\ufeffbom", "\x00nul", "#", "\\t", "-"])
_plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), min_size=1, max_size=20)
TEXT = st.one_of(_awkward, _plain).filter(lambda s: s.strip())
FILLER = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=6)
SCORE = st.from_regex(r"[0-5](\.[0-9]{1,4})?", fullmatch=True).filter(lambda s: float(s) <= 5)


def _label(spec: TaskSpec):
    return SCORE if spec.is_regression else st.sampled_from(spec.labels)


@st.composite
def glue_file(draw, spec: TaskSpec):
    """``(text, expected [(text_a, text_b, label)])`` of a valid train file in ``spec``'s layout."""
    if spec.has_header:
        extras = draw(st.lists(st.sampled_from(["index", "id", "genre", "#1 ID", "pairID", "label1"]),
                               unique=True, max_size=3))
        header = draw(st.permutations([*spec.text_columns, spec.label_column, *extras]))
        pos = {c: header.index(c) for c in header}
        width = len(header)
    else:  # CoLA: source, label, original judgement, sentence
        header, width = None, spec.num_columns
        pos = {c: int(c) for c in (*spec.text_columns, spec.label_column)}
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    rows, expected = [], []
    for _ in range(draw(st.integers(1, 6))):
        fields = [draw(FILLER) for _ in range(width)]
        texts = [draw(TEXT) for _ in spec.text_columns]
        label = draw(_label(spec))
        for c, t in zip(spec.text_columns, texts):
            fields[pos[c]] = t
        fields[pos[spec.label_column]] = label
        if header is None and fields[0].startswith("\ufeff"):
            fields[0] = "s" + fields[0]  # a BOM at the very start of the file is dropped by design
        rows.append("\t".join(fields))
        value = float(label) if spec.is_regression else spec.labels.index(label)
        expected.append((texts[0], texts[1] if spec.is_pair else None, value))
    lines = ([("\ufeff" if draw(st.booleans()) else "") + "\t".join(header)] if header else []) + rows
    text = eol.join(lines) + eol * draw(st.integers(0, 2))
    return text, expected


@pytest.mark.parametrize("task", sorted(TASKS))
@FUZZ
@given(data=st.data())
def test_well_formed_rows_round_trip(root, task, data):
    spec = TASKS[task]
    text, expected = data.draw(glue_file(spec))
    path = _train_file(root, spec)
    path.write_bytes(text.encode("utf-8"))
    got = read_glue_split(spec, root, "train")
    assert [(e.text_a, e.text_b, e.label) for e in got] == expected
    first = 2 if spec.has_header else 1
    assert [e.source for e in got] == [f"{path}:{first + i}" for i in range(len(expected))]


# --- GLUE readers: garbage fails only with DataError --------------------------------------------

_FRAGMENT = st.one_of(
    st.sampled_from(["", " ", '"', "0", "1", "5.000", "5.0001", "-1", "nan", "1e3", "entailment", "neutral",
                     "not_entailment", "contradiction", "\x00", "\ufeff", "\u00e9", "\x85", "\u2028", "label"]),
    st.text(max_size=8),
)
_ROW = st.lists(_FRAGMENT, max_size=12).map("\t".join)


@st.composite
def garbage_file(draw, spec: TaskSpec) -> bytes:
    """Random bytes, or rows that are random or well-formed (mixed), under a valid header or none,
    with random line endings."""
    header = "\t".join([*spec.text_columns, spec.label_column]) if spec.has_header else ""
    prefix = (header + "\n").encode() if header and draw(st.booleans()) else b""
    if draw(st.booleans()):
        return prefix + draw(st.binary(max_size=200))
    width = len(spec.text_columns) + 1 if spec.has_header else spec.num_columns
    good = st.tuples(st.lists(TEXT, min_size=width - 1, max_size=width - 1), _label(spec)).map(
        lambda t: "\t".join([*t[0], t[1]]) if spec.has_header else "\t".join(["src", t[1], "", t[0][-1]]))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    body = eol.join(draw(st.lists(st.one_of(good, _ROW), max_size=8)))
    return prefix + body.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("task", sorted(TASKS))
@FUZZ
@given(data=st.data(), skip=st.booleans())
def test_garbage_raises_only_data_error_naming_the_file(root, task, data, skip):
    spec = TASKS[task]
    path = _train_file(root, spec)
    path.write_bytes(data.draw(garbage_file(spec)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = read_glue_split(spec, root, "train", skip_malformed=skip)
    except DataError as err:
        assert str(err).startswith(f"{path}:") and err.path == str(path)
        assert "\n" not in str(err)
        event("DataError")
    else:
        event("read")
        assert got and all(isinstance(e, Example) for e in got)
        for e in got:
            assert e.text_a.strip() and (e.text_b is None) == (not spec.is_pair)
            if spec.is_regression:
                assert 0.0 <= e.label <= 5.0
            else:
                assert 0 <= e.label < spec.num_labels


# --- recipes ---------------------------------------------------------------------------------------

_FIELDS = sorted(set(PruneRecipe.model_fields) | set(FinetuneRecipe.model_fields))
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(1, 100), st.floats(0.01, 0.5), st.integers(-5, 10**6),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["sst2", "mrpc", "imdb", "per-matrix", "global", "auto", "", "0.5", "finetune",
                                    "prune"]),
                   st.text(max_size=6), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                             st.integers(), max_size=2))
_KEY = st.one_of(st.sampled_from(_FIELDS), st.sampled_from(["learning_rat", "lr", "", "Task", "extra"]))
_SETTINGS = st.dictionaries(_KEY, _VALUE, max_size=6)
_REQUIRED = {"task": "sst2", "out": "o", "model": "m", "teacher": "t", "student": "s"}


def _base(cls):
    """The required settings of ``cls`` (mostly), or a random subset of all stages' required ones."""
    own = {k: v for k, v in _REQUIRED.items() if k in cls.model_fields}
    return st.one_of(st.just(own), st.fixed_dictionaries({}, optional={k: st.just(v) for k, v in _REQUIRED.items()}))


def _check_outcome(cls, call, keys: set) -> None:
    """``call()`` gives a ``cls`` or a RecipeError that names every offending field (as given: ``field 'x'``
    for an argument, ``r.yaml: key 'x'`` for a file's): one that was given or a missing required one;
    cross-field rules name the source."""
    from pydantic import ValidationError

    try:
        recipe = call()
    except RecipeError as err:
        msg = str(err)
        assert "\n" not in msg, msg
        event("RecipeError")
        cause = err.__cause__
        if isinstance(cause, ValidationError):
            required = {k for k, f in cls.model_fields.items() if f.is_required()}
            for e in cause.errors():
                loc = ".".join(str(x) for x in e["loc"])
                assert not loc or f"field {loc!r}" in msg or f"key {loc!r}" in msg, (loc, msg)
                assert not e["loc"] or e["loc"][0] in keys | required, (loc, msg)
        else:
            assert re.search(r"invalid YAML|must be a mapping|key 'stage'|setting names must be text|unknown recipe key", msg), msg
    else:
        event("valid recipe")
        assert isinstance(recipe, cls)


@pytest.mark.parametrize("cls", [FinetuneRecipe, PruneRecipe])
@FUZZ
@given(data=st.data(), extra=_SETTINGS)
def test_recipe_from_random_settings(cls, data, extra):
    given_ = {**data.draw(_base(cls)), **extra}
    _check_outcome(cls, lambda: build_recipe(cls, None, **given_), {k for k, v in given_.items() if v is not None})


@pytest.mark.parametrize("cls", [FinetuneRecipe, PruneRecipe])
@FUZZ
@given(text=st.one_of(
    _SETTINGS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.lists(st.sampled_from([*"ab_: -\n\t[]{}'\"#&*!|>%@`,?.~", "task", "sst2", "stage", "prune", "1", ".inf"]),
             max_size=30).map("".join),
), data=st.data())
def test_recipe_from_random_yaml_files(root, cls, text, data):
    base = data.draw(_base(cls))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    file = root / "r.yaml"
    file.write_text(text, encoding="utf-8")
    keys = set(data) if isinstance(data, dict) else set()
    _check_outcome(cls, lambda: build_recipe(cls, file, **base), keys | set(base))


def test_yaml_with_non_string_keys(tmp_path):
    file = tmp_path / "r.yaml"
    file.write_text("task: sst2\nout: o\nmodel: m\n1: 2\n")
    with pytest.raises(RecipeError, match="1"):
        build_recipe(FinetuneRecipe, file)


@pytest.mark.parametrize("field", ["epochs", "max_grad_norm", "weight_decay"])
def test_infinite_settings_are_rejected(tmp_path, field):
    with pytest.raises(RecipeError, match=field):
        build_recipe(FinetuneRecipe, None, task="sst2", out="o", model="m", **{field: math.inf})


# --- cubic schedule --------------------------------------------------------------------------------

@FUZZ
@given(sf=st.floats(0.0, 0.999), s0frac=st.floats(0.0, 1.0), start=st.integers(0, 500), span=st.integers(1, 1500),
       n=st.integers(1, 300))
def test_cubic_schedule_properties(sf, s0frac, start, span, n):
    s0, end = sf * s0frac, start + span
    s = CubicSchedule(final_sparsity=sf, initial_sparsity=s0, start_step=start, end_step=end, num_events=n)
    steps = range(max(0, start - 3), end + 4)
    values = [s.sparsity_at(t) for t in steps]
    assert all(a <= b for a, b in zip(values, values[1:])), "not monotone"
    assert all(v == 0.0 for t, v in zip(steps, values) if t < start)  # dense warm-up
    assert all(s0 - 1e-12 <= v <= sf + 1e-12 for t, v in zip(steps, values) if t >= start)
    assert s.sparsity_at(start) == s0 and all(s.sparsity_at(t) == sf for t in (end, end + 1, end + 10**6))
    events = s.event_steps
    assert events == sorted(set(events)) and events[-1] == end
    one_shot = s0 > 0 and start > 0  # the jump to s_0 is an event of its own at t_0
    assert all(start < e <= end for e in events[int(one_shot):])
    assert (events[0] == start) == one_shot
    assert len(events) == min(n, span) + int(one_shot)
    assert [t for t in steps if s.is_event(t)] == events


# --- magnitude masks -------------------------------------------------------------------------------

@st.composite
def weights(draw):
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    # small integers: many ties and exact zeros (and -0.0), the hard cases for an exact count
    vals = draw(st.lists(st.integers(-3, 3), min_size=rows * cols, max_size=rows * cols))
    w = torch.tensor(vals, dtype=torch.float32).view(rows, cols)
    if draw(st.booleans()):
        w = w * draw(st.sampled_from([1e-3, -1.0, 1e30]))
    return w


@FUZZ
@given(w=weights(), sparsity=st.floats(0.0, 0.999), old_sparsity=st.floats(0.0, 0.999), seed=st.integers(0, 99))
def test_magnitude_mask_exact_count_keeps_largest_and_never_unprunes(w, sparsity, old_sparsity, seed):
    n = w.numel()
    k = round(sparsity * n)
    mask = magnitude_mask(w, sparsity)
    assert mask.shape == w.shape and mask.dtype == torch.bool
    assert int((~mask).sum()) == k
    if 0 < k < n:
        assert w[mask].abs().min() >= w[~mask].abs().max()
    # with a previous mask (random, as after weights moved): its pruned entries go first
    g = torch.Generator().manual_seed(seed)
    old = torch.rand(w.shape, generator=g) >= old_sparsity
    new = magnitude_mask(w, sparsity, old_mask=old)
    assert int((~new).sum()) == k
    n_old = int((~old).sum())
    if n_old <= k:
        assert not (new & ~old).any(), "an already-pruned weight was un-pruned"
        fresh = ~new & old
        if fresh.any() and new.any():
            assert w[new].abs().min() >= w[fresh].abs().max()
    else:
        assert not (~new & old).any(), "pruned a live weight while old pruned ones were left"


@FUZZ
@given(ws=st.lists(weights(), min_size=1, max_size=4), sparsity=st.floats(0.0, 0.999))
def test_global_masks_exact_total_and_never_unprune(ws, sparsity):
    named = {f"m{i}": w for i, w in enumerate(ws)}
    total = sum(w.numel() for w in ws)
    masks = global_magnitude_masks(named, sparsity)
    assert sum(int((~m).sum()) for m in masks.values()) == round(sparsity * total)
    again = global_magnitude_masks(named, sparsity, old_masks=masks)
    assert all(torch.equal(again[k], masks[k]) for k in masks)  # same target: nothing moves
