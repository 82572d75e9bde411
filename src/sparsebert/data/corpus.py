"""The general-domain English corpus for task-agnostic distillation, built offline from registries.

``make corpus`` (= ``python -m sparsebert.data.corpus``) builds ``.cache/corpus/general/``:

* ``<source>.jsonl`` per source and ``general.jsonl`` (the running-prose sources, in source
  order; the two gloss dictionaries ``gcide`` and ``wordnet`` stay in their own files): one JSON
  object per line, ``{"text": paragraph, "source": name, "ref": where in the source}``; a
  paragraph is one document (a novel's paragraph, one dictionary entry's prose, one Wikipedia
  paragraph);
* ``PROVENANCE.json``: for each source the package, version, registry address, sha256 of the
  downloaded file, licence, the cleaning applied, and the number of documents and characters
  kept; plus the decontamination against GLUE (see below);
* ``licences/<package>.copyright``: each Debian package's copyright file (licence and notices).

Sources (every download pinned by version and sha256, see :data:`SOURCES`):

* ``austen`` — Jane Austen's six novels (public domain) from the Debian package
  ``r-cran-janeaustenr`` (the R package's data, MIT), read without R (:mod:`sparsebert.data.rdata`).
* ``foldoc`` — the Free On-line Dictionary of Computing (GFDL 1.1+), encyclopaedic prose.
* ``jargon`` — the Jargon File 4.4.7 (public domain), essay-like entries.
* ``devil`` — Ambrose Bierce, *The Devil's Dictionary* (1911, public domain).
* ``gcide`` — the Collaborative International Dictionary of English (Webster 1913 + additions,
  GPL-2+): each entry's definitions as one paragraph.
* ``wordnet`` — WordNet 3.0 glosses and example sentences (WordNet licence, BSD-like).
* ``squad`` — the Wikipedia paragraphs of SQuAD v1.1 dev (CC BY-SA 4.0), from
  ``shared/data/squad/dev-v1.1.json`` (pinned sha256), where that file is present.

Decontamination: every paragraph containing a sentence (>= 6 normalised words,
:mod:`sparsebert.data.decontam`) of a GLUE **dev** set in ``glue_dir`` (CoLA, SST-2, MRPC, STS-B,
RTE, QNLI) is removed, and the number removed per source and task is recorded. QNLI dev's
sentences are SQuAD dev sentences, so this removes most of the ``squad`` source (there QNLI
sentences of >= 3 words are looked for); what is left shares no sentence with QNLI dev. Paragraphs containing a GLUE **train** sentence are kept but
counted per task, so that a result on task T can be published with T's train sentences left out
(:func:`sparsebert.data.text.load_text` ``exclude=``).

Everything is written atomically (temporary file, then rename); downloads are kept in
``.cache/corpus/downloads/`` and re-verified on reuse.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sparsebert.errors import InputError
from sparsebert.io import atomic_path, write_json_atomic

from .debpkg import DebPackage, deb_members, fetch_deb, sha256_file
from .decontam import DEFAULT_MIN_WORDS, SentenceMatcher, normalise_words, split_sentences
from .dictd import dictd_entries
from .rdata import lazyload_objects

__all__ = ["SOURCES", "CorpusSource", "build_corpus", "glue_sentences", "DEFAULT_OUT", "main"]

DEFAULT_OUT = Path(".cache/corpus/general")
DEFAULT_SHARED = Path("../shared/data")
#: GLUE tasks whose sentences are checked: (registry name, directory name)
GLUE_TASKS = (("cola", "CoLA"), ("sst2", "SST-2"), ("mrpc", "MRPC"), ("stsb", "STS-B"), ("rte", "RTE"), ("qnli", "QNLI"))
SQUAD_DEV_SHA256 = "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"
MIN_WORDS = 8  # a kept paragraph has at least this many words
SQUAD_QNLI_MIN_WORDS = 3  # QNLI dev sentences looked for in the squad source (they come from it)

Record = tuple[str, str]  # (ref, text)


@dataclass(frozen=True)
class CorpusSource:
    """One corpus source.

    Attributes:
        name: short name, also the JSONL file's stem.
        title: what the text is.
        licence: the licence of the text, as its package states it.
        package: the pinned Debian package, or ``None`` for a local file (``squad``).
        extract: turns the downloaded file (or the local file) into ``(ref, paragraph)`` records.
        cleaning: a sentence on how the raw text is cleaned (copied into ``PROVENANCE.json``).
        combined: whether the source goes into ``general.jsonl`` (running prose: yes; the two
            dictionaries of glosses, ``gcide`` and ``wordnet``: no, they stay in their own files).
        notes: remarks copied into ``PROVENANCE.json``.
    """

    name: str
    title: str
    licence: str
    package: DebPackage | None
    extract: Callable[[Path], Iterator[Record]]
    cleaning: str
    combined: bool = True
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------- cleaning

_WS = re.compile(r"\s+")
_BRACES = re.compile(r"\{([^{}]*)\}")
_URL = re.compile(r"\(?<?\b(?:https?|ftp|news|mailto|telnet|gopher)://\S+|\(?<?\b(?:https?|ftp)\S+\.\S+>?\)?|"
                  r"\S+@\S+\.\w+")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")


_LINE_HYPHEN = re.compile(r"(?<=[a-z])-\s*\n\s*(?=[a-z])")


def _squash(text: str) -> str:
    """NFC-normalise, re-join words hyphenated across a line end ("slave-\\ndriver" ->
    "slave-driver") and collapse all white space to single spaces."""
    return _WS.sub(" ", _LINE_HYPHEN.sub("-", unicodedata.normalize("NFC", text))).strip()


def _prose(text: str, min_words: int = MIN_WORDS, need_end: bool = True) -> bool:
    """Whether a cleaned paragraph is kept: at least ``min_words`` words, mostly letters, some
    lower case, and (``need_end``) ending like a sentence."""
    if len(text.split()) < min_words:
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < 0.7 * len(text.replace(" ", "")) or not any(c.islower() for c in text):
        return False
    return not need_end or bool(_SENTENCE_END.search(text))


def _paragraphs(lines: list[str]) -> list[list[str]]:
    """Lines grouped into blank-line-separated paragraphs."""
    out, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


# ------------------------------------------------------------------------------------------ austen

_AUSTEN_BOOKS = (("sensesensibility", "Sense and Sensibility"), ("prideprejudice", "Pride and Prejudice"),
                 ("mansfieldpark", "Mansfield Park"), ("emma", "Emma"), ("northangerabbey", "Northanger Abbey"),
                 ("persuasion", "Persuasion"))
_HEADING = re.compile(r"^(chapter|volume|advertisement|finis|the end)\b", re.IGNORECASE)


def _austen(deb: Path) -> Iterator[Record]:
    root = "usr/lib/R/site-library/janeaustenr/data/"
    files = deb_members(deb, lambda n: n in (root + "Rdata.rdx", root + "Rdata.rdb"))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, blob in files.items():
            Path(tmp, name.rsplit("/", 1)[-1]).write_bytes(blob)
        objects = lazyload_objects(Path(tmp, "Rdata.rdx"), Path(tmp, "Rdata.rdb"))
    missing = [key for key, _ in _AUSTEN_BOOKS if key not in objects]
    if missing:
        raise InputError(f"{deb}: janeaustenr data has no {missing} (objects: {sorted(objects)})")
    for key, title in _AUSTEN_BOOKS:
        chapter = 0
        for para in _paragraphs([line or "" for line in objects[key]]):
            text = _squash("\n".join(para))
            if _HEADING.match(text):
                chapter += text.lower().startswith("chapter")
                continue
            text = text.replace("_", "")  # _emphasis_ of the Gutenberg transcription
            if _prose(text, min_words=4, need_end=False) and chapter > 0:
                yield f"{title}, chapter {chapter}", text


# ---------------------------------------------------------------------------------- dictd sources

def _dictd(deb: Path, stem: str) -> list[tuple[str, str]]:
    files = deb_members(deb, lambda n: n in (f"usr/share/dictd/{stem}.index", f"usr/share/dictd/{stem}.dict.dz"))
    if len(files) != 2:
        raise InputError(f"{deb}: expected usr/share/dictd/{stem}.index and .dict.dz, found {sorted(files)}")
    return dictd_entries(files[f"usr/share/dictd/{stem}.index"], files[f"usr/share/dictd/{stem}.dict.dz"], stem)


_FOLDOC_TAG = re.compile(r"<[a-z][a-z ,/-]*>\s*")
_SENSE_NO = re.compile(r"^\(?\d{1,2}[.)]\s+")
_DATE = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")


def _braces(text: str) -> str:
    """``{link text}`` -> ``link text`` (dictd cross references), repeatedly for nesting."""
    while True:
        new = _BRACES.sub(lambda m: _squash(m.group(1)), text)
        if new == text:
            return new
        text = new


def _foldoc(deb: Path) -> Iterator[Record]:
    for head, entry in _dictd(deb, "foldoc"):
        lines = entry.splitlines()[1:]  # first line: the headword
        for i, para in enumerate(_paragraphs(lines)):
            text = _squash("\n".join(para))
            if _DATE.match(text) or text.startswith(("[", "{(", "See ", "See also", "E-mail", "Home:", "Address:")):
                continue
            text = _FOLDOC_TAG.sub("", _braces(text))
            text = _SENSE_NO.sub("", _squash(_URL.sub("", text)))
            text = re.sub(r"\s+([,.;:)])", r"\1", text).replace("()", "").strip()
            if _prose(text):
                yield f"{head}#{i}", text


def _jargon(deb: Path) -> Iterator[Record]:
    for head, entry in _dictd(deb, "jargon"):
        paras = _paragraphs(entry.splitlines())[1:]  # first paragraph: headword, pronunciation, part of speech
        for i, para in enumerate(paras):
            if all(line.startswith("        ") for line in para):  # deeper-indented: verse, code, examples
                continue
            text = _squash(_braces(_squash("\n".join(para))))
            text = re.sub(r"^(?:\d+\.\s+)?(?:\[[^\]]{1,40}\]\s*)*", "", text)  # sense number, usage tags
            text = _squash(_URL.sub("", text))
            if _prose(text):
                yield f"{head}#{i}", text


_DEVIL_HEAD = re.compile(r"^([A-Z][A-Z' -]+),\s+((?:[a-z]+\.\s*)+)\s*")


def _devil(deb: Path) -> Iterator[Record]:
    for head, entry in _dictd(deb, "devil"):
        lines = [ln for ln in entry.splitlines() if not re.match(r"^\s{20,}\S", ln)]  # right-aligned attributions
        for i, para in enumerate(_paragraphs(lines)):
            if all(line.startswith("    ") for line in para):  # verse quotations
                continue
            text = _squash("\n".join(para)).replace("_", "")
            m = _DEVIL_HEAD.match(text)
            if m:  # "HEART, n.  An automatic ..." -> "Heart, n. An automatic ..."
                text = f"{m.group(1).strip().capitalize()}, {m.group(2).strip()} {text[m.end():]}".strip()
            if _prose(text, min_words=4):
                yield f"{head}#{i}", text


_GCIDE_PRON = re.compile(r"\\[^\\\n]*\\")
_BRACKET = re.compile(r"\[[^\[\]]*\]")
_CITATION = re.compile(r"\s--\s?[A-Z(].*$|^\s*--\s?[A-Z(].*$")
_GCIDE_SKIP = re.compile(r"^(Syn:|Syn\.|See |Note:\s*$)")
_GCIDE_POS = re.compile(r"^[,;]?\s*(?:\([^)]{0,40}\)\s*)?,?\s*(?:(?:[a-z]{1,5}\.|&)\s*)+(?=[A-Z0-9(\[{\"]|$)")


def _gcide(deb: Path) -> Iterator[Record]:
    for head, entry in _dictd(deb, "gcide"):
        lines = entry.splitlines()
        if not lines or "\\" not in lines[0]:
            continue
        first = lines[0]
        word = _squash(_GCIDE_PRON.sub("", first[:first.index("\\")]))
        lines[0] = first[first.rindex("\\") + 1:]  # drop headword(s) and pronunciation(s)
        body = [_CITATION.sub("", line) for line in lines if not re.match(r"^\s{20,}\S", line)]
        parts = []
        for para in _paragraphs(body):
            if all(line.startswith("        ") for line in para):  # indented quotations
                continue
            text = _squash("\n".join(para))
            if _GCIDE_SKIP.match(text):
                continue
            text = _braces(_GCIDE_PRON.sub("", text))
            prev = None
            while prev != text:  # etymologies, grammar notes, [1913 Webster] (nested brackets too)
                prev, text = text, _BRACKET.sub("", text)
            text = _GCIDE_POS.sub("", _squash(text).lstrip(",; ")).lstrip(",; ")  # "(pron), v. t." ...
            text = _SENSE_NO.sub("", re.sub(r"^\(?[a-z]\)\s+", "", text))
            text = re.sub(r"^Note:\s*", "", text)
            text = _squash(re.sub(r"\s+([,.;:])", r"\1", text))
            if len(text.split()) >= 3:
                parts.append(text if _SENTENCE_END.search(text) else text + ".")
        doc = " ".join(parts)
        if word and parts and _prose(doc):
            yield word, f"{word}: {doc}"


_WN_SENSE = re.compile(r"^\s*(?:(?:n|v|adj|adv)\s+)?\d+:\s*")
_WN_XREF = re.compile(r"\[(?:syn|ant|also|see|pertainym)s?:[^\]]*\]", re.IGNORECASE)


def _wordnet(deb: Path) -> Iterator[Record]:
    for head, entry in _dictd(deb, "wn"):
        lines = entry.splitlines()[1:]
        senses, cur = [], []
        for line in lines:
            if _WN_SENSE.match(line) and cur:
                senses.append(" ".join(cur))
                cur = []
            cur.append(line)
        if cur:
            senses.append(" ".join(cur))
        parts = []
        for sense in senses:
            text = _squash(_WN_XREF.sub("", _braces(_squash(sense))))
            text = _WN_SENSE.sub("", text).strip(" ;")
            if len(text.split()) >= 3:
                parts.append(text + ".")
        doc = _squash(" ".join(parts))
        word = _squash(head)
        if parts and _prose(f"{word}: {doc}"):
            yield word, f"{word}: {doc}"


# ------------------------------------------------------------------------------------------- squad

def _squad(path: Path) -> Iterator[Record]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for article in data["data"]:
        for i, para in enumerate(article["paragraphs"]):
            text = _squash(para["context"])
            if _prose(text):
                yield f"{article['title']}#{i}", text


# ----------------------------------------------------------------------------------------- sources

def _deb(name: str, version: str, pool: str, sha256: str, size: int) -> DebPackage:
    return DebPackage(name=name, version=version, pool_path=pool, sha256=sha256, size=size)


#: The corpus sources, in the order of ``general.jsonl``. Versions are Debian 12 (bookworm).
SOURCES: tuple[CorpusSource, ...] = (
    CorpusSource(
        "austen", "Jane Austen's six novels (Project Gutenberg transcriptions)",
        "public domain text; R package janeaustenr (Julia Silge) MIT",
        _deb("r-cran-janeaustenr", "1.0.0-1", "pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
             "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95", 1626392),
        _austen,
        "R lazy-load data (data/Rdata.rdb) decoded without R; lines joined into blank-line-separated "
        "paragraphs; title pages, 'CHAPTER'/'VOLUME' headings and text before chapter 1 dropped; '_' "
        "emphasis marks removed; paragraphs of >= 4 words kept"),
    CorpusSource(
        "foldoc", "FOLDOC, the Free On-line Dictionary of Computing (edited by Denis Howe)",
        "GFDL 1.1 or later",
        _deb("dict-foldoc", "20230119-1", "pool/main/d/dict-foldoc/dict-foldoc_20230119-1_all.deb",
             "745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3", 2408824),
        _foldoc,
        "dictd entries; headword line, '(YYYY-MM-DD)' dates, bibliography '[...]' and 'See also' paragraphs "
        "dropped; {cross references} unwrapped; <category> tags, sense numbers, URLs and e-mail addresses "
        "removed; one paragraph per document, kept when >= 8 words, mostly letters and ending a sentence"),
    CorpusSource(
        "jargon", "The Jargon File 4.4.7 (Eric S. Raymond et al.)", "public domain",
        _deb("dict-jargon", "4.4.7-3.1", "pool/main/d/dict-jargon/dict-jargon_4.4.7-3.1_all.deb",
             "405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1", 621608),
        _jargon,
        "dictd entries; headword/pronunciation paragraph and deeper-indented blocks (verse, code, examples) "
        "dropped; {cross references} unwrapped; leading sense numbers and [usage] tags removed; URLs removed; "
        "paragraphs kept when >= 8 words, mostly letters and ending a sentence"),
    CorpusSource(
        "devil", "Ambrose Bierce, The Devil's Dictionary (1911)", "public domain (copyright expired)",
        _deb("dict-devil", "1.0-13.1", "pool/main/d/dict-devil/dict-devil_1.0-13.1_all.deb",
             "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154", 179760),
        _devil,
        "dictd entries; indented verse quotations and right-aligned attributions dropped; 'HEADWORD, n.' "
        "capitalised; '_' emphasis marks removed; paragraphs kept when >= 4 words and ending a sentence"),
    CorpusSource(
        "gcide", "GCIDE, the GNU Collaborative International Dictionary of English (Webster 1913 + additions)",
        "GPL-2 or later",
        _deb("dict-gcide", "0.48.5+nmu2", "pool/main/d/dict-gcide/dict-gcide_0.48.5+nmu2_all.deb",
             "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f", 14800692),
        _gcide,
        "dictd entries; one document per entry: 'headword: definitions'; pronunciation '\\...\\', part of "
        "speech, all [bracketed] etymologies and source marks, '--Author' citations, indented quotations, "
        "'Syn:' and 'See' paragraphs and sense numbers removed; {cross references} unwrapped; kept when "
        ">= 8 words", combined=False),
    CorpusSource(
        "wordnet", "WordNet 3.0 (Princeton University) glosses and example sentences",
        "WordNet 3.0 licence (BSD-like, redistribution permitted with the notice)",
        _deb("dict-wn", "1:3.0-37", "pool/main/w/wordnet/dict-wn_3.0-37_all.deb",
             "ed99e0bf162815dc1cc69de3727eedd7112ddf170badf83dbde26209e0724a8c", 10611932),
        _wordnet,
        "dictd entries; one document per headword: 'headword: gloss; \"example\". gloss ...'; part of speech "
        "and sense numbers, [syn:/ant:/also:] lists removed; {cross references} unwrapped; kept when >= 8 words",
        combined=False),
    CorpusSource(
        "squad", "SQuAD v1.1 dev contexts (Wikipedia paragraphs, Rajpurkar et al. 2016)", "CC BY-SA 4.0",
        None, _squad,
        "the 'context' of every paragraph of every article, white space collapsed; kept when >= 8 words",
        notes=("QNLI dev was built from these paragraphs: the decontamination removes every paragraph holding a "
         "QNLI dev sentence (most of them)",)),
)


# --------------------------------------------------------------------------------------------- GLUE

def glue_sentences(glue_dir: str | Path, split: str, tasks=GLUE_TASKS) -> dict[str, list[str]]:
    """The sentences of one split of each GLUE task found in ``glue_dir`` (``glue_data`` layout).

    Both texts of pair tasks are taken; multi-sentence texts (RTE premises) are split with
    :func:`~sparsebert.data.decontam.split_sentences`, and the whole text is kept too.

    Returns:
        ``{task name: [sentence, ...]}`` for the tasks whose ``<split>.tsv`` exists.
    """
    from .glue import read_glue_split

    out = {}
    for name, dirname in tasks:
        if not (Path(glue_dir) / dirname / f"{split}.tsv").is_file():
            continue
        sents = []
        for ex in read_glue_split(name, glue_dir, split):
            for text in (ex.text_a, ex.text_b):
                if text:
                    sents.append(text)
                    pieces = split_sentences(text)
                    if len(pieces) > 1:
                        sents.extend(pieces)
        out[name] = sents
    return out


# -------------------------------------------------------------------------------------------- build

def _write_jsonl(path: Path, records) -> tuple[int, int, str]:
    """Write records atomically; returns (documents, characters, sha256 of the file)."""
    h, n_docs, n_chars = hashlib.sha256(), 0, 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for rec in records:
                line = json.dumps(rec, ensure_ascii=False) + "\n"
                f.write(line)
                h.update(line.encode("utf-8"))
                n_docs += 1
                n_chars += len(rec["text"])
        tmp.chmod(0o644)  # readable like any other output (mkstemp creates it 0600)
    return n_docs, n_chars, h.hexdigest()


def _copy_copyright(deb: Path, package: str, out_dir: Path) -> str | None:
    """Copy the package's ``usr/share/doc/<package>/copyright`` (its licence and notices, which
    the GPL / GFDL ask to keep with copies) to ``out_dir/licences/<package>.copyright``."""
    member = f"usr/share/doc/{package}/copyright"
    found = deb_members(deb, lambda n: n == member)
    if member not in found:
        return None
    rel = f"licences/{package}.copyright"
    with atomic_path(out_dir / rel) as tmp:
        tmp.write_bytes(found[member])
        tmp.chmod(0o644)
    return rel


def build_corpus(out_dir: str | Path = DEFAULT_OUT, *, sources: list[str] | None = None,
                 glue_dir: str | Path | None = DEFAULT_SHARED / "glue",
                 squad_file: str | Path | None = DEFAULT_SHARED / "squad" / "dev-v1.1.json",
                 download_dir: str | Path | None = None, min_words: int = DEFAULT_MIN_WORDS,
                 log=print) -> dict:
    """Build the general corpus (see the module docstring) and return its provenance record.

    Args:
        out_dir: where the JSONL files and ``PROVENANCE.json`` go (created).
        sources: names from :data:`SOURCES` to build (default: all). ``squad`` is skipped, with
            a note, when ``squad_file`` is ``None`` or absent.
        glue_dir: the ``glue_data`` root whose dev sentences are removed and train sentences
            counted; ``None`` skips decontamination (recorded as such in the provenance).
        squad_file: SQuAD v1.1 dev JSON (its sha256 must be the official one).
        download_dir: where the ``.deb`` files are kept (default: ``out_dir/../downloads``).
        min_words: shortest GLUE sentence (normalised words) looked for.
        log: progress printer (one line per step).

    Returns:
        The provenance dict, also written to ``out_dir/PROVENANCE.json``.

    Raises:
        InputError: an unknown source name; the SQuAD file's checksum is not the official one.
        DebFetchError: a package could not be downloaded or failed its checksum.
        FileNotFoundError: ``glue_dir`` given but missing.
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    download_dir = Path(download_dir) if download_dir else out_dir.parent / "downloads"
    by_name = {s.name: s for s in SOURCES}
    names = list(sources) if sources else [s.name for s in SOURCES]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"unknown corpus source(s) {unknown}; choose from {sorted(by_name)}")

    dev = train = None
    if glue_dir is not None:
        if not Path(glue_dir).is_dir():
            raise FileNotFoundError(f"{glue_dir}: GLUE data directory not found (needed to decontaminate; "
                                    f"--glue-dir none skips it)")
        dev_sents, train_sents = glue_sentences(glue_dir, "dev"), glue_sentences(glue_dir, "train")
        dev = {t: SentenceMatcher(s, min_words) for t, s in dev_sents.items()}
        # QNLI dev's sentences were cut from SQuAD dev's paragraphs: there even short ones are real hits
        qnli_in_squad = SentenceMatcher(dev_sents.get("qnli", ()), min(min_words, SQUAD_QNLI_MIN_WORDS))
        train = {t: SentenceMatcher(s, min_words) for t, s in train_sents.items()}
        log("corpus: GLUE dev sentences indexed: " + ", ".join(f"{t} {len(m)}" for t, m in dev.items()))

    prov_sources, notes = [], []
    totals = Counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = by_name[name]
        entry: dict = {"name": src.name, "title": src.title, "licence": src.licence}
        if src.package is not None:
            deb = fetch_deb(src.package, download_dir)
            entry.update({"package": src.package.name, "version": src.package.version,
                          "registry": "Debian archive (bookworm)",
                          "download": f"apt-get download {src.package.name}={src.package.version} "
                                      f"(else GET url), sha256 checked",
                          "url": src.package.url(), "file": src.package.filename,
                          "sha256": sha256_file(deb), "bytes": deb.stat().st_size,
                          "copyright_file": _copy_copyright(deb, src.package.name, out_dir)})
            records = src.extract(deb)
        else:
            path = Path(squad_file) if squad_file else None
            if path is None or not path.is_file():
                notes.append(f"source {name!r} skipped: {squad_file} not found")
                log(f"corpus: {name}: skipped ({squad_file} not found)")
                continue
            got = sha256_file(path)
            if got != SQUAD_DEV_SHA256:
                raise InputError(f"{path}: sha256 {got} is not the official SQuAD v1.1 dev checksum {SQUAD_DEV_SHA256}")
            entry.update({"package": None, "file": str(path), "sha256": got, "bytes": path.stat().st_size,
                          "registry": "shared/data (see shared/data/README.md for its provenance)"})
            records = src.extract(path)
        removed, train_hits, seen = Counter(), Counter(), set()
        n_raw = n_dupes = n_words = 0

        def kept():
            nonlocal n_raw, n_dupes, n_words
            for ref, text in records:
                n_raw += 1
                key = hashlib.sha1(text.encode("utf-8")).digest()
                if key in seen:
                    n_dupes += 1
                    continue
                seen.add(key)
                if dev is not None:
                    words = normalise_words(text)
                    hit = [t for t, m in dev.items() if m.find_words(words) is not None]
                    if name == "squad" and not hit and qnli_in_squad.find_words(words) is not None:
                        hit = ["qnli"]
                    if hit:
                        for t in hit:
                            removed[t] += 1
                        removed["_paragraphs"] += 1
                        continue
                    for t, m in train.items():
                        if m.find_words(words) is not None:
                            train_hits[t] += 1
                n_words += len(text.split())
                yield {"text": text, "source": name, "ref": ref}

        n_docs, n_chars, digest = _write_jsonl(out_dir / f"{name}.jsonl", kept())
        entry.update({
            "cleaning": src.cleaning, "documents": n_docs, "characters": n_chars,
            "words": n_words, "jsonl": f"{name}.jsonl", "jsonl_sha256": digest,
            "paragraphs_extracted": n_raw, "duplicates_dropped": n_dupes,
            "removed_for_glue_dev": {"paragraphs": removed.pop("_paragraphs", 0), "by_task": dict(removed)},
            "paragraphs_with_glue_train_sentence": dict(train_hits),
        })
        entry["in_general_jsonl"] = src.combined
        if src.notes:
            entry["notes"] = list(src.notes)
        prov_sources.append(entry)
        totals.update(documents=n_docs, characters=n_chars)
        log(f"corpus: {name}: {n_docs} documents, {n_chars / 1e6:.2f} M characters "
            f"({entry['removed_for_glue_dev']['paragraphs']} removed for GLUE dev)")

    def combined():  # re-read the per-source files just written (they are the truth)
        for entry in prov_sources:
            if entry["in_general_jsonl"]:
                with open(out_dir / entry["jsonl"], encoding="utf-8") as f:
                    for line in f:
                        yield json.loads(line)

    n_docs, n_chars, digest = _write_jsonl(out_dir / "general.jsonl", combined())
    provenance = {
        "corpus": "sparsebert general English corpus",
        "built_by": "python -m sparsebert.data.corpus (make corpus)",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.time() - t0, 1),
        "format": "JSON lines, one paragraph per line: {\"text\": str, \"source\": str, \"ref\": str}",
        "combined": {"jsonl": "general.jsonl", "documents": n_docs, "characters": n_chars, "sha256": digest},
        "decontamination": None if dev is None else {
            "glue_dir": str(glue_dir),
            "method": f"a paragraph is removed when it contains a GLUE dev sentence of >= {min_words} "
                      "normalised words (lower-cased, PTB tokenisation undone, apostrophes dropped, other "
                      "non-alphanumerics as word breaks) as a contiguous word run; multi-sentence texts are "
                      "also split into sentences",
            "dev_tasks": {t: len(m) for t, m in dev.items()},
            "dev_sentences_too_short": {t: m.n_ignored for t, m in dev.items()},
            "train_tasks_checked": {t: len(m) for t, m in train.items()},
            "removed_paragraphs": sum(e["removed_for_glue_dev"]["paragraphs"] for e in prov_sources),
            "qnli": "QNLI dev sentences come from SQuAD v1.1 dev paragraphs: every paragraph holding one was "
                    "removed (dropped, not just flagged; in the squad source QNLI sentences of >= "
                    f"{min(min_words, SQUAD_QNLI_MIN_WORDS)} words count), so the corpus shares no QNLI dev "
                    "sentence; the remaining squad paragraphs still come from the same 48 SQuAD dev articles",
            "train_overlap": "paragraphs_with_glue_train_sentence per source: kept, only counted; publish a "
                             "result on task T with load_text('general', exclude=<T's train sentences>)",
            "glue_train_missing": [t for t, _ in GLUE_TASKS if t not in train],
        },
        "sources": prov_sources,
        "notes": notes,
    }
    write_json_atomic(out_dir / "PROVENANCE.json", provenance)
    (out_dir / "PROVENANCE.json").chmod(0o644)
    log(f"corpus: {out_dir}/general.jsonl: {n_docs} documents, {n_chars / 1e6:.2f} M characters "
        f"in {provenance['build_seconds']} s")
    return provenance


def main(argv: list[str] | None = None) -> int:
    """``python -m sparsebert.data.corpus [--out DIR] [--sources a,b] [--glue-dir DIR|none] [--squad FILE|none]``."""
    p = argparse.ArgumentParser(prog="python -m sparsebert.data.corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default %(default)s)")
    p.add_argument("--sources", default=None, help="comma-separated subset of: " + ",".join(s.name for s in SOURCES))
    p.add_argument("--glue-dir", default=str(DEFAULT_SHARED / "glue"),
                   help="glue_data root for decontamination, or 'none' (default %(default)s)")
    p.add_argument("--squad", default=str(DEFAULT_SHARED / "squad" / "dev-v1.1.json"),
                   help="SQuAD v1.1 dev JSON, or 'none' (default %(default)s)")
    p.add_argument("--downloads", default=None, help="where .deb files are kept (default OUT/../downloads)")
    args = p.parse_args(argv)
    none = lambda v: None if v in (None, "", "none") else v  # noqa: E731
    try:
        build_corpus(args.out, sources=args.sources.split(",") if args.sources else None,
                     glue_dir=none(args.glue_dir), squad_file=none(args.squad), download_dir=args.downloads)
    except (InputError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
