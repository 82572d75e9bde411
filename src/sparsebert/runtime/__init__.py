"""Sparse inference runtime: pruned linears run by the kernel measured fastest on this machine.

>>> from sparsebert.runtime import convert
>>> report = convert(model, tokens=128)      # in place; model.eval()
>>> logits = model(**batch).logits           # under torch.no_grad()

See :mod:`sparsebert.runtime.convert` (choice and cache), :mod:`sparsebert.runtime.kernels`
(candidates, timing), :mod:`sparsebert.runtime.linear` (the modules) and ``csrc/spmm.cpp`` (the
C++ CSR kernel, built on first use by :mod:`sparsebert.runtime.build`).
"""

from sparsebert.runtime.convert import ConversionReport, MatrixChoice, convert, target_modules
from sparsebert.runtime.kernels import FAMILIES
from sparsebert.runtime.linear import (
    CSRKernelLinear,
    InferenceOnlyError,
    SparseLinearBase,
    TorchBSRLinear,
    TorchCSRLinear,
)

__all__ = ["FAMILIES", "CSRKernelLinear", "ConversionReport", "InferenceOnlyError", "MatrixChoice",
           "SparseLinearBase", "TorchBSRLinear", "TorchCSRLinear", "convert", "target_modules"]
