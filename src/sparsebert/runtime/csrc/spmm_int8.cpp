// Sparse-int8 products for sparsebert.runtime (CPU): int8 weights in 1x4 blocks x int8 activations
// quantised per token inside the call, int32 accumulation, fp32 output.
//
// Quantisation (both symmetric, no zero points; int8 values in [-127, 127]):
//   weights     W[o, k] ~ sw[o] * Wq[o, k]    sw[o] = max_k |W[o, k]| / 127   (per output channel,
//               done once in Python: sparsebert.runtime.int8.quantize_weight)
//   activations x[t, k] ~ sx[t] * xq[t, k]    sx[t] = max_k |x[t, k]| / 127   (per token, dynamic:
//               xq = nearbyint(x * (127 / max|x[t]|)), here, for every call; an all-zero token has
//               sx = 0, a token with inf/NaN has sx = NaN so that its outputs are NaN)
//   output      y[t, o] = float(acc[t, o]) * (sw[o] * sx[t]) + bias[o],
//               acc[t, o] = sum_k Wq[o, k] * xq[t, k]   (int32, exact: |acc| <= 127^2 * in < 2^31
//               for in <= 133144)
//
// Weight layout: 1x4 blocks, i.e. 4 consecutive input columns of one output row; only blocks with
// a non-zero are stored (block CSR): row_ptr[o] .. row_ptr[o + 1] index bcol (block column = k / 4,
// uint16) and wv (the 4 int8 weights packed little-endian in one int32). Unstructured weights are
// zero-filled to whole blocks (at most 4 stored values per non-zero); weights pruned with 1x4
// blocks are stored without fill.
//
// Activation layout: x is quantised and packed once per call (parallel over tokens) into token
// tiles of TT = 8 * V tokens: xp[tile][block column c][token t][4] = xq[t, 4c .. 4c + 4), so the
// 4 activations that meet one weight block are 4 consecutive bytes, and TT tokens of one block
// column are contiguous (V 256-bit loads).
//
// SIMD paths (chosen at compile time; all produce the same int32 accumulators, bit for bit):
//   * AVX-512 VNNI (with VL) or AVX-VNNI: vpdpbusd(acc, |w|, sign(x, w)) on ymm (4 products and
//     the add in one instruction). Tested on an AVX-512 VNNI EPYC (tests/test_runtime_int8.py:
//     bit for bit against the generic loops and the exact reference); AVX-VNNI alone is untested.
//   * AVX2: vpmaddubsw(|w|, sign(x, w)) then vpmaddwd(., 1) and vpaddd. vpmaddubsw multiplies an
//     unsigned by a signed byte and adds pairs with signed 16-bit saturation; taking the sign of w
//     onto x (vpsignb) and |w| as the unsigned operand keeps both factors within 127, so a pair is
//     at most 2 * 127 * 127 = 32258 < 32767: no saturation, exact.
//   * generic: plain C++ loops (the compiler vectorises what it can); also selectable at run time
//     (impl = 1) so that tests compare it with the SIMD path.
// Work is split over (token tile, block of output rows) with at::parallel_for (torch's thread
// pool and thread count), like csr_linear in spmm.cpp. The scaling and bias are fused.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"
#include "vmath.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
#define SBK_INT8_VNNI 1
#endif

namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

constexpr int kRowsPerStore = 16;
constexpr int64_t kMaxIn = 133144;  // 127 * 127 * kMaxIn < 2^31: the int32 accumulator cannot overflow

// Quantise one token x[0 .. k_in) to int8 in blocks of 4: dst[c * stride + b] = xq[4c + b] for
// c < kb (zero past k_in). Returns the token's scale: max|x| / 127, 0 for an all-zero token (xq = 0),
// NaN for a token with an inf or NaN (xq = 0).
float quantize_token(const float* x, int64_t k_in, int64_t kb, int8_t* dst, int64_t stride) {
  v8f m = {};
  v8i finite = v8i{} - 1;
  int64_t k = 0;
  for (; k + 8 <= k_in; k += 8) {
    v8i bits;
    std::memcpy(&bits, x + k, sizeof(bits));
    const v8f a = (v8f)(bits & 0x7fffffff);  // |x|, bit-cast
    m = a > m ? a : m;
    finite &= a <= FLT_MAX;  // false for inf and NaN
  }
  float amax = 0.0f;
  bool ok = true;
  for (int i = 0; i < 8; ++i) {
    amax = std::max(amax, m[i]);
    ok = ok && finite[i] != 0;
  }
  for (; k < k_in; ++k) {
    const float a = std::fabs(x[k]);
    if (!(a <= FLT_MAX)) ok = false;
    else if (a > amax) amax = a;
  }
  if (!ok || amax == 0.0f) {
    for (int64_t c = 0; c < kb; ++c) std::memset(dst + c * stride, 0, 4);
    return ok ? 0.0f : NAN;
  }
  const float inv = 127.0f / amax;
  alignas(64) int8_t q[256];
  for (int64_t c0 = 0; c0 < kb; c0 += 64) {
    const int64_t k0 = 4 * c0;
    const int64_t n = std::min<int64_t>(256, 4 * kb - k0);
    const int64_t nv = std::max<int64_t>(0, std::min<int64_t>(n, k_in - k0));
    for (int64_t i = 0; i < nv; ++i) {
      float r = std::nearbyint(x[k0 + i] * inv);  // round half to even, like torch.round
      r = r > 127.0f ? 127.0f : r;
      r = r < -127.0f ? -127.0f : r;
      q[i] = static_cast<int8_t>(static_cast<int32_t>(r));
    }
    for (int64_t i = nv; i < n; ++i) q[i] = 0;
    for (int64_t c = 0; c < n / 4; ++c) std::memcpy(dst + (c0 + c) * stride, q + 4 * c, 4);
  }
  return amax / 127.0f;
}

// xp: n_tiles tiles of [kb][tt][4] int8; sx: [n_tiles * tt] (tokens past n_tok: zero).
void pack_tokens(const float* x, int64_t n_tok, int64_t k_in, int64_t kb, int64_t tt, int8_t* xp, float* sx) {
  const int64_t n_tiles = (n_tok + tt - 1) / tt;
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(k_in, 1));
  at::parallel_for(0, n_tiles * tt, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int8_t* dst = xp + ((t / tt) * kb * tt + t % tt) * 4;
      if (t < n_tok) {
        sx[t] = quantize_token(x + t * k_in, k_in, kb, dst, tt * 4);
      } else {
        for (int64_t c = 0; c < kb; ++c) std::memset(dst + c * tt * 4, 0, 4);
        sx[t] = 0.0f;
      }
    }
  });
}

// acc[0 .. 8V) = int32 dot products of output row blocks [j, je) with the TT = 8V tokens of tile xt.
template <int V>
inline void row_acc_generic(const int8_t* __restrict xt, int32_t j, int32_t je, const uint16_t* __restrict bc,
                            const int32_t* __restrict wv, int32_t* __restrict acc) {
  constexpr int TT = 8 * V;
  for (int t = 0; t < TT; ++t) acc[t] = 0;
  for (; j < je; ++j) {
    int8_t w[4];
    std::memcpy(w, &wv[j], 4);
    const int8_t* xj = xt + static_cast<int64_t>(bc[j]) * (TT * 4);
    for (int t = 0; t < TT; ++t)
      acc[t] += w[0] * xj[4 * t] + w[1] * xj[4 * t + 1] + w[2] * xj[4 * t + 2] + w[3] * xj[4 * t + 3];
  }
}

#if defined(__AVX2__)
template <int V>
inline void row_acc_simd(const int8_t* __restrict xt, int32_t j, int32_t je, const uint16_t* __restrict bc,
                         const int32_t* __restrict wv, int32_t* __restrict acc) {
  constexpr int TT = 8 * V;
  __m256i a[V];
  for (int i = 0; i < V; ++i) a[i] = _mm256_setzero_si256();
#if !defined(SBK_INT8_VNNI)
  const __m256i ones = _mm256_set1_epi16(1);
#endif
  for (; j < je; ++j) {
    const __m256i w = _mm256_set1_epi32(wv[j]);  // the block's 4 weights, in every token's 4 bytes
    const __m256i wabs = _mm256_abs_epi8(w);     // <= 127 (weights are in [-127, 127])
    const __m256i* xj = reinterpret_cast<const __m256i*>(xt + static_cast<int64_t>(bc[j]) * (TT * 4));
    for (int i = 0; i < V; ++i) {
      const __m256i xs = _mm256_sign_epi8(_mm256_load_si256(xj + i), w);  // x * sign(w), within [-127, 127]
#if defined(SBK_INT8_VNNI) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
      a[i] = _mm256_dpbusd_epi32(a[i], wabs, xs);
#elif defined(SBK_INT8_VNNI)
      a[i] = _mm256_dpbusd_avx_epi32(a[i], wabs, xs);
#else
      a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xs), ones));
#endif
    }
  }
  for (int i = 0; i < V; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(acc + 8 * i), a[i]);
}
#endif

// One token tile (TT = 8V tokens starting at t0, t_count of them real) x output rows [o0, o1).
// The activation (the engine's fused epilogue; none for int8_block_linear) is applied in the buffer.
template <int V, bool kSimd>
void tile_rows(const int8_t* __restrict xt, const float* __restrict sxt, const int32_t* __restrict rp,
               const uint16_t* __restrict bc, const int32_t* __restrict wv, const float* __restrict sw,
               const float* __restrict bias, int64_t o0, int64_t o1, float* __restrict y, int64_t n_out, int64_t t0,
               int64_t t_count, sparsebert::Act act) {
  constexpr int TT = 8 * V;
  alignas(64) float buf[kRowsPerStore][TT];
  alignas(64) int32_t acc[TT];
  for (int64_t ob = o0; ob < o1; ob += kRowsPerStore) {
    const int64_t oe = std::min<int64_t>(ob + kRowsPerStore, o1);
    for (int64_t o = ob; o < oe; ++o) {
#if defined(__AVX2__)
      if (kSimd) row_acc_simd<V>(xt, rp[o], rp[o + 1], bc, wv, acc);
      else
#endif
        row_acc_generic<V>(xt, rp[o], rp[o + 1], bc, wv, acc);
      // the same epilogue for every path: identical accumulators give identical outputs
      const float s = sw[o], b = bias ? bias[o] : 0.0f;
      for (int t = 0; t < TT; ++t) buf[o - ob][t] = static_cast<float>(acc[t]) * (s * sxt[t]) + b;
      if (act != sparsebert::Act::kNone) sparsebert::activate_rows(act, buf[o - ob], TT);
    }
    const int64_t rows = oe - ob;
    for (int64_t tb = 0; tb < t_count; tb += 16)
      sparsebert::transpose_block(&buf[0][tb], TT, y + (t0 + tb) * n_out + ob, n_out, rows,
                                  std::min<int64_t>(16, t_count - tb));
  }
}

// the quantised activations of one call, on the calling thread (thread_scratch)
struct CallScratch;

template <int V>
void run_tile(bool simd, const int8_t* xt, const float* sxt, const int32_t* rp, const uint16_t* bc, const int32_t* wv,
              const float* sw, const float* bias, int64_t o0, int64_t o1, float* y, int64_t n_out, int64_t t0,
              int64_t tn, sparsebert::Act act) {
  if (simd) tile_rows<V, true>(xt, sxt, rp, bc, wv, sw, bias, o0, o1, y, n_out, t0, tn, act);
  else tile_rows<V, false>(xt, sxt, rp, bc, wv, sw, bias, o0, o1, y, n_out, t0, tn, act);
}

}  // namespace

namespace sparsebert {

float int8_quantize_token(const float* x, int64_t k_in, int64_t kb, int8_t* dst, int64_t stride) {
  return quantize_token(x, k_in, kb, dst, stride);
}

std::string int8_isa() {
#if defined(SBK_INT8_VNNI) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return "avx512-vnni";
#elif defined(SBK_INT8_VNNI)
  return "avx-vnni";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "generic";
#endif
}

// x: [tokens, in] fp32 contiguous CPU. Returns (xq int8 [tokens, 4 * ceil(in / 4)], zero past in;
// sx fp32 [tokens]): exactly the quantisation int8_block_linear applies (for tests).
std::vector<torch::Tensor> int8_quantize_tokens(torch::Tensor x) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "int8_quantize_tokens: x must be a contiguous 2-D fp32 CPU tensor");
  const int64_t n_tok = x.size(0), k_in = x.size(1), kb = (k_in + 3) / 4;
  auto xq = torch::empty({n_tok, 4 * kb}, x.options().dtype(torch::kChar));
  auto sx = torch::empty({n_tok}, x.options());
  const float* xp = x.data_ptr<float>();
  int8_t* q = xq.data_ptr<int8_t>();
  float* s = sx.data_ptr<float>();
  at::parallel_for(0, n_tok, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) s[t] = quantize_token(xp + t * k_in, k_in, kb, q + t * 4 * kb, 4);
  });
  return {xq, sx};
}

// x: [tokens, in] fp32 contiguous CPU; row_ptr int32 [out + 1]; bcol int16 [blocks] (read as uint16,
// block column < ceil(in / 4)); wv int32 [blocks] (4 int8 weights each, in [-127, 127]);
// w_scale fp32 [out]; bias fp32 [out] or None. tile: tokens per register tile (8, 16, 32 or 64);
// rows_per_task: output rows per parallel task (<= 0: all); impl: 0 the best SIMD path of this
// build, 1 the generic C++ path. Returns y fp32 [tokens, out].
torch::Tensor int8_block_linear(torch::Tensor x, torch::Tensor row_ptr, torch::Tensor bcol, torch::Tensor wv,
                                torch::Tensor w_scale, c10::optional<torch::Tensor> bias, int64_t tile,
                                int64_t rows_per_task, int64_t impl) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "int8_block_linear: x must be a contiguous 2-D fp32 CPU tensor");
  TORCH_CHECK(row_ptr.dim() == 1 && row_ptr.scalar_type() == torch::kInt && row_ptr.is_contiguous() &&
                  row_ptr.numel() >= 1,
              "int8_block_linear: row_ptr must be int32 [out + 1]");
  TORCH_CHECK(bcol.scalar_type() == torch::kShort && bcol.is_contiguous(), "int8_block_linear: bcol must be int16");
  TORCH_CHECK(wv.scalar_type() == torch::kInt && wv.is_contiguous() && wv.numel() == bcol.numel(),
              "int8_block_linear: wv must be int32 with one entry per block");
  const int64_t n_tok = x.size(0), k_in = x.size(1), n_out = row_ptr.numel() - 1;
  TORCH_CHECK(w_scale.scalar_type() == torch::kFloat && w_scale.is_contiguous() && w_scale.numel() == n_out,
              "int8_block_linear: w_scale must be fp32 [out]");
  TORCH_CHECK(row_ptr.data_ptr<int32_t>()[n_out] == bcol.numel(), "int8_block_linear: row_ptr[out] != number of blocks");
  TORCH_CHECK(k_in <= kMaxIn, "int8_block_linear: in_features ", k_in, " > ", kMaxIn,
              " could overflow the int32 accumulator");
  TORCH_CHECK(tile == 8 || tile == 16 || tile == 32 || tile == 64, "int8_block_linear: tile must be 8, 16, 32 or 64");
  TORCH_CHECK(impl == 0 || impl == 1, "int8_block_linear: impl must be 0 (SIMD) or 1 (generic)");
  const float* b = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == torch::kFloat && bias->is_contiguous() && bias->numel() == n_out,
                "int8_block_linear: bias must be fp32 [out]");
    b = bias->data_ptr<float>();
  }
  auto y = pooled_empty(n_tok, n_out, x.options());
  int8_block_linear_into(x.data_ptr<float>(), n_tok, k_in, row_ptr.data_ptr<int32_t>(),
                         reinterpret_cast<const uint16_t*>(bcol.data_ptr<int16_t>()), wv.data_ptr<int32_t>(),
                         w_scale.data_ptr<float>(), b, n_out, tile, rows_per_task, impl, Act::kNone, y.data_ptr<float>(),
                         nullptr);
  return y;
}

void int8_block_linear_into(const float* x_data, int64_t n_tok, int64_t k_in, const int32_t* rp, const uint16_t* bc,
                            const int32_t* w, const float* s, const float* b, int64_t n_out, int64_t tile,
                            int64_t rows_per_task, int64_t impl, Act act, float* yp,
                            const std::function<void(int64_t, int64_t)>* post) {
  if (n_tok == 0 || n_out == 0) return;
  const int64_t tt = tile, kb = (k_in + 3) / 4, n_tiles = (n_tok + tt - 1) / tt;
  const size_t xp_bytes = ((static_cast<size_t>(n_tiles * tt * kb * 4) + 63) / 64) * 64;
  uint8_t* scratch = thread_scratch<uint8_t, CallScratch>(xp_bytes + static_cast<size_t>(n_tiles * tt) * sizeof(float),
                                                         "int8_block_linear");
  int8_t* xp = reinterpret_cast<int8_t*>(scratch);
  float* sx = reinterpret_cast<float*>(scratch + xp_bytes);
  pack_tokens(x_data, n_tok, k_in, kb, tt, xp, sx);
#if defined(__AVX2__)
  const bool simd = impl == 0;
#else
  const bool simd = false;
#endif
  const bool whole = rows_per_task <= 0;  // all rows of a token tile in one task: post() may run on it
  const int64_t rb = whole ? n_out : std::max<int64_t>(kRowsPerStore, rows_per_task);
  const int64_t n_rb = (n_out + rb - 1) / rb;
  at::parallel_for(0, n_tiles * n_rb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t_idx = task / n_rb, r = task % n_rb;
      const int8_t* xt = xp + t_idx * kb * tt * 4;
      const float* sxt = sx + t_idx * tt;
      const int64_t o0 = r * rb, o1 = std::min(o0 + rb, n_out);
      const int64_t t0 = t_idx * tt, tn = std::min(tt, n_tok - t0);
      switch (tt) {
        case 8: run_tile<1>(simd, xt, sxt, rp, bc, w, s, b, o0, o1, yp, n_out, t0, tn, act); break;
        case 16: run_tile<2>(simd, xt, sxt, rp, bc, w, s, b, o0, o1, yp, n_out, t0, tn, act); break;
        case 32: run_tile<4>(simd, xt, sxt, rp, bc, w, s, b, o0, o1, yp, n_out, t0, tn, act); break;
        default: run_tile<8>(simd, xt, sxt, rp, bc, w, s, b, o0, o1, yp, n_out, t0, tn, act); break;
      }
      if (whole && post) (*post)(t0, tn);
    }
  });
}

}  // namespace sparsebert
