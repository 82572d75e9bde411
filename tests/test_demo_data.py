"""The embedded demo data (movie snippets from the vaderSentiment 3.3.2 sdist).

The logic is tested on a tiny fake nested tarball built in ``tmp_path``; the real sdist is
tested when present (``$SPARSEBERT_DEMO_SDIST``, ``.cache/demo/sdist/`` as ``make demo``
downloads it, or ``/tmp/vader/``), and skipped with a reason otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from sparsebert.data import (
    DEMO_SDIST_SHA256,
    DataError,
    read_glue_split,
    read_movie_snippets,
    write_demo_glue,
)
from sparsebert.data.demo import DEMO_INNER_TARBALL, DEMO_SNIPPETS_MEMBER

# ---------------------------------------------------------------------------------------------
# fake sdist


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _fake_sdist(tmp_path: Path, snippets: bytes, *, inner_name: str = DEMO_SNIPPETS_MEMBER) -> Path:
    inner = _tar_gz({inner_name: snippets, "hutto_ICWSM_2014/_README_.txt": b"readme"})
    outer = _tar_gz({"vaderSentiment-3.3.2/setup.py": b"", DEMO_INNER_TARBALL: inner})
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(outer)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(rows: list[tuple[str, str]]) -> bytes:
    # the real file: CRLF line ends, no final newline
    return "\r\n".join(f"{i}\t{r}\t{t}" for i, (r, t) in enumerate(rows, 1)).encode("utf-8")


FAKE = [(f"{(-1) ** i * (1 + i % 3) / 2:.5f}", f"snippet number {i} is {'good' if i % 2 == 0 else 'bad'}")
        for i in range(40)]


@pytest.fixture()
def fake(tmp_path: Path) -> Path:
    rows = FAKE + [("0", "perfectly neutral"), ("2.5", "snippet number 0 is good"),  # dup text
                   ("-1.25", "has\x0ba vertical tab and\u2028a line separator")]
    return _fake_sdist(tmp_path, _lines(rows))


def test_read_fake(fake):
    rows = read_movie_snippets(fake, sha256=_sha(fake))
    assert len(rows) == len(FAKE) + 3
    assert rows[0] == ("snippet number 0 is good", 0.5)
    assert rows[1] == ("snippet number 1 is bad", -1.0)
    assert rows[-1] == ("has\x0ba vertical tab and\u2028a line separator", -1.25)  # CR stripped, text as is
    assert read_movie_snippets(fake, sha256=None) == rows


def test_bad_sha256_rejected(fake):
    with pytest.raises(ValueError, match="sha256 mismatch") as info:
        read_movie_snippets(fake)  # default: the published hash of the real sdist
    msg = str(info.value)
    assert str(fake) in msg and DEMO_SDIST_SHA256 in msg and _sha(fake) in msg
    with pytest.raises(ValueError, match="sha256 mismatch"):
        write_demo_glue(fake, fake.parent / "out")
    assert not (fake.parent / "out").exists()


@pytest.mark.parametrize(
    "line,match",
    [("7\t1.0", "expected 3 tab-separated fields"), ("7\tgreat\tx", "not a number"),
     ("7\t4.5\tx", "outside"), ("7\tnan\tx", "outside"), ("7\t1.0\t  ", "whitespace-only")],
)
def test_malformed_line_names_member_and_line(tmp_path, line, match):
    sdist = _fake_sdist(tmp_path, _lines(FAKE[:2]) + b"\r\n" + line.encode())
    with pytest.raises(DataError, match=match) as info:
        read_movie_snippets(sdist, sha256=None)
    assert str(info.value).startswith(f"{sdist}!{DEMO_INNER_TARBALL}!{DEMO_SNIPPETS_MEMBER}:3: ")
    assert info.value.line == 3


def test_missing_member(tmp_path):
    sdist = _fake_sdist(tmp_path, b"1\t1.0\tx", inner_name="hutto_ICWSM_2014/other.txt")
    with pytest.raises(DataError, match="movieReviewSnippets_GroundTruth.txt.*not found"):
        read_movie_snippets(sdist, sha256=None)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vaderSentiment"):
        read_movie_snippets(tmp_path / "nope.tar.gz")


def test_write_demo_glue_labels_split_and_reader(fake, tmp_path):
    out = tmp_path / "glue"
    root = write_demo_glue(fake, out, n_train=30, n_dev=8, seed=1, sha256=None)
    assert root == out
    assert sorted(p.name for p in (out / "SST-2").iterdir()) == ["dev.tsv", "train.tsv"]  # no temp files
    assert (out / "SST-2" / "dev.tsv").read_text("utf-8").startswith("sentence\tlabel\n")
    train = read_glue_split("sst2", out, "train")
    dev = read_glue_split("sst2", out, "dev")
    assert (len(train), len(dev)) == (30, 8)
    texts = [e.text_a for e in train + dev]
    assert len(set(texts)) == len(texts)  # duplicate text kept once, not in both splits
    assert "perfectly neutral" not in texts  # rating 0 dropped
    truth = {t: float(r) for r, t in FAKE}
    truth["has a vertical tab and a line separator"] = -1.25
    for e in train + dev:
        assert e.label == (1 if truth[e.text_a] > 0 else 0)


def test_write_demo_glue_all_and_defaults(fake, tmp_path):
    out = write_demo_glue(fake, tmp_path / "all", n_train=None, n_dev=None, sha256=None)
    train, dev = read_glue_split("sst2", out, "train"), read_glue_split("sst2", out, "dev")
    usable = len(FAKE) + 1  # + the vertical-tab/separator row; the 0-rated row and the duplicate dropped
    assert len(dev) == round(0.1 * usable) and len(train) + len(dev) == usable
    with pytest.raises(ValueError, match="only 41 usable"):
        write_demo_glue(fake, tmp_path / "big", n_train=40, n_dev=5, sha256=None)
    with pytest.raises(ValueError, match="n_dev must be a positive int"):
        write_demo_glue(fake, tmp_path / "neg", n_dev=0, sha256=None)


def test_split_deterministic_by_seed(fake, tmp_path):
    def split(name: str, seed: int, n_train: int = 20) -> tuple[str, str]:
        d = write_demo_glue(fake, tmp_path / name, n_train=n_train, n_dev=10, seed=seed,
                            sha256=None) / "SST-2"
        return (d / "train.tsv").read_text("utf-8"), (d / "dev.tsv").read_text("utf-8")

    first = split("a", 0)
    assert split("b", 0) == first
    assert split("c", 1) != first
    assert split("d", 0, n_train=25)[1] == first[1]  # dev independent of n_train


def test_existing_output_refused_without_overwrite(fake, tmp_path):
    out = write_demo_glue(fake, tmp_path / "o", n_train=10, n_dev=5, seed=0, sha256=None)
    before = (out / "SST-2" / "train.tsv").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_demo_glue(fake, out, n_train=12, n_dev=5, seed=3, sha256=None)
    assert (out / "SST-2" / "train.tsv").read_bytes() == before
    write_demo_glue(fake, out, n_train=12, n_dev=5, seed=3, overwrite=True, sha256=None)
    assert len(read_glue_split("sst2", out, "train")) == 12


# ---------------------------------------------------------------------------------------------
# real sdist


def _find_real_sdist() -> Path | None:
    candidates = [os.environ.get("SPARSEBERT_DEMO_SDIST", ""),
                  Path(__file__).resolve().parents[1] / ".cache/demo/sdist/vaderSentiment-3.3.2.tar.gz",
                  "/tmp/vader/vaderSentiment-3.3.2.tar.gz"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


REAL_SDIST = _find_real_sdist()
requires_real = pytest.mark.skipif(
    REAL_SDIST is None,
    reason="vaderSentiment-3.3.2.tar.gz not found (set SPARSEBERT_DEMO_SDIST, or `pip download "
           "--no-deps --no-binary :all: vaderSentiment==3.3.2 -d .cache/demo/sdist`)",
)


@requires_real
def test_real_snippets():
    rows = read_movie_snippets(REAL_SDIST)
    assert len(rows) == 10605
    signs = Counter((r > 0) - (r < 0) for _, r in rows)
    assert signs == {1: 5242, -1: 5326, 0: 37}
    assert min(r for _, r in rows) >= -4 and max(r for _, r in rows) <= 4
    assert rows[0][0].startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert rows[0][1] == pytest.approx(2.26666666667)


@requires_real
def test_real_demo_glue(tmp_path):
    out = write_demo_glue(REAL_SDIST, tmp_path / "demo")
    train, dev = read_glue_split("sst2", out, "train"), read_glue_split("sst2", out, "dev")
    assert (len(train), len(dev)) == (2000, 500)
    for split in (train, dev):
        share = sum(e.label for e in split) / len(split)
        assert 0.4 < share < 0.6, share
    assert not {e.text_a for e in train} & {e.text_a for e in dev}
    full = write_demo_glue(REAL_SDIST, tmp_path / "full", n_train=None, n_dev=None)
    n_train = len(read_glue_split("sst2", full, "train"))
    n_dev = len(read_glue_split("sst2", full, "dev"))
    assert (n_train, n_dev) == (10566 - 1057, 1057)  # 10605 - 37 zero-rated - 2 repeated texts
