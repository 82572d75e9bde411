"""load_text (sparsebert.data.text), the decontamination matcher and the corpus builder's pieces,
on tiny files made here (no network). One test checks a built corpus's PROVENANCE.json and skips
when `make corpus` has not been run."""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import tarfile
import types
import zlib
from pathlib import Path

import pytest

from sparsebert.data.decontam import SentenceMatcher, normalise_words, split_sentences
from sparsebert.data.glue import DataError
from sparsebert.data.text import load_text
from sparsebert.errors import MissingDependencyError

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else lambda d: path.write_text(d, encoding="utf-8"))(data)
    return path


# ------------------------------------------------------------------------------------------- files

def test_txt_paragraphs_and_lines(tmp_path):
    paras = _write(tmp_path / "a.txt", "First line of one\nparagraph.\n\n  \nSecond paragraph.\r\n\r\nThird.\n")
    assert load_text(paras) == ["First line of one paragraph.", "Second paragraph.", "Third."]
    lines = _write(tmp_path / "b.txt", "\ufeffone document per line\nanother one\n\n")
    assert load_text(str(lines)) == ["one document per line", "another one"]


def test_jsonl_and_errors_name_file_and_line(tmp_path):
    good = _write(tmp_path / "c.jsonl", '{"text": " a doc ", "source": "x"}\n\n{"text": "b"}\n{"text": "  "}\n')
    assert load_text(good) == ["a doc", "b"]
    for body, line, words in [('{"text": "ok"}\n{"text": ', 2, "invalid JSON"),
                              ('{"text": "ok"}\n{"txt": "x"}\n', 2, 'no "text" field'),
                              ('{"text": 3}\n', 1, "must be a string"),
                              ('["text"]\n', 1, "JSON object")]:
        bad = _write(tmp_path / "bad.jsonl", body)
        with pytest.raises(DataError, match=words) as err:
            load_text(bad)
        assert str(err.value).startswith(f"{bad}:{line}: ") and err.value.line == line


def test_empty_whitespace_and_binary_files(tmp_path):
    with pytest.raises(DataError, match=r"empty\.txt: empty file"):
        load_text(_write(tmp_path / "empty.txt", b""))
    with pytest.raises(DataError, match=r"blank\.txt: no text"):
        load_text(_write(tmp_path / "blank.txt", " \n\n\t\n"))
    with pytest.raises(DataError, match=r"nothing\.jsonl: no text"):
        load_text(_write(tmp_path / "nothing.jsonl", '{"text": ""}\n'))
    with pytest.raises(DataError, match=r"nul\.txt:2: binary file: NUL byte at byte offset 6"):
        load_text(_write(tmp_path / "nul.txt", b"hello\n\x00x"))
    with pytest.raises(DataError, match=r"latin\.jsonl:1: not UTF-8 text: invalid byte 0xe9 at byte offset 13"):
        load_text(_write(tmp_path / "latin.jsonl", b'{"text": "caf\xe9"}\n'))


def test_unknown_extension_missing_file_and_bad_type(tmp_path):
    with pytest.raises(DataError, match=r"unknown file type '\.csv'; accepted: \.txt, \.jsonl"):
        load_text(_write(tmp_path / "x.csv", "a,b\n"))
    with pytest.raises(DataError, match="no such file"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(TypeError):
        load_text(3)
    with pytest.raises(DataError, match="no source"):
        load_text([])


def test_directory_is_recursive_sorted_and_skips_other_files(tmp_path):
    _write(tmp_path / "d" / "b.txt", "from b")
    _write(tmp_path / "d" / "a" / "z.jsonl", '{"text": "from a/z"}\n')
    _write(tmp_path / "d" / "notes.csv", "ignored")
    _write(tmp_path / "d" / ".hidden.txt", "ignored too")
    assert load_text(tmp_path / "d") == ["from a/z", "from b"]
    assert load_text([tmp_path / "d" / "b.txt", tmp_path / "d"]) == ["from b", "from a/z", "from b"]
    with pytest.raises(DataError, match=r"holds no text file \(accepted: \*\.txt, \*\.jsonl"):
        load_text(_write(tmp_path / "e" / "x.csv", "a").parent)


# ----------------------------------------------------------------------------------------- exclude

def test_normalisation_matches_tokenised_glue_text():
    assert normalise_words("it 's a -lrb- good -rrb- film , is n't it ?") == normalise_words("It's a (good) film, isn't it?")
    assert normalise_words("He doesn 't fit") == normalise_words("He doesn't fit")
    assert split_sentences('He left. "Why?" she asked. Mr. Smith stayed') == ["He left.", '"Why?" she asked.', "Mr.",
                                                                              "Smith stayed"]


def test_exclude_drops_documents_containing_a_sentence(tmp_path):
    docs = _write(tmp_path / "docs.txt", "The cat sat on the warm mat today, and then it slept.\n\n"
                                         "A different paragraph about dogs and their many friends.\n\n"
                                         "The cat sat.\n")
    sentences = ["the cat sat on the warm mat", "The cat sat."]  # the second is too short to be used
    assert load_text(docs, exclude=sentences) == ["A different paragraph about dogs and their many friends.",
                                                  "The cat sat."]
    assert load_text(docs, exclude=sentences, min_words=2) == ["A different paragraph about dogs and their many friends."]
    m = SentenceMatcher(sentences)
    assert len(m) == 1 and m.n_ignored == 1
    assert "The CAT sat on the warm-mat." in m and "cat sat on the warm mat" not in m
    assert m.find_all("x the cat sat on the warm mat y") == {"the cat sat on the warm mat"}


# ------------------------------------------------------------------------------- general and hub

def test_general_missing_says_make_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEBERT_CORPUS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="make corpus"):
        load_text("general")


def test_general_by_source_name(tmp_path, monkeypatch):
    root = tmp_path / "general"
    _write(root / "general.jsonl", '{"text": "a1"}\n{"text": "b1"}\n')
    _write(root / "a.jsonl", '{"text": "a1"}\n')
    _write(root / "b.jsonl", '{"text": "b1"}\n')
    _write(root / "PROVENANCE.json", json.dumps({"sources": [{"name": "a"}, {"name": "b"}]}))
    monkeypatch.setenv("SPARSEBERT_CORPUS_DIR", str(root))
    assert load_text("general") == ["a1", "b1"]
    assert load_text("general:b") == ["b1"] and load_text("general:all") == ["a1", "b1"]
    with pytest.raises(DataError, match=r"unknown corpus source\(s\) \['c'\]"):
        load_text("general:c")


def test_hub_without_datasets_or_offline(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(MissingDependencyError, match="datasets"):
        load_text("hf:wikitext:wikitext-103-raw-v1")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub (offline)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(DataError, match=r"cannot load the Hugging Face dataset 'wikitext'.*ConnectionError"):
        load_text("hf:wikitext:wikitext-103-raw-v1")
    with pytest.raises(DataError, match="expected hf:<dataset>"):
        load_text("hf:")


def test_hub_rows_become_documents(monkeypatch):
    class FakeSplit:
        column_names = ["text"]

        def __getitem__(self, key):
            return ["", " = Heading = \n", " Some text here . \n", "More text.\n"]

    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return FakeSplit()

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert load_text("hf:wikitext:wikitext-2-raw-v1:validation") == ["Some text here .", "More text."]
    assert calls == [("wikitext", "wikitext-2-raw-v1", "validation")]


# ------------------------------------------------------------------------------ corpus builder parts

def _xdr_strings(values: list[str]) -> bytes:
    """An R XDR serialisation (version 3) of a character vector."""
    out = b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    out += struct.pack(">ii", 16, len(values))
    for v in values:
        raw = v.encode("utf-8")
        out += struct.pack(">ii", 9 | (1 << 15), len(raw)) + raw
    return out


def test_rdata_lazyload_roundtrip(tmp_path):
    from sparsebert.data.rdata import RDataError, lazyload_objects, unserialize

    assert unserialize(_xdr_strings(["It is a truth", "universally acknowledged"])) == ["It is a truth",
                                                                                          "universally acknowledged"]
    obj = _xdr_strings(["line one", ""])
    record = struct.pack(">I", len(obj)) + b"Z" + zlib.compress(obj)
    _write(tmp_path / "Rdata.rdb", record)
    # index: list(variables = list(book = c(0L, len)), ...) as a named VECSXP
    name = b"book"
    index = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300)
    index += struct.pack(">ii", 19 | (1 << 9), 1)  # list of 1, with attributes
    index += struct.pack(">ii", 19 | (1 << 9), 1)  # variables: list of 1, with attributes
    index += struct.pack(">ii", 13, 2) + struct.pack(">ii", 0, len(record))
    index += struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 1) + struct.pack(">ii", 9, 5) + b"names"
    index += struct.pack(">ii", 16, 1) + struct.pack(">ii", 9, len(name)) + name + struct.pack(">i", 254)
    index += struct.pack(">i", 2 | (1 << 10)) + struct.pack(">i", 255 | (1 << 8))  # tag: ref 1 = the symbol names
    index += struct.pack(">ii", 16, 1) + struct.pack(">ii", 9, 9) + b"variables" + struct.pack(">i", 254)
    _write(tmp_path / "Rdata.rdx", gzip.compress(index))
    assert lazyload_objects(tmp_path / "Rdata.rdx", tmp_path / "Rdata.rdb") == {"book": ["line one", ""]}
    with pytest.raises(RDataError, match="not an R XDR"):
        unserialize(b"A\n")
    with pytest.raises(RDataError, match="unsupported R object type 3"):
        unserialize(b"X\n" + struct.pack(">iii", 2, 0, 0) + struct.pack(">i", 3))


def test_deb_members_and_dictd_entries(tmp_path):
    from sparsebert.data.debpkg import DebPackage, deb_members
    from sparsebert.data.dictd import dictd_entries

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        for name, data in (("./usr/share/dictd/x.index", b"i"), ("./usr/share/doc/x/copyright", b"c")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    def member(name: str, data: bytes) -> bytes:
        head = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return head + data + (b"\n" if len(data) % 2 else b"")

    deb = _write(tmp_path / "x.deb", b"!<arch>\n" + member("debian-binary", b"2.0\n")
                 + member("data.tar.gz", payload.getvalue()))
    assert deb_members(deb, lambda n: n.startswith("usr/share/dictd/")) == {"usr/share/dictd/x.index": b"i"}
    pkg = DebPackage("dict-x", "1:1.0+a-1", "pool/main/d/dict-x/dict-x_1.0+a-1_all.deb", "0" * 64, 1)
    assert pkg.filename == "dict-x_1.0+a-1_all.deb" and pkg.url("http://m/debian/").endswith("dict-x_1.0%2ba-1_all.deb")

    data = b"head\n  body one\n\nother\n  body two\n"
    index = b"00-database-info\tA\tB\nhead\tA\tQ\nalias\tA\tQ\nother\tQ\tS\n"  # A=0, Q=16, S=18
    assert dictd_entries(index, gzip.compress(data)) == [("head", data[:16].decode()), ("other", data[16:34].decode())]


@pytest.mark.skipif(not (REPO / ".cache/corpus/general/PROVENANCE.json").is_file(), reason="make corpus not run")
def test_built_corpus_matches_its_provenance():
    root = REPO / ".cache/corpus/general"
    prov = json.loads((root / "PROVENANCE.json").read_text(encoding="utf-8"))
    from sparsebert.data.corpus import SOURCES

    pinned = {s.name: s.package for s in SOURCES}
    combined = 0
    for entry in prov["sources"]:
        lines = (root / entry["jsonl"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == entry["documents"] > 0
        assert all(json.loads(line)["source"] == entry["name"] for line in lines[:50])
        if pinned[entry["name"]] is not None:
            assert entry["sha256"] == pinned[entry["name"]].sha256 and entry["version"] == pinned[entry["name"]].version
        assert entry["licence"] and entry["cleaning"]
        assert isinstance(entry["in_general_jsonl"], bool)
        combined += entry["documents"] if entry["in_general_jsonl"] else 0
    assert prov["combined"]["documents"] == combined == sum(1 for _ in open(root / "general.jsonl", encoding="utf-8"))
    assert prov["decontamination"] is not None and set(prov["decontamination"]["dev_tasks"]) >= {"cola", "sst2", "mrpc",
                                                                                                 "stsb", "rte", "qnli"}
