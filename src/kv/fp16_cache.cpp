#include "kv/fp16_cache.h"

#include "core/error.h"

namespace cvq {
namespace {
WindowPolicy fp16_policy(bool bf16, bool llamacpp) {
  WindowPolicy p;
  p.window = 0;
  p.key_rule = WindowRule::Never;
  p.value_rule = WindowRule::Never;
  p.bf16 = bf16;
  p.llamacpp = llamacpp;
  return p;
}
}  // namespace

Fp16Cache::Fp16Cache(KvGeometry g, bool bf16, KvExecMode mode, bool llamacpp)
    : WindowedCache(std::move(g), fp16_policy(bf16, llamacpp), mode), bf16_(bf16) {
  if (llamacpp && (bf16 || mode == KvExecMode::Simulated)) {
    throw Error("kv method '" + spec() + "': arith=llamacpp is for the native fp16 cache only");
  }
}

std::string Fp16Cache::spec() const {
  std::string s = bf16_ ? "bf16" : "fp16";
  if (mode() == KvExecMode::Simulated) s += ":mode=simulated";
  if (policy().llamacpp) s += ":arith=llamacpp";
  return s;
}

}  // namespace cvq
