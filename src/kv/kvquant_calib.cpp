#include "kv/kvquant_calib.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"

namespace cvq {

namespace {
constexpr const char* kFormat = "commvq-bench/kvquant-calibration/1";

std::string lut_name(const char* tensor, const char* kind, int bits) {
  return std::string(tensor) + "_" + kind + "_" + std::to_string(bits) + "bit";
}
}  // namespace

KvQuantModelId KvQuantModelId::from(const KvGeometry& g, const std::string& name) {
  KvQuantModelId m;
  m.name = name;
  m.n_layers = g.n_layers;
  m.n_head = g.n_head;
  m.n_head_kv = g.n_head_kv;
  m.head_dim = g.head_dim;
  m.rope_theta = g.rope.theta();
  return m;
}

std::string KvQuantModelId::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%d layers, %d heads / %d KV heads, head dim %d, RoPE theta %g", n_layers, n_head,
                n_head_kv, head_dim, rope_theta);
  return (name.empty() ? std::string("a model") : "'" + name + "'") + " (" + buf + ")";
}

std::string kvquant_default_calib_path(const std::string& model_path) {
  std::filesystem::path p(model_path);
  if (p.extension() == ".gguf") p.replace_extension();
  return p.string() + ".kvquant.safetensors";
}

void KvQuantCalibration::save(const std::string& path) const {
  const int L = model.n_layers, D = kv_dim();
  if (L <= 0 || D <= 0 || key_lo.size() != size_t(L) * D || key_hi.size() != key_lo.size()) {
    throw Error(path + ": KVQuant calibration to save is incomplete (thresholds do not match the geometry)");
  }
  SafetensorsWriter w;
  w.add_f32("key_lo", {L, D}, key_lo);
  w.add_f32("key_hi", {L, D}, key_hi);
  nlohmann::json bits = nlohmann::json::array();
  for (const auto& [b, t] : luts) {
    const int64_t K = int64_t{1} << b;
    w.add_f32(lut_name("key", "centroids", b), {L, K}, t.key_centroids);
    w.add_f32(lut_name("key", "qnorm", b), {L, K}, t.key_qnorm);
    w.add_f32(lut_name("value", "centroids", b), {L, K}, t.value_centroids);
    w.add_f32(lut_name("value", "qnorm", b), {L, K}, t.value_qnorm);
    bits.push_back(b);
  }
  nlohmann::json meta = info;
  meta["model"] = {{"name", model.name},           {"n_layers", model.n_layers}, {"n_head", model.n_head},
                   {"n_head_kv", model.n_head_kv}, {"head_dim", model.head_dim}, {"rope_theta", model.rope_theta}};
  meta["outliers"] = outliers;
  meta["bits"] = bits;
  meta["n_tokens"] = n_tokens;
  if (!meta.contains("kmeans")) {
    meta["kmeans"] = "exact 1-D k-means, unweighted (no Fisher-information weighting), on a 65536-bin histogram";
  }
  w.set_metadata("format", kFormat);
  w.set_metadata("kvquant", meta.dump());
  w.write(path);
}

KvQuantCalibration KvQuantCalibration::load(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "KVQuant calibration file not found");
  SafetensorsReader r(path);
  auto it = r.metadata().find("format");
  if (it == r.metadata().end() || it->second != kFormat) {
    fail_file(path, std::string("not a KVQuant calibration file (metadata \"format\" is not \"") + kFormat +
                        "\"; make one with `commvq-bench calibrate-kvquant`)");
  }
  auto mit = r.metadata().find("kvquant");
  if (mit == r.metadata().end()) fail_file(path, "KVQuant calibration without its \"kvquant\" metadata");
  KvQuantCalibration c;
  try {
    c.info = nlohmann::json::parse(mit->second);
    const auto& m = c.info.at("model");
    c.model.name = m.at("name").get<std::string>();
    c.model.n_layers = m.at("n_layers").get<int>();
    c.model.n_head = m.at("n_head").get<int>();
    c.model.n_head_kv = m.at("n_head_kv").get<int>();
    c.model.head_dim = m.at("head_dim").get<int>();
    c.model.rope_theta = m.at("rope_theta").get<double>();
    c.outliers = c.info.at("outliers").get<double>();
    c.n_tokens = c.info.at("n_tokens").get<int64_t>();
    std::vector<int> bits = c.info.at("bits").get<std::vector<int>>();
    const int L = c.model.n_layers, D = c.kv_dim();
    if (L <= 0 || D <= 0) fail_file(path, "KVQuant calibration has an invalid model geometry");
    c.key_lo = r.floats(r.tensor("key_lo", StDtype::F32, {L, D}).name);
    c.key_hi = r.floats(r.tensor("key_hi", StDtype::F32, {L, D}).name);
    for (int b : bits) {
      if (b < 1 || b > 8) fail_file(path, "KVQuant calibration lists bit width " + std::to_string(b));
      const int64_t K = int64_t{1} << b;
      KvQuantLuts t;
      t.key_centroids = r.floats(r.tensor(lut_name("key", "centroids", b), StDtype::F32, {L, K}).name);
      t.key_qnorm = r.floats(r.tensor(lut_name("key", "qnorm", b), StDtype::F32, {L, K}).name);
      t.value_centroids = r.floats(r.tensor(lut_name("value", "centroids", b), StDtype::F32, {L, K}).name);
      t.value_qnorm = r.floats(r.tensor(lut_name("value", "qnorm", b), StDtype::F32, {L, K}).name);
      c.luts[b] = std::move(t);
    }
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("KVQuant calibration metadata is malformed: ") + e.what());
  }
  for (size_t i = 0; i < c.key_lo.size(); ++i) {
    if (!std::isfinite(c.key_lo[i]) || !std::isfinite(c.key_hi[i]) || c.key_lo[i] > c.key_hi[i]) {
      fail_file(path, "KVQuant calibration has invalid key thresholds (channel " + std::to_string(i) + ")");
    }
  }
  return c;
}

void KvQuantCalibration::check_model(const KvGeometry& g, const std::string& path,
                                     const std::string& expected_name) const {
  const KvQuantModelId here = KvQuantModelId::from(g, expected_name);
  const bool same_geometry = here.n_layers == model.n_layers && here.n_head == model.n_head &&
                             here.n_head_kv == model.n_head_kv && here.head_dim == model.head_dim &&
                             std::fabs(here.rope_theta - model.rope_theta) <= 1e-6 * std::max(1.0, model.rope_theta);
  const bool same_name = expected_name.empty() || model.name.empty() || expected_name == model.name;
  if (!same_geometry || !same_name) {
    const std::string mine = here.describe();
    std::string msg = "KVQuant calibration is for ";
    msg += model.describe();
    msg += expected_name.empty() ? ", but the model here has " : ", but the model here is ";
    msg.append(mine, expected_name.empty() ? mine.find('(') : 0);
    msg += " — run `commvq-bench calibrate-kvquant --model <this model> --out FILE`";
    fail_file(path, msg);
  }
}

NuqLut KvQuantCalibration::lut(int layer, bool keys, int bits, bool qnorm, const std::string& path) const {
  auto it = luts.find(bits);
  if (it == luts.end()) {
    std::string have;
    for (const auto& [b, t] : luts) {
      if (!have.empty()) have += ",";
      have += std::to_string(b);
    }
    fail_file(path, "KVQuant calibration has no " + std::to_string(bits) +
                        "-bit lookup tables (it has: " + (have.empty() ? "none" : have) +
                        "); re-run calibrate-kvquant with --bits " + std::to_string(bits));
  }
  const int64_t K = int64_t{1} << bits;
  const std::vector<float>& cen = keys ? it->second.key_centroids : it->second.value_centroids;
  const std::vector<float>& lev = qnorm ? (keys ? it->second.key_qnorm : it->second.value_qnorm) : cen;
  std::vector<float> c(cen.begin() + layer * K, cen.begin() + (layer + 1) * K);
  std::vector<float> l(lev.begin() + layer * K, lev.begin() + (layer + 1) * K);
  try {
    return nuq_lut_with_levels(bits, c, l);
  } catch (const Error& e) {
    std::string msg = "layer ";
    msg += std::to_string(layer);
    msg += ": ";
    msg += e.what();
    fail_file(path, msg);
  }
}

// ---------------------------------------------------------------------------------------------

KvQuantCalibrator::KvQuantCalibrator(const KvGeometry& g, double outliers, int hist_bins)
    : geo_(g), outliers_(outliers), hist_bins_(hist_bins), keys_(g.n_layers) {
  if (!(outliers >= 0.0 && outliers < 1.0)) throw Error("calibrate-kvquant: --outliers must be in [0, 1)");
  value_hist_.reserve(g.n_layers);
  for (int l = 0; l < g.n_layers; ++l) value_hist_.emplace_back(hist_bins);
  const int D = g.kv_dim();
  if (2 * nuq_outliers_per_side(outliers, D) >= D) {
    throw Error("calibrate-kvquant: outliers=" + std::to_string(outliers) + " leaves no dense values per token");
  }
}

void KvQuantCalibrator::add(int layer, const float* k, const float* v, int n) {
  if (layer < 0 || layer >= geo_.n_layers) throw Error("calibrate-kvquant: layer out of range");
  const int D = geo_.kv_dim();
  std::vector<uint16_t>& dst = keys_[layer];
  const size_t at = dst.size();
  dst.resize(at + static_cast<size_t>(n) * D);
  for (int64_t i = 0; i < int64_t{n} * D; ++i) dst[at + i] = float_to_fp16(k[i]);
  // Values: fp16-rounded as the window stores them, normalized per token exactly as the cache does.
  const int kside = nuq_outliers_per_side(outliers_, D);
  std::vector<float> row(D);
  out_idx_.resize(2 * kside + 1);
  for (int t = 0; t < n; ++t) {
    for (int c = 0; c < D; ++c) row[c] = fp16_to_float(float_to_fp16(v[int64_t{t} * D + c]));
    float lo, hi;
    nuq_split_token(row.data(), D, kside, out_idx_.data(), &lo, &hi, scratch_);
    const NuqRange r = nuq_range(lo, hi);
    int o = 0;
    for (int c = 0; c < D; ++c) {
      if (o < 2 * kside && out_idx_[o] == c) {
        ++o;
        continue;
      }
      value_hist_[layer].add(nuq_normalize(row[c], r));
    }
  }
}

KvQuantCalibration KvQuantCalibrator::finish(const std::vector<int>& bits, const std::string& model_name) const {
  const int L = geo_.n_layers, D = geo_.kv_dim();
  KvQuantCalibration c;
  c.model = KvQuantModelId::from(geo_, model_name);
  c.outliers = outliers_;
  c.n_tokens = n_tokens(0);
  for (int l = 1; l < L; ++l) {
    if (n_tokens(l) != c.n_tokens) throw Error("calibrate-kvquant: layers saw different token counts");
  }
  if (c.n_tokens == 0) throw Error("calibrate-kvquant: no calibration tokens were recorded");
  for (int b : bits) {
    if (b < 1 || b > 8) throw Error("calibrate-kvquant: bit width " + std::to_string(b) + " is not in 1..8");
    KvQuantLuts& t = c.luts[b];
    const size_t K = size_t{1} << b;
    t.key_centroids.assign(L * K, 0.0f);
    t.key_qnorm = t.value_centroids = t.value_qnorm = t.key_centroids;
  }
  c.key_lo.assign(static_cast<size_t>(L) * D, 0.0f);
  c.key_hi = c.key_lo;
  const int64_t N = c.n_tokens;
  const int kside = nuq_outliers_per_side(outliers_, N);
  if (2 * kside >= N) throw Error("calibrate-kvquant: too few tokens for outliers=" + std::to_string(outliers_));
  ThreadPool::global().parallel_for(L, [&](int64_t l0, int64_t l1, int) {
    std::vector<float> col(N);
    std::vector<NuqRange> ranges(D);
    for (int64_t l = l0; l < l1; ++l) {
      const std::vector<uint16_t>& K = keys_[l];
      for (int ch = 0; ch < D; ++ch) {
        for (int64_t t = 0; t < N; ++t) col[t] = fp16_to_float(K[t * D + ch]);
        std::nth_element(col.begin(), col.begin() + kside, col.end());
        const float lo = col[kside];
        std::nth_element(col.begin() + kside, col.begin() + (N - 1 - kside), col.end());
        const float hi = col[N - 1 - kside];
        c.key_lo[l * D + ch] = lo;
        c.key_hi[l * D + ch] = hi;
        ranges[ch] = nuq_range(lo, hi);
      }
      NuqHistogram kh(hist_bins_);
      for (int64_t t = 0; t < N; ++t) {
        for (int ch = 0; ch < D; ++ch) {
          const float x = fp16_to_float(K[t * D + ch]);
          if (nuq_excess(x, ranges[ch]) <= 1.0f) kh.add(nuq_normalize(x, ranges[ch]));
        }
      }
      for (int b : bits) {
        KvQuantLuts& t = c.luts[b];
        const int64_t Kb = int64_t{1} << b;
        const std::vector<float> kc = kh.kmeans(static_cast<int>(Kb)), kq = kh.qnorm_levels(kc);
        const std::vector<float> vc = value_hist_[l].kmeans(static_cast<int>(Kb)), vq = value_hist_[l].qnorm_levels(vc);
        std::copy(kc.begin(), kc.end(), t.key_centroids.begin() + l * Kb);
        std::copy(kq.begin(), kq.end(), t.key_qnorm.begin() + l * Kb);
        std::copy(vc.begin(), vc.end(), t.value_centroids.begin() + l * Kb);
        std::copy(vq.begin(), vq.end(), t.value_qnorm.begin() + l * Kb);
      }
    }
  });
  return c;
}

}  // namespace cvq
