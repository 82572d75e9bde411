"""Structured sparsity patterns (sparsebert.pruning.patterns / masks): RxC blocks (1x4 for int8 VNNI) and
N:M, for every criterion and scope, through the recipe, the CLI, the experiment spec and a real prune run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

from sparsebert.errors import InputError
from sparsebert.pruning import CubicSchedule, Sparsifier, make_scorer
from sparsebert.pruning.masks import (block_mask, block_sum, global_block_masks, is_block_structured, is_n_m,
                                      n_m_mask, pattern_masks)
from sparsebert.pruning.patterns import Pattern, check_pattern, check_pattern_sparsity, parse_pattern
from sparsebert.pruning.scorers import OBSScorer
from sparsebert.recipe import PruneRecipe, RecipeError, build_recipe

CRITERIA = ["magnitude", "movement", "taylor", "obs"]


# --- parsing and validation ---------------------------------------------------------------------

def test_parse_accepts_the_three_kinds_and_canonicalises():
    assert parse_pattern("unstructured") == Pattern("unstructured")
    assert parse_pattern("1x4") == Pattern("block", rows=1, cols=4)
    assert parse_pattern(" 4X1 ").text == "4x1"
    assert parse_pattern("2:4") == Pattern("nm", n=2, m=4)
    assert parse_pattern("1:16").final_sparsity == pytest.approx(15 / 16)
    assert parse_pattern("1x4").final_sparsity is None


@pytest.mark.parametrize("bad", ["3x", "x4", "0x4", "1x0", "4:4", "0:4", "5:4", "2:", "blocks", "", "1x4x4", "-1x4"])
def test_bad_pattern_names_the_value(bad):
    with pytest.raises(InputError) as err:
        parse_pattern(bad)
    assert f"pattern {bad!r}" in str(err.value) and "1x4" in str(err.value) and "2:4" in str(err.value)


def test_shapes_that_do_not_divide_name_the_matrix_and_shape():
    with pytest.raises(InputError, match=r"pattern '1x4' needs .*in_features by 4.*'enc.q' has shape 8x6"):
        check_pattern("1x4", {"enc.ok": (8, 8), "enc.q": (8, 6)})
    with pytest.raises(InputError, match=r"'4x1' needs out_features divisible by 4.*'w' has shape 6x8"):
        check_pattern("4x1", {"w": (6, 8)})
    with pytest.raises(InputError, match=r"'2:8' needs in_features divisible by 8.*'w' has shape 8x12"):
        check_pattern("2:8", {"w": (8, 12)})
    lin = nn.Linear(6, 8)  # weight 8x6
    with pytest.raises(InputError, match="'lin' has shape 8x6"):
        Sparsifier({"lin": lin}, CubicSchedule(final_sparsity=0.5, end_step=4), pattern="1x4")


def test_n_m_fixes_sparsity_and_refuses_global_scope():
    check_pattern_sparsity("2:4", 0.5)
    check_pattern_sparsity("1x4", 0.9)  # blocks take any sparsity
    with pytest.raises(InputError, match=r"'2:4'.*sparsity 0.5, but sparsity is 0.9"):
        check_pattern_sparsity("2:4", 0.9)
    with pytest.raises(InputError, match="scope 'global' does not apply to N:M"):
        check_pattern("2:4", {}, "global")
    lin = nn.Linear(8, 8)
    with pytest.raises(InputError, match="scope 'global'"):
        Sparsifier({"w": lin}, CubicSchedule(final_sparsity=0.5, end_step=4), "global", pattern="2:4")
    with pytest.raises(InputError, match="sparsity is 0.9"):
        Sparsifier({"w": lin}, CubicSchedule(final_sparsity=0.9, end_step=4), pattern="2:4")


# --- the mask creators: exact counts, structure, monotone ---------------------------------------

@settings(max_examples=60, deadline=None)
@given(rows=st.sampled_from([1, 2, 4]), cols=st.sampled_from([1, 2, 4, 8]), br=st.integers(1, 5),
       bc=st.integers(1, 5), s1=st.floats(0, 0.99), s2=st.floats(0, 0.99), seed=st.integers(0, 2**16))
def test_block_masks_are_block_structured_exact_and_monotone(rows, cols, br, bc, s1, s2, seed):
    s1, s2 = sorted((s1, s2))
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows * br, cols * bc, generator=g)
    n_blocks = br * bc
    first = block_mask(block_sum(w.abs(), rows, cols), s1, rows, cols)
    second = block_mask(block_sum(torch.randn(w.shape, generator=g).abs(), rows, cols), s2, rows, cols, first)
    for mask, s in ((first, s1), (second, s2)):
        assert is_block_structured(mask, rows, cols)
        assert int((~mask).sum()) == round(s * n_blocks) * rows * cols  # exact block count
    assert not torch.any(second & ~first)  # pruned blocks stay pruned


def test_block_mask_prunes_the_lowest_block_sums():
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 5.0],
                      [0.2, 0.2, 0.2, 0.2, 2.0, 2.0, 2.0, 2.0]])
    mask = block_mask(block_sum(w, 1, 4), 0.5, 1, 4)
    # block sums: 4.0, 5.3 | 0.8, 8.0 -> the two lowest (0.8, 4.0) go, though 5.0 sits in a kept block
    assert mask.tolist() == [[False] * 4 + [True] * 4, [False] * 4 + [True] * 4]


def test_global_block_ranking_counts_all_blocks():
    torch.manual_seed(0)
    scores = {"a": torch.rand(8, 16), "b": torch.rand(16, 8) * 10}
    blocks = {n: block_sum(s, 1, 4) for n, s in scores.items()}
    masks = global_block_masks(blocks, 0.5, 1, 4)
    total_blocks = sum(b.numel() for b in blocks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * total_blocks) * 4
    assert all(is_block_structured(m, 1, 4) for m in masks.values())
    assert int((~masks["a"]).sum()) > int((~masks["b"]).sum())  # the low-scored matrix loses more


@settings(max_examples=60, deadline=None)
@given(nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (3, 4), (1, 8), (2, 8), (1, 16)]), rows=st.integers(1, 6),
       groups=st.integers(1, 4), fracs=st.lists(st.floats(0, 1), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_n_m_capped_ranking_is_exact_on_the_way_and_n_of_m_at_the_end(nm, rows, groups, fracs, seed):
    n, m = nm
    final = 1 - n / m
    g = torch.Generator().manual_seed(seed)
    shape = (rows, groups * m)
    mask = None
    for s in sorted(f * final for f in fracs) + [final]:  # a gradual schedule ending at 1 - N/M
        new = n_m_mask(torch.randn(shape, generator=g), s, n, m, mask)
        assert int((~new).sum()) == round(s * new.numel())
        assert is_n_m(new, n, m, exact=False)  # at most M - N pruned per group
        if mask is not None:
            assert not torch.any(new & ~mask)
        mask = new
    assert is_n_m(mask, n, m)  # exactly N kept in every group


def test_n_m_prunes_globally_lowest_under_the_cap():
    scores = torch.tensor([[0.1, 0.2, 0.3, 9.0, 5.0, 6.0, 7.0, 8.0]])
    # 2:4 at half its final sparsity: 2 of 8 pruned; the cap (2 per group) does not bind yet
    assert n_m_mask(scores, 0.25, 2, 4).tolist() == [[False, False, True, True, True, True, True, True]]
    # at the end the first group can lose only 2 of its 3 small weights; the second group loses its 2 lowest
    assert n_m_mask(scores, 0.5, 2, 4).tolist() == [[False, False, True, True, False, False, True, True]]
    with pytest.raises(InputError, match="at most 0.5"):
        n_m_mask(scores, 0.75, 2, 4)


# --- the sparsifier: every criterion x pattern x scope --------------------------------------------

CASES = [(c, p, s) for c in CRITERIA for p in ("1x4", "4x1", "2x2", "2:4", "1:8") for s in ("per-matrix", "global")
         if not (":" in p and s == "global")]


@pytest.mark.parametrize("criterion,pattern,scope", CASES)
def test_every_criterion_prunes_in_the_pattern_with_exact_count(criterion, pattern, scope):
    torch.manual_seed(0)
    p = parse_pattern(pattern)
    final = p.final_sparsity or 0.75
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    targets = {"0": model[0], "2": model[2]}
    scorer = make_scorer(criterion, **({"block_size": 8, "num_grads": 4} if criterion == "obs" else {}))
    sp = Sparsifier(targets, CubicSchedule(final_sparsity=final, end_step=10, num_events=5), scope, scorer, pattern)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sp.bind_optimizer(opt)
    x, y = torch.randn(64, 16), torch.randint(0, 8, (64,))
    for step in range(1, 13):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sp.observe()
        opt.step()
        sp.step(step)
        for name, t in targets.items():  # every intermediate mask is in the pattern too
            mask = sp.masks[name]
            ok = is_block_structured(mask, p.rows, p.cols) if p.kind == "block" else is_n_m(mask, p.n, p.m, False)
            assert ok, (name, step)
            assert torch.all(t.weight[~mask] == 0)
    unit = p.rows * p.cols
    if scope == "global":
        total_units = sum(t.weight.numel() for t in targets.values()) // unit
        assert sum(int((~m).sum()) for m in sp.masks.values()) == round(final * total_units) * unit
    else:
        for name, t in targets.items():
            assert int((~sp.masks[name]).sum()) == round(final * t.weight.numel() // unit) * unit
            if p.kind == "nm":
                assert is_n_m(sp.masks[name], p.n, p.m)
    sp.close()


def _closed_form_block_saliency(w, finv, rows, cols, fisher_block):
    """½ w_Qᵀ ([F⁻¹]_QQ)⁻¹ w_Q of every block Q from the dense block-diagonal F⁻¹ (numpy, float64)."""
    out_f, in_f = w.shape
    flat = w.reshape(-1).astype(np.float64)
    dense = np.zeros((flat.size, flat.size))
    for b in range(finv.shape[0]):
        sl = slice(b * fisher_block, (b + 1) * fisher_block)
        dense[sl, sl] = finv[b]
    result = np.zeros((out_f // rows, in_f // cols))
    for i in range(out_f // rows):
        for j in range(in_f // cols):
            q = [(i * rows + r) * in_f + j * cols + c for r in range(rows) for c in range(cols)]
            result[i, j] = 0.5 * flat[q] @ np.linalg.solve(dense[np.ix_(q, q)], flat[q])
    return result


@pytest.mark.parametrize("rows,cols", [(1, 4), (4, 1), (2, 2), (1, 8)])
def test_obs_block_scores_are_the_joint_saliency_of_the_block(rows, cols):
    rng = np.random.default_rng(0)
    lin = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(rng.normal(size=(8, 16)), dtype=torch.float32))
    scorer = OBSScorer(block_size=8, num_grads=6, damp=1e-2)
    targets, masks = {"w": lin}, {"w": torch.ones(8, 16, dtype=torch.bool)}
    for _ in range(6):
        lin.weight.grad = torch.tensor(rng.normal(size=(8, 16)), dtype=torch.float32)
        scorer.observe(targets, masks)
    got = scorer.block_scores(targets, masks, rows, cols)["w"]
    want = _closed_form_block_saliency(lin.weight.detach().numpy(), scorer.finv["w"].double().numpy(), rows, cols, 8)
    np.testing.assert_allclose(got.double().numpy(), want, rtol=2e-3)
    if rows * cols > 1 and cols > 1:  # correlations inside a Fisher block: not the sum of single saliencies
        singles = block_sum(scorer.scores(targets, masks)["w"], rows, cols)
        assert not torch.allclose(got, singles, rtol=1e-3)


def test_obs_refuses_blocks_it_cannot_score_exactly():
    lin = nn.Linear(16, 8)
    sched = CubicSchedule(final_sparsity=0.5, end_step=4)
    with pytest.raises(InputError, match=r"criterion 'obs' with pattern '1x8'.*Fisher blocks of 4 .*multiple of 8"):
        Sparsifier({"w": lin}, sched, scorer=OBSScorer(block_size=4), pattern="1x8")
    with pytest.raises(InputError, match=r"'4x1'.*'w' \(8x16\) has Fisher blocks of 32"):
        Sparsifier({"w": lin}, sched, scorer=OBSScorer(block_size=32), pattern="4x1")
    Sparsifier({"w": lin}, sched, scorer=OBSScorer(block_size=16), pattern="4x1").close()  # in_features >= B


def test_pattern_masks_unstructured_is_the_old_mask_creator():
    from sparsebert.pruning import global_score_masks, score_mask

    torch.manual_seed(1)
    scores = {"a": torch.rand(4, 8), "b": torch.rand(8, 4)}
    old = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    assert all(torch.equal(pattern_masks("unstructured", scores, 0.6, old)[n], score_mask(scores[n], 0.6))
               for n in scores)
    g = pattern_masks("unstructured", scores, 0.6, old, "global")
    assert all(torch.equal(g[n], global_score_masks(scores, 0.6)[n]) for n in scores)


# --- recipe, CLI, experiment spec, trainer callback ------------------------------------------------

def _recipe(**kw):
    return build_recipe(PruneRecipe, None, task="rte", out="o", teacher="t", student="s", **kw)


def test_recipe_pattern_field():
    assert PruneRecipe.model_fields["pattern"].default == "unstructured"
    assert _recipe(pattern="1X4").pattern == "1x4" and _recipe(pattern="1x4").sparsity == 0.95
    assert _recipe(pattern="2:4").sparsity == 0.5  # derived from the pattern
    assert _recipe(pattern="1:8", sparsity=0.875).sparsity == 0.875
    with pytest.raises(RecipeError, match=r"field 'pattern'.*pattern '3x' is not a sparsity pattern"):
        _recipe(pattern="3x")
    with pytest.raises(RecipeError, match=r"pattern '2:4'.*sparsity is 0.9"):
        _recipe(pattern="2:4", sparsity=0.9)
    with pytest.raises(RecipeError, match="scope 'global' does not apply"):
        _recipe(pattern="2:4", scope="global")


def test_recipe_yaml_with_pattern(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("stage: prune\npattern: '4:16'\nsparsity: 0.75\n")
    assert build_recipe(PruneRecipe, f, task="rte", out="o", teacher="t", student="s").pattern == "4:16"
    with pytest.raises(RecipeError, match=f"{f}.*pattern '2:4'.*sparsity is 0.75"):
        build_recipe(PruneRecipe, f, task="rte", out="o", teacher="t", student="s", pattern="2:4")


def test_cli_bad_pattern_is_one_line_error(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from sparsebert.cli import app
    from test_pipeline import write_sst2

    data = write_sst2(tmp_path / "glue", 16, 8)
    r = CliRunner().invoke(app, ["prune", "--teacher", str(tiny_bert), "--student", str(tiny_bert), "--task", "sst2",
                                 "--data-dir", str(data), "--out", str(tmp_path / "o"), "--pattern", "3x"])
    assert r.exit_code == 2 and "pattern '3x'" in r.output, r.output
    r = CliRunner().invoke(app, ["prune", "--teacher", str(tiny_bert), "--student", str(tiny_bert), "--task", "sst2",
                                 "--data-dir", str(data), "--out", str(tmp_path / "o"), "--pattern", "1:64",
                                 "--no-bf16", "--max-steps", "2"])
    assert r.exit_code == 2 and "in_features divisible by 64" in r.output and "has shape" in r.output, r.output


def test_experiment_spec_passes_the_pattern(tmp_path):
    import yaml

    from sparsebert.experiment import Cell, SpecError, load_spec
    from sparsebert.experiment.grid import cell_recipe

    def spec(**fields):
        base = {"name": "t", "model": "m", "tasks": {"sst2": {}}, "variants": ["dense-teacher", "sparsebert"]}
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({**base, **fields}))
        return load_spec(tmp_path / "s.yaml")

    s = spec(prune={"pattern": "1x4"})
    assert cell_recipe(s, Cell("sst2", "sparsebert", 0.9, 1), tmp_path).pattern == "1x4"
    s = spec(prune={"pattern": "2:4"}, sparsities=[0.5], sparsity=0.5)
    assert cell_recipe(s, Cell("sst2", "sparsebert", 0.5, 1), tmp_path).sparsity == 0.5
    with pytest.raises(SpecError, match=r"prune.pattern .2:4. fixes .* 0.5, but the grid also prunes to \[0.8\]"):
        spec(prune={"pattern": "2:4"}, sparsities=[0.5, 0.8], sparsity=0.95)
    with pytest.raises(SpecError, match="pattern '3x'"):
        spec(prune={"pattern": "3x"})


def test_trainer_callback_takes_the_pattern():
    from sparsebert.integrations import GradualPruningCallback

    assert GradualPruningCallback(pattern="2:4").sparsity == 0.5
    assert GradualPruningCallback().sparsity == PruneRecipe.model_fields["sparsity"].default
    cb = GradualPruningCallback.from_recipe(PruneRecipe(task="rte", out="o", teacher="t", student="s", pattern="1x4"))
    assert cb.pattern == "1x4"
    with pytest.raises(InputError, match="pattern '3x'"):
        GradualPruningCallback(pattern="3x")
    with pytest.raises(InputError, match="sparsity is 0.9"):
        GradualPruningCallback(0.9, pattern="2:4")


# --- a real prune run ------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,sparsity", [("1x4", 0.9), ("2:4", None)])
def test_prune_run_saves_weights_in_the_pattern(tiny_bert, tmp_path, pattern, sparsity):
    from typer.testing import CliRunner

    from sparsebert.cli import app
    from sparsebert.targets import qualified_names
    from test_pipeline import write_sst2
    from transformers import AutoModelForSequenceClassification

    data = write_sst2(tmp_path / "glue", n_train=48, n_dev=16)
    out = tmp_path / "s"
    args = ["prune", "--student", str(tiny_bert), "--task", "sst2", "--data-dir", str(data), "--out", str(out),
            "--pattern", pattern, "--prediction-weight", "0", "--label-weight", "1", "--max-steps", "8",
            "--batch-size", "16", "--max-length", "32", "--pruning-events", "4", "--no-bf16", "--save-every", "4"]
    if sparsity is not None:
        args += ["--sparsity", str(sparsity)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    p = parse_pattern(pattern)
    final = sparsity if sparsity is not None else p.final_sparsity
    weights = load_file(out / "model.safetensors")  # the saved checkpoint itself
    targets = qualified_names(AutoModelForSequenceClassification.from_pretrained(out))
    assert len(targets) == 12
    for name, key in targets.items():
        w = weights[key]
        kept = w != 0
        if p.kind == "block":
            assert is_block_structured(kept, p.rows, p.cols), name
            n_blocks = w.numel() // (p.rows * p.cols)
            assert int((~kept).sum()) == round(final * n_blocks) * p.rows * p.cols, name
        else:
            assert is_n_m(kept, p.n, p.m), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pattern"] == pattern and summary["recipe"]["pattern"] == pattern
    assert summary["recipe"]["sparsity"] == pytest.approx(final)
    blocks_zero = summary["sparsity"]["targets"]["block_sparsity_1x4"]
    if p.kind == "block":
        assert blocks_zero == pytest.approx(summary["sparsity"]["targets"]["sparsity"])
    schedule = next(json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()
                    if json.loads(line).get("event") == "schedule")
    assert schedule["pattern"] == pattern
