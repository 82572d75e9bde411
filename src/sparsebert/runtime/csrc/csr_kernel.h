// The fp32 CSR x dense product shared by csr_linear (spmm.cpp, one nn.Linear of the runtime) and the
// whole-encoder engine (engine.cpp), with its epilogue fused:
//
//   y[t, o] = act(bias[o] + sum_j vals[j] * x[t, col[j]])   for j in row_ptr[o] .. row_ptr[o+1]
//
// The activations are packed, one token tile at a time by the thread that uses it, into a
// transposed tile (xp[k][0..TT): TT consecutive tokens of input feature k are contiguous), so every
// non-zero of W becomes TT/16 vector FMAs on contiguous loads into a register tile of TT
// tokens. Output rows are produced 16 at a time into a small buffer, the bias and the activation
// (vmath.h) applied there, and written back in the row-major [tokens, out_features] layout.
// Work is split over (token tile, block of output rows) with at::parallel_for, i.e. torch's
// own thread pool and thread count. With all rows of a tile in one task (rows_per_task <= 0) the
// task then calls post(t0, tn) on the tile's finished rows while they are still in cache: the
// engine fuses residual add + LayerNorm there.
//
// Written with GCC vector extensions on the native vector of the build (vmath.h: 16 floats with
// AVX-512, 8 with AVX2).
#pragma once

#include <ATen/Parallel.h>

#include "common.h"
#include "vmath.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace sparsebert {
namespace csr {

constexpr int kRowsPerStore = 16;

// Independent accumulator sets for a tile of 16 * V tokens (NV = 16 * V / kVF native vectors):
// U x NV vectors stay in registers, with enough FMA chains in flight to hide the FMA latency also
// for narrow tiles. AVX-512 has 32 zmm registers: 8 to 16 of them hold accumulators. AVX2 has 16
// ymm: at most 8 accumulators, else the loop spills to the stack on every non-zero.
template <int V>
constexpr int accumulator_sets() {
#if defined(__AVX512F__)
  return V >= 8 ? 2 : (V == 4 ? 4 : 8);
#else
  return V >= 4 ? 1 : (V == 2 ? 2 : 4);
#endif
}

// One token tile (TT = 16 * V tokens) x output rows [o0, o1).
template <int V, Act A, typename Index>
void tile_rows(const float* __restrict xp, const int32_t* __restrict rp, const Index* __restrict ci,
               const float* __restrict vals, const float* __restrict bias, int64_t o0, int64_t o1,
               float* __restrict y, int64_t n_out, int64_t t0, int64_t t_count, bool stream) {
  constexpr int TT = 16 * V;
  constexpr int NV = TT / kVF;
  constexpr int U = accumulator_sets<V>();
  alignas(64) float buf[kRowsPerStore][TT];
  for (int64_t ob = o0; ob < o1; ob += kRowsPerStore) {
    const int64_t oe = std::min<int64_t>(ob + kRowsPerStore, o1);
    for (int64_t o = ob; o < oe; ++o) {
      vf acc[U][NV];
      for (int u = 0; u < U; ++u)
        for (int i = 0; i < NV; ++i) acc[u][i] = vf{};
      int32_t j = rp[o];
      const int32_t je = rp[o + 1];
      for (; j + U <= je; j += U) {
        for (int u = 0; u < U; ++u) {
          const float* xu = xp + static_cast<int64_t>(ci[j + u]) * TT;
          const float vu = vals[j + u];
          for (int i = 0; i < NV; ++i) acc[u][i] += vu * vload(xu + kVF * i);
        }
      }
      for (int u = 0; j < je; ++j, ++u) {
        const float* xu = xp + static_cast<int64_t>(ci[j]) * TT;
        const float vu = vals[j];
        for (int i = 0; i < NV; ++i) acc[u][i] += vu * vload(xu + kVF * i);
      }
      for (int step = 1; step < U; step *= 2)
        for (int u = 0; u + step < U; u += 2 * step)
          for (int i = 0; i < NV; ++i) acc[u][i] += acc[u + step][i];
      const float b0 = bias ? bias[o] : 0.0f;
      for (int i = 0; i < NV; ++i) vstore(&buf[o - ob][kVF * i], activate<A>(acc[0][i] + b0));
    }
    const int64_t rows = oe - ob;
    // buf[row][token] -> y[token][row], 16 x 16 blocks
    for (int64_t tb = 0; tb < t_count; tb += 16)
      transpose_block(&buf[0][tb], TT, y + (t0 + tb) * n_out + ob, n_out, rows, std::min<int64_t>(16, t_count - tb),
                      stream);
  }
}

// 4x1 blocks (4 consecutive output rows x 1 input column, kept or pruned whole): block CSR over groups
// of 4 rows, brp[g] .. brp[g + 1] index bcol and bvals[4 * j .. 4 * j + 4) (the 4 rows' weights). Each
// block loads the NV activation vectors of its column once and feeds 4 rows' accumulators, so the
// index and activation loads per multiply-add fall 4x against CSR: the register tile runs along M
// (the output rows) as in Intel's 4x1 sparse kernels (Shen et al. 2023, arXiv 2306.16601).
// Register budget: 4 x NV accumulators + NV activations: AVX2 (16 ymm) up to NV = 2 (tile 16 tokens),
// AVX-512 (32 zmm) up to NV = 4 (tile 64).
template <int V, Act A, typename Index>
void tile_rows_4x1(const float* __restrict xp, const int32_t* __restrict brp, const Index* __restrict ci,
                   const float* __restrict bvals, const float* __restrict bias, int64_t o0, int64_t o1,
                   float* __restrict y, int64_t n_out, int64_t t0, int64_t t_count) {
  constexpr int TT = 16 * V;
  constexpr int NV = TT / kVF;
  alignas(64) float buf[kRowsPerStore][TT];
  for (int64_t ob = o0; ob < o1; ob += kRowsPerStore) {
    const int64_t oe = std::min<int64_t>(ob + kRowsPerStore, o1);
    for (int64_t o = ob; o < oe; o += 4) {
      vf acc[4][NV];
      for (int r = 0; r < 4; ++r)
        for (int i = 0; i < NV; ++i) acc[r][i] = vf{};
      const int64_t g = o / 4;
      for (int32_t j = brp[g]; j < brp[g + 1]; ++j) {
        const float* xu = xp + static_cast<int64_t>(ci[j]) * TT;
        const float* w = bvals + 4 * static_cast<int64_t>(j);
        vf xv[NV];
        for (int i = 0; i < NV; ++i) xv[i] = vload(xu + kVF * i);
        for (int r = 0; r < 4; ++r) {
          const float wr = w[r];
          for (int i = 0; i < NV; ++i) acc[r][i] += wr * xv[i];
        }
      }
      for (int r = 0; r < 4; ++r) {
        const float b0 = bias ? bias[o + r] : 0.0f;
        for (int i = 0; i < NV; ++i) vstore(&buf[o - ob + r][kVF * i], activate<A>(acc[r][i] + b0));
      }
    }
    const int64_t rows = oe - ob;
    for (int64_t tb = 0; tb < t_count; tb += 16)
      transpose_block(&buf[0][tb], TT, y + (t0 + tb) * n_out + ob, n_out, rows, std::min<int64_t>(16, t_count - tb));
  }
}

// xp[k][TT] <- x[t0 + t][k] for one token tile; tokens past the end are zero.
inline void pack_tile(const float* x, int64_t n_tok, int64_t k_in, int64_t tt, int64_t tile, float* xp) {
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

template <Act A, typename Index>
void dispatch_tile(int64_t tile_v, const float* xt, const int32_t* rp, const Index* ci, const float* vals,
                   const float* bias, int64_t o0, int64_t o1, float* y, int64_t n_out, int64_t t0, int64_t tn,
                   bool stream) {
  switch (tile_v) {
    case 1: tile_rows<1, A>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
    case 2: tile_rows<2, A>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
    case 4: tile_rows<4, A>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
    case 8: tile_rows<8, A>(xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream); break;
    default: break;  // checked by the callers
  }
}

template <Act A, typename Index>
void dispatch_tile_4x1(int64_t tile_v, const float* xt, const int32_t* brp, const Index* ci, const float* bvals,
                       const float* bias, int64_t o0, int64_t o1, float* y, int64_t n_out, int64_t t0, int64_t tn) {
  switch (tile_v) {
    case 1: tile_rows_4x1<1, A>(xt, brp, ci, bvals, bias, o0, o1, y, n_out, t0, tn); break;
    case 2: tile_rows_4x1<2, A>(xt, brp, ci, bvals, bias, o0, o1, y, n_out, t0, tn); break;
#if defined(__AVX512F__)
    case 4: tile_rows_4x1<4, A>(xt, brp, ci, bvals, bias, o0, o1, y, n_out, t0, tn); break;
#endif
    default: break;  // checked by the callers (max_tile_4x1)
  }
}

// the widest register tile (16-token units) of the 4x1 kernel in this build
constexpr int64_t max_tile_4x1() {
#if defined(__AVX512F__)
  return 4;
#else
  return 2;
#endif
}

struct NoPost {
  void operator()(int64_t, int64_t) const {}
};

// y[n_tok, n_out] = act(x[n_tok, k_in] W^T + bias); post(t0, tn) after each finished token tile when
// rows_per_task <= 0 (otherwise post is never called). tile_v in {1, 2, 4, 8}: 16 * tile_v tokens
// per register tile. The caller has checked the CSR arrays (row_ptr monotone, col < k_in).
//
// With Blocks4, (rp, ci, vals) is the 4x1 block CSR of tile_rows_4x1 (n_out a multiple of 4, rows_per_task a
// multiple of 16, tile_v <= max_tile_4x1()) and stream must be false.
template <Act A, typename Index, typename Post = NoPost, bool Blocks4 = false>
void run(const float* x, int64_t n_tok, int64_t k_in, const int32_t* rp, const Index* ci, const float* vals,
         const float* bias, int64_t n_out, int64_t tile_v, int64_t rows_per_task, bool stream, float* y,
         const Post& post = Post()) {
  const int64_t tt = 16 * tile_v;
  const int64_t n_tiles = (n_tok + tt - 1) / tt;
  // rows_per_task <= 0: all output rows of a token tile in one task (token-major split)
  const bool whole = rows_per_task <= 0;
  const int64_t rb = whole ? std::max<int64_t>(n_out, 1) : std::max<int64_t>(kRowsPerStore, rows_per_task);
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
      if constexpr (Blocks4) dispatch_tile_4x1<A, Index>(tile_v, xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn);
      else dispatch_tile<A, Index>(tile_v, xt, rp, ci, vals, bias, o0, o1, y, n_out, t0, tn, stream);
      if (whole) post(t0, tn);
    }
#if defined(__AVX512F__)
    if (stream) _mm_sfence();  // non-temporal stores visible before the caller reads y
#endif
  });
}

}  // namespace csr
}  // namespace sparsebert
