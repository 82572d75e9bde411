"""Compact sparse checkpoints (:mod:`.checkpoint`, :mod:`.format`) and ONNX export (:mod:`.onnx`)."""

from sparsebert.export.checkpoint import (
    AutoSparseModel,
    SparseCheckpointError,
    export_model,
    export_run,
    load,
    load_state_dict,
    read_header,
)
from sparsebert.export.format import SparseFormatError, decode, encode

__all__ = ["AutoSparseModel", "SparseCheckpointError", "SparseFormatError", "decode", "encode", "export_model",
           "export_run", "load", "load_state_dict", "read_header"]
