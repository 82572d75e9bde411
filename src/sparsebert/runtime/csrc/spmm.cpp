// Sparse (CSR weight) x dense (activations) products for sparsebert.runtime, CPU, fp32.
//
//   y[t, o] = bias[o] + sum_j vals[j] * x[t, col[j]]   for j in row_ptr[o] .. row_ptr[o+1]
//
// The activations are packed, one token tile at a time by the thread that uses it, into a
// transposed tile (xp[k][0..TT): TT consecutive tokens of input feature k are contiguous), so every
// non-zero of W becomes TT/16 vector FMAs on contiguous loads into a register tile of TT
// tokens. Output rows are produced 16 at a time into a small buffer and written back in the
// row-major [tokens, out_features] layout that nn.Linear returns (no transposes elsewhere).
// Work is split over (token tile, block of output rows) with at::parallel_for, i.e. torch's
// own thread pool and thread count. The bias is fused.
//
// Written with GCC vector extensions: compiled with -march=native they become AVX-512 (zmm)
// FMAs where the CPU has them, AVX2 pairs otherwise.
//
// The module also binds the sparse-int8 kernel of spmm_int8.cpp; helpers shared by both are in common.h.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

using sparsebert::pooled_empty;
using sparsebert::thread_scratch;
using sparsebert::transpose_block;

typedef float vf __attribute__((vector_size(64)));

inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}

constexpr int kRowsPerStore = 16;

// One token tile (TT = 16 * V tokens) x output rows [o0, o1).
// U independent accumulator sets (U x V vector registers) keep enough FMA chains in flight to
// hide the FMA latency also for narrow tiles.
template <int V, typename Index>
void tile_rows(const float* __restrict xp, const int32_t* __restrict rp, const Index* __restrict ci,
               const float* __restrict vals, const float* __restrict bias, int64_t o0, int64_t o1,
               float* __restrict y, int64_t n_out, int64_t t0, int64_t t_count, bool stream) {
  constexpr int TT = 16 * V;
  constexpr int U = V >= 8 ? 2 : (V == 4 ? 4 : 8);
  alignas(64) float buf[kRowsPerStore][TT];
  for (int64_t ob = o0; ob < o1; ob += kRowsPerStore) {
    const int64_t oe = std::min<int64_t>(ob + kRowsPerStore, o1);
    for (int64_t o = ob; o < oe; ++o) {
      vf acc[U][V];
      for (int u = 0; u < U; ++u)
        for (int i = 0; i < V; ++i) acc[u][i] = vf{};
      int32_t j = rp[o];
      const int32_t je = rp[o + 1];
      for (; j + U <= je; j += U) {
        for (int u = 0; u < U; ++u) {
          const float* xu = xp + static_cast<int64_t>(ci[j + u]) * TT;
          const float vu = vals[j + u];
          for (int i = 0; i < V; ++i) acc[u][i] += vu * vload(xu + 16 * i);
        }
      }
      for (int u = 0; j < je; ++j, ++u) {
        const float* xu = xp + static_cast<int64_t>(ci[j]) * TT;
        const float vu = vals[j];
        for (int i = 0; i < V; ++i) acc[u][i] += vu * vload(xu + 16 * i);
      }
      for (int step = 1; step < U; step *= 2)
        for (int u = 0; u + step < U; u += 2 * step)
          for (int i = 0; i < V; ++i) acc[u][i] += acc[u + step][i];
      const float b0 = bias ? bias[o] : 0.0f;
      for (int i = 0; i < V; ++i) {
        vf s = acc[0][i] + b0;
        std::memcpy(&buf[o - ob][16 * i], &s, sizeof(vf));
      }
    }
    const int64_t rows = oe - ob;
    // buf[row][token] -> y[token][row], 16 x 16 blocks
    for (int64_t tb = 0; tb < t_count; tb += 16)
      transpose_block(&buf[0][tb], TT, y + (t0 + tb) * n_out + ob, n_out, rows, std::min<int64_t>(16, t_count - tb),
                      stream);
  }
}

// xp[k][TT] <- x[t0 + t][k] for one token tile; tokens past the end are zero.
void pack_tile(const float* x, int64_t n_tok, int64_t k_in, int64_t tt, int64_t tile, float* xp) {
  const int64_t t0 = tile * tt;
  const int64_t tn = std::min(tt, n_tok - t0);
  for (int64_t t = 0; t < tn; t += 16)
    for (int64_t k = 0; k < k_in; k += 16)
      transpose_block(x + (t0 + t) * k_in + k, k_in, xp + k * tt + t, tt, std::min<int64_t>(16, tn - t),
                      std::min<int64_t>(16, k_in - k));
  if (tn < tt)
    for (int64_t k = 0; k < k_in; ++k)
      for (int64_t t = tn; t < tt; ++t) xp[k * tt + t] = 0.0f;
}

// the packed token tile of each thread (thread_scratch)
struct PackedTileScratch;

template <typename Index>
void run(const float* x, int64_t n_tok, int64_t k_in, const int32_t* rp, const Index* ci, const float* vals,
         const float* bias, int64_t n_out, int64_t tile_v, int64_t rows_per_task, bool stream, float* y) {
  const int64_t tt = 16 * tile_v;
  const int64_t n_tiles = (n_tok + tt - 1) / tt;
  // rows_per_task <= 0: all output rows of a token tile in one task (token-major split)
  const int64_t rb = rows_per_task <= 0 ? std::max<int64_t>(n_out, 1) : std::max<int64_t>(kRowsPerStore, rows_per_task);
  const int64_t n_rb = (n_out + rb - 1) / rb;
  // Tasks are (token tile, block of rows), tile-major. Each thread packs the tile it works on into
  // its own buffer (cache-resident, reused across calls); threads sharing a tile both pack it.
  at::parallel_for(0, n_tiles * n_rb, 1, [&](int64_t begin, int64_t end) {
    float* xt = thread_scratch<float, PackedTileScratch>(static_cast<size_t>(k_in * tt), "csr_linear");
    int64_t packed = -1;
    for (int64_t w = begin; w < end; ++w) {
      const int64_t tile = w / n_rb, r = w % n_rb;
      if (tile != packed) {
        pack_tile(x, n_tok, k_in, tt, tile, xt);
        packed = tile;
      }
      const int64_t o0 = r * rb, o1 = std::min(o0 + rb, n_out);
      const int64_t t0 = tile * tt, tn = std::min(tt, n_tok - t0);
      switch (tile_v) {
        case 1: tile_rows<1>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
        case 2: tile_rows<2>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
        case 4: tile_rows<4>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
        case 8: tile_rows<8>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
        default: break;  // checked by the caller
      }
    }
#if defined(__AVX512F__)
    if (stream) _mm_sfence();  // non-temporal stores visible before the caller reads y
#endif
  });
}

}  // namespace

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
  auto y = pooled_empty(n_tok, n_out, x.options());
  if (n_tok == 0) return y;
  if (col.scalar_type() == torch::kShort) {
    run<uint16_t>(x.data_ptr<float>(), n_tok, k_in, row_ptr.data_ptr<int32_t>(),
                  reinterpret_cast<const uint16_t*>(col.data_ptr<int16_t>()), vals.data_ptr<float>(), b, n_out,
                  tile_v, rows_per_task, stream, y.data_ptr<float>());
  } else {
    run<int32_t>(x.data_ptr<float>(), n_tok, k_in, row_ptr.data_ptr<int32_t>(), col.data_ptr<int32_t>(),
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
  m.def("int8_isa", &sparsebert::int8_isa, "the int8 kernel's SIMD path in this build: avx512-vnni, avx-vnni, avx2 or generic");
}
