"""GLUE *train* texts as extra upstream text, with the evaluated task left out (issue 32, Must have 2).

The offline general corpus (`make corpus`: dictionaries, WordNet glosses, Austen, FOLDOC) is far from the
news headlines, captions and forum posts of STS-B, on which every upstream model is evaluated zero-shot.
This writes the train texts of the other GLUE tasks (SST-2 movie-review phrases, MRPC news sentences, RTE
news / Wikipedia premises and hypotheses, CoLA sentences; never STS-B, whose dev set is the evaluation), one
document per text, and drops every text that contains a sentence of any GLUE **dev** set (STS-B's MSRpar pairs
come from the MSR paraphrase corpus, as MRPC does) with :class:`sparsebert.data.decontam.SentenceMatcher`.
The issue's rule: a corpus with GLUE train sentences is published with the evaluated task's sentences left
out — here STS-B.

Usage: .venv/bin/python studies/upstream/glue_text.py [--glue-dir ../shared/data/glue]
       [--out .cache/corpus/glue-train/no-stsb.jsonl] [--min-words 4]
Writes the JSONL (``{"text": ...}`` per line, what ``sparsebert upstream --text FILE`` reads) and
``PROVENANCE.json`` beside it (tasks, counts kept / dropped, sha256). Refuses to overwrite without --overwrite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from sparsebert.data.corpus import GLUE_TASKS, glue_sentences  # noqa: E402
from sparsebert.data.decontam import SentenceMatcher, normalise_words  # noqa: E402
from sparsebert.data.glue import read_glue_split  # noqa: E402
from sparsebert.io import write_json_atomic, write_text_atomic  # noqa: E402

TRAIN_TASKS = (("sst2", "SST-2"), ("mrpc", "MRPC"), ("rte", "RTE"), ("cola", "CoLA"))  # STS-B left out


def glue_train_texts(glue_dir: Path, min_words: int) -> tuple[list[str], dict]:
    """The de-duplicated train texts of :data:`TRAIN_TASKS` with at least ``min_words`` words, minus every
    text that contains a GLUE dev sentence (any task, STS-B and QNLI included).

    Returns:
        ``(texts, counts)``: counts per task of texts read, kept, dropped as short, duplicate or dev-matching.
    Raises:
        FileNotFoundError: a train split of :data:`TRAIN_TASKS` missing under ``glue_dir`` (named).
    """
    dev = SentenceMatcher(s for sents in glue_sentences(glue_dir, "dev", GLUE_TASKS).values() for s in sents)
    seen: set[tuple[str, ...]] = set()
    texts, counts = [], {}
    for name, dirname in TRAIN_TASKS:
        path = glue_dir / dirname / "train.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: GLUE train split not found (--glue-dir)")
        c = {"read": 0, "kept": 0, "short": 0, "duplicate": 0, "dev_match": 0}
        for ex in read_glue_split(name, glue_dir, "train"):
            for text in (ex.text_a, ex.text_b):
                if not text:
                    continue
                c["read"] += 1
                words = normalise_words(text)
                key = tuple(words)
                if len(words) < min_words:
                    c["short"] += 1
                elif key in seen:
                    c["duplicate"] += 1
                elif dev.find_words(words):
                    c["dev_match"] += 1
                else:
                    seen.add(key)
                    texts.append(text.strip())
                    c["kept"] += 1
        counts[name] = c
    return texts, counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glue-dir", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "corpus" / "glue-train" / "no-stsb.jsonl")
    ap.add_argument("--min-words", type=int, default=4, help="shorter texts (SST-2 sub-phrases) are dropped")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"{args.out} exists: pass --overwrite to replace it", file=sys.stderr)
        return 2
    try:
        texts, counts = glue_train_texts(args.glue_dir, args.min_words)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, body)
    prov = {"script": "studies/upstream/glue_text.py", "glue_dir": str(args.glue_dir), "tasks": [t for t, _ in TRAIN_TASKS],
            "left_out": "stsb (the zero-shot evaluation task)", "min_words": args.min_words, "counts": counts,
            "documents": len(texts), "characters": sum(map(len, texts)),
            "sha256": hashlib.sha256(body.encode()).hexdigest()}
    write_json_atomic(args.out.parent / "PROVENANCE.json", prov)
    print(json.dumps(prov, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
