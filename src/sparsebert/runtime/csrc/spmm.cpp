// Sparse (CSR weight) x dense (activations) products for sparsebert.runtime, CPU, fp32:
//
//   y[t, o] = bias[o] + sum_j vals[j] * x[t, col[j]]   for j in row_ptr[o] .. row_ptr[o+1]
//
// The kernel itself is in csr_kernel.h (shared with the whole-encoder engine, engine.cpp, which
// fuses activations and residual add + LayerNorm into it); this file holds csr_linear (one
// nn.Linear of the runtime), the recycled output buffers (pooled_empty) and the Python bindings
// of the extension module (the sparse-int8 kernel of spmm_int8.cpp and the engine's classes too).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"
#include "csr_kernel.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace sparsebert {

// Output buffers of large products are recycled: a fresh multi-megabyte allocation is mmap'ed by
// glibc and page-faulted in on every call (clear_page for every 4 KiB), which costs more than the
// product itself at batch 32. Freed outputs go back to a small per-size free list instead.
constexpr size_t kPoolMinBytes = 1 << 20;
constexpr size_t kPoolPerSize = 4;

struct OutputPool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
};

OutputPool& output_pool() {
  static OutputPool* pool = new OutputPool();  // never destroyed: tensors may outlive static destructors
  return *pool;
}

void pool_release(void* p, size_t bytes) {
  OutputPool& pool = output_pool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    auto& list = pool.free_lists[bytes];
    if (list.size() < kPoolPerSize) {
      list.push_back(p);
      return;
    }
  }
  std::free(p);
}

torch::Tensor pooled_empty(int64_t rows, int64_t cols, const torch::TensorOptions& options) {
  const size_t bytes = ((static_cast<size_t>(rows * cols) * sizeof(float) + 63) / 64) * 64;
  if (bytes < kPoolMinBytes) return torch::empty({rows, cols}, options);
  void* p = nullptr;
  {
    OutputPool& pool = output_pool();
    std::lock_guard<std::mutex> lock(pool.mu);
    auto& list = pool.free_lists[bytes];
    if (!list.empty()) {
      p = list.back();
      list.pop_back();
    }
  }
  if (p == nullptr) p = std::aligned_alloc(64, bytes);
  TORCH_CHECK(p != nullptr, "csr_linear: out of memory for a ", bytes, "-byte output");
  return torch::from_blob(p, {rows, cols}, [bytes](void* q) { pool_release(q, bytes); }, options);
}

}  // namespace sparsebert

// x: [tokens, in] fp32 contiguous; row_ptr int32 [out + 1]; col int16/int32 [nnz]; vals fp32 [nnz].
// tile_v: tokens per register tile / 16; rows_per_task: output rows per parallel task (<= 0: all);
// stream: write y with non-temporal stores (worth it only when y is much larger than the caches).
torch::Tensor csr_linear(torch::Tensor x, torch::Tensor row_ptr, torch::Tensor col, torch::Tensor vals,
                         c10::optional<torch::Tensor> bias, int64_t tile_v, int64_t rows_per_task, bool stream) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "csr_linear: x must be a contiguous 2-D fp32 CPU tensor");
  TORCH_CHECK(row_ptr.scalar_type() == torch::kInt && row_ptr.is_contiguous(), "csr_linear: row_ptr must be int32");
  TORCH_CHECK((col.scalar_type() == torch::kInt || col.scalar_type() == torch::kShort) && col.is_contiguous(),
              "csr_linear: col must be int32 or int16");
  TORCH_CHECK(vals.scalar_type() == torch::kFloat && vals.is_contiguous(), "csr_linear: vals must be fp32");
  TORCH_CHECK(tile_v == 1 || tile_v == 2 || tile_v == 4 || tile_v == 8, "csr_linear: tile_v must be 1, 2, 4 or 8");
  const int64_t n_tok = x.size(0), k_in = x.size(1), n_out = row_ptr.size(0) - 1;
  const float* b = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == torch::kFloat && bias->is_contiguous() && bias->numel() == n_out,
                "csr_linear: bias must be fp32 [out]");
    b = bias->data_ptr<float>();
  }
  auto y = sparsebert::pooled_empty(n_tok, n_out, x.options());
  if (n_tok == 0) return y;
  using sparsebert::Act;
  namespace csr = sparsebert::csr;
  if (col.scalar_type() == torch::kShort) {
    csr::run<Act::kNone, uint16_t>(x.data_ptr<float>(), n_tok, k_in, row_ptr.data_ptr<int32_t>(),
                  reinterpret_cast<const uint16_t*>(col.data_ptr<int16_t>()), vals.data_ptr<float>(), b, n_out,
                  tile_v, rows_per_task, stream, y.data_ptr<float>());
  } else {
    csr::run<Act::kNone, int32_t>(x.data_ptr<float>(), n_tok, k_in, row_ptr.data_ptr<int32_t>(), col.data_ptr<int32_t>(),
                 vals.data_ptr<float>(), b, n_out, tile_v, rows_per_task, stream, y.data_ptr<float>());
  }
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("csr_linear", &csr_linear, "y = x @ W^T + b with W in CSR (fp32, CPU)");
  m.def("int8_block_linear", &sparsebert::int8_block_linear,
        "y = dequant(q(x) @ Wq^T) + b with Wq int8 in 1x4 blocks, x quantised per token (spmm_int8.cpp)");
  m.def("int8_quantize_tokens", &sparsebert::int8_quantize_tokens,
        "(xq int8 [tokens, 4 * ceil(in / 4)], scale fp32 [tokens]): the kernel's own per-token quantisation");
  m.def("int8_4x1_linear", &sparsebert::int8_4x1_linear,
        "y = dequant(q(x) @ Wq^T) + b with Wq int8 in 4x1 blocks (units of 4 columns), x quantised per token "
        "(spmm_int8_4x1.cpp); impl 0 SIMD, 1 generic, 2 the VNNI data flow emulated");
  m.def("int8_isa", &sparsebert::int8_isa, "the int8 kernel's SIMD path in this build: avx512-vnni, avx-vnni, avx2 or generic");
  sparsebert::bind_engine(m);
}
