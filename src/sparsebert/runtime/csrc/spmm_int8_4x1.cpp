// Sparse-int8 products in 4x1 blocks (4 consecutive output rows x 1 input column, the pattern of
// `--pattern 4x1`): int8 weights, activations quantised per token inside the call, int32
// accumulation, fp32 output with the engine's fused epilogue. The quantisation is that of
// spmm_int8.cpp (symmetric; per output row for the weights, per token for the activations), so for
// the same matrix both kernels compute the same int32 accumulators and the same outputs.
//
// Weight layout ("units"): the blocks of each group of 4 output rows (a block-row) are taken 4 at a
// time, in storage order, into units of 4 input columns x 4 rows = 16 int8; a block-row's last unit
// is padded with zero weights (its padding columns repeat a real column of the block-row, so every
// index stays inside the matrix). Arrays:
//   urp   int32 [out / 4 + 1]   units of block-row g: urp[g] .. urp[g + 1] (at most ceil(in / 4) each)
//   ucol  int16 [4 * units]     the unit's 4 input columns (uint16 values, < in)
//   uw    int32 [4 * units]     word 4u + r = row r's 4 weights at those columns, byte k = column k,
//                               int8 in [-127, 127]
// so one 32-bit word is exactly what one vpdpbusd lane multiplies with a token's 4 activations.
//
// Activation layout: quantised once per call into token tiles of TT = 16 * V tokens, transposed:
// xp[tile][k][TT] (TT tokens of input column k contiguous, as the fp32 kernels keep them; rows
// padded to a multiple of 16 columns). For a unit, the 4 columns' 16-token rows are interleaved in
// registers (unpack bytes / words) into 2 vectors of 8 tokens x 4 bytes, shared by the unit's 4 rows.
//
// SIMD paths (impl 0 = the best of the build; all give the same int32 accumulators, bit for bit):
//   * AVX-512 VNNI (+VL) or AVX-VNNI: vpdpbusd(acc, xu, w) on ymm with xu = xq + 128 (u8, packed so by
//     the quantiser) and w the broadcast word (s8): no sign trick, one instruction per 8 tokens x 4
//     products; the offset is removed at the end, acc -= 128 * sum_k w[o, k] (a per-row constant,
//     computed when the matrix is checked). Exact: |acc| <= 255 * 127 * (in + 3) < 2^31 for in <= 65536.
//     Compiled (`-march=sapphirerapids`), not run here (the development machine is AVX2-only): impl 2
//     runs the same data flow with vpdpbusd emulated exactly in AVX2 (vpmaddwd on the even and odd bytes).
//   * AVX2: vpmaddubsw(|w|, sign(x, w)) + vpmaddwd(., 1) + vpaddd, as spmm_int8.cpp: both factors
//     within 127, so a pair sum <= 2 * 127 * 127 < 32767: no int16 saturation, exact.
//   * generic: plain C++ loops (impl 1; the only path without AVX2).
// Work is split over (token tile, block of output rows) with at::parallel_for; with all rows of a
// tile in one task, post(t0, tn) runs on the finished tile (the engine's residual add + LayerNorm).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"
#include "vmath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__)
#define SBK_I8B4_VNNI 1
#endif

namespace {

using sparsebert::int8_quantize_token;
using sparsebert::thread_scratch;

constexpr int kRowsPerStore = 16;

// ---------------------------------------------------------------------------------------------
// Activation packing

// dst[c * ds + i] = src[i * ss + c] for a 16 x 16 byte block.
inline void transpose16_bytes(const int8_t* src, int64_t ss, int8_t* dst, int64_t ds, bool offset) {
#if defined(__SSE2__)
  __m128i a[16], b[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * ss));
  // four perfect-shuffle stages (bytes, words, dwords, qwords): afterwards a[bitreverse4(c)] holds column c
  for (int i = 0; i < 8; ++i) {
    b[i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
    b[i + 8] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm_unpacklo_epi16(b[2 * i], b[2 * i + 1]);
    a[i + 8] = _mm_unpackhi_epi16(b[2 * i], b[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    b[i] = _mm_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
    b[i + 8] = _mm_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
  }
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm_unpacklo_epi64(b[2 * i], b[2 * i + 1]);
    a[i + 8] = _mm_unpackhi_epi64(b[2 * i], b[2 * i + 1]);
  }
  static constexpr int kRev[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  for (int c = 0; c < 16; ++c) {
    __m128i v = a[kRev[c]];
    if (offset) v = _mm_xor_si128(v, flip);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + c * ds), v);
  }
#else
  for (int c = 0; c < 16; ++c)
    for (int i = 0; i < 16; ++i) {
      const int8_t v = src[i * ss + c];
      dst[c * ds + i] = offset ? static_cast<int8_t>(static_cast<uint8_t>(v) ^ 0x80u) : v;
    }
#endif
}

// the per-group row buffer of the packer (thread_scratch)
struct RowsScratch;

// xp: n_tiles tiles of [kp][tt] bytes (kp = k_in rounded up to 16), sx: [n_tiles * tt]. Tokens past
// n_tok and columns past k_in are zero (xq = 0); with offset every byte is stored as xq ^ 0x80 = xq + 128 (u8).
void pack_tokens_t(const float* x, int64_t n_tok, int64_t k_in, int64_t kp, int64_t tt, int8_t* xp, float* sx,
                   bool offset) {
  const int64_t n_tiles = (n_tok + tt - 1) / tt;
  const int64_t all_groups = n_tiles * tt / 16;
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(k_in, 1));
  at::parallel_for(0, all_groups, grain, [&](int64_t begin, int64_t end) {
    int8_t* q = thread_scratch<int8_t, RowsScratch>(static_cast<size_t>(16 * kp), "int8_4x1_linear");
    for (int64_t grp = begin; grp < end; ++grp) {
      const int64_t t0 = grp * 16;
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t t = t0 + i;
        if (t < n_tok) {
          sx[t] = int8_quantize_token(x + t * k_in, k_in, kp / 4, q + i * kp, 4);
        } else {
          std::memset(q + i * kp, 0, static_cast<size_t>(kp));
          sx[t] = 0.0f;
        }
      }
      int8_t* dst = xp + (t0 / tt) * kp * tt + t0 % tt;
      for (int64_t k = 0; k < kp; k += 16) transpose16_bytes(q + k, kp, dst + k * tt, tt, offset);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Accumulators of one block-row (4 output rows) x one token tile: acc[r][t] (natural token order).

// generic: xt is the s8 tile (impl 1)
template <int TT>
void block_row_generic(const int8_t* __restrict xt, int32_t u0, int32_t u1, const uint16_t* __restrict uc,
                       const int32_t* __restrict uw, int32_t (*__restrict acc)[TT]) {
  for (int r = 0; r < 4; ++r)
    for (int t = 0; t < TT; ++t) acc[r][t] = 0;
  for (int32_t u = u0; u < u1; ++u) {
    int8_t w[4][4];
    std::memcpy(w, uw + 4 * static_cast<int64_t>(u), 16);
    const int8_t* x[4];
    for (int k = 0; k < 4; ++k) x[k] = xt + static_cast<int64_t>(uc[4 * static_cast<int64_t>(u) + k]) * TT;
    for (int r = 0; r < 4; ++r)
      for (int t = 0; t < TT; ++t)
        acc[r][t] += w[r][0] * x[0][t] + w[r][1] * x[1][t] + w[r][2] * x[2][t] + w[r][3] * x[3][t];
  }
}

#if defined(__AVX2__)
// The 4 columns' 16 tokens [16h, 16h + 16) of a unit as 2 vectors of dwords (one token's 4 bytes,
// column k in byte k): v0 = tokens 0-3 | 8-11, v1 = tokens 4-7 | 12-15 (128-bit lanes).
inline void unit_vectors(const int8_t* base, int64_t tt, const uint16_t* c, __m256i& v0, __m256i& v1) {
  auto row = [&](int k) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + static_cast<int64_t>(c[k]) * tt)); };
  const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(row(0)), row(2), 1);  // c0 | c2
  const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(row(1)), row(3), 1);  // c1 | c3
  const __m256i lo = _mm256_unpacklo_epi8(a, b);                   // (c0 c1) t0-7 | (c2 c3) t0-7
  const __m256i hi = _mm256_unpackhi_epi8(a, b);                   // (c0 c1) t8-15 | (c2 c3) t8-15
  const __m256i p = _mm256_permute2x128_si256(lo, hi, 0x20);      // (c0 c1) t0-7 | (c0 c1) t8-15
  const __m256i q = _mm256_permute2x128_si256(lo, hi, 0x31);      // (c2 c3) t0-7 | (c2 c3) t8-15
  v0 = _mm256_unpacklo_epi16(p, q);
  v1 = _mm256_unpackhi_epi16(p, q);
}

// vpdpbusd (u8 a x s8 b, 4 products per dword added to acc, no saturation), exactly, in AVX2
inline __m256i dpbusd_emulated(__m256i acc, __m256i a, __m256i b) {
  const __m256i low = _mm256_set1_epi16(0x00FF);
  const __m256i a_even = _mm256_and_si256(a, low), a_odd = _mm256_srli_epi16(a, 8);
  const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8), b_odd = _mm256_srai_epi16(b, 8);
  return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even), _mm256_madd_epi16(a_odd, b_odd)));
}

enum class Mac { kSign, kVnni, kVnniEmulated };

// M = kSign: xt holds s8 activations; kVnni / kVnniEmulated: u8 (xq + 128), comp[r] removed at the end.
template <int TT, Mac M>
void block_row_simd(const int8_t* __restrict xt, int32_t u0, int32_t u1, const uint16_t* __restrict uc,
                    const int32_t* __restrict uw, const int32_t* __restrict comp, int32_t (*__restrict acc)[TT]) {
  constexpr int H = TT / 16;  // 16-token halves
  __m256i a[4][2 * H];
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 2 * H; ++i) a[r][i] = _mm256_setzero_si256();
  [[maybe_unused]] const __m256i ones = _mm256_set1_epi16(1);
  for (int32_t u = u0; u < u1; ++u) {
    const uint16_t* c = uc + 4 * static_cast<int64_t>(u);
    __m256i v[2 * H];
    for (int h = 0; h < H; ++h) unit_vectors(xt + 16 * h, TT, c, v[2 * h], v[2 * h + 1]);
    for (int r = 0; r < 4; ++r) {
      const __m256i w = _mm256_set1_epi32(uw[4 * static_cast<int64_t>(u) + r]);
      if constexpr (M == Mac::kSign) {
        const __m256i wa = _mm256_abs_epi8(w);
        for (int i = 0; i < 2 * H; ++i)
          a[r][i] = _mm256_add_epi32(a[r][i], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(v[i], w)), ones));
      } else if constexpr (M == Mac::kVnniEmulated) {
        for (int i = 0; i < 2 * H; ++i) a[r][i] = dpbusd_emulated(a[r][i], v[i], w);
      } else {
#if defined(SBK_I8B4_VNNI) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
        for (int i = 0; i < 2 * H; ++i) a[r][i] = _mm256_dpbusd_epi32(a[r][i], v[i], w);
#elif defined(SBK_I8B4_VNNI)
        for (int i = 0; i < 2 * H; ++i) a[r][i] = _mm256_dpbusd_avx_epi32(a[r][i], v[i], w);
#else
        for (int i = 0; i < 2 * H; ++i) a[r][i] = dpbusd_emulated(a[r][i], v[i], w);  // not selected (impl 0 is kSign)
#endif
      }
    }
  }
  for (int r = 0; r < 4; ++r) {
    const __m256i off = M == Mac::kSign ? _mm256_setzero_si256() : _mm256_set1_epi32(comp[r]);
    for (int h = 0; h < H; ++h) {
      const __m256i s0 = _mm256_sub_epi32(a[r][2 * h], off), s1 = _mm256_sub_epi32(a[r][2 * h + 1], off);
      int32_t* o = acc[r] + 16 * h;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(s0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 4), _mm256_castsi256_si128(s1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 8), _mm256_extracti128_si256(s0, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 12), _mm256_extracti128_si256(s1, 1));
    }
  }
}
#endif

// The epilogue of every path (one function, so identical accumulators give identical outputs):
// buf[t] = act(acc[t] * (sw * sx[t]) + b) for t < TT.
template <int TT>
__attribute__((noinline)) void epilogue_row(const int32_t* acc, const float* sxt, float s, float b, sparsebert::Act act,
                                            float* buf) {
  for (int t = 0; t < TT; ++t) buf[t] = static_cast<float>(acc[t]) * (s * sxt[t]) + b;
  if (act != sparsebert::Act::kNone) sparsebert::activate_rows(act, buf, TT);
}

// One token tile (TT tokens from t0, t_count real) x output rows [o0, o1) (multiples of 4).
// path: 0 SIMD (AVX2 sign or VNNI by build), 1 generic, 2 VNNI data flow emulated in AVX2.
template <int TT>
void tile_rows(int path, const int8_t* __restrict xt, const float* __restrict sxt, const int32_t* __restrict urp,
               const uint16_t* __restrict uc, const int32_t* __restrict uw, const int32_t* __restrict comp,
               const float* __restrict sw, const float* __restrict bias, int64_t o0, int64_t o1, float* __restrict y,
               int64_t n_out, int64_t t0, int64_t t_count, sparsebert::Act act) {
  alignas(64) float buf[kRowsPerStore][TT];
  alignas(64) int32_t acc[4][TT];
  for (int64_t ob = o0; ob < o1; ob += kRowsPerStore) {
    const int64_t oe = std::min<int64_t>(ob + kRowsPerStore, o1);
    for (int64_t o = ob; o < oe; o += 4) {
      const int64_t g = o / 4;
      const int32_t u0 = urp[g], u1 = urp[g + 1];
#if defined(__AVX2__)
      if (path == 0) {
#if defined(SBK_I8B4_VNNI)
        block_row_simd<TT, Mac::kVnni>(xt, u0, u1, uc, uw, comp + o, acc);
#else
        block_row_simd<TT, Mac::kSign>(xt, u0, u1, uc, uw, comp + o, acc);
#endif
      } else if (path == 2) {
        block_row_simd<TT, Mac::kVnniEmulated>(xt, u0, u1, uc, uw, comp + o, acc);
      } else
#endif
        block_row_generic<TT>(xt, u0, u1, uc, uw, acc);
      for (int r = 0; r < 4; ++r)
        epilogue_row<TT>(acc[r], sxt, sw[o + r], bias ? bias[o + r] : 0.0f, act, buf[o - ob + r]);
    }
    const int64_t rows = oe - ob;
    for (int64_t tb = 0; tb < t_count; tb += 16)
      sparsebert::transpose_block(&buf[0][tb], TT, y + (t0 + tb) * n_out + ob, n_out, rows,
                                  std::min<int64_t>(16, t_count - tb));
  }
}

// the quantised activations of one call (thread_scratch of the calling thread)
struct CallScratch4x1;

}  // namespace

namespace sparsebert {

int64_t int8_4x1_max_tile() {
#if defined(SBK_I8B4_VNNI)
  return 32;  // 4 rows x 4 accumulators + 4 activation vectors: within the 32 ymm of AVX-512VL
#else
  return 16;  // AVX2: 16 ymm registers; 4 rows x 2 accumulators + 2 activation vectors + temporaries
#endif
}

bool int8_4x1_offset_activations(int64_t impl) {
#if defined(SBK_I8B4_VNNI)
  return impl == 0 || impl == 2;
#else
  return impl == 2;
#endif
}

torch::Tensor int8_4x1_check(const torch::Tensor& urp, const torch::Tensor& ucol, const torch::Tensor& uw,
                             const torch::Tensor& wscale, int64_t n_in, const char* who) {
  TORCH_CHECK(n_in >= 1 && n_in <= kInt8x4MaxIn, who, ": int8 4x1 n_in must be in [1, ", kInt8x4MaxIn, "], got ", n_in);
  TORCH_CHECK(urp.defined() && urp.device().is_cpu() && urp.scalar_type() == torch::kInt && urp.is_contiguous() &&
                  urp.dim() == 1 && urp.numel() >= 1,
              who, ": int8 4x1 unit row pointers must be a contiguous int32 1-D CPU tensor [out / 4 + 1]");
  const int64_t groups = urp.numel() - 1;
  TORCH_CHECK(ucol.defined() && ucol.device().is_cpu() && ucol.scalar_type() == torch::kShort && ucol.is_contiguous() &&
                  ucol.dim() == 1 && ucol.numel() % 4 == 0,
              who, ": int8 4x1 unit columns must be a contiguous int16 (uint16 values) 1-D CPU tensor [4 * units]");
  const int64_t units = ucol.numel() / 4;
  TORCH_CHECK(uw.defined() && uw.device().is_cpu() && uw.scalar_type() == torch::kInt && uw.is_contiguous() &&
                  uw.dim() == 1 && uw.numel() == 4 * units,
              who, ": int8 4x1 unit weights must be a contiguous int32 1-D CPU tensor [", 4 * units, "] (4 words per unit)");
  TORCH_CHECK(wscale.defined() && wscale.device().is_cpu() && wscale.scalar_type() == torch::kFloat &&
                  wscale.is_contiguous() && wscale.dim() == 1 && wscale.numel() == 4 * groups,
              who, ": int8 4x1 weight scales must be a contiguous fp32 CPU tensor [", 4 * groups, "]");
  const int32_t* p = urp.data_ptr<int32_t>();
  const int64_t max_units = (n_in + 3) / 4;
  TORCH_CHECK(p[0] == 0, who, ": int8 4x1 row_ptr[0] = ", p[0], ", expected 0");
  for (int64_t g = 0; g < groups; ++g) {
    TORCH_CHECK(p[g + 1] >= p[g], who, ": int8 4x1 row_ptr decreases at block-row ", g, " (", p[g], " -> ", p[g + 1],
                ")");
    TORCH_CHECK(p[g + 1] - p[g] <= max_units, who, ": int8 4x1 block-row ", g, " has ", p[g + 1] - p[g],
                " units, more than the ", max_units, " that ", n_in, " input columns allow");
  }
  TORCH_CHECK(p[groups] == units, who, ": int8 4x1 row_ptr[", groups, "] = ", p[groups], " but ", units,
              " units are stored");
  const uint16_t* c = reinterpret_cast<const uint16_t*>(ucol.data_ptr<int16_t>());
  for (int64_t j = 0; j < ucol.numel(); ++j)
    TORCH_CHECK(c[j] < n_in, who, ": int8 4x1 column index ", c[j], " at entry ", j, " is outside [0, ", n_in, ")");
  const float* s = wscale.data_ptr<float>();
  for (int64_t o = 0; o < 4 * groups; ++o)
    TORCH_CHECK(std::isfinite(s[o]) && s[o] >= 0.0f, who, ": int8 4x1 weight scale of row ", o, " is ", s[o]);
  // the per-row offset correction of the VNNI path: 128 * sum of the row's stored weights
  auto comp = torch::zeros({4 * groups}, torch::kInt);
  int32_t* cp = comp.data_ptr<int32_t>();
  const int8_t* w = reinterpret_cast<const int8_t*>(uw.data_ptr<int32_t>());
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t u = p[g]; u < p[g + 1]; ++u)
      for (int r = 0; r < 4; ++r)
        for (int k = 0; k < 4; ++k) {
          const int8_t v = w[16 * u + 4 * r + k];
          TORCH_CHECK(v != -128, who, ": int8 4x1 weight -128 in unit ", u, " (weights must be in [-127, 127])");
          cp[4 * g + r] += 128 * v;
        }
  return comp;
}

void int8_4x1_linear_into(const float* x, int64_t n_tok, int64_t k_in, const int32_t* urp, const uint16_t* uc,
                          const int32_t* uw, const int32_t* comp, const float* sw, const float* bias, int64_t n_out,
                          int64_t tile, int64_t rows_per_task, int64_t impl, Act act, float* y,
                          const std::function<void(int64_t, int64_t)>* post) {
  if (n_tok == 0 || n_out == 0) return;
  const int64_t tt = tile, kp = (k_in + 15) / 16 * 16, n_tiles = (n_tok + tt - 1) / tt;
  const size_t xp_bytes = ((static_cast<size_t>(n_tiles * tt * kp) + 63) / 64) * 64;
  uint8_t* scratch = thread_scratch<uint8_t, CallScratch4x1>(xp_bytes + static_cast<size_t>(n_tiles * tt) * sizeof(float),
                                                            "int8_4x1_linear");
  int8_t* xp = reinterpret_cast<int8_t*>(scratch);
  float* sx = reinterpret_cast<float*>(scratch + xp_bytes);
  pack_tokens_t(x, n_tok, k_in, kp, tt, xp, sx, int8_4x1_offset_activations(impl));
#if defined(__AVX2__)
  const int path = static_cast<int>(impl == 1 ? 1 : impl);
#else
  const int path = 1;
#endif
  const bool whole = rows_per_task <= 0;
  const int64_t rb = whole ? n_out : std::max<int64_t>(kRowsPerStore, rows_per_task);
  const int64_t n_rb = (n_out + rb - 1) / rb;
  at::parallel_for(0, n_tiles * n_rb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t t_idx = task / n_rb, r = task % n_rb;
      const int8_t* xt = xp + t_idx * kp * tt;
      const float* sxt = sx + t_idx * tt;
      const int64_t o0 = r * rb, o1 = std::min(o0 + rb, n_out);
      const int64_t t0 = t_idx * tt, tn = std::min(tt, n_tok - t0);
      if (tt == 16) tile_rows<16>(path, xt, sxt, urp, uc, uw, comp, sw, bias, o0, o1, y, n_out, t0, tn, act);
      else tile_rows<32>(path, xt, sxt, urp, uc, uw, comp, sw, bias, o0, o1, y, n_out, t0, tn, act);
      if (whole && post) (*post)(t0, tn);
    }
  });
}

// x: [tokens, in] fp32 contiguous CPU; the unit arrays as above (checked); w_scale fp32 [out]; bias
// fp32 [out] or None; tile 16 or 32 tokens; rows_per_task: output rows per task (<= 0: all; else a
// multiple of 16); impl 0 SIMD, 1 generic, 2 the VNNI data flow with vpdpbusd emulated (AVX2 builds).
// Returns y fp32 [tokens, out].
torch::Tensor int8_4x1_linear(torch::Tensor x, torch::Tensor urp, torch::Tensor ucol, torch::Tensor uw,
                              torch::Tensor w_scale, c10::optional<torch::Tensor> bias, int64_t tile,
                              int64_t rows_per_task, int64_t impl) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous() && x.device().is_cpu(),
              "int8_4x1_linear: x must be a contiguous 2-D fp32 CPU tensor");
  const int64_t n_tok = x.size(0), k_in = x.size(1), n_out = 4 * (urp.numel() - 1);
  const torch::Tensor comp = int8_4x1_check(urp, ucol, uw, w_scale, k_in, "int8_4x1_linear");
  TORCH_CHECK(tile == 16 || tile == 32, "int8_4x1_linear: tile must be 16 or 32, got ", tile);
  TORCH_CHECK(rows_per_task <= 0 || rows_per_task % 16 == 0, "int8_4x1_linear: rows per task must be <= 0 or a "
              "multiple of 16, got ", rows_per_task);
#if defined(__AVX2__)
  TORCH_CHECK(impl == 0 || impl == 1 || impl == 2, "int8_4x1_linear: impl must be 0 (SIMD), 1 (generic) or 2 "
              "(VNNI emulated)");
#else
  TORCH_CHECK(impl == 0 || impl == 1, "int8_4x1_linear: impl must be 0 or 1 without AVX2");
#endif
  const float* b = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == torch::kFloat && bias->is_contiguous() && bias->dim() == 1 &&
                    bias->numel() == n_out,
                "int8_4x1_linear: bias must be fp32 [out]");
    b = bias->data_ptr<float>();
  }
  auto y = pooled_empty(n_tok, n_out, x.options());
  int8_4x1_linear_into(x.data_ptr<float>(), n_tok, k_in, urp.data_ptr<int32_t>(),
                       reinterpret_cast<const uint16_t*>(ucol.data_ptr<int16_t>()), uw.data_ptr<int32_t>(),
                       comp.data_ptr<int32_t>(), w_scale.data_ptr<float>(), b, n_out, tile, rows_per_task, impl,
                       Act::kNone, y.data_ptr<float>(), nullptr);
  return y;
}

}  // namespace sparsebert
