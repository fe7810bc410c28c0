#include "collect/activation_recorder.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {

// ---------------------------------------------------------------------------------------------
// ActivationRecorder

ActivationRecorder::ActivationRecorder(const KvGeometry& geo, StDtype dtype)
    : geo_(geo), dtype_(dtype), layers_(geo.n_layers) {
  if (dtype != StDtype::F16 && dtype != StDtype::F32) throw Error("activation recorder: dtype must be F16 or F32");
  observer_ = [this](int layer, const float* q, const float* k, const float* v, const int32_t* positions, int n) {
    if (layer < 0 || layer >= static_cast<int>(layers_.size())) return;
    Layer& L = layers_[layer];
    append(L.q, q, static_cast<int64_t>(n) * geo_.q_dim());
    append(L.k, k, static_cast<int64_t>(n) * geo_.kv_dim());
    append(L.v, v, static_cast<int64_t>(n) * geo_.kv_dim());
    L.positions.insert(L.positions.end(), positions, positions + n);
    L.seq_ids.insert(L.seq_ids.end(), static_cast<size_t>(n), seq_id_);
  };
}

void ActivationRecorder::append(std::vector<uint8_t>& dst, const float* src, int64_t count) const {
  const size_t old = dst.size();
  if (dtype_ == StDtype::F32) {
    dst.resize(old + static_cast<size_t>(count) * 4);
    std::memcpy(dst.data() + old, src, static_cast<size_t>(count) * 4);
  } else {
    dst.resize(old + static_cast<size_t>(count) * 2);
    for (int64_t i = 0; i < count; ++i) {
      const uint16_t h = float_to_fp16(src[i]);
      std::memcpy(dst.data() + old + 2 * i, &h, 2);
    }
  }
}

std::vector<float> ActivationRecorder::to_float(const std::vector<uint8_t>& src) const {
  const size_t es = st_dtype_size(dtype_);
  std::vector<float> out(src.size() / es);
  if (dtype_ == StDtype::F32) {
    std::memcpy(out.data(), src.data(), src.size());
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, src.data() + 2 * i, 2);
      out[i] = fp16_to_float(h);
    }
  }
  return out;
}

std::vector<float> ActivationRecorder::keys(int layer) const { return to_float(layers_[layer].k); }
std::vector<float> ActivationRecorder::values(int layer) const { return to_float(layers_[layer].v); }
std::vector<float> ActivationRecorder::queries(int layer) const { return to_float(layers_[layer].q); }

void ActivationRecorder::write_layer(int layer, const std::string& path) const {
  const Layer& L = layers_[layer];
  const int64_t n = static_cast<int64_t>(L.positions.size());
  SafetensorsWriter w;
  w.add("keys", dtype_, {n, geo_.kv_dim()}, L.k.data(), L.k.size());
  w.add("values", dtype_, {n, geo_.kv_dim()}, L.v.data(), L.v.size());
  w.add("queries", dtype_, {n, geo_.q_dim()}, L.q.data(), L.q.size());
  w.add_i32("positions", {n}, L.positions);
  w.add_i32("seq_ids", {n}, L.seq_ids);
  w.set_metadata("layer", std::to_string(layer));
  w.write(path);
}

void ActivationRecorder::clear() {
  for (auto& L : layers_) L = Layer{};
}

// ---------------------------------------------------------------------------------------------
// Planning

}  // namespace cvq
