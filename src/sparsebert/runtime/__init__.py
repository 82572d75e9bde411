"""Sparse inference runtime: pruned linears run by the kernel measured fastest on this machine.

>>> from sparsebert.runtime import convert
>>> report = convert(model, tokens=128)      # in place; model.eval()
>>> logits = model(**batch).logits           # under torch.no_grad()
>>> report = convert(model, tokens=128, int8=True)   # opt-in: sparse-int8 kernels compete too
>>> report.attention                                  # "sdpa" (MPNet: "eager"); attention="eager" opts out

See :mod:`sparsebert.runtime.conversion` (choice and cache), :mod:`sparsebert.runtime.kernels`
(candidates, timing), :mod:`sparsebert.runtime.linear` (the modules),
:mod:`sparsebert.runtime.int8` (sparse-int8: quantisation, error bound, module),
:mod:`sparsebert.runtime.attention` (SDPA / eager attention per family) and ``csrc/`` (the
C++ kernels: fp32 CSR in ``spmm.cpp``, int8 1x4 blocks in ``spmm_int8.cpp``, built on first use by
:mod:`sparsebert.runtime.build`).
"""

from sparsebert.runtime.attention import AttentionSetting, set_attention
from sparsebert.runtime.conversion import ConversionReport, MatrixChoice, convert, target_modules
from sparsebert.runtime.int8 import Int8BlockLinear
from sparsebert.runtime.kernels import FAMILIES, INT8_FAMILIES
from sparsebert.runtime.linear import (
    CSRKernelLinear,
    InferenceOnlyError,
    SparseLinearBase,
    TorchBSRLinear,
    TorchCSRLinear,
)

__all__ = ["FAMILIES", "INT8_FAMILIES", "AttentionSetting", "CSRKernelLinear", "ConversionReport", "InferenceOnlyError",
           "Int8BlockLinear", "MatrixChoice", "SparseLinearBase", "TorchBSRLinear", "TorchCSRLinear", "convert",
           "set_attention", "target_modules"]
