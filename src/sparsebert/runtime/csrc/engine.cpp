// The whole-encoder engine: every layer of a post-LayerNorm BERT-family encoder (BERT / MiniLM,
// RoBERTa / XLM-R, MPNet, DistilBERT, ELECTRA) in one native call, no Python between the ops.
//
// Per call (sparsebert/engine/model.py builds the Engine and packs the batch):
//   tokens are packed: only real tokens, sequence b is rows cu[b] .. cu[b+1] of every activation
//   ([tokens, features], row-major), so no work is spent on padding and a batch may mix lengths.
//   embeddings   h = LN(word[id] + pos[position] (+ type[token_type]))           (one pass per token)
//   per layer    qkv = x Wqkv^T + b                    Q, K, V in one product (3 * hidden outputs)
//                ctx = softmax(Q K^T / sqrt(d) (+ bias)) V   per sequence and head: ATen's
//                      scaled_dot_product_attention (the CPU flash-attention kernel), fp32 or bf16,
//                      one call for a batch of equal lengths, else one per sequence
//                h = LN(h + ctx Wo^T + b)              residual add + LayerNorm fused (see below)
//                f = act(h Wi^T + b)                   GELU (erf or tanh) / ReLU fused
//                h = LN(h + f Wf^T + b)                fused like the attention output
//   pooling      all hidden states, the first token of each sequence, or the mean over its tokens.
//
// Linears come in four kinds, chosen per matrix in Python:
//   csr   fp32 CSR kernel of csr_kernel.h; the bias and activation are applied in its output buffer
//         and residual add + LayerNorm run in the same task on the token tile it just finished
//         (tile-major split with all output rows of a tile in one task), while it is in cache;
//   4x1   fp32 4x1-block kernel of csr_kernel.h (weights pruned in blocks of 4 output rows), fused alike;
//   int8  the 1x4-block VNNI / AVX2 kernel of spmm_int8.cpp, its epilogue fused the same way;
//   int8-4x1  the 4x1-block int8 kernel of spmm_int8_4x1.cpp (units of 4 columns x 4 rows), fused alike;
//   dense fp32 at::addmm (oneDNN / MKL through torch) followed by the epilogue as one parallel pass.
//
// Native code never trusts its inputs: every index array is checked when a Linear is made (CSR
// row pointers monotone and consistent, column indices inside the matrix) and every token id,
// position, token type and sequence boundary at each call, before any kernel runs.
//
// Threads: at::parallel_for (torch's intra-op pool), so torch.set_num_threads is honoured by every
// stage, ATen's attention and addmm included.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include "common.h"
#include "csr_kernel.h"
#include "vmath.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sparsebert {
namespace {

constexpr int64_t kMaxInt8In = 133144;  // spmm_int8.cpp: the int32 accumulator cannot overflow

enum class Kind : int { kDense = 0, kCSR = 1, kInt8 = 2, kBlock4 = 3, kInt8x4 = 4 };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kDense: return "dense";
    case Kind::kCSR: return "csr";
    case Kind::kInt8: return "int8";
    case Kind::kInt8x4: return "int8-4x1";
    default: return "4x1";
  }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm of one token: h[0 .. n) <- LN(h (+ y)) * g + b (biased variance, as torch.nn.LayerNorm)

inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < kVF; ++i) s += v[i];
  return s;
}

void add_layer_norm_row(float* __restrict h, const float* __restrict y, const float* __restrict g,
                        const float* __restrict b, int64_t n, float eps) {
  int64_t i = 0;
  vf acc = {};
  float tail = 0.0f;
  if (y) {
    for (; i + kVF <= n; i += kVF) {
      const vf v = vload(h + i) + vload(y + i);
      vstore(h + i, v);
      acc += v;
    }
    for (; i < n; ++i) {
      h[i] += y[i];
      tail += h[i];
    }
  } else {
    for (; i + kVF <= n; i += kVF) acc += vload(h + i);
    for (; i < n; ++i) tail += h[i];
  }
  const float mean = (hsum(acc) + tail) / static_cast<float>(n);
  vf acc2 = {};
  float tail2 = 0.0f;
  for (i = 0; i + kVF <= n; i += kVF) {
    const vf d = vload(h + i) - mean;
    acc2 += d * d;
  }
  for (; i < n; ++i) tail2 += (h[i] - mean) * (h[i] - mean);
  const float rstd = 1.0f / std::sqrt((hsum(acc2) + tail2) / static_cast<float>(n) + eps);
  for (i = 0; i + kVF <= n; i += kVF) vstore(h + i, (vload(h + i) - mean) * rstd * vload(g + i) + vload(b + i));
  for (; i < n; ++i) h[i] = (h[i] - mean) * rstd * g[i] + b[i];
}

// ---------------------------------------------------------------------------------------------
// One linear y = act(x W^T + b) of the engine.

struct Linear {
  Kind kind = Kind::kDense;
  int64_t n_out = 0, n_in = 0, nnz = 0;
  torch::Tensor w;                  // dense: fp32 [out, in]
  torch::Tensor row_ptr, col, vals;  // csr: int32 [out + 1], int16 (uint16 values) or int32 [nnz], fp32 [nnz];
                                     // 4x1: int32 [out / 4 + 1], the same column types [blocks], fp32 [4 * blocks]
  torch::Tensor bcol, wv, wscale;   // int8: uint16-in-int16 block columns, 4 int8 packed in int32, fp32 [out];
                                    // int8-4x1: row_ptr over block-rows of units, bcol [4 * units], wv [4 * units]
  torch::Tensor comp;               // int8-4x1: int32 [out], the VNNI path's offset correction
  torch::Tensor bias;               // fp32 [out]
  int64_t tile = 4;                 // csr: 16 * tile tokens per register tile; int8: tokens per tile
  int64_t rows = 0;                 // output rows per task when not fused with a LayerNorm (<= 0: all)

  std::string describe() const {
    return std::string(kind_name(kind)) + "[" + std::to_string(n_out) + "x" + std::to_string(n_in) + "]";
  }
};

void check_fp32(const torch::Tensor& t, std::vector<int64_t> shape, const char* what) {
  TORCH_CHECK(t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(),
              "engine: ", what, " must be a contiguous fp32 CPU tensor");
  TORCH_CHECK(t.sizes().vec() == shape, "engine: ", what, " has shape ", t.sizes(), ", expected ",
              c10::IntArrayRef(shape));
}

void check_row_ptr(const torch::Tensor& rp, int64_t n_out, int64_t count, const char* what) {
  TORCH_CHECK(rp.defined() && rp.device().is_cpu() && rp.scalar_type() == torch::kInt && rp.is_contiguous() &&
                  rp.dim() == 1 && rp.numel() == n_out + 1,
              "engine: ", what, " row_ptr must be int32 [", n_out + 1, "]");
  const int32_t* p = rp.data_ptr<int32_t>();
  TORCH_CHECK(p[0] == 0, "engine: ", what, " row_ptr[0] = ", p[0], ", expected 0");
  for (int64_t o = 0; o < n_out; ++o)
    TORCH_CHECK(p[o + 1] >= p[o], "engine: ", what, " row_ptr decreases at row ", o, " (", p[o], " -> ", p[o + 1], ")");
  TORCH_CHECK(p[n_out] == count, "engine: ", what, " row_ptr[", n_out, "] = ", p[n_out], " but ", count,
              " entries are stored");
}

torch::Tensor checked_bias(c10::optional<torch::Tensor> bias, int64_t n_out, const char* what) {
  if (!bias.has_value() || !bias->defined()) return torch::zeros({n_out}, torch::kFloat);
  check_fp32(*bias, {n_out}, what);
  return *bias;
}

void check_columns(const torch::Tensor& col, int64_t n_in, const char* what) {
  TORCH_CHECK(col.defined() && col.device().is_cpu() && col.dim() == 1 && col.is_contiguous() &&
                  (col.scalar_type() == torch::kShort || col.scalar_type() == torch::kInt),
              "engine: ", what, " col must be a contiguous int16 (uint16 values) or int32 1-D tensor");
  TORCH_CHECK(col.scalar_type() == torch::kInt || n_in <= 65536, "engine: int16 ", what, " col cannot index ", n_in,
              " columns");
  if (col.scalar_type() == torch::kShort) {
    const uint16_t* c = reinterpret_cast<const uint16_t*>(col.data_ptr<int16_t>());
    for (int64_t j = 0; j < col.numel(); ++j)
      TORCH_CHECK(c[j] < n_in, "engine: ", what, " column index ", c[j], " at entry ", j, " is outside [0, ", n_in,
                  ")");
  } else {
    const int32_t* c = col.data_ptr<int32_t>();
    for (int64_t j = 0; j < col.numel(); ++j)
      TORCH_CHECK(c[j] >= 0 && c[j] < n_in, "engine: ", what, " column index ", c[j], " at entry ", j,
                  " is outside [0, ", n_in, ")");
  }
}

std::shared_ptr<Linear> make_dense(torch::Tensor w, c10::optional<torch::Tensor> bias) {
  TORCH_CHECK(w.defined() && w.dim() == 2, "engine: dense weight must be 2-D");
  auto L = std::make_shared<Linear>();
  L->kind = Kind::kDense;
  L->n_out = w.size(0);
  L->n_in = w.size(1);
  check_fp32(w, {L->n_out, L->n_in}, "dense weight");
  L->w = w;
  L->nnz = L->n_out * L->n_in;
  L->bias = checked_bias(bias, L->n_out, "dense bias");
  return L;
}

std::shared_ptr<Linear> make_csr(torch::Tensor row_ptr, torch::Tensor col, torch::Tensor vals,
                                 c10::optional<torch::Tensor> bias, int64_t n_in, int64_t tile, int64_t rows) {
  TORCH_CHECK(tile == 1 || tile == 2 || tile == 4 || tile == 8, "engine: csr tile must be 1, 2, 4 or 8, got ", tile);
  TORCH_CHECK(n_in > 0, "engine: csr n_in must be positive, got ", n_in);
  TORCH_CHECK(row_ptr.defined() && row_ptr.dim() == 1 && row_ptr.numel() >= 1, "engine: csr row_ptr must be 1-D");
  auto L = std::make_shared<Linear>();
  L->kind = Kind::kCSR;
  L->n_out = row_ptr.numel() - 1;
  L->n_in = n_in;
  check_columns(col, n_in, "csr");
  L->nnz = col.numel();
  check_fp32(vals, {L->nnz}, "csr values");
  check_row_ptr(row_ptr, L->n_out, L->nnz, "csr");
  L->row_ptr = row_ptr;
  L->col = col;
  L->vals = vals;
  L->bias = checked_bias(bias, L->n_out, "csr bias");
  L->tile = tile;
  L->rows = rows;
  return L;
}

// 4x1 blocks: brow_ptr over groups of 4 output rows, col [blocks], values [4 * blocks] (row-major per block)
std::shared_ptr<Linear> make_block4x1(torch::Tensor brow_ptr, torch::Tensor col, torch::Tensor vals,
                                      c10::optional<torch::Tensor> bias, int64_t n_in, int64_t tile, int64_t rows) {
  TORCH_CHECK(tile >= 1 && tile <= csr::max_tile_4x1() && (tile & (tile - 1)) == 0, "engine: 4x1 tile must be a "
              "power of two in [1, ", csr::max_tile_4x1(), "] in this build, got ", tile);
  TORCH_CHECK(rows <= 0 || rows % 16 == 0, "engine: 4x1 rows per task must be <= 0 or a multiple of 16, got ", rows);
  TORCH_CHECK(n_in > 0, "engine: 4x1 n_in must be positive, got ", n_in);
  TORCH_CHECK(brow_ptr.defined() && brow_ptr.dim() == 1 && brow_ptr.numel() >= 1, "engine: 4x1 row_ptr must be 1-D");
  auto L = std::make_shared<Linear>();
  L->kind = Kind::kBlock4;
  L->n_out = 4 * (brow_ptr.numel() - 1);
  L->n_in = n_in;
  check_columns(col, n_in, "4x1");
  check_fp32(vals, {4 * col.numel()}, "4x1 values");
  check_row_ptr(brow_ptr, L->n_out / 4, col.numel(), "4x1");
  L->row_ptr = brow_ptr;
  L->col = col;
  L->vals = vals;
  L->nnz = 4 * col.numel();
  L->bias = checked_bias(bias, L->n_out, "4x1 bias");
  L->tile = tile;
  L->rows = rows;
  return L;
}

std::shared_ptr<Linear> make_int8(torch::Tensor row_ptr, torch::Tensor bcol, torch::Tensor wv, torch::Tensor wscale,
                                  c10::optional<torch::Tensor> bias, int64_t n_in, int64_t tile, int64_t rows) {
  TORCH_CHECK(tile == 8 || tile == 16 || tile == 32 || tile == 64, "engine: int8 tile must be 8, 16, 32 or 64, got ",
              tile);
  TORCH_CHECK(n_in > 0 && n_in <= kMaxInt8In, "engine: int8 n_in must be in [1, ", kMaxInt8In, "], got ", n_in);
  TORCH_CHECK(row_ptr.defined() && row_ptr.dim() == 1 && row_ptr.numel() >= 1, "engine: int8 row_ptr must be 1-D");
  auto L = std::make_shared<Linear>();
  L->kind = Kind::kInt8;
  L->n_out = row_ptr.numel() - 1;
  L->n_in = n_in;
  TORCH_CHECK(bcol.defined() && bcol.device().is_cpu() && bcol.dim() == 1 && bcol.is_contiguous() &&
                  bcol.scalar_type() == torch::kShort,
              "engine: int8 block columns must be a contiguous int16 (uint16 values) 1-D tensor");
  TORCH_CHECK(wv.defined() && wv.device().is_cpu() && wv.scalar_type() == torch::kInt && wv.is_contiguous() &&
                  wv.dim() == 1 && wv.numel() == bcol.numel(),
              "engine: int8 weights must be int32 [blocks] (", bcol.numel(), " blocks)");
  check_fp32(wscale, {L->n_out}, "int8 weight scales");
  check_row_ptr(row_ptr, L->n_out, bcol.numel(), "int8");
  const int64_t kb = (n_in + 3) / 4;
  const uint16_t* c = reinterpret_cast<const uint16_t*>(bcol.data_ptr<int16_t>());
  for (int64_t j = 0; j < bcol.numel(); ++j)
    TORCH_CHECK(c[j] < kb, "engine: int8 block column ", c[j], " at block ", j, " is outside [0, ", kb, ")");
  const float* s = wscale.data_ptr<float>();
  for (int64_t o = 0; o < L->n_out; ++o)
    TORCH_CHECK(std::isfinite(s[o]) && s[o] >= 0.0f, "engine: int8 weight scale of row ", o, " is ", s[o]);
  L->row_ptr = row_ptr;
  L->bcol = bcol;
  L->wv = wv;
  L->wscale = wscale;
  L->nnz = 4 * bcol.numel();
  L->bias = checked_bias(bias, L->n_out, "int8 bias");
  L->tile = tile;
  L->rows = rows;
  return L;
}

// int8 4x1 blocks in units of 4 columns (spmm_int8_4x1.cpp): every array checked by int8_4x1_check
std::shared_ptr<Linear> make_int8_4x1(torch::Tensor urp, torch::Tensor ucol, torch::Tensor uw, torch::Tensor wscale,
                                      c10::optional<torch::Tensor> bias, int64_t n_in, int64_t tile, int64_t rows) {
  TORCH_CHECK(tile == 16 || (tile == 32 && int8_4x1_max_tile() >= 32), "engine: int8 4x1 tile must be 16",
              int8_4x1_max_tile() >= 32 ? " or 32" : "", " in this build, got ", tile);
  TORCH_CHECK(rows <= 0 || rows % 16 == 0, "engine: int8 4x1 rows per task must be <= 0 or a multiple of 16, got ",
              rows);
  auto L = std::make_shared<Linear>();
  L->comp = int8_4x1_check(urp, ucol, uw, wscale, n_in, "engine");
  L->kind = Kind::kInt8x4;
  L->n_out = 4 * (urp.numel() - 1);
  L->n_in = n_in;
  L->row_ptr = urp;
  L->bcol = ucol;
  L->wv = uw;
  L->wscale = wscale;
  L->nnz = 4 * uw.numel();
  L->bias = checked_bias(bias, L->n_out, "int8 4x1 bias");
  L->tile = tile;
  L->rows = rows;
  return L;
}

struct Layer {
  std::shared_ptr<Linear> qkv, o, ffn_in, ffn_out;
  torch::Tensor ln1_g, ln1_b, ln2_g, ln2_b;
};

// Per-stage wall time of the last profiled call (seconds).
struct Profile {
  double embeddings = 0, linears = 0, attention = 0, epilogue = 0, pooling = 0;
  int64_t calls = 0;
};

using Clock = std::chrono::steady_clock;

class Engine {
 public:
  Engine(int64_t hidden, int64_t heads, int64_t act, double eps_embeddings, double eps, bool bf16_attention,
         bool relative_bias)
      : hidden_(hidden), heads_(heads), act_(static_cast<Act>(act)), eps_emb_(static_cast<float>(eps_embeddings)),
        eps_(static_cast<float>(eps)), bf16_(bf16_attention), rel_bias_(relative_bias) {
    TORCH_CHECK(hidden > 0 && heads > 0 && hidden % heads == 0, "engine: hidden size ", hidden,
                " is not a positive multiple of the head count ", heads);
    TORCH_CHECK(act >= 0 && act <= 3, "engine: activation id must be 0..3, got ", act);
    TORCH_CHECK(eps > 0 && eps_embeddings > 0, "engine: LayerNorm eps must be positive");
  }

  void set_embeddings(torch::Tensor word, torch::Tensor pos, c10::optional<torch::Tensor> type, torch::Tensor g,
                      torch::Tensor b) {
    TORCH_CHECK(word.dim() == 2 && pos.dim() == 2, "engine: embedding tables must be 2-D");
    check_fp32(word, {word.size(0), hidden_}, "word embeddings");
    check_fp32(pos, {pos.size(0), hidden_}, "position embeddings");
    if (type.has_value() && type->defined()) {
      TORCH_CHECK(type->dim() == 2, "engine: token type embeddings must be 2-D");
      check_fp32(*type, {type->size(0), hidden_}, "token type embeddings");
      type_ = *type;
    }
    check_fp32(g, {hidden_}, "embedding LayerNorm weight");
    check_fp32(b, {hidden_}, "embedding LayerNorm bias");
    word_ = word;
    pos_ = pos;
    emb_g_ = g;
    emb_b_ = b;
  }

  void add_layer(std::shared_ptr<Linear> qkv, std::shared_ptr<Linear> o, std::shared_ptr<Linear> ffn_in,
                 std::shared_ptr<Linear> ffn_out, torch::Tensor ln1_g, torch::Tensor ln1_b, torch::Tensor ln2_g,
                 torch::Tensor ln2_b) {
    const int64_t H = hidden_;
    const std::string at = "layer " + std::to_string(layers_.size()) + ": ";
    TORCH_CHECK(qkv && o && ffn_in && ffn_out, "engine: ", at, "a linear is missing");
    TORCH_CHECK(qkv->n_in == H && qkv->n_out == 3 * H, "engine: ", at, "qkv is ", qkv->describe(), ", expected [",
                3 * H, "x", H, "]");
    TORCH_CHECK(o->n_in == H && o->n_out == H, "engine: ", at, "attention output is ", o->describe(), ", expected [",
                H, "x", H, "]");
    TORCH_CHECK(ffn_in->n_in == H && ffn_in->n_out > 0, "engine: ", at, "FFN-in is ", ffn_in->describe());
    TORCH_CHECK(ffn_out->n_in == ffn_in->n_out && ffn_out->n_out == H, "engine: ", at, "FFN-out is ",
                ffn_out->describe(), ", expected [", H, "x", ffn_in->n_out, "]");
    check_fp32(ln1_g, {H}, "LayerNorm weight");
    check_fp32(ln1_b, {H}, "LayerNorm bias");
    check_fp32(ln2_g, {H}, "LayerNorm weight");
    check_fp32(ln2_b, {H}, "LayerNorm bias");
    layers_.push_back(Layer{qkv, o, ffn_in, ffn_out, ln1_g, ln1_b, ln2_g, ln2_b});
    max_ffn_ = std::max(max_ffn_, ffn_in->n_out);
  }

  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  void set_profile(bool on) { profiling_ = on; }

  std::map<std::string, double> profile() const {
    return {{"embeddings_s", prof_.embeddings}, {"linears_s", prof_.linears}, {"attention_s", prof_.attention},
            {"epilogue_s", prof_.epilogue},     {"pooling_s", prof_.pooling},  {"calls", double(prof_.calls)}};
  }

  void reset_profile() { prof_ = Profile(); }

  // ids, positions, token_types: int64 [tokens]; cu: int64 [batch + 1]; bias: fp32 [heads, L, L] with
  // L >= the longest sequence (relative-position models only); pooling 0: all hidden states
  // [tokens, hidden], 1: first token of each sequence [batch, hidden], 2: mean [batch, hidden].
  torch::Tensor forward(torch::Tensor ids, torch::Tensor cu, torch::Tensor positions,
                        c10::optional<torch::Tensor> token_types, c10::optional<torch::Tensor> bias, int64_t pooling) {
    std::lock_guard<std::mutex> lock(mu_);
    TORCH_CHECK(word_.defined(), "engine: set_embeddings was not called");
    TORCH_CHECK(pooling >= 0 && pooling <= 2, "engine: pooling must be 0 (all), 1 (first) or 2 (mean)");
    check_index(ids, "input_ids");
    check_index(positions, "positions");
    TORCH_CHECK(cu.device().is_cpu() && cu.dim() == 1 && cu.scalar_type() == torch::kLong && cu.is_contiguous() &&
                    cu.numel() >= 2,
                "engine: cu_seqlens must be a contiguous int64 CPU tensor [batch + 1] with batch >= 1");
    const int64_t T = ids.numel(), B = cu.numel() - 1, H = hidden_;
    TORCH_CHECK(positions.numel() == T, "engine: ", positions.numel(), " positions for ", T, " tokens");
    const int64_t* c = cu.data_ptr<int64_t>();
    TORCH_CHECK(c[0] == 0 && c[B] == T, "engine: cu_seqlens must start at 0 and end at the token count ", T);
    int64_t max_len = 0;
    for (int64_t b = 0; b < B; ++b) {
      TORCH_CHECK(c[b + 1] > c[b], "engine: sequence ", b, " has no tokens");
      max_len = std::max(max_len, c[b + 1] - c[b]);
    }
    check_range(ids, word_.size(0), "token id");
    check_range(positions, pos_.size(0), "position");
    const int64_t* tt = nullptr;
    if (token_types.has_value() && token_types->defined()) {
      TORCH_CHECK(type_.defined(), "engine: token types given but the model has no token type embeddings");
      check_index(*token_types, "token_type_ids");
      TORCH_CHECK(token_types->numel() == T, "engine: ", token_types->numel(), " token types for ", T, " tokens");
      check_range(*token_types, type_.size(0), "token type");
      tt = token_types->data_ptr<int64_t>();
    }
    torch::Tensor rel;
    if (rel_bias_) {
      TORCH_CHECK(bias.has_value() && bias->defined(), "engine: this model needs its relative-position bias");
      TORCH_CHECK(bias->device().is_cpu() && bias->scalar_type() == torch::kFloat && bias->dim() == 3 &&
                      bias->size(0) == heads_ &&
                      bias->size(1) >= max_len && bias->size(2) >= max_len,
                  "engine: relative-position bias must be fp32 [", heads_, ", >= ", max_len, ", >= ", max_len, "]");
      rel = bf16_ ? bias->to(torch::kBFloat16) : *bias;
    }
    reserve(T);
    float* h = h_.data_ptr<float>();
    const int64_t* idp = ids.data_ptr<int64_t>();
    const int64_t* pp = positions.data_ptr<int64_t>();

    auto t0 = Clock::now();
    // embeddings + LayerNorm
    {
      const float* wd = word_.data_ptr<float>();
      const float* pd = pos_.data_ptr<float>();
      const float* td = type_.defined() ? type_.data_ptr<float>() : nullptr;
      const float* g = emb_g_.data_ptr<float>();
      const float* bb = emb_b_.data_ptr<float>();
      at::parallel_for(0, T, 16, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          float* ht = h + t * H;
          const float* w = wd + idp[t] * H;
          const float* p = pd + pp[t] * H;
          if (td) {
            const float* ty = td + (tt ? tt[t] : 0) * H;
            for (int64_t i = 0; i < H; ++i) ht[i] = w[i] + p[i] + ty[i];
          } else {
            for (int64_t i = 0; i < H; ++i) ht[i] = w[i] + p[i];
          }
          add_layer_norm_row(ht, nullptr, g, bb, H, eps_emb_);
        }
      });
    }
    tick(t0, prof_.embeddings);

    std::vector<int64_t> lens(B);
    bool equal = true;
    for (int64_t b = 0; b < B; ++b) {
      lens[b] = c[b + 1] - c[b];
      equal = equal && lens[b] == lens[0];
    }
    // the relative-position bias of each distinct length, [1, heads, len, len] contiguous, once per call
    std::map<int64_t, torch::Tensor> masks;
    if (rel.defined())
      for (int64_t len : lens)
        if (!masks.count(len)) masks[len] = rel.narrow(1, 0, len).narrow(2, 0, len).unsqueeze(0).contiguous();
    torch::Tensor hx = h_.narrow(0, 0, T), qkv = qkv_.narrow(0, 0, T), ctx = ctx_.narrow(0, 0, T);
    for (const Layer& L : layers_) {
      linear(*L.qkv, h, T, qkv_.data_ptr<float>(), Act::kNone, nullptr, nullptr, nullptr);
      attention(qkv, ctx, c, lens, equal, masks);
      linear(*L.o, ctx_.data_ptr<float>(), T, tmp_.data_ptr<float>(), Act::kNone, h, L.ln1_g.data_ptr<float>(),
             L.ln1_b.data_ptr<float>());
      linear(*L.ffn_in, h, T, ffn_.data_ptr<float>(), act_, nullptr, nullptr, nullptr);
      linear(*L.ffn_out, ffn_.data_ptr<float>(), T, tmp_.data_ptr<float>(), Act::kNone, h, L.ln2_g.data_ptr<float>(),
             L.ln2_b.data_ptr<float>());
    }

    t0 = Clock::now();
    torch::Tensor out;
    if (pooling == 0) {
      out = hx.clone();
    } else {
      out = torch::empty({B, H}, torch::kFloat);
      float* op = out.data_ptr<float>();
      at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          float* ob = op + b * H;
          if (pooling == 1) {
            std::memcpy(ob, h + c[b] * H, H * sizeof(float));
          } else {
            std::fill(ob, ob + H, 0.0f);
            for (int64_t t = c[b]; t < c[b + 1]; ++t)
              for (int64_t i = 0; i < H; ++i) ob[i] += h[t * H + i];
            const float inv = 1.0f / static_cast<float>(c[b + 1] - c[b]);
            for (int64_t i = 0; i < H; ++i) ob[i] *= inv;
          }
        }
      });
    }
    tick(t0, prof_.pooling);
    if (profiling_) ++prof_.calls;
    return out;
  }

 private:
  void tick(Clock::time_point& t0, double& slot) {
    if (!profiling_) return;
    const auto t1 = Clock::now();
    slot += std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
  }

  static void check_index(const torch::Tensor& t, const char* what) {
    TORCH_CHECK(t.defined() && t.device().is_cpu() && t.dim() == 1 && t.scalar_type() == torch::kLong &&
                    t.is_contiguous(),
                "engine: ", what, " must be a contiguous int64 CPU tensor [tokens]");
  }

  static void check_range(const torch::Tensor& t, int64_t n, const char* what) {
    const int64_t* p = t.data_ptr<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
      TORCH_CHECK(p[i] >= 0 && p[i] < n, "engine: ", what, " ", p[i], " at token ", i, " is outside [0, ", n, ")");
  }

  void reserve(int64_t T) {
    if (T <= cap_ && ffn_.defined() && ffn_.size(1) >= max_ffn_) return;
    const int64_t n = std::max<int64_t>(T, 16);
    const auto f = torch::TensorOptions().dtype(torch::kFloat);
    h_ = torch::empty({n, hidden_}, f);
    qkv_ = torch::empty({n, 3 * hidden_}, f);
    ctx_ = torch::empty({n, hidden_}, f);
    tmp_ = torch::empty({n, hidden_}, f);
    ffn_ = torch::empty({n, max_ffn_}, f);
    cap_ = n;
  }

  // y[T, n_out] = act(x W^T + b); with res: res <- LN(res + y) * g + b2 instead (y is scratch).
  void linear(const Linear& L, const float* x, int64_t T, float* y, Act act, float* res, const float* g,
              const float* b2) {
    auto t0 = Clock::now();
    const int64_t n = L.n_out;
    const std::function<void(int64_t, int64_t)> post = [&](int64_t t0_, int64_t tn) {
      for (int64_t t = t0_; t < t0_ + tn; ++t) add_layer_norm_row(res + t * n, y + t * n, g, b2, n, eps_);
    };
    if (L.kind == Kind::kCSR || L.kind == Kind::kBlock4) {
      const bool b4 = L.kind == Kind::kBlock4;
      const float* bias = L.bias.data_ptr<float>();
      const int32_t* rp = L.row_ptr.data_ptr<int32_t>();
      const float* v = L.vals.data_ptr<float>();
      int64_t tile = L.tile;
      if (res) {
        // all rows of a tile in one task: keep at least one tile per thread where the tokens allow
        const int64_t threads = at::get_num_threads();
        while (tile > 1 && (T + 16 * tile - 1) / (16 * tile) < threads) tile /= 2;
      }
      const int64_t rows = res ? 0 : L.rows;
      const auto* p = res ? &post : nullptr;
      if (L.col.scalar_type() == torch::kShort) {
        const uint16_t* ci = reinterpret_cast<const uint16_t*>(L.col.data_ptr<int16_t>());
        if (b4) run_csr<true>(act, x, T, L.n_in, rp, ci, v, bias, n, tile, rows, y, p);
        else run_csr<false>(act, x, T, L.n_in, rp, ci, v, bias, n, tile, rows, y, p);
      } else {
        const int32_t* ci = L.col.data_ptr<int32_t>();
        if (b4) run_csr<true>(act, x, T, L.n_in, rp, ci, v, bias, n, tile, rows, y, p);
        else run_csr<false>(act, x, T, L.n_in, rp, ci, v, bias, n, tile, rows, y, p);
      }
      tick(t0, prof_.linears);
      return;
    }
    if (L.kind == Kind::kInt8) {
      int64_t tile = L.tile;
      if (res) {
        const int64_t threads = at::get_num_threads();
        while (tile > 8 && (T + tile - 1) / tile < threads) tile /= 2;
      }
      int8_block_linear_into(x, T, L.n_in, L.row_ptr.data_ptr<int32_t>(),
                             reinterpret_cast<const uint16_t*>(L.bcol.data_ptr<int16_t>()), L.wv.data_ptr<int32_t>(),
                             L.wscale.data_ptr<float>(), L.bias.data_ptr<float>(), n, tile, res ? 0 : L.rows, 0, act, y,
                             res ? &post : nullptr);
      tick(t0, prof_.linears);
      return;
    }
    if (L.kind == Kind::kInt8x4) {
      int64_t tile = L.tile;
      if (res) {
        const int64_t threads = at::get_num_threads();
        while (tile > 16 && (T + tile - 1) / tile < threads) tile /= 2;
      }
      int8_4x1_linear_into(x, T, L.n_in, L.row_ptr.data_ptr<int32_t>(),
                           reinterpret_cast<const uint16_t*>(L.bcol.data_ptr<int16_t>()), L.wv.data_ptr<int32_t>(),
                           L.comp.data_ptr<int32_t>(), L.wscale.data_ptr<float>(), L.bias.data_ptr<float>(), n, tile,
                           res ? 0 : L.rows, 0, act, y, res ? &post : nullptr);
      tick(t0, prof_.linears);
      return;
    }
    torch::Tensor xt = torch::from_blob(const_cast<float*>(x), {T, L.n_in}, torch::kFloat);
    torch::Tensor yt = torch::from_blob(y, {T, n}, torch::kFloat);
    at::addmm_out(yt, L.bias, xt, L.w.t());
    tick(t0, prof_.linears);
    // epilogue of the dense product as one parallel pass over tokens
    at::parallel_for(0, T, 16, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        if (res) add_layer_norm_row(res + t * n, y + t * n, g, b2, n, eps_);
        else activate_rows(act, y + t * n, n);
      }
    });
    tick(t0, prof_.epilogue);
  }

  // the CSR (B4 = false) or 4x1-block (B4 = true) kernel with the activation act; post as csr::run
  template <bool B4, typename Index>
  void run_csr(Act act, const float* x, int64_t T, int64_t k_in, const int32_t* rp, const Index* ci, const float* v,
               const float* bias, int64_t n, int64_t tile, int64_t rows, float* y,
               const std::function<void(int64_t, int64_t)>* post) {
    using csr::run;
    auto p = [post](int64_t a, int64_t b) {
      if (post) (*post)(a, b);
    };
    using Q = decltype(p);
    switch (act) {
      case Act::kGeluErf: run<Act::kGeluErf, Index, Q, B4>(x, T, k_in, rp, ci, v, bias, n, tile, rows, false, y, p); break;
      case Act::kGeluTanh: run<Act::kGeluTanh, Index, Q, B4>(x, T, k_in, rp, ci, v, bias, n, tile, rows, false, y, p); break;
      case Act::kRelu: run<Act::kRelu, Index, Q, B4>(x, T, k_in, rp, ci, v, bias, n, tile, rows, false, y, p); break;
      default: run<Act::kNone, Index, Q, B4>(x, T, k_in, rp, ci, v, bias, n, tile, rows, false, y, p); break;
    }
  }

  // ctx[T, hidden] = attention of each sequence over its own tokens (qkv: [T, 3 * hidden], Q | K | V)
  void attention(const torch::Tensor& qkv, torch::Tensor& ctx, const int64_t* c, const std::vector<int64_t>& lens,
                 bool equal, const std::map<int64_t, torch::Tensor>& masks) {
    auto t0 = Clock::now();
    const int64_t H = hidden_, nh = heads_, d = hidden_ / heads_, B = static_cast<int64_t>(lens.size());
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto run = [&](const torch::Tensor& part, int64_t nb, int64_t len, torch::Tensor out) {
      // part: [nb * len, 3H] -> q, k, v: [nb, nh, len, d]
      auto v5 = part.view({nb, len, 3, nh, d});
      auto q = v5.select(2, 0).transpose(1, 2), k = v5.select(2, 1).transpose(1, 2), v = v5.select(2, 2).transpose(1, 2);
      c10::optional<torch::Tensor> mask;
      const auto it = masks.find(len);
      if (it != masks.end()) mask = it->second;
      torch::Tensor o;
      if (bf16_) {
        o = at::scaled_dot_product_attention(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16),
                                             mask, 0.0, false, scale);
      } else {
        o = at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale);
      }
      out.view({nb, len, nh, d}).copy_(o.transpose(1, 2));
    };
    if (equal) {
      run(qkv, B, lens[0], ctx);
    } else {
      for (int64_t b = 0; b < B; ++b) run(qkv.narrow(0, c[b], lens[b]), 1, lens[b], ctx.narrow(0, c[b], lens[b]));
    }
    tick(t0, prof_.attention);
  }

  int64_t hidden_, heads_;
  Act act_;
  float eps_emb_, eps_;
  bool bf16_, rel_bias_;
  torch::Tensor word_, pos_, type_, emb_g_, emb_b_;
  std::vector<Layer> layers_;
  int64_t max_ffn_ = 0, cap_ = 0;
  torch::Tensor h_, qkv_, ctx_, tmp_, ffn_;
  bool profiling_ = false;
  Profile prof_;
  std::mutex mu_;
};

}  // namespace

void bind_engine(pybind11::module_& m) {
  namespace py = pybind11;
  py::class_<Linear, std::shared_ptr<Linear>>(m, "EngineLinear")
      .def_readonly("n_out", &Linear::n_out)
      .def_readonly("n_in", &Linear::n_in)
      .def_readonly("nnz", &Linear::nnz)
      .def_property_readonly("kind", [](const Linear& L) { return std::string(kind_name(L.kind)); });
  m.def("engine_dense", &make_dense, "a dense fp32 linear of the engine (weight [out, in], bias [out])",
        py::arg("weight"), py::arg("bias"));
  m.def("engine_csr", &make_csr, "an fp32 CSR linear of the engine (indices checked)", py::arg("row_ptr"),
        py::arg("col"), py::arg("values"), py::arg("bias"), py::arg("n_in"), py::arg("tile"), py::arg("rows"));
  m.def("engine_block4x1", &make_block4x1, "an fp32 linear of the engine in 4x1 blocks (indices checked)",
        py::arg("row_ptr"), py::arg("col"), py::arg("values"), py::arg("bias"), py::arg("n_in"), py::arg("tile"),
        py::arg("rows"));
  m.def("engine_max_tile_4x1", []() { return csr::max_tile_4x1(); }, "the widest 4x1 register tile of this build");
  m.def("engine_int8", &make_int8, "a sparse-int8 1x4-block linear of the engine (indices checked)",
        py::arg("row_ptr"), py::arg("bcol"), py::arg("wv"), py::arg("w_scale"), py::arg("bias"), py::arg("n_in"),
        py::arg("tile"), py::arg("rows"));
  m.def("engine_int8_4x1", &make_int8_4x1, "a sparse-int8 4x1-block linear of the engine (indices checked)",
        py::arg("row_ptr"), py::arg("col"), py::arg("wv"), py::arg("w_scale"), py::arg("bias"), py::arg("n_in"),
        py::arg("tile"), py::arg("rows"));
  m.def("engine_max_tile_int8_4x1", &int8_4x1_max_tile, "the widest int8 4x1 token tile of this build");
  py::class_<Engine, std::shared_ptr<Engine>>(m, "Engine")
      .def(py::init<int64_t, int64_t, int64_t, double, double, bool, bool>(), py::arg("hidden"), py::arg("heads"),
           py::arg("act"), py::arg("eps_embeddings"), py::arg("eps"), py::arg("bf16_attention"),
           py::arg("relative_bias"))
      .def("set_embeddings", &Engine::set_embeddings)
      .def("add_layer", &Engine::add_layer)
      .def("forward", &Engine::forward, py::call_guard<py::gil_scoped_release>())
      .def("set_profile", &Engine::set_profile)
      .def("profile", &Engine::profile)
      .def("reset_profile", &Engine::reset_profile)
      .def_property_readonly("num_layers", &Engine::num_layers);
}

}  // namespace sparsebert
