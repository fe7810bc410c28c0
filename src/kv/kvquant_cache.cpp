#include "kv/kvquant_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/kv_attention.h"
#include "kv/kv_spec.h"

namespace cvq {
namespace {

WindowPolicy kvquant_policy(const KvQuantOptions& o) {
  WindowPolicy p;
  p.window = o.window;
  p.sink = o.sink;
  p.key_rule = WindowRule::Blocks;
  p.value_rule = WindowRule::Blocks;
  p.keys_pre_rope = true;
  return p;
}

// The one dequantization expression (shared by the decode and native paths so they agree bit for bit).
inline float nuq_dequant(float level, float scale, float offset) { return level * scale + offset; }

std::string format_fraction(double f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", f);
  return buf;
}

constexpr int kTile = 32;  // tokens decoded per native tile

}  // namespace

KvQuantOptions KvQuantOptions::parse(const KvSpec& spec, const KvGeometry& g) {
  spec.allow_only({"bits", "outliers", "sink", "calib", "window", "qnorm", "keyout", "mode"});
  KvQuantOptions o;
  o.bits = spec.get_int("bits", 2);
  o.outliers = spec.get_double("outliers", 0.01);
  o.sink = spec.get_int("sink", 0);
  o.window = spec.get_int("window", 128);
  o.qnorm = spec.has("qnorm") ? spec.get_int("qnorm", 0) : -1;
  o.mode = parse_kv_exec_mode(spec);
  const std::string keyout = spec.get("keyout", "budget");
  o.key_outliers_all = keyout == "all";
  auto bad = [&](const std::string& why) { throw Error("KV method spec '" + spec.text() + "': " + why); };
  if (o.bits != 2 && o.bits != 3 && o.bits != 4) bad("bits must be 2, 3 or 4 (got " + std::to_string(o.bits) + ")");
  if (!(o.outliers >= 0.0 && o.outliers < 0.5)) bad("outliers must be a fraction in [0, 0.5)");
  if (o.sink < 0) bad("sink must be >= 0");
  if (o.window < 1) bad("window must be >= 1 (keys leave the fp16 window in blocks of this many tokens)");
  if (o.qnorm != -1 && o.qnorm != 0 && o.qnorm != 1) bad("qnorm must be 0 or 1");
  if (keyout != "budget" && keyout != "all") bad("keyout must be budget or all");
  if (spec.has("calib")) {
    o.calib = spec.get("calib", "");
    if (o.calib.empty()) bad("calib= needs a file (or 'none' for memory accounting only)");
  } else {
    if (g.model_path.empty()) bad("calib= is required here (no model file to look beside)");
    o.calib = kvquant_default_calib_path(g.model_path);
    if (!std::filesystem::exists(o.calib)) {
      bad("no calib= given and no calibration file next to the model (" + o.calib +
          "); make one with `commvq-bench calibrate-kvquant --out " + o.calib +
          "` (then it is found without calib=), or pass calib=FILE");
    }
  }
  return o;
}

KvQuantCache::KvQuantCache(KvGeometry g, KvQuantOptions o)
    : WindowedCache(std::move(g), kvquant_policy(o), o.mode), opt_(std::move(o)) {
  if (opt_.calib == "none") {
    init(nullptr);
  } else {
    const KvQuantCalibration c = KvQuantCalibration::load(opt_.calib);
    init(&c);
  }
}

KvQuantCache::KvQuantCache(KvGeometry g, KvQuantOptions o, const KvQuantCalibration& calib)
    : WindowedCache(std::move(g), kvquant_policy(o), o.mode), opt_(std::move(o)) {
  init(&calib);
}

void KvQuantCache::init(const KvQuantCalibration* calib) {
  const int D = geo_.kv_dim();
  auto bad = [&](const std::string& why) { throw Error("KV method '" + spec() + "': " + why); };
  if (D > 65536) bad("kv_dim " + std::to_string(D) + " exceeds the 16-bit outlier channel index");
  row_bytes_ = nuq_row_bytes(D, opt_.bits);
  const double budget = std::round(opt_.outliers * opt_.window * static_cast<double>(D));
  if (budget > 65535.0) {
    bad("the key outlier budget per block (" + std::to_string(static_cast<int64_t>(budget)) +
        ") exceeds the 16-bit CSR index; use a smaller window");
  }
  key_budget_ = static_cast<int>(budget);
  value_side_ = nuq_outliers_per_side(opt_.outliers, D);
  if (2 * value_side_ >= D) bad("outliers=" + format_fraction(opt_.outliers) + " leaves no dense values per token");
  store_.assign(geo_.n_layers, Store{});
  params_.clear();
  calibrated_ = calib != nullptr;
  if (!calib) return;
  calib->check_model(geo_, opt_.calib);
  if (std::fabs(calib->outliers - opt_.outliers) > 1e-9) {
    throw Error(opt_.calib + ": KVQuant calibration was made with outliers=" + format_fraction(calib->outliers) +
                ", the spec asks for outliers=" + format_fraction(opt_.outliers) +
                " (use outliers=" + format_fraction(calib->outliers) + " or re-run calibrate-kvquant --outliers " +
                format_fraction(opt_.outliers) + ")");
  }
  params_.resize(geo_.n_layers);
  for (int l = 0; l < geo_.n_layers; ++l) {
    Params& p = params_[l];
    p.key_range.resize(D);
    for (int c = 0; c < D; ++c) p.key_range[c] = nuq_range(calib->key_lo[l * D + c], calib->key_hi[l * D + c]);
    p.key_lut = calib->lut(l, true, opt_.bits, opt_.use_qnorm(), opt_.calib);
    p.value_lut = calib->lut(l, false, opt_.bits, opt_.use_qnorm(), opt_.calib);
  }
}

std::string KvQuantCache::spec() const {
  std::string s = "kvquant:bits=" + std::to_string(opt_.bits) + ",outliers=" + format_fraction(opt_.outliers) +
                  ",sink=" + std::to_string(opt_.sink) + ",window=" + std::to_string(opt_.window);
  if (opt_.qnorm != -1 && opt_.use_qnorm() != (opt_.bits == 2)) s += ",qnorm=" + std::to_string(opt_.qnorm);
  if (opt_.key_outliers_all) s += ",keyout=all";
  s += ",calib=" + opt_.calib;
  if (opt_.mode == KvExecMode::Simulated) s += ",mode=simulated";
  return s;
}

void KvQuantCache::require_calibration() const {
  if (!calibrated_) {
    throw Error("KV method '" + spec() +
                "': calib=none only accounts memory; give calib=FILE (commvq-bench calibrate-kvquant) to run it");
  }
}

void KvQuantCache::compress_keys(int layer, int64_t first, int n, const float* k, const int32_t*) {
  require_calibration();
  const int D = geo_.kv_dim(), R = opt_.window;
  if (first % R != 0 || n % R != 0) throw Error("kvquant: key blocks must be whole windows (internal error)");
  const Params& P = params_[layer];
  Store& s = store_[layer];
  const int64_t block_elems = int64_t{R} * D;
  excess_.resize(block_elems);
  order_.resize(block_elems);
  codes_.resize(D);
  for (int64_t b0 = 0; b0 < n; b0 += R) {
    const float* x = k + b0 * D;
    int64_t outside = 0;
    for (int64_t i = 0; i < block_elems; ++i) {
      excess_[i] = nuq_excess(x[i], P.key_range[i % D]);
      outside += excess_[i] > 1.0f ? 1 : 0;
    }
    // Entries this block keeps: the fixed budget, or (keyout=all) every element outside its thresholds.
    const int B = opt_.key_outliers_all ? static_cast<int>(std::min<int64_t>(outside, 65535)) : key_budget_;
    // The B most extreme elements (ties: lower index first), then in (token, channel) order.
    for (int64_t i = 0; i < block_elems; ++i) order_[i] = static_cast<int32_t>(i);
    auto more_extreme = [this](int32_t a, int32_t b) {
      return excess_[a] > excess_[b] || (excess_[a] == excess_[b] && a < b);
    };
    if (B > 0 && B < block_elems) std::nth_element(order_.begin(), order_.begin() + B, order_.end(), more_extreme);
    std::sort(order_.begin(), order_.begin() + B);
    int64_t kept_outside = 0;
    const size_t e0 = s.k_out_chan.size();
    if (opt_.key_outliers_all) s.k_block_start.push_back(static_cast<uint32_t>(e0));
    s.k_out_chan.resize(e0 + B);
    s.k_out_val.resize(e0 + B);
    const size_t r0 = s.k_row_end.size();
    s.k_row_end.resize(r0 + R);
    int e = 0;
    for (int t = 0; t < R; ++t) {
      while (e < B && order_[e] / D == t) {
        const int32_t idx = order_[e];
        kept_outside += excess_[idx] > 1.0f ? 1 : 0;
        s.k_out_chan[e0 + e] = static_cast<uint16_t>(idx % D);
        s.k_out_val[e0 + e] = float_to_fp16(x[idx]);
        ++e;
      }
      s.k_row_end[r0 + t] = static_cast<uint16_t>(e);
    }
    // Dense codes.
    const size_t c0 = s.k_codes.size();
    s.k_codes.resize(c0 + static_cast<size_t>(R) * row_bytes_);
    for (int t = 0; t < R; ++t) {
      const float* xt = x + int64_t{t} * D;
      for (int c = 0; c < D; ++c) codes_[c] = P.key_lut.encode(nuq_normalize(xt[c], P.key_range[c]));
      nuq_pack(codes_.data(), D, opt_.bits, s.k_codes.data() + c0 + static_cast<size_t>(t) * row_bytes_);
    }
    stats_.key_elements += block_elems;
    stats_.key_outside += outside;
    stats_.key_clipped += outside - kept_outside;
    stats_.key_stored += B;
  }
}

void KvQuantCache::compress_values(int layer, int64_t, int n, const float* v, const int32_t*) {
  require_calibration();
  const int D = geo_.kv_dim(), M = 2 * value_side_;
  const Params& P = params_[layer];
  Store& s = store_[layer];
  codes_.resize(D);
  std::vector<int32_t> idx(M + 1);
  const size_t c0 = s.v_codes.size(), t0 = s.v_offset.size(), e0 = s.v_out_chan.size();
  s.v_codes.resize(c0 + static_cast<size_t>(n) * row_bytes_);
  s.v_offset.resize(t0 + n);
  s.v_scale.resize(t0 + n);
  s.v_out_chan.resize(e0 + static_cast<size_t>(n) * M);
  s.v_out_val.resize(s.v_out_chan.size());
  for (int t = 0; t < n; ++t) {
    const float* x = v + int64_t{t} * D;
    float lo, hi;
    nuq_split_token(x, D, value_side_, idx.data(), &lo, &hi, scratch_);
    const NuqRange r = nuq_range(lo, hi);
    s.v_offset[t0 + t] = r.offset_fp16;
    s.v_scale[t0 + t] = r.scale_fp16;
    for (int j = 0; j < M; ++j) {
      s.v_out_chan[e0 + static_cast<size_t>(t) * M + j] = static_cast<uint16_t>(idx[j]);
      s.v_out_val[e0 + static_cast<size_t>(t) * M + j] = float_to_fp16(x[idx[j]]);
    }
    for (int c = 0; c < D; ++c) codes_[c] = P.value_lut.encode(nuq_normalize(x[c], r));
    nuq_pack(codes_.data(), D, opt_.bits, s.v_codes.data() + c0 + static_cast<size_t>(t) * row_bytes_);
  }
  stats_.value_elements += int64_t{n} * D;
  stats_.value_stored += int64_t{n} * M;
}

void KvQuantCache::key_row(int layer, int64_t t, int c0, int n, float* out) const {
  const Params& P = params_[layer];
  const Store& s = store_[layer];
  uint8_t codes[1024];
  for (int done = 0; done < n; done += 1024) {
    const int m = std::min(1024, n - done);
    nuq_unpack(s.k_codes.data() + static_cast<size_t>(t) * row_bytes_, c0 + done, m, opt_.bits, codes);
    for (int i = 0; i < m; ++i) {
      const NuqRange& r = P.key_range[c0 + done + i];
      out[done + i] = nuq_dequant(P.key_lut.levels[codes[i]], r.scale, r.offset);
    }
  }
  const int R = opt_.window;
  const size_t base = opt_.key_outliers_all ? s.k_block_start[t / R] : static_cast<size_t>(t / R) * key_budget_;
  const int e_begin = t % R == 0 ? 0 : s.k_row_end[t - 1], e_end = s.k_row_end[t];
  for (int e = e_begin; e < e_end; ++e) {
    const int c = s.k_out_chan[base + e];
    if (c >= c0 && c < c0 + n) out[c - c0] = fp16_to_float(s.k_out_val[base + e]);
  }
}

void KvQuantCache::value_row(int layer, int64_t t, int c0, int n, float* out) const {
  const Params& P = params_[layer];
  const Store& s = store_[layer];
  const float off = fp16_to_float(s.v_offset[t]), sc = fp16_to_float(s.v_scale[t]);
  uint8_t codes[1024];
  for (int done = 0; done < n; done += 1024) {
    const int m = std::min(1024, n - done);
    nuq_unpack(s.v_codes.data() + static_cast<size_t>(t) * row_bytes_, c0 + done, m, opt_.bits, codes);
    for (int i = 0; i < m; ++i) out[done + i] = nuq_dequant(P.value_lut.levels[codes[i]], sc, off);
  }
  const int M = 2 * value_side_;
  for (int j = 0; j < M; ++j) {
    const size_t e = static_cast<size_t>(t) * M + j;
    const int c = s.v_out_chan[e];
    if (c >= c0 && c < c0 + n) out[c - c0] = fp16_to_float(s.v_out_val[e]);
  }
}

void KvQuantCache::decode_keys(int layer, int64_t first, int n, float* out) const {
  const int D = geo_.kv_dim();
  for (int i = 0; i < n; ++i) key_row(layer, first + i, 0, D, out + int64_t{i} * D);
}

void KvQuantCache::decode_values(int layer, int64_t first, int n, float* out) const {
  const int D = geo_.kv_dim();
  for (int i = 0; i < n; ++i) value_row(layer, first + i, 0, D, out + int64_t{i} * D);
}

void KvQuantCache::native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                                 float* scores, int64_t ld) const {
  const int d = geo_.head_dim;
  const int32_t* pos = compressed_positions(layer);
  thread_local std::vector<float> tile;
  tile.resize(static_cast<size_t>(kTile) * d);
  for (int64_t a = t0; a < t1; a += kTile) {
    const int nt = static_cast<int>(std::min<int64_t>(kTile, t1 - a));
    for (int i = 0; i < nt; ++i) {
      float* kt = tile.data() + static_cast<size_t>(i) * d;
      key_row(layer, a + i, kv_head * d, d, kt);
      geo_.rope.apply(kt, 1, pos[a + i]);
    }
    kv_scores_f32(q, rows, d, tile.data(), d, nt, scale, scores + (a - t0), ld);
  }
}

void KvQuantCache::native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                                 float* out) const {
  const int d = geo_.head_dim;
  thread_local std::vector<float> tile;
  tile.resize(static_cast<size_t>(kTile) * d);
  for (int64_t a = t0; a < t1; a += kTile) {
    const int nt = static_cast<int>(std::min<int64_t>(kTile, t1 - a));
    for (int i = 0; i < nt; ++i) value_row(layer, a + i, kv_head * d, d, tile.data() + static_cast<size_t>(i) * d);
    kv_values_f32(p + (a - t0), ld, rows, d, tile.data(), d, nt, out);
  }
}

size_t KvQuantCache::static_key_bytes() const {
  const size_t K = size_t{1} << opt_.bits;
  return static_cast<size_t>(geo_.kv_dim()) * 2 * sizeof(uint16_t) + (2 * K - 1) * sizeof(float);
}
size_t KvQuantCache::static_value_bytes() const {
  const size_t K = size_t{1} << opt_.bits;
  return (2 * K - 1) * sizeof(float);
}

size_t KvQuantCache::compressed_bytes(int layer) const {
  const Store& s = store_[layer];
  size_t b = s.k_codes.size() + s.v_codes.size();
  b += (s.k_row_end.size() + s.k_out_chan.size() + s.k_out_val.size()) * sizeof(uint16_t);
  b += s.k_block_start.size() * sizeof(uint32_t);
  b += (s.v_offset.size() + s.v_scale.size() + s.v_out_chan.size() + s.v_out_val.size()) * sizeof(uint16_t);
  if (!s.k_row_end.empty()) b += static_key_bytes();
  if (!s.v_offset.empty()) b += static_value_bytes();
  return b;
}

size_t KvQuantCache::compressed_bytes_for(int64_t n_keys, int64_t n_values) const {
  const int64_t blocks = n_keys / opt_.window;  // keys are compressed in whole blocks
  const int64_t k = n_keys * (row_bytes_ + 2) + blocks * (key_budget_ * 4 + (opt_.key_outliers_all ? 4 : 0));
  const int64_t v = n_values * (row_bytes_ + 4 + int64_t{4} * 2 * value_side_);
  return static_cast<size_t>(k + v) + (n_keys > 0 ? static_key_bytes() : 0) + (n_values > 0 ? static_value_bytes() : 0);
}

double KvQuantCache::bits_per_element(int64_t n_keys, int64_t n_values) const {
  const int64_t elems = (n_keys + n_values) * geo_.kv_dim();
  return elems > 0 ? 8.0 * static_cast<double>(compressed_bytes_for(n_keys, n_values)) / static_cast<double>(elems)
                   : 0.0;
}

void KvQuantCache::clear_compressed() {
  for (auto& s : store_) s = Store{};
  stats_ = KvQuantStats{};
}

}  // namespace cvq
