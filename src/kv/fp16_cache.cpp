#include "kv/fp16_cache.h"

namespace cvq {
namespace {
WindowPolicy fp16_policy(bool bf16) {
  WindowPolicy p;
  p.window = 0;
  p.key_rule = WindowRule::Never;
  p.value_rule = WindowRule::Never;
  p.bf16 = bf16;
  return p;
}
}  // namespace

Fp16Cache::Fp16Cache(KvGeometry g, bool bf16, KvExecMode mode)
    : WindowedCache(std::move(g), fp16_policy(bf16), mode), bf16_(bf16) {}

std::string Fp16Cache::spec() const {
  std::string s = bf16_ ? "bf16" : "fp16";
  if (mode() == KvExecMode::Simulated) s += ":mode=simulated";
  return s;
}

}  // namespace cvq
