"""Build a tiny, randomly initialised BERT-family model directory for fast tests (no hub)."""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a an and or of to in is was it that he she they we you this for on with as at by not be are "
         "his her said from have has had but its more than new one two company percent year shares").split()


def write_vocab(path: Path) -> Path:
    """A small WordPiece vocabulary: specials, letters, ##letters, digits, punctuation, common words."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits] + WORDS
    path.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return path


def make_tiny_model(out: Path, model_type: str = "bert", layers: int = 2, hidden: int = 32, heads: int = 4,
                    seed: int = 0) -> Path:
    """Save a random ``model_type`` encoder (+ tokenizer) to ``out`` and return ``out``."""
    import torch
    from transformers import AutoConfig, AutoModel, BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(out / "vocab.txt")
    tok = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    size = len(tok)
    torch.manual_seed(seed)
    if model_type == "distilbert":
        cfg = AutoConfig.for_model(model_type, dim=hidden, hidden_dim=2 * hidden, n_layers=layers, n_heads=heads,
                                   vocab_size=size, max_position_embeddings=256)
    else:
        cfg = AutoConfig.for_model(model_type, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=heads, vocab_size=size,
                                   max_position_embeddings=256 + 2, pad_token_id=0)
    AutoModel.from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def counting_time_candidates(monkeypatch, times: dict[str, float]) -> list[list[str]]:
    """Replace the default timing function of ``convert`` (what ``sparsebert.load(..., runtime=True)`` and
    ``sparsebert bench`` end up calling) by one that reports ``times`` (seconds per kernel family) and
    records the candidates of every call."""
    import importlib

    calls: list[list[str]] = []

    def fake(modules, x, rounds=15, **kw):
        calls.append(sorted(modules))
        return {label: times.get(label.split("[")[0], 1.0) for label in modules}

    # sparsebert.runtime.convert is the function; its module is sparsebert.runtime.conversion
    monkeypatch.setattr(importlib.import_module("sparsebert.runtime.conversion"), "time_candidates", fake)
    return calls
