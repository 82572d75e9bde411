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

Modules: :mod:`.settings` (:class:`AugmentSettings`), :mod:`.word_vectors` (GloVe files),
:mod:`.candidates` (candidate words and their replacement sets: MLM and neighbours),
:mod:`.augmenter` (sampling the copies), :mod:`.writer` (the output directory, reading it
back, and the cache of ``prune --augment auto``) and :mod:`.filter` (``prune --augment-filter``:
dropping the copies whose label the teacher no longer agrees with).
"""

from .augmenter import Augmenter
from .candidates import STOP_WORDS, CandidateGenerator
from .settings import AugmentSettings
from .filter import AUGMENT_FILTERS, teacher_agreement
from .word_vectors import WordVectors, read_word_vectors
from .writer import (AUGMENT_FORMAT, DEFAULT_CACHE, augment_cache_key, augment_record, augment_task, load_augmented,
                     prepare_augmented)

__all__ = [
    "STOP_WORDS", "AugmentSettings", "WordVectors", "read_word_vectors", "CandidateGenerator", "Augmenter",
    "augment_task", "augment_record", "load_augmented", "augment_cache_key", "prepare_augmented", "AUGMENT_FORMAT",
    "DEFAULT_CACHE", "teacher_agreement", "AUGMENT_FILTERS",
]
