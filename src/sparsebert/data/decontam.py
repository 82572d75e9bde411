"""Decontamination: find documents that contain a given sentence (an evaluation sentence).

A sentence *occurs* in a document when its normalised word sequence is a contiguous run of the
document's normalised words. Normalisation (:func:`normalise_words`) lower-cases, undoes PTB
tokenisation (``do n't`` / ``doesn 't`` / ``it 's`` / ``-lrb-``) so that GLUE's tokenised SST-2 sentences match
running text, drops apostrophes and treats every other non-alphanumeric character as a word
break. Only sentences of at least ``min_words`` (default 6) normalised words are looked for:
shorter ones ("He left.") would match ordinary prose by chance.

Matching is linear in the document's length: the sentences are indexed by their first
``min_words`` words, and each window of the document is looked up once.

Used by :mod:`sparsebert.data.corpus` (removing GLUE dev sentences from the general corpus,
counting GLUE train sentences) and by :func:`sparsebert.data.text.load_text` (``exclude=``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["normalise_words", "split_sentences", "SentenceMatcher", "DEFAULT_MIN_WORDS"]

DEFAULT_MIN_WORDS = 6

_PTB = [(re.compile(r"-lrb-|-rrb-|-lsb-|-rsb-|-lcb-|-rcb-"), " "),
        (re.compile(r"``|''"), " "),
        (re.compile(r"\s+(n?'(?:t|s|re|ve|ll|d|m))\b"), r"\1")]
_APOS = re.compile(r"['\u2019\u2018`]")
_NONWORD = re.compile(r"[\W_]+")
_SENT_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]*[A-Z0-9])")


def normalise_words(text: str) -> list[str]:
    """The normalised word list of ``text`` (see the module docstring).

    >>> normalise_words("It 's a -LRB- good -RRB- film , is n't it ?")
    ['its', 'a', 'good', 'film', 'isnt', 'it']
    >>> normalise_words("It's a (good) film, isn't it?")
    ['its', 'a', 'good', 'film', 'isnt', 'it']
    """
    text = text.lower()
    for pattern, repl in _PTB:
        text = pattern.sub(repl, text)
    text = _APOS.sub("", text)
    return _NONWORD.sub(" ", text).split()


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences at ``.``/``!``/``?`` (plus closing quotes or brackets)
    followed by white space and an upper-case letter or digit. A heuristic: abbreviations such as
    "Mr. Smith" split too, which only makes the pieces shorter (still matched as substrings)."""
    return [s.strip() for s in _SENT_END.split(text) if s.strip()]


class SentenceMatcher:
    """Finds which of a set of sentences occur in a text.

    Args:
        sentences: the sentences to look for (any iterable of ``str``; duplicates are fine).
        min_words: sentences with fewer normalised words are ignored (counted in
            :attr:`n_ignored`).

    Attributes:
        n_sentences: distinct normalised sentences indexed.
        n_ignored: sentences ignored as too short (or empty).
    """

    def __init__(self, sentences: Iterable[str], min_words: int = DEFAULT_MIN_WORDS):
        if min_words < 1:
            raise ValueError(f"min_words must be >= 1, got {min_words}")
        self.min_words = min_words
        self._index: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        self.n_ignored = 0
        seen = set()
        for sentence in sentences:
            words = tuple(normalise_words(sentence))
            if len(words) < min_words:
                self.n_ignored += 1
                continue
            if words not in seen:
                seen.add(words)
                self._index.setdefault(words[:min_words], set()).add(words)
        self.n_sentences = len(seen)

    def __len__(self) -> int:
        return self.n_sentences

    def find(self, text: str) -> str | None:
        """The first indexed sentence occurring in ``text`` (as its normalised words joined by
        spaces), or ``None``."""
        return self.find_words(normalise_words(text)) if self._index else None

    def find_words(self, words: list[str]) -> str | None:
        """:meth:`find` on an already normalised word list (:func:`normalise_words`), so that one
        text can be checked against several matchers with one normalisation."""
        k, index = self.min_words, self._index
        for i in range(len(words) - k + 1):
            cands = index.get(tuple(words[i:i + k]))
            if cands:
                for cand in cands:
                    if tuple(words[i:i + len(cand)]) == cand:
                        return " ".join(cand)
        return None

    def find_all(self, text: str) -> set[str]:
        """Every indexed sentence occurring in ``text`` (normalised, joined by spaces)."""
        found: set[str] = set()
        if not self._index:
            return found
        words = normalise_words(text)
        k, index = self.min_words, self._index
        for i in range(len(words) - k + 1):
            for cand in index.get(tuple(words[i:i + k]), ()):
                if tuple(words[i:i + len(cand)]) == cand:
                    found.add(" ".join(cand))
        return found

    def __contains__(self, text: str) -> bool:
        return self.find(text) is not None
