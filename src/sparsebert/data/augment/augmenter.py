"""Sampling the augmented copies (TinyBERT augmentation, step 3): :class:`Augmenter`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..glue import Example
from .candidates import CandidateGenerator, _bar, _Text


class Augmenter(CandidateGenerator):
    """Computes replacement sets with one model (MLM head and/or embeddings) and samples copies.

    Args:
        model, settings, word_vectors: as :class:`~sparsebert.data.augment.candidates.CandidateGenerator`
            (model reference, :class:`AugmentSettings`, GloVe vectors or None for the model's embeddings).
    Raises:
        As :class:`~sparsebert.data.augment.candidates.CandidateGenerator`.
    """

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
