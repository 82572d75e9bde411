// Vectorised elementwise math for the engine's fused epilogues (engine.cpp, csr_kernel.h).
//
// Written with GCC vector extensions on the native vector (vf: kVF = 16 floats with AVX-512, 8 with
// AVX2), so one source serves every ISA path (the engine's AVX2 build uses -march=x86-64-v3).
//
//   vexp       e^x, round-to-nearest range reduction x = n ln2 + r (|r| <= ln2 / 2, ln2 split in a
//              high and a low part, Cody & Waite 1980), degree-7 Taylor polynomial of e^r, scaled by
//              2^n through the exponent bits. Relative error < 2e-7 on [-87, 88] (tested against
//              std::exp in tests/test_engine.py through the GELU); inputs are clamped to that range.
//   verf       erf(x) by Abramowitz & Stegun, Handbook of Mathematical Functions (1964), formula
//              7.1.26: erf(x) = 1 - (a1 t + ... + a5 t^5) e^{-x^2}, t = 1 / (1 + p x), x >= 0,
//              odd extension; absolute error <= 1.5e-7.
//   vgelu_erf  x/2 (1 + erf(x / sqrt 2)): the exact GELU of BERT's "gelu" (Hendrycks & Gimpel 2016).
//   vgelu_tanh x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): "gelu_new" / "gelu_pytorch_tanh".
#pragma once

#include <cstdint>
#include <cstring>

namespace sparsebert {

// The native vector: 16 floats (one zmm) with AVX-512, 8 floats (one ymm) otherwise. A wider GCC
// vector than the ISA's registers is lowered through the stack (measured 5-10x slower on AVX2).
#if defined(__AVX512F__)
constexpr int kVF = 16;
#else
constexpr int kVF = 8;
#endif
typedef float vf __attribute__((vector_size(4 * kVF)));
typedef int32_t vi __attribute__((vector_size(4 * kVF)));

inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}

inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }

inline vf vsplat(float a) { return vf{} + a; }

inline vf vmin(vf a, vf b) { return a < b ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

inline vf vexp(vf x) {
  x = vmax(vmin(x, vsplat(88.3762626647949f)), vsplat(-87.3365478515625f));
  const vf t = x * 1.44269504088896341f + 0.5f;
  vi n = __builtin_convertvector(t, vi);  // truncation towards zero ...
  vf nf = __builtin_convertvector(n, vf);
  n += (nf > t);                          // ... made a floor (the comparison is -1 where true)
  nf = __builtin_convertvector(n, vf);
  const vf r = (x - nf * 0.693145751953125f) - nf * 1.428606765330187045e-06f;
  vf p = vsplat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vi bits = (n + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof(vf));
  return p * scale;
}

inline vf verf(vf x) {
  const vi neg = x < 0.0f;
  const vf a = neg ? -x : x;
  const vf t = 1.0f / (1.0f + 0.3275911f * a);
  vf p = vsplat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  p = p * t;
  const vf y = 1.0f - p * vexp(-a * a);
  return neg ? -y : y;
}

inline vf vtanh(vf x) {
  // tanh(x) = 1 - 2 / (e^{2x} + 1); for |x| < 0.0625 the odd Taylor series avoids the cancellation.
  const vf big = 1.0f - 2.0f / (vexp(2.0f * x) + 1.0f);
  const vf x2 = x * x;
  const vf small = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f - x2 * (17.0f / 315.0f))));
  const vf ax = x < 0.0f ? -x : x;
  return ax < 0.0625f ? small : big;
}

inline vf vgelu_erf(vf x) { return 0.5f * x * (1.0f + verf(x * 0.70710678118654752f)); }

inline vf vgelu_tanh(vf x) {
  return 0.5f * x * (1.0f + vtanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}

// Activations applied in the epilogue of a linear (ids shared with sparsebert/engine/model.py).
enum class Act : int { kNone = 0, kGeluErf = 1, kGeluTanh = 2, kRelu = 3 };

template <Act A>
inline vf activate(vf s) {
  if constexpr (A == Act::kGeluErf) return vgelu_erf(s);
  if constexpr (A == Act::kGeluTanh) return vgelu_tanh(s);
  if constexpr (A == Act::kRelu) return vmax(s, vf{});
  return s;
}

// In place on n floats (any n; the tail is padded through a stack buffer).
template <Act A>
inline void activate_row(float* p, int64_t n) {
  int64_t i = 0;
  for (; i + kVF <= n; i += kVF) vstore(p + i, activate<A>(vload(p + i)));
  if (i < n) {
    alignas(64) float tail[kVF] = {};
    std::memcpy(tail, p + i, (n - i) * sizeof(float));
    vstore(tail, activate<A>(vload(tail)));
    std::memcpy(p + i, tail, (n - i) * sizeof(float));
  }
}

// In place on n floats, the activation chosen at run time.
inline void activate_rows(Act act, float* p, int64_t n) {
  switch (act) {
    case Act::kGeluErf: activate_row<Act::kGeluErf>(p, n); break;
    case Act::kGeluTanh: activate_row<Act::kGeluTanh>(p, n); break;
    case Act::kRelu: activate_row<Act::kRelu>(p, n); break;
    default: break;
  }
}

}  // namespace sparsebert
