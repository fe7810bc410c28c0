#include "kv/qblock_cache.h"

#include "core/error.h"
#include "kernels/cpu/quant_blocks.h"

namespace cvq {
namespace {
WindowPolicy qblock_policy() {
  WindowPolicy p;
  p.window = 0;  // no full-precision window
  p.key_rule = WindowRule::Blocks;
  p.value_rule = WindowRule::Blocks;
  return p;
}
const char* kind_name(QBlockKind k) { return k == QBlockKind::Q8_0 ? "q8_0" : "q4_0"; }
}  // namespace

QBlockCache::QBlockCache(KvGeometry g, QBlockKind kind, KvExecMode mode)
    : WindowedCache(std::move(g), qblock_policy(), mode),
      kind_(kind),
      k_(geo_.n_layers, std::vector<std::vector<uint8_t>>(geo_.n_head_kv)),
      v_(k_) {
  if (geo_.head_dim % 32 != 0) {
    throw Error(std::string("KV method '") + kind_name(kind) + "': head dim " + std::to_string(geo_.head_dim) +
                " is not a multiple of the block size 32");
  }
  head_bytes_ = static_cast<int64_t>(geo_.head_dim / 32) * qblock_bytes(kind);
}

std::string QBlockCache::spec() const {
  return std::string(kind_name(kind_)) + (mode() == KvExecMode::Simulated ? ":mode=simulated" : "");
}

void QBlockCache::quantize_rows(const float* x, int n, std::vector<std::vector<uint8_t>>& dst) const {
  const int D = geo_.kv_dim(), d = geo_.head_dim;
  for (int h = 0; h < geo_.n_head_kv; ++h) {
    std::vector<uint8_t>& hv = dst[h];
    const size_t at = hv.size();
    hv.resize(at + static_cast<size_t>(n) * head_bytes_);
    for (int t = 0; t < n; ++t) {
      const float* src = x + static_cast<int64_t>(t) * D + h * d;
      uint8_t* out = hv.data() + at + static_cast<size_t>(t) * head_bytes_;
      if (kind_ == QBlockKind::Q8_0) {
        quantize_row_q8_0(src, out, d);
      } else {
        quantize_row_q4_0(src, out, d);
      }
    }
  }
}

void QBlockCache::dequantize_rows(const std::vector<std::vector<uint8_t>>& src, int64_t first, int n,
                                  float* out) const {
  const int D = geo_.kv_dim(), d = geo_.head_dim;
  const GgmlType t = kind_ == QBlockKind::Q8_0 ? GgmlType::Q8_0 : GgmlType::Q4_0;
  for (int h = 0; h < geo_.n_head_kv; ++h)
    for (int i = 0; i < n; ++i)
      dequantize_row(t, src[h].data() + (first + i) * head_bytes_, out + static_cast<int64_t>(i) * D + h * d, d);
}

void QBlockCache::compress_keys(int layer, int64_t, int n, const float* k, const int32_t*) {
  quantize_rows(k, n, k_[layer]);
}
void QBlockCache::compress_values(int layer, int64_t, int n, const float* v, const int32_t*) {
  quantize_rows(v, n, v_[layer]);
}
void QBlockCache::decode_keys(int layer, int64_t first, int n, float* out) const {
  dequantize_rows(k_[layer], first, n, out);
}
void QBlockCache::decode_values(int layer, int64_t first, int n, float* out) const {
  dequantize_rows(v_[layer], first, n, out);
}

void QBlockCache::native_scores(int layer, int kv_head, const float* q, int rows, float scale, int64_t t0, int64_t t1,
                                float* scores, int64_t ld) const {
  const uint8_t* base = k_[layer][kv_head].data() + t0 * head_bytes_;
  qblock_scores(kind_, q, rows, geo_.head_dim, base, head_bytes_, t1 - t0, scale, scores, ld);
}

void QBlockCache::native_values(int layer, int kv_head, const float* p, int64_t ld, int rows, int64_t t0, int64_t t1,
                                float* out) const {
  const uint8_t* base = v_[layer][kv_head].data() + t0 * head_bytes_;
  qblock_values(kind_, p, ld, rows, geo_.head_dim, base, head_bytes_, t1 - t0, out);
}

size_t QBlockCache::compressed_bytes(int layer) const {
  size_t b = 0;
  for (int h = 0; h < geo_.n_head_kv; ++h) b += k_[layer][h].size() + v_[layer][h].size();
  return b;
}

size_t QBlockCache::compressed_bytes_for(int64_t n_keys, int64_t n_values) const {
  return static_cast<size_t>((n_keys + n_values) * head_bytes_ * geo_.n_head_kv);
}

void QBlockCache::clear_compressed() {
  for (auto* store : {&k_, &v_})
    for (auto& layer : *store)
      for (auto& head : layer) head.clear();
}

}  // namespace cvq
