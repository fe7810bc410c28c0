#include "commvq/key_codebook.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/commvq_assign.h"
#include "kernels/cpu/commvq_scores.h"

namespace cvq {
namespace {

constexpr int kSub = KeyCodebook::kSubCodes;
constexpr int kCodes = KeyCodebook::kCodewords;
constexpr int64_t kEncodeChunk = 64;  // tokens per GEMM in batched encoding

inline int pair_x(RopeLayout layout, int /*d*/, int f) { return layout == RopeLayout::Adjacent ? 2 * f : f; }
inline int pair_y(RopeLayout layout, int d, int f) { return layout == RopeLayout::Adjacent ? 2 * f + 1 : f + d / 2; }

}  // namespace

int commvq_key_stages(double bits, int head_dim) {
  if (!(bits > 0) || head_dim <= 0) throw Error("commvq: bad key bit budget " + std::to_string(bits));
  return std::max(1, static_cast<int>(std::lround(bits * head_dim / 12.0)));
}

void to_pair_split(const float* head, int64_t n, int d, RopeLayout layout, float* pairs) {
  const int h = d / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float* src = head + t * d;
    float* dst = pairs + t * d;
    for (int f = 0; f < h; ++f) {
      dst[f] = src[pair_x(layout, d, f)];
      dst[h + f] = src[pair_y(layout, d, f)];
    }
  }
}

void from_pair_split(const float* pairs, int64_t n, int d, RopeLayout layout, float* head) {
  const int h = d / 2;
  for (int64_t t = 0; t < n; ++t) {
    const float* src = pairs + t * d;
    float* dst = head + t * d;
    for (int f = 0; f < h; ++f) {
      dst[pair_x(layout, d, f)] = src[f];
      dst[pair_y(layout, d, f)] = src[h + f];
    }
  }
}

void rope_cos_sin_table(const Rope& rope, const int32_t* positions, int64_t n, float* out) {
  const int d = rope.head_dim();
  for (int64_t t = 0; t < n; ++t) rope.angles(positions[t], out + t * d, out + t * d + d / 2);
}

void rope_cos_sin_table(const Rope& rope, int32_t first_position, int64_t n, float* out) {
  const int d = rope.head_dim();
  for (int64_t t = 0; t < n; ++t) {
    rope.angles(first_position + static_cast<int32_t>(t), out + t * d, out + t * d + d / 2);
  }
}

RopeBlockTable::RopeBlockTable(const Rope& rope, int max_block) : rope_(rope), max_block_(max_block) {
  if (max_block <= 0) throw Error("RopeBlockTable: block size must be positive");
  offsets_.resize(static_cast<size_t>(max_block) * rope.head_dim());
  rope_cos_sin_table(rope, 0, max_block, offsets_.data());
}

void RopeBlockTable::base(int32_t first_position, float* base_out) const {
  rope_.angles(first_position, base_out, base_out + rope_.head_dim() / 2);
}

void RopeBlockTable::fill_from_base(const float* base_cs, int n, float* out) const {
  if (n < 0 || n > max_block_) {
    throw Error("RopeBlockTable: " + std::to_string(n) + " positions, more than the block size " +
                std::to_string(max_block_));
  }
  commvq_block_cos_sin(base_cs, offsets_.data(), n, rope_.head_dim(), out);
}

void RopeBlockTable::fill(int32_t first_position, int n, float* out) const {
  std::vector<float> b(static_cast<size_t>(rope_.head_dim()));
  base(first_position, b.data());
  fill_from_base(b.data(), n, out);
}

// ---------------------------------------------------------------------------------------------------

KeyCodebook::KeyCodebook(int head_dim, RopeLayout layout, bool structured)
    : d_(head_dim), layout_(layout), structured_(structured) {
  if (head_dim <= 0 || head_dim % 2 != 0) {
    throw Error("commvq key codebook: head dim must be positive and even, got " + std::to_string(head_dim));
  }
}

void KeyCodebook::check_stage(int j) const {
  if (j < 0 || j >= n_stages_) {
    throw Error("commvq key codebook: stage " + std::to_string(j) + " out of range (" + std::to_string(n_stages_) +
                " stages)");
  }
}

void KeyCodebook::add_stage(const std::vector<float>& x, const std::vector<float>& y) {
  if (!structured_) throw Error("commvq key codebook: add_stage on an unstructured codebook");
  const size_t n = static_cast<size_t>(kSub) * half();
  if (x.size() != n || y.size() != n) {
    throw Error("commvq key codebook: stage parameters must be 64 x " + std::to_string(half()) + ", got " +
                std::to_string(x.size()) + " and " + std::to_string(y.size()) + " values");
  }
  xy_.insert(xy_.end(), x.begin(), x.end());
  xy_.insert(xy_.end(), y.begin(), y.end());
  ++n_stages_;
  gfull_.resize(static_cast<size_t>(n_stages_) * kCodes);
  gbound_.resize(static_cast<size_t>(n_stages_) * kCommvqBoundFloats);
  proj_.resize(static_cast<size_t>(n_stages_) * d_ * 2 * kSub);
  build_stage_cache(n_stages_ - 1);
}

void KeyCodebook::add_unstructured_stage(const std::vector<float>& c) {
  if (structured_) throw Error("commvq key codebook: add_unstructured_stage on a structured codebook");
  if (c.size() != static_cast<size_t>(kCodes) * d_) {
    throw Error("commvq key codebook: unstructured stage must be 4096 x " + std::to_string(d_) + ", got " +
                std::to_string(c.size()) + " values");
  }
  centroids_.insert(centroids_.end(), c.begin(), c.end());
  ++n_stages_;
  cnorm_.resize(static_cast<size_t>(n_stages_) * kCodes);
  build_stage_cache(n_stages_ - 1);
}

void KeyCodebook::truncate(int stages) {
  if (stages < 0 || stages > n_stages_)
    throw Error("commvq key codebook: cannot truncate to " + std::to_string(stages));
  n_stages_ = stages;
  if (structured_) {
    xy_.resize(static_cast<size_t>(stages) * 2 * kSub * half());
    gfull_.resize(static_cast<size_t>(stages) * kCodes);
    gbound_.resize(static_cast<size_t>(stages) * kCommvqBoundFloats);
    proj_.resize(static_cast<size_t>(stages) * d_ * 2 * kSub);
  } else {
    centroids_.resize(static_cast<size_t>(stages) * kCodes * d_);
    cnorm_.resize(static_cast<size_t>(stages) * kCodes);
  }
}

void KeyCodebook::build_stage_cache(int j) {
  const int h = half();
  if (!structured_) {
    const float* c = stage_centroids(j);
    float* cn = cnorm_.data() + static_cast<size_t>(j) * kCodes;
    for (int i = 0; i < kCodes; ++i) {
      double s = 0.0;
      for (int k = 0; k < d_; ++k) s += static_cast<double>(c[i * d_ + k]) * c[i * d_ + k];
      cn[i] = static_cast<float>(s);
    }
    return;
  }
  const float* x = stage_x(j);
  const float* y = stage_y(j);
  // nS[s] = Σ_f X² + Y² (the same for the A and the B role); gfull[A,B] = nS[A] + nS[B] + 2G[A,B],
  // G[A,B] = Σ_f (Y[A,f]·X[B,f] − X[A,f]·Y[B,f]). Double accumulation: these are exact-ish constants.
  std::vector<double> ns(kSub);
  for (int s = 0; s < kSub; ++s) {
    double acc = 0.0;
    for (int f = 0; f < h; ++f)
      acc += static_cast<double>(x[s * h + f]) * x[s * h + f] + static_cast<double>(y[s * h + f]) * y[s * h + f];
    ns[s] = acc;
  }
  float* g = gfull_.data() + static_cast<size_t>(j) * kCodes;
  for (int a = 0; a < kSub; ++a) {
    for (int b = 0; b < kSub; ++b) {
      double acc = 0.0;
      for (int f = 0; f < h; ++f) {
        acc += static_cast<double>(y[a * h + f]) * x[b * h + f] - static_cast<double>(x[a * h + f]) * y[b * h + f];
      }
      g[a * kSub + b] = static_cast<float>(ns[a] + ns[b] + 2.0 * acc);
    }
  }
  commvq_row_bounds(g, gbound_.data() + static_cast<size_t>(j) * kCommvqBoundFloats);
  // P (d × 128): r·P[:, s] = −2α_s = −2Σ_f (a_f X[s,f] + b_f Y[s,f]);
  //              r·P[:, 64+s] = −2β_s = −2Σ_f (b_f X[s,f] − a_f Y[s,f]).
  float* p = proj_.data() + static_cast<size_t>(j) * d_ * 2 * kSub;
  for (int f = 0; f < h; ++f) {
    float* row_a = p + static_cast<size_t>(f) * 2 * kSub;      // multiplies a_f
    float* row_b = p + static_cast<size_t>(h + f) * 2 * kSub;  // multiplies b_f
    for (int s = 0; s < kSub; ++s) {
      row_a[s] = -2.0f * x[s * h + f];
      row_b[s] = -2.0f * y[s * h + f];
      row_a[kSub + s] = 2.0f * y[s * h + f];
      row_b[kSub + s] = -2.0f * x[s * h + f];
    }
  }
}

void KeyCodebook::codeword_pairs(int j, int c, float* out) const {
  check_stage(j);
  if (c < 0 || c >= kCodes) throw Error("commvq key codebook: codeword index " + std::to_string(c) + " out of range");
  const int h = half();
  if (!structured_) {
    std::memcpy(out, stage_centroids(j) + static_cast<size_t>(c) * d_, sizeof(float) * d_);
    return;
  }
  const float* x = stage_x(j);
  const float* y = stage_y(j);
  const int a = c >> 6, b = c & 63;
  for (int f = 0; f < h; ++f) {
    out[f] = x[a * h + f] - y[b * h + f];
    out[h + f] = y[a * h + f] + x[b * h + f];
  }
}

void KeyCodebook::codeword(int j, int c, float* out_head) const {
  std::vector<float> p(static_cast<size_t>(d_));
  codeword_pairs(j, c, p.data());
  from_pair_split(p.data(), 1, d_, layout_, out_head);
}

std::vector<float> KeyCodebook::explicit_codewords(int j) const {
  check_stage(j);
  std::vector<float> out(static_cast<size_t>(kCodes) * d_);
  for (int c = 0; c < kCodes; ++c) codeword_pairs(j, c, out.data() + static_cast<size_t>(c) * d_);
  return out;
}

// Encodes a chunk of pair-split vectors in place (r becomes the residual).
static void encode_chunk(const KeyCodebook& cb, float* r, int64_t n, uint16_t* codes, int64_t code_stride) {
  const int d = cb.head_dim();
  const int h = d / 2;
  constexpr int kCols = 2 * kSub;
  std::vector<float> ab(static_cast<size_t>(std::max<int64_t>(n, 1)) * (cb.structured() ? kCols : kCodes));
  for (int j = 0; j < cb.stages(); ++j) {
    if (cb.structured()) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), kCols, d, 1.0f, r, d, cb.proj(j),
                  kCols, 0.0f, ab.data(), kCols);
      const float* x = cb.stage_x(j);
      const float* y = cb.stage_y(j);
      for (int64_t t = 0; t < n; ++t) {
        const float* pq = ab.data() + t * kCols;
        const int c = commvq_pair_sum_argmin(cb.gfull(j), pq, pq + kSub, 0.0f, nullptr, cb.gbound(j)).index;
        codes[t * code_stride + j] = static_cast<uint16_t>(c);
        float* rt = r + t * d;
        const int a = c >> 6, b = c & 63;
        for (int f = 0; f < h; ++f) {
          rt[f] -= x[a * h + f] - y[b * h + f];
          rt[h + f] -= y[a * h + f] + x[b * h + f];
        }
      }
    } else {
      const float* cent = cb.stage_centroids(j);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), kCodes, d, -2.0f, r, d, cent, d, 0.0f,
                  ab.data(), kCodes);
      const float* cn = cb.centroid_norms(j);
      for (int64_t t = 0; t < n; ++t) {
        float* row = ab.data() + t * kCodes;
        for (int c = 0; c < kCodes; ++c) row[c] += cn[c];
        const int c = commvq_argmin4096(row).index;
        codes[t * code_stride + j] = static_cast<uint16_t>(c);
        float* rt = r + t * d;
        const float* cc = cent + static_cast<size_t>(c) * d;
        for (int k = 0; k < d; ++k) rt[k] -= cc[k];
      }
    }
  }
}

// Encodes n tokens in chunks of kEncodeChunk, threaded over chunks when asked: fill(t0, m, r) writes
// the chunk's m pair-split rows into r; their codes go to codes + t0 * code_stride; then
// done(t0, m, r) sees what is left of them (the residual).
template <class Fill, class Done>
static void encode_chunked(const KeyCodebook& cb, int64_t n, uint16_t* codes, int64_t code_stride, bool threaded,
                           Fill&& fill, Done&& done) {
  if (n <= 0) return;
  if (code_stride < cb.stages()) throw Error("commvq key codebook: code stride smaller than the stage count");
  const int d = cb.head_dim();
  const int64_t n_chunks = (n + kEncodeChunk - 1) / kEncodeChunk;
  auto work = [&](int64_t c0, int64_t c1, int) {
    std::vector<float> r(static_cast<size_t>(kEncodeChunk) * d);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t t0 = c * kEncodeChunk;
      const int64_t m = std::min<int64_t>(kEncodeChunk, n - t0);
      fill(t0, m, r.data());
      encode_chunk(cb, r.data(), m, codes + t0 * code_stride, code_stride);
      done(t0, m, r.data());
    }
  };
  if (threaded && n_chunks > 1) {
    ThreadPool::global().parallel_for(n_chunks, work);
  } else {
    work(0, n_chunks, 0);
  }
}

void KeyCodebook::encode_pairs(const float* u_pairs, int64_t n, uint16_t* codes, int64_t code_stride, float* residual,
                               bool threaded) const {
  const size_t row = sizeof(float) * d_;
  encode_chunked(
      *this, n, codes, code_stride, threaded,
      [&](int64_t t0, int64_t m, float* r) { std::memcpy(r, u_pairs + t0 * d_, row * m); },
      [&](int64_t t0, int64_t m, const float* r) {
        if (residual) std::memcpy(residual + t0 * d_, r, row * m);
      });
}

void KeyCodebook::encode_batch(const float* u_head, int64_t n, int64_t ld, uint16_t* codes, int64_t code_stride,
                               bool threaded) const {
  encode_chunked(
      *this, n, codes, code_stride, threaded,
      [&](int64_t t0, int64_t m, float* r) {
        for (int64_t t = 0; t < m; ++t) to_pair_split(u_head + (t0 + t) * ld, 1, d_, layout_, r + t * d_);
      },
      [](int64_t, int64_t, const float*) {});
}

void KeyCodebook::encode(const float* u_head, uint16_t* codes) const {
  std::vector<float> r(static_cast<size_t>(d_));
  to_pair_split(u_head, 1, d_, layout_, r.data());
  encode_chunk(*this, r.data(), 1, codes, n_stages_);
}

void KeyCodebook::encode_bruteforce(const float* u_head, uint16_t* codes) const {
  std::vector<float> r(static_cast<size_t>(d_));
  to_pair_split(u_head, 1, d_, layout_, r.data());
  for (int j = 0; j < n_stages_; ++j) {
    const std::vector<float> cw = explicit_codewords(j);
    int best = 0;
    float best_d = std::numeric_limits<float>::infinity();
    for (int c = 0; c < kCodes; ++c) {
      float s = 0.0f;
      for (int k = 0; k < d_; ++k) {
        const float e = r[k] - cw[static_cast<size_t>(c) * d_ + k];
        s += e * e;
      }
      if (s < best_d) {
        best_d = s;
        best = c;
      }
    }
    codes[j] = static_cast<uint16_t>(best);
    for (int k = 0; k < d_; ++k) r[k] -= cw[static_cast<size_t>(best) * d_ + k];
  }
}

void KeyCodebook::decode_pairs(const uint16_t* codes, float* out) const {
  const int h = half();
  std::fill(out, out + d_, 0.0f);
  for (int j = 0; j < n_stages_; ++j) {
    const int c = codes[j] & 4095;
    if (structured_) {
      const float* x = stage_x(j);
      const float* y = stage_y(j);
      const int a = c >> 6, b = c & 63;
      for (int f = 0; f < h; ++f) {
        out[f] += x[a * h + f] - y[b * h + f];
        out[h + f] += y[a * h + f] + x[b * h + f];
      }
    } else {
      const float* cc = stage_centroids(j) + static_cast<size_t>(c) * d_;
      for (int k = 0; k < d_; ++k) out[k] += cc[k];
    }
  }
}

void KeyCodebook::decode(const uint16_t* codes, float* out_head) const {
  std::vector<float> p(static_cast<size_t>(d_));
  decode_pairs(codes, p.data());
  from_pair_split(p.data(), 1, d_, layout_, out_head);
}

void KeyCodebook::decode_batch(const uint16_t* codes, int64_t code_stride, int64_t n, float* out_head,
                               int64_t ld) const {
  std::vector<float> p(static_cast<size_t>(d_));
  for (int64_t t = 0; t < n; ++t) {
    decode_pairs(codes + t * code_stride, p.data());
    from_pair_split(p.data(), 1, d_, layout_, out_head + t * ld);
  }
}

size_t KeyCodebook::param_bytes() const { return sizeof(float) * (structured_ ? xy_.size() : centroids_.size()); }

void KeyCodebook::write_tensors(SafetensorsWriter& w, const std::string& prefix) const {
  if (structured_) {
    w.add_f32(prefix + ".xy", {n_stages_, 2, kSub, half()}, xy_);
  } else {
    w.add_f32(prefix + ".centroids", {n_stages_, kCodes, d_}, centroids_);
  }
}

KeyCodebook KeyCodebook::read_tensors(const SafetensorsReader& r, const std::string& prefix, int head_dim,
                                      RopeLayout layout) {
  const bool structured = r.has(prefix + ".xy");
  if (!structured && !r.has(prefix + ".centroids")) {
    fail_file(r.path(), "no key codebook tensor '" + prefix + ".xy' (or '" + prefix + ".centroids')");
  }
  KeyCodebook cb(head_dim, layout, structured);
  const std::string name = prefix + (structured ? ".xy" : ".centroids");
  const StTensorView& t = r.tensor(name);
  const int64_t want_last = structured ? head_dim / 2 : head_dim;
  const bool ok = structured ? (t.shape.size() == 4 && t.shape[1] == 2 && t.shape[2] == kSub && t.shape[3] == want_last)
                             : (t.shape.size() == 3 && t.shape[1] == kCodes && t.shape[2] == want_last);
  if (!ok || t.shape[0] <= 0 || t.shape[0] > 4096) {
    fail_file(r.path(), "tensor '" + name + "' has a shape that does not fit head dim " + std::to_string(head_dim));
  }
  const std::vector<float> v = r.floats(name);
  for (float x : v) {
    if (!std::isfinite(x)) fail_file(r.path(), "tensor '" + name + "' holds a non-finite value");
  }
  const int stages = static_cast<int>(t.shape[0]);
  if (structured) {
    const size_t n = static_cast<size_t>(kSub) * (head_dim / 2);
    for (int j = 0; j < stages; ++j) {
      const float* base = v.data() + static_cast<size_t>(j) * 2 * n;
      cb.add_stage(std::vector<float>(base, base + n), std::vector<float>(base + n, base + 2 * n));
    }
  } else {
    const size_t n = static_cast<size_t>(kCodes) * head_dim;
    for (int j = 0; j < stages; ++j) {
      cb.add_unstructured_stage(std::vector<float>(v.data() + j * n, v.data() + (j + 1) * n));
    }
  }
  return cb;
}

// ---------------------------------------------------------------------------------------------------

void key_norms(const float* k, int64_t n, int kv_dim, float* norms, float* u) {
  for (int64_t t = 0; t < n; ++t) {
    const float* kt = k + t * kv_dim;
    double s = 0.0;
    for (int i = 0; i < kv_dim; ++i) s += static_cast<double>(kt[i]) * kt[i];
    const float nt = static_cast<float>(std::sqrt(s));
    norms[t] = nt;
    if (u) {
      float* ut = u + t * kv_dim;
      const float inv = nt > 0.0f ? 1.0f / nt : 0.0f;
      for (int i = 0; i < kv_dim; ++i) ut[i] = kt[i] * inv;
    }
  }
}

void KeyLayerCodebook::encode(const float* k_pre_rope, int64_t n, float* norms, uint16_t* codes) const {
  if (static_cast<int>(heads.size()) != n_kv || n_kv <= 0)
    throw Error("commvq key layer codebook: head count mismatch");
  const int D = kv_dim();
  const int R = stages();
  std::vector<float> u(static_cast<size_t>(n) * D);
  if (centered()) {
    if (static_cast<int>(mean.size()) != D) throw Error("commvq key layer codebook: key mean has the wrong size");
    subtract_key_mean(k_pre_rope, n, mean, u.data());
    key_norms(u.data(), n, D, norms, u.data());
  } else {
    key_norms(k_pre_rope, n, D, norms, u.data());
  }
  for (int h = 0; h < n_kv; ++h) {
    heads[h].encode_batch(u.data() + h * head_dim, n, D, codes + static_cast<int64_t>(h) * R,
                          static_cast<int64_t>(n_kv) * R);
  }
}

void KeyLayerCodebook::decode(const uint16_t* codes, const float* norms, int64_t n, float* k_out) const {
  const int D = kv_dim();
  const int R = stages();
  std::vector<float> tmp(static_cast<size_t>(head_dim));
  for (int64_t t = 0; t < n; ++t) {
    for (int h = 0; h < n_kv; ++h) {
      heads[h].decode(codes + (t * n_kv + h) * R, tmp.data());
      float* out = k_out + t * D + h * head_dim;
      const float* mu = centered() ? mean.data() + h * head_dim : nullptr;
      for (int i = 0; i < head_dim; ++i) out[i] = norms[t] * tmp[i] + (mu ? mu[i] : 0.0f);
    }
  }
}

void subtract_key_mean(const float* k, int64_t n, const std::vector<float>& mean, float* out) {
  const int64_t D = static_cast<int64_t>(mean.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < D; ++i) out[t * D + i] = k[t * D + i] - mean[i];
}

std::vector<float> key_channel_mean(const float* k, int64_t n, int kv_dim) {
  std::vector<double> acc(static_cast<size_t>(kv_dim), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < kv_dim; ++i) acc[i] += k[t * kv_dim + i];
  std::vector<float> mean(static_cast<size_t>(kv_dim));
  for (int i = 0; i < kv_dim; ++i) mean[i] = static_cast<float>(n > 0 ? acc[i] / static_cast<double>(n) : 0.0);
  return mean;
}

}  // namespace cvq
