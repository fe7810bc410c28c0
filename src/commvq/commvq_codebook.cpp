#include "commvq/commvq_codebook.h"

#include <mutex>

#include <map>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/safetensors.h"

namespace cvq {
namespace {

constexpr const char* kFormat = "commvq-bench codebook v1";

std::string layer_prefix(int layer) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "layer_%02d.", layer);
  return buf;
}

void write_layer(SafetensorsWriter& w, int layer, const KeyLayerCodebook& keys, const ValueCodec& values) {
  const std::string p = layer_prefix(layer);
  for (int h = 0; h < keys.n_kv; ++h) keys.heads[h].write_tensors(w, p + "keys.head_" + std::to_string(h));
  if (keys.centered()) w.add_f32(p + "keys.mean", {static_cast<int64_t>(keys.mean.size())}, keys.mean);
  values.save(w, p + "values.");
}

KeyLayerCodebook read_layer_keys(const SafetensorsReader& r, int layer, int n_kv, int head_dim, RopeLayout layout) {
  KeyLayerCodebook k;
  k.n_kv = n_kv;
  k.head_dim = head_dim;
  const std::string p = layer_prefix(layer);
  for (int h = 0; h < n_kv; ++h)
    k.heads.push_back(KeyCodebook::read_tensors(r, p + "keys.head_" + std::to_string(h), head_dim, layout));
  if (r.has(p + "keys.mean")) {
    const auto& t = r.tensor(p + "keys.mean", StDtype::F32, {static_cast<int64_t>(n_kv) * head_dim});
    k.mean.resize(static_cast<size_t>(n_kv) * head_dim);
    std::memcpy(k.mean.data(), t.data, k.mean.size() * sizeof(float));
  }
  return k;
}

}  // namespace

CommvqModelIdentity CommvqModelIdentity::of(const KvGeometry& g) {
  CommvqModelIdentity m;
  m.name = g.model_name;
  m.n_layers = g.n_layers;
  m.n_head = g.n_head;
  m.n_head_kv = g.n_head_kv;
  m.head_dim = g.head_dim;
  m.rope_layout = g.rope.layout();
  m.rope_theta = g.rope.theta();
  return m;
}

nlohmann::json CommvqModelIdentity::to_json() const {
  return {{"name", name},
          {"n_layers", n_layers},
          {"n_head", n_head},
          {"n_head_kv", n_head_kv},
          {"head_dim", head_dim},
          {"rope_layout", rope_layout == RopeLayout::Adjacent ? "adjacent" : "half-split"},
          {"rope_theta", rope_theta}};
}

CommvqModelIdentity CommvqModelIdentity::from_json(const nlohmann::json& j) {
  CommvqModelIdentity m;
  m.name = j.at("name").get<std::string>();
  m.n_layers = j.at("n_layers").get<int>();
  m.n_head = j.at("n_head").get<int>();
  m.n_head_kv = j.at("n_head_kv").get<int>();
  m.head_dim = j.at("head_dim").get<int>();
  m.rope_layout = j.at("rope_layout").get<std::string>() == "adjacent" ? RopeLayout::Adjacent : RopeLayout::HalfSplit;
  m.rope_theta = j.at("rope_theta").get<double>();
  return m;
}

std::string CommvqModelIdentity::mismatch(const CommvqModelIdentity& o) const {
  std::string out;
  auto diff = [&](const char* what, const std::string& a, const std::string& b) {
    if (a != b) out += (out.empty() ? "" : ", ") + std::string(what) + " " + a + " vs " + b;
  };
  diff("model", name, o.name);
  diff("layers", std::to_string(n_layers), std::to_string(o.n_layers));
  diff("heads", std::to_string(n_head), std::to_string(o.n_head));
  diff("KV heads", std::to_string(n_head_kv), std::to_string(o.n_head_kv));
  diff("head dim", std::to_string(head_dim), std::to_string(o.head_dim));
  diff("RoPE layout", rope_layout == RopeLayout::Adjacent ? "adjacent" : "half-split",
       o.rope_layout == RopeLayout::Adjacent ? "adjacent" : "half-split");
  diff("RoPE theta", std::to_string(rope_theta), std::to_string(o.rope_theta));
  return out;
}

void CommvqCodebook::save(const std::string& path) const {
  SafetensorsWriter w;
  nlohmann::json meta = {{"format", kFormat},        {"model", model.to_json()}, {"key_bits", key_bits},
                         {"value_bits", value_bits}, {"stages", stages},         {"structured", structured},
                         {"training", training},     {"layers", layers}};
  w.set_metadata("commvq", meta.dump());
  for (int l = 0; l < model.n_layers; ++l) write_layer(w, l, keys[l], values[l]);
  w.write(path);
}

CommvqCodebook CommvqCodebook::load(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "codebook file not found (make one with `commvq-bench train`)");
  SafetensorsReader r(path);
  auto it = r.metadata().find("commvq");
  if (it == r.metadata().end()) fail_file(path, "not a commvq-bench codebook (no 'commvq' metadata)");
  CommvqCodebook cb;
  try {
    auto meta = nlohmann::json::parse(it->second);
    if (meta.at("format").get<std::string>() != kFormat)
      fail_file(path, "unknown codebook format " + meta.at("format").dump());
    cb.model = CommvqModelIdentity::from_json(meta.at("model"));
    cb.key_bits = meta.at("key_bits").get<int>();
    cb.value_bits = meta.at("value_bits").get<int>();
    cb.stages = meta.at("stages").get<int>();
    cb.structured = meta.at("structured").get<bool>();
    cb.training = meta.value("training", nlohmann::json::object());
    cb.layers = meta.value("layers", nlohmann::json::array());
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("codebook metadata is malformed: ") + e.what());
  }
  try {
    for (int l = 0; l < cb.model.n_layers; ++l) {
      cb.keys.push_back(read_layer_keys(r, l, cb.model.n_head_kv, cb.model.head_dim, cb.model.rope_layout));
      cb.values.push_back(ValueCodec::load(r, layer_prefix(l) + "values."));
      if (cb.keys.back().stages() != cb.stages)
        fail_file(path, "layer " + std::to_string(l) + " has a different number of key stages");
    }
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    fail_file(path, msg);
  }
  return cb;
}

void CommvqCodebook::check_compatible(const KvGeometry& g, const std::string& path) const {
  const std::string why = model.mismatch(CommvqModelIdentity::of(g));
  if (!why.empty()) {
    fail_file(path,
              "this codebook was made for another model (" + why + "; codebook vs model) — train one for this model");
  }
}

size_t CommvqCodebook::param_bytes() const {
  size_t b = 0;
  for (const auto& k : keys) {
    for (const auto& h : k.heads) b += h.param_bytes();
    b += k.mean.size() * sizeof(float);
  }
  for (const auto& v : values) {
    b += (v.scale.size() + v.codebook.size()) * sizeof(float);  // what decoding needs; the encoder too:
    b += (v.ln_gamma.size() + v.ln_beta.size() + v.w1.size() + v.b1.size() + v.w2.size() + v.b2.size()) * sizeof(float);
  }
  return b;
}

size_t commvq_param_bytes(const KvGeometry& g, int bits, int stages, bool structured) {
  const size_t d = static_cast<size_t>(g.head_dim);
  const size_t key_stage = structured ? 2 * KeyCodebook::kSubCodes * (d / 2) : KeyCodebook::kCodewords * d;
  ValueCodecShape v;
  v.dim = g.kv_dim();
  v.bits = bits;
  const size_t D = v.dim, I = v.hidden(), L = v.n_logits(), K = v.code_bits();
  const size_t value = 3 * D + I * D + I + L * I + L + K * D;  // scale, LayerNorm, MLP, codebook
  return sizeof(float) * static_cast<size_t>(g.n_layers) *
         (static_cast<size_t>(g.n_head_kv) * static_cast<size_t>(stages) * key_stage + value);
}

void save_commvq_layer(const std::string& path, int layer, const KeyLayerCodebook& keys, const ValueCodec& values,
                       const nlohmann::json& info) {
  SafetensorsWriter w;
  w.set_metadata("commvq_layer", info.dump());
  write_layer(w, layer, keys, values);
  w.write(path);
}

bool load_commvq_layer(const std::string& path, int layer, int n_kv, int head_dim, RopeLayout layout,
                       KeyLayerCodebook* keys, ValueCodec* values, nlohmann::json* info) {
  if (!std::filesystem::exists(path)) return false;
  SafetensorsReader r(path);
  auto it = r.metadata().find("commvq_layer");
  if (it == r.metadata().end()) return false;
  *info = nlohmann::json::parse(it->second);
  *keys = read_layer_keys(r, layer, n_kv, head_dim, layout);
  *values = ValueCodec::load(r, layer_prefix(layer) + "values.");
  return true;
}

std::shared_ptr<const CommvqCodebook> CommvqCodebook::load_shared(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto mtime = ec ? fs::file_time_type{} : fs::last_write_time(path, ec);
  const std::string key =
      path + "|" + std::to_string(ec ? 0 : size) + "|" + std::to_string(mtime.time_since_epoch().count());
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const CommvqCodebook>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = loaded.find(key); it != loaded.end()) return it->second;
  auto cb = std::make_shared<const CommvqCodebook>(load(path));  // throws, naming the file, on bad input
  loaded[key] = cb;
  return cb;
}

CommvqCodebook random_commvq_codebook(const KvGeometry& g, int bits, bool structured, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  CommvqCodebook cb;
  cb.model = CommvqModelIdentity::of(g);
  cb.key_bits = cb.value_bits = bits;
  cb.stages = commvq_key_stages(bits, g.head_dim);
  cb.structured = structured;
  const int h = g.head_dim / 2;
  for (int l = 0; l < g.n_layers; ++l) {
    KeyLayerCodebook k;
    k.n_kv = g.n_head_kv;
    k.head_dim = g.head_dim;
    for (int head = 0; head < g.n_head_kv; ++head) {
      KeyCodebook c(g.head_dim, g.rope.layout(), structured);
      for (int j = 0; j < cb.stages; ++j) {
        const float sd = 0.3f / static_cast<float>(j + 1);
        if (structured) {
          std::vector<float> x(64 * h), y(64 * h);
          for (auto& v : x) v = sd * nd(rng);
          for (auto& v : y) v = sd * nd(rng);
          c.add_stage(x, y);
        } else {
          std::vector<float> cent(4096 * g.head_dim);
          for (auto& v : cent) v = sd * nd(rng);
          c.add_unstructured_stage(cent);
        }
      }
      k.heads.push_back(std::move(c));
    }
    cb.keys.push_back(std::move(k));
    ValueCodec v(g.kv_dim(), bits);
    v.init_random(seed + l);
    std::vector<float> calib(64 * g.kv_dim());
    for (auto& x : calib) x = nd(rng);
    v.fit_scale(calib.data(), 64);
    v.refine_sweeps = 2;  // exercise the compression-time refinement too
    cb.values.push_back(std::move(v));
  }
  return cb;
}

}  // namespace cvq
