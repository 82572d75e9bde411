"""``sparsebert bench``: the sparse runtime (and DeepSparse) against the dense baselines a user would
pick — torch fp32 / bf16 / int8, ONNX Runtime plain / optimised / int8, OpenVINO fp32 / int8 — timed
interleaved, with the physical limit of the speed-up (:mod:`sparsebert.bench.limits`)."""

from sparsebert.bench.run import CPU_PATHS, CUDA_PATHS, bench_model, write_outputs
from sparsebert.bench.synthetic import SHAPES, magnitude_prune_, synthetic_model

__all__ = ["CPU_PATHS", "CUDA_PATHS", "SHAPES", "bench_model", "magnitude_prune_", "synthetic_model", "write_outputs"]
