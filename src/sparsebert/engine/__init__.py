"""The native whole-encoder engine (:mod:`sparsebert.engine.model`; C++ in ``runtime/csrc/engine.cpp``).

Loading from a compact checkpoint without a dense copy: :func:`sparsebert.export.checkpoint.load_engine`
(``sparsebert.load(path, engine=True)``).

>>> from sparsebert.engine import EncoderEngine
>>> engine = EncoderEngine(model)                       # a pruned *ForSequenceClassification, on CPU
>>> logits = engine(input_ids=ids, attention_mask=mask).logits
"""

from sparsebert.engine.model import (
    ACTIVATIONS,
    CSR_MAX_DENSITY,
    FP32_LOGIT_ATOL,
    EncoderEngine,
    EngineReport,
    EngineUnavailableError,
    SparseMatrix,
    csr_tile,
)

__all__ = ["ACTIVATIONS", "CSR_MAX_DENSITY", "FP32_LOGIT_ATOL", "EncoderEngine", "EngineReport",
           "EngineUnavailableError", "SparseMatrix", "csr_tile"]
