// Helpers shared by the sparse kernels of sparsebert.runtime (spmm.cpp: fp32 CSR,
// spmm_int8.cpp: int8 1x4 blocks, engine.cpp: the whole-encoder engine). One extension module; the Python binding is in spmm.cpp.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace sparsebert {

#if defined(__AVX512F__)
// In-register transpose of a 16 x 16 fp32 block: on return r[c] holds column c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xDD);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
  }
}
#elif defined(__AVX2__)
// In-register transpose of an 8 x 8 fp32 block: on return r[c] holds column c.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}
#endif

// dst[c * dst_stride + i] = src[i * src_stride + c] for a rows x cols block (rows, cols <= 16).
// With ``stream`` (and 64-byte aligned destination rows) the block is written with non-temporal
// stores: no read-for-ownership of output lines that are not in cache (large outputs).
inline void transpose_block(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                            int64_t cols, bool stream = false) {
#if defined(__AVX512F__)
  if (rows == 16 && cols == 16) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
    transpose16(r);
    if (stream && (reinterpret_cast<uintptr_t>(dst) % 64) == 0 && dst_stride % 16 == 0) {
      for (int c = 0; c < 16; ++c) _mm512_stream_ps(dst + c * dst_stride, r[c]);
    } else {
      for (int c = 0; c < 16; ++c) _mm512_storeu_ps(dst + c * dst_stride, r[c]);
    }
    return;
  }
#elif defined(__AVX2__)
  if (rows == 16 && cols == 16) {
    for (int bi = 0; bi < 16; bi += 8)
      for (int bj = 0; bj < 16; bj += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (bi + i) * src_stride + bj);
        transpose8(r);
        for (int c = 0; c < 8; ++c) _mm256_storeu_ps(dst + (bj + c) * dst_stride + bi, r[c]);
      }
    return;
  }
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < cols; ++c) dst[c * dst_stride + i] = src[i * src_stride + c];
}

// A 64-byte aligned scratch buffer of at least n elements of T for the calling thread, grown on
// demand and kept across calls (a fresh large allocation would be page-faulted in on every call);
// freed when the thread exits. One buffer per (Tag, thread): uses that are live at the same time on
// one thread need different tags (at::parallel_for also runs tasks on the calling thread, so a
// call's scratch and a task's scratch would otherwise be the same memory). ``what`` names the
// kernel in the out-of-memory error. n == 0 returns nullptr until a larger request.
template <typename T, typename Tag>
T* thread_scratch(size_t n, const char* what) {
  struct Buf {
    void* p = nullptr;
    size_t bytes = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  const size_t need = ((n * sizeof(T) + 63) / 64) * 64;
  if (buf.bytes < need) {
    std::free(buf.p);
    buf.bytes = 0;
    buf.p = std::aligned_alloc(64, need);
    TORCH_CHECK(buf.p != nullptr, what, ": out of memory for a ", need, "-byte scratch buffer");
    buf.bytes = need;
  }
  return static_cast<T*>(buf.p);
}

// A [rows, cols] fp32 tensor; outputs of 1 MiB and more come from a small per-size pool of
// recycled buffers (spmm.cpp) instead of a fresh page-faulted allocation on every call.
torch::Tensor pooled_empty(int64_t rows, int64_t cols, const torch::TensorOptions& options);

// spmm_int8.cpp (documented there)
torch::Tensor int8_block_linear(torch::Tensor x, torch::Tensor row_ptr, torch::Tensor bcol, torch::Tensor wv,
                                torch::Tensor w_scale, c10::optional<torch::Tensor> bias, int64_t tile,
                                int64_t rows_per_task, int64_t impl);
std::vector<torch::Tensor> int8_quantize_tokens(torch::Tensor x);
enum class Act : int;
// The unchecked core of int8_block_linear (the caller has checked every array): y[n_tok, n_out] =
// act(dequant(q(x) Wq^T) + b), and post(t0, tn) after each finished token tile when rows_per_task <= 0.
void int8_block_linear_into(const float* x, int64_t n_tok, int64_t k_in, const int32_t* row_ptr, const uint16_t* bcol,
                            const int32_t* wv, const float* w_scale, const float* bias, int64_t n_out, int64_t tile,
                            int64_t rows_per_task, int64_t impl, Act act, float* y,
                            const std::function<void(int64_t, int64_t)>* post);
std::string int8_isa();
// Quantise one token as int8_block_linear does: dst[c * stride + b] = xq[4c + b] for c < kb (zero past
// k_in); returns the token's scale (max|x| / 127; 0 for an all-zero token, NaN with an inf / NaN).
float int8_quantize_token(const float* x, int64_t k_in, int64_t kb, int8_t* dst, int64_t stride);

// spmm_int8_4x1.cpp: int8 weights in 4x1 blocks (documented there)
constexpr int64_t kInt8x4MaxIn = 65536;  // uint16 columns; 255 * 127 * (in + 3) < 2^31
// Checks every array of a 4x1 int8 matrix (``who`` starts the error messages) and returns the per-row
// offset correction of the VNNI path (int32 [out]).
torch::Tensor int8_4x1_check(const torch::Tensor& urp, const torch::Tensor& ucol, const torch::Tensor& uw,
                             const torch::Tensor& wscale, int64_t n_in, const char* who);
// The unchecked core (the caller has run int8_4x1_check): y[n_tok, n_out] = act(dequant(q(x) Wq^T) + b),
// post(t0, tn) after each finished token tile when rows_per_task <= 0.
void int8_4x1_linear_into(const float* x, int64_t n_tok, int64_t k_in, const int32_t* urp, const uint16_t* ucol,
                          const int32_t* uw, const int32_t* comp, const float* w_scale, const float* bias,
                          int64_t n_out, int64_t tile, int64_t rows_per_task, int64_t impl, Act act, float* y,
                          const std::function<void(int64_t, int64_t)>* post);
torch::Tensor int8_4x1_linear(torch::Tensor x, torch::Tensor urp, torch::Tensor ucol, torch::Tensor uw,
                              torch::Tensor w_scale, c10::optional<torch::Tensor> bias, int64_t tile,
                              int64_t rows_per_task, int64_t impl);
int64_t int8_4x1_max_tile();

// engine.cpp: the whole-encoder engine's classes (Linear, Engine) on the extension module
void bind_engine(pybind11::module_& m);

}  // namespace sparsebert
