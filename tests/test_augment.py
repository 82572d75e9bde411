"""TinyBERT data augmentation (``sparsebert.data.augment``): reproducibility, labels, replacement
rate, what is never replaced, pair tasks, the MLM and neighbour paths, file errors, prune/CLI use.

All models are tiny random BERTs (2 layers, hidden 32) over a small WordPiece vocabulary; the
mechanics do not depend on trained weights.
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsebert.cli import app
from sparsebert.data.augment import (
    STOP_WORDS, Augmenter, AugmentSettings, augment_cache_key, augment_task, load_augmented,
    prepare_augmented, read_word_vectors,
)
from sparsebert.data.glue import DataError, read_glue_split
from sparsebert.io import OutputExistsError
from tiny import SPECIAL, WORDS

CONTENT = ("company market price stock bank money government court police city country report people "
           "business million week month state law officer judge trial sale deal group team game plan news "
           "world house car road school water power music film book paper table window river").split()
STOPS = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "that", "he", "they", "not", "with"]
RARE = ["zebra", "quokka", "fjord"]  # not in the vocabulary: several word-pieces each


def _make_model(out: Path, mlm: bool) -> Path:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits] + WORDS + CONTENT
    (out / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab=str(out / "vocab.txt"), do_lower_case=True)  # transformers 5: "vocab"
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=258, pad_token_id=0)
    (BertForMaskedLM if mlm else BertModel)(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    """No MLM head: every word goes to the embedding-neighbour path."""
    return _make_model(tmp_path_factory.mktemp("aug") / "plain", mlm=False)


@pytest.fixture(scope="module")
def mlm_model(tmp_path_factory) -> Path:
    return _make_model(tmp_path_factory.mktemp("aug") / "mlm", mlm=True)


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(CONTENT + STOPS + RARE) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice([" .", "!", ""])


def write_sst2(root: Path, n: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    d = root / "SST-2"
    d.mkdir(parents=True, exist_ok=True)
    rows = ["sentence\tlabel"] + [f"{_sentence(rng, rng.randint(3, 10))}\t{i % 2}" for i in range(n)]
    (d / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (d / "dev.tsv").write_text("sentence\tlabel\ncompany news\t1\nbad deal\t0\n", encoding="utf-8")
    return root


def write_stsb(root: Path, n: int = 12) -> Path:
    """Pair task, float labels, 10 columns of which 7 are neither text nor label."""
    rng = random.Random(1)
    d = root / "STS-B"
    d.mkdir(parents=True)
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    rows = [head] + [f"{i}\tmain-news\tf{i}\t2012\t{i:04d}\tnone\tnone\t{_sentence(rng, 6)}\t{_sentence(rng, 7)}"
                     f"\t{rng.choice(['0.000', '2.400', '5.000'])}" for i in range(n)]
    (d / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _words(text: str) -> list[str]:
    return re.split(r"\s+", text)


def _eligible(word: str) -> bool:
    m = re.fullmatch(r"[^A-Za-z0-9]*([A-Za-z]+)[^A-Za-z0-9]*", word)
    return m is not None and m.group(1).lower() not in STOP_WORDS and word not in SPECIAL


# --------------------------------------------------------------------------- basics


def test_stop_word_list_is_nltk_english():
    assert len(STOP_WORDS) == 179
    assert {"the", "of", "don't", "wouldn't", "ourselves", "y"} <= STOP_WORDS
    assert "company" not in STOP_WORDS


def test_settings_validation():
    for bad in (dict(copies=0), dict(p=1.5), dict(p=-0.1), dict(top_k=0), dict(mlm="yes"), dict(mlm_mask="x")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AugmentSettings(**bad)


# --------------------------------------------------------------------------- the tests of the issue


def test_same_seed_identical_output(plain_model, tmp_path):
    data = write_sst2(tmp_path / "glue")
    recs = [augment_task("sst2", data, str(plain_model), tmp_path / name, AugmentSettings(copies=5, seed=seed),
                         progress=False) for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    a, b, c = ((tmp_path / n / "SST-2" / "train.tsv").read_bytes() for n in "abc")
    assert a == b
    assert a != c
    assert recs[0]["input"]["sha256"] == recs[1]["input"]["sha256"]
    # the batching of the neighbour / MLM passes does not change the result
    d = augment_task("sst2", data, str(plain_model), tmp_path / "d", AugmentSettings(copies=5, seed=7, batch_size=3),
                     progress=False)
    assert (tmp_path / "d" / "SST-2" / "train.tsv").read_bytes() == a and d["counts"] == recs[0]["counts"]


def test_labels_preserved_originals_first_and_record(plain_model, tmp_path):
    data = write_sst2(tmp_path / "glue", n=30)
    rec = augment_task("sst2", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=4), progress=False)
    orig = read_glue_split("sst2", data, "train")
    out = read_glue_split("sst2", tmp_path / "out", "train")  # a normal training file
    assert len(out) == 30 * 5 == rec["counts"]["total"]
    assert [(e.text_a, e.label) for e in out[:30]] == [(e.text_a, e.label) for e in orig]
    for i, e in enumerate(orig):
        for copy in out[30 + 4 * i: 30 + 4 * (i + 1)]:
            assert copy.label == e.label
            assert len(_words(copy.text_a)) == len(_words(e.text_a))
    assert load_augmented(tmp_path / "out", "sst2") == out
    assert (tmp_path / "out" / "SST-2" / "dev.tsv").read_bytes() == (data / "SST-2" / "dev.tsv").read_bytes()
    for key in ("settings", "model", "counts", "seconds", "examples_per_second"):
        assert key in rec
    assert rec["settings"]["copies"] == 4 and rec["settings"]["p"] == 0.4 and rec["settings"]["top_k"] == 15
    assert len(rec["input"]["sha256"]) == 64 and rec["mlm_head"] is False


def test_replacement_rate_close_to_p(plain_model):
    rng = random.Random(3)
    examples = [_example(_sentence(rng, 12)) for _ in range(200)]
    for p in (0.0, 0.4, 1.0):
        aug = Augmenter(str(plain_model), AugmentSettings(copies=20, p=p, seed=1))
        copies, counts = aug.augment(examples)
        changed = total = 0
        for ex, versions in zip(examples, copies):
            words = _words(ex.text_a)
            for v in versions:
                new = _words(v.text_a)
                assert len(new) == len(words)
                for w, n in zip(words, new):
                    if _eligible(w):
                        total += 1
                        changed += w != n
                    else:
                        assert w == n
        assert counts["words_without_replacements"] == 0  # every word has neighbours here
        assert changed == counts["replaced"] and total == counts["replacement_chances"]
        assert abs(changed / total - p) < 0.015, (p, changed / total)  # ~ 48,000 chances: sd 0.0022


def _example(a: str, b: str | None = None, label=1):
    from sparsebert.data.glue import Example

    return Example(a, b, label, "mem:1")


@pytest.mark.parametrize("which", ["plain", "mlm"])
def test_special_tokens_and_stop_words_never_replaced(which, plain_model, mlm_model):
    model = plain_model if which == "plain" else mlm_model
    aug = Augmenter(str(model), AugmentSettings(copies=10, p=1.0))
    text = "[CLS] The company [SEP] said that the market was [MASK] not good, [UNK] (court) NASA 42 U.S. don't"
    copies, _ = aug.augment([_example(text)])
    words = _words(text)
    keep = {"[CLS]", "[SEP]", "[MASK]", "[UNK]", "42", "U.S.", "don't"} | {w for w in words if w.lower() in STOP_WORDS}
    for v in copies[0]:
        new = _words(v.text_a)
        for w, n in zip(words, new):
            if w in keep:
                assert n == w
            else:  # p = 1: every candidate word changes, keeping punctuation and capitalisation
                assert n != w
                assert n[0] == w[0] if not w[0].isalpha() else True
                assert n[-1] == w[-1] if not w[-1].isalpha() else True
                assert n.isupper() == w.isupper() and n[0].isupper() == w[0].isupper()
        for s in SPECIAL:
            assert v.text_a.count(s) == text.count(s)


def test_pair_task_keeps_both_fields_and_other_columns(plain_model, tmp_path):
    data = write_stsb(tmp_path / "glue")
    augment_task("stsb", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=3), progress=False)
    orig = read_glue_split("stsb", data, "train")
    out = read_glue_split("stsb", tmp_path / "out", "train")
    assert len(out) == 12 * 4
    assert all(e.text_b is not None for e in out)
    copies = out[12:]
    assert any(c.text_b != orig[i // 3].text_b for i, c in enumerate(copies))
    assert any(c.text_a != orig[i // 3].text_a for i, c in enumerate(copies))
    assert [c.label for c in copies] == [e.label for e in orig for _ in range(3)]
    lines = (tmp_path / "out" / "STS-B" / "train.tsv").read_text(encoding="utf-8").splitlines()
    src = (data / "STS-B" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == src[0] and lines[1:13] == src[1:]
    for i, line in enumerate(lines[13:]):  # every non-text column copied verbatim
        f, g = line.split("\t"), src[1 + i // 3].split("\t")
        assert f[:7] == g[:7] and f[9] == g[9]


def test_cola_headerless_layout_round_trip(plain_model, tmp_path):
    d = tmp_path / "glue" / "CoLA"
    d.mkdir(parents=True)
    (d / "train.tsv").write_text("gj04\t1\t\tThe company said the price was good.\n"
                                 "gj04\t0\t*\tCourt the market news.\n", encoding="utf-8")
    augment_task("cola", tmp_path / "glue", str(plain_model), tmp_path / "out", AugmentSettings(copies=2),
                 progress=False)
    out = read_glue_split("cola", tmp_path / "out", "train")
    assert [e.label for e in out] == [1, 0, 1, 1, 0, 0]
    raw = (tmp_path / "out" / "CoLA" / "train.tsv").read_text().splitlines()
    assert raw[3].startswith("gj04\t1\t\t") and raw[5].startswith("gj04\t0\t*\t")


# --------------------------------------------------------------------------- MLM / neighbour paths


def test_mlm_path_batched_equals_one_row_per_batch(mlm_model):
    texts = ["The company said market prices fell", "Court news : zebra police report .", "quokka bank fjord"]
    one = Augmenter(str(mlm_model), AugmentSettings(batch_size=1)).prepare(texts)
    many = Augmenter(str(mlm_model), AugmentSettings(batch_size=64)).prepare(texts)
    assert [one[t].cands for t in texts] == [many[t].cands for t in texts]
    st = many[texts[1]]
    sources = dict(zip((st.pieces[j][1] for j in range(len(st.slots))), st.source))
    assert sources["police"] == "mlm" and sources["zebra"] == "neighbours"  # 1 piece vs several
    for t in texts:
        for (pre, core, suf), cands in zip(many[t].pieces, many[t].cands):
            assert 0 < len(cands) <= 15
            assert core.lower() not in {c.lower() for c in cands}
            assert all(re.fullmatch(r"[A-Za-z]{2,}", c) and c.lower() not in STOP_WORDS for c in cands)
    # "all" masking: one row per text, same candidate words get MLM sets
    allm = Augmenter(str(mlm_model), AugmentSettings(mlm_mask="all")).prepare(texts)
    assert [allm[t].source for t in texts] == [many[t].source for t in texts]


def test_mlm_switches(mlm_model, plain_model):
    assert Augmenter(str(mlm_model)).use_mlm
    assert not Augmenter(str(mlm_model), AugmentSettings(mlm="off")).use_mlm
    with pytest.raises(ValueError, match="no masked-LM head"):
        Augmenter(str(plain_model), AugmentSettings(mlm="on"))


def test_glove_reader_and_neighbours(plain_model, tmp_path):
    glove = tmp_path / "vectors.txt"
    rng = np.random.default_rng(0)
    vocab = ["company", "firm", "business", "market", "bazaar", "court", "tribunal", "the", "a", "42", "zebra", "horse"]
    glove.write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=5))} \n" for w in vocab))
    wv = read_word_vectors(glove)
    assert wv.vectors.shape == (12, 5) and wv.vectors.dtype == np.float32 and wv.lookup("Company") == 0
    assert read_word_vectors(glove, max_words=3).words == vocab[:3]
    aug = Augmenter(str(plain_model), AugmentSettings(copies=5, p=1.0, top_k=2), wv)
    prepared = aug.prepare(["Company court zebra unknownword"])
    st = prepared["Company court zebra unknownword"]
    allowed = {"company", "firm", "business", "market", "bazaar", "court", "tribunal", "zebra", "horse"}
    assert [len(c) for c in st.cands] == [2, 2, 2, 0]  # not in GloVe -> no candidates, kept
    assert all(c.lower() in allowed for cands in st.cands for c in cands)
    assert st.cands[0][0][0].isupper()
    # word2vec-style header line is accepted
    (tmp_path / "w2v.txt").write_text("2 3\nfoo 1 2 3\nbar 4 5 6\n")
    assert read_word_vectors(tmp_path / "w2v.txt").words == ["foo", "bar"]


@pytest.mark.parametrize("content, line, message", [
    ("foo 1 2 3\nbar 1 2\n", 2, "expected a word and 3 numbers"),
    ("foo 1 2 3\nbar 1 x 3\n", 2, "'x' of word 'bar' is not a number"),
    ("foo 1 2 3\n\nbar 1 2 3\n", 2, "blank line"),
    ("foo 1 nan 3\n", 1, "not finite"),
    ("foo\n", 1, "expected a word followed by its vector"),
])
def test_glove_malformed_lines(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: ")) as err:
        read_word_vectors(path)
    assert message in str(err.value) and err.value.line == line


def test_glove_empty_or_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt: no word vectors"):
        read_word_vectors(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_word_vectors(tmp_path / "nope.txt")


# --------------------------------------------------------------------------- bad input / outputs


@pytest.mark.parametrize("content, pattern", [
    ("", r"train\.tsv: empty file"),
    ("sentence\tlabel\n", r"train\.tsv: no data rows \(header only\)"),
    ("sentence\tlabel\ngood company\t1\nbad row without label\n", r"train\.tsv:3: expected 2 tab-separated fields"),
    ("sentence\tlabel\ngood company\t7\n", r"train\.tsv:2: unknown label '7'"),
])
def test_empty_or_malformed_input_fails_clearly(plain_model, tmp_path, content, pattern):
    d = tmp_path / "glue" / "SST-2"
    d.mkdir(parents=True)
    (d / "train.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=pattern):
        augment_task("sst2", tmp_path / "glue", str(plain_model), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    r = CliRunner().invoke(app, ["augment", "--model", str(plain_model), "--task", "sst2", "--data-dir",
                                 str(tmp_path / "glue"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and re.search(pattern, r.output) and r.output.count("\n") == 1, r.output


def test_existing_output_refused_without_overwrite(plain_model, tmp_path):
    data = write_sst2(tmp_path / "glue", n=6)
    augment_task("sst2", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=1), progress=False)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        augment_task("sst2", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=2), progress=False)
    rec = augment_task("sst2", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=2),
                       overwrite=True, progress=False)
    assert rec["counts"]["total"] == 18 == len(load_augmented(tmp_path / "out", "sst2"))


def test_load_augmented_checks(plain_model, tmp_path):
    data = write_sst2(tmp_path / "glue", n=6)
    augment_task("sst2", data, str(plain_model), tmp_path / "out", AugmentSettings(copies=1), progress=False)
    with pytest.raises(ValueError, match="for task 'sst2', not 'cola'"):
        load_augmented(tmp_path / "out", "cola")
    with pytest.raises(FileNotFoundError, match="augment"):
        load_augmented(tmp_path / "missing", "sst2")
    train = tmp_path / "out" / "SST-2" / "train.tsv"
    train.write_text("\n".join(train.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(DataError, match="10 examples, but augment.json records 12"):
        load_augmented(tmp_path / "out", "sst2")


# --------------------------------------------------------------------------- prune / CLI


def test_prune_trains_on_augmented_data(plain_model, tmp_path, monkeypatch):
    from sparsebert import PruneRecipe, prune

    data = write_sst2(tmp_path / "glue", n=16)
    runner = CliRunner()
    r = runner.invoke(app, ["augment", "--model", str(plain_model), "--task", "sst2", "--data-dir", str(data),
                            "--out", str(tmp_path / "aug"), "--copies", "3", "--no-progress"])
    assert r.exit_code == 0 and "16 / 64" in r.output, r.output
    fast = dict(task="sst2", data_dir=str(data), teacher=str(plain_model), student=str(plain_model),
                max_steps=2, batch_size=8, max_length=32, bf16=False, pruning_events=2, sparsity=0.5)
    with pytest.warns(UserWarning, match="unnamed"):
        s = prune(PruneRecipe(out=str(tmp_path / "s"), augment=str(tmp_path / "aug"), **fast))
    assert s["train_examples"] == 64 and s["augmented_data"] == str(tmp_path / "aug")
    # on the fly: cached under .cache/augment/<key>, reused the second time
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="unnamed"):
        s = prune(PruneRecipe(out=str(tmp_path / "s2"), augment="auto", **fast))
    cache = Path(s["augmented_data"])
    assert cache.parent == Path(".cache/augment") and s["train_examples"] == 16 * 21
    mtime = (cache / "augment.json").stat().st_mtime_ns
    assert prepare_augmented("auto", "sst2", data, str(plain_model), 42) == cache
    assert (cache / "augment.json").stat().st_mtime_ns == mtime
    key = augment_cache_key(load_json(cache)["input"]["sha256"], "sst2", str(plain_model), AugmentSettings(seed=43))
    assert key != cache.name  # another seed, another cache entry


def load_json(d: Path) -> dict:
    import json

    return json.loads((d / "augment.json").read_text())


def test_byte_level_bpe_model(tmp_path):
    """RoBERTa-style vocabularies: whole words are the 'Ġ'-prefixed tokens; the MLM path still works."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(CONTENT + STOPS) for _ in range(12)) for _ in range(300)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tmp_path))
    tok = RobertaTokenizerFast(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=260, pad_token_id=tok.pad_token_id)
    RobertaForMaskedLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    aug = Augmenter(str(tmp_path), AugmentSettings(copies=4, p=1.0))
    assert aug.use_mlm and "company" in aug.vocab_words and not any(w.startswith("\u0120") for w in aug.vocab_words)
    copies, counts = aug.augment([_example("The company said market prices fell, zebra.")])
    assert counts["mlm_words"] >= 2 and counts["neighbour_words"] >= 1 and counts["replacement_rate"] == 1.0
    for v in copies[0]:
        assert v.text_a.startswith("The ") and v.text_a.endswith(".") and "\u0120" not in v.text_a


# --------------------------------------------------------------------------- teacher-agreement filter


def test_teacher_agreement_classification():
    from sparsebert.data.augment import teacher_agreement

    #            originals (kept whatever the teacher says)   copies
    logits = np.array([[2, 0], [0, 1], [3, 0],                  [0, 5], [4, 0], [1, 0], [0, 2]], dtype=float)
    labels = [0, 0, 1,                                          1, 1, 0, 0]
    keep, st = teacher_agreement(logits, labels, n_original=3, regression=False)
    assert keep.tolist() == [True, True, True, True, False, True, False]
    assert (st["originals"], st["copies"], st["kept_copies"], st["kept_share"]) == (3, 4, 2, 0.5)
    assert st["teacher_class_share"] == {"originals": [0.6667, 0.3333], "copies": [0.5, 0.5], "kept_copies": [0.5, 0.5]}
    assert st["gold_class_share"] == {"originals": [0.6667, 0.3333], "copies": [0.5, 0.5], "kept_copies": [0.5, 0.5]}
    assert st["teacher_agrees_with_gold"] == {"originals": 0.3333, "copies": 0.5}


def test_teacher_agreement_regression_uses_the_teachers_error_on_the_originals():
    from sparsebert.data.augment import teacher_agreement

    scores = np.array([[1.0], [3.5], [2.0], [4.0], [0.0]])
    gold = [1.5, 3.0, 2.4, 1.0, 0.5]  # originals' errors 0.5, 0.5 -> tolerance 0.5
    keep, st = teacher_agreement(scores, gold, n_original=2, regression=True)
    assert keep.tolist() == [True, True, True, False, True] and st["tolerance"] == 0.5
    assert st["teacher_mae"] == {"originals": 0.5, "copies": round((0.4 + 3.0 + 0.5) / 3, 4)}


@pytest.mark.parametrize("args, match", [
    ((np.zeros((3, 2)), [0, 1], 1, False), r"shape \(3, 2\) for 2 labels"),
    ((np.zeros((2, 2)), [0, 1], 3, False), "n_original=3 outside"),
    ((np.zeros((2, 2)), [0.0, 1.0], 1, True), "regression needs one logit"),
])
def test_teacher_agreement_rejects_misfit_input(args, match):
    from sparsebert.data.augment import teacher_agreement
    from sparsebert.errors import InputError

    with pytest.raises(InputError, match=match):
        teacher_agreement(*args)


def test_prune_augment_filter_keeps_originals_and_agreeing_copies(plain_model, tmp_path):
    from sparsebert import PruneRecipe, prune

    data = write_sst2(tmp_path / "glue", n=16)
    augment_task("sst2", data, str(plain_model), tmp_path / "aug", AugmentSettings(copies=3), progress=False)
    fast = dict(task="sst2", data_dir=str(data), teacher=str(plain_model), student=str(plain_model),
                max_steps=2, batch_size=8, max_length=32, bf16=False, pruning_events=2, sparsity=0.5,
                augment=str(tmp_path / "aug"))
    with pytest.raises(ValueError, match="needs augment"):
        PruneRecipe(out="x", **{**fast, "augment": None}, augment_filter="teacher-agrees")
    import importlib

    import sparsebert.data.encode as encode_mod
    import sparsebert.data.taskdata as taskdata_mod

    prune_mod = importlib.import_module("sparsebert.stages.prune")  # the module; the package's `prune` is the function

    # the augmented set is tokenised once, and the teacher is not run during training (its logits
    # come from the filter's pass)
    encoded, teacher_calls, calls_in_fit, hooked = [], [0], [], []

    def counting_encode(tokenizer, examples, *a, **k):
        encoded.append(len(examples))
        return encode(tokenizer, examples, *a, **k)

    def hooked_load(name, task, **kw):
        model = load_for_task(name, task, **kw)
        if kw.get("require_head"):
            model.register_forward_hook(lambda *_: teacher_calls.__setitem__(0, teacher_calls[0] + 1))
            hooked.append(name)
        return model

    def counting_fit(*a, **k):
        before = teacher_calls[0]
        try:
            return fit(*a, **k)
        finally:
            calls_in_fit.append(teacher_calls[0] - before)

    encode, load_for_task, fit = encode_mod.encode_examples, prune_mod.load_for_task, prune_mod.fit
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(encode_mod, "encode_examples", counting_encode)
        mp.setattr(taskdata_mod, "encode_examples", counting_encode)
        mp.setattr(prune_mod, "load_for_task", hooked_load)
        mp.setattr(prune_mod, "fit", counting_fit)
        with pytest.warns(UserWarning, match="unnamed"):
            s = prune(PruneRecipe(out=str(tmp_path / "s"), augment_filter="teacher-agrees", **fast))
    assert sorted(encoded) == [2, 64], encoded  # dev (2 rows) and the augmented train set, once
    assert hooked == [str(plain_model)] and calls_in_fit == [0]  # (the old code ran it once per step)
    st = s["augment_filter"]
    assert st["originals"] == 16 and st["copies"] == 48
    assert s["train_examples"] == 16 + st["kept_copies"] < 64
    # the kept copies are those whose gold label is the teacher's class, and they hold that share
    shares = st["teacher_class_share"]["kept_copies"]
    assert shares == st["gold_class_share"]["kept_copies"] and abs(sum(shares) - 1) < 1e-3
    assert st["kept_share"] == round(st["kept_copies"] / 48, 4) == st["teacher_agrees_with_gold"]["copies"]
    assert s["teacher_logits_cached"] is True
    events = [json.loads(line)["event"] for line in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    assert "augment_filter" in events and "teacher_cache" in events
