#pragma once
// Reference method: post-RoPE keys and values stored as fp16 (or bf16), 16 bits per element.
// A windowed cache that never compresses: every token lives in the full-precision store, and
// attention runs on it with the fp16 kernels (native) or through float copies (simulated).
#include "kv/windowed_cache.h"

namespace cvq {

class Fp16Cache : public WindowedCache {
 public:
  // llamacpp: attention with llama.cpp's arithmetic (spec "fp16:arith=llamacpp"; see
  // LlamaModel::use_llamacpp_arithmetic).
  Fp16Cache(KvGeometry g, bool bf16, KvExecMode mode = KvExecMode::Native, bool llamacpp = false);
  std::string spec() const override;

 private:
  bool bf16_;
};

}  // namespace cvq
