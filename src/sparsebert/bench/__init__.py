"""``sparsebert bench``: dense fp32 / bf16 / int8 / ONNX Runtime vs the sparse runtime (and DeepSparse)."""

from sparsebert.bench.run import CPU_PATHS, CUDA_PATHS, bench_model, write_outputs
from sparsebert.bench.synthetic import SHAPES, magnitude_prune_, synthetic_model

__all__ = ["CPU_PATHS", "CUDA_PATHS", "SHAPES", "bench_model", "magnitude_prune_", "synthetic_model", "write_outputs"]
