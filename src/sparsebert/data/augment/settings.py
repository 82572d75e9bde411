"""The settings of TinyBERT data augmentation (:class:`AugmentSettings`)."""

from __future__ import annotations

from dataclasses import dataclass

from sparsebert.errors import InputError


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
    Raises:
        InputError: a setting out of its range, naming it and the rule (a ``ValueError``).
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
        def bad(name: str, rule: str) -> InputError:
            return InputError(f"augment setting {name}={getattr(self, name)!r}: {rule}")

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
