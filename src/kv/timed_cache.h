#pragma once
// A KvCache that forwards to another and adds up the wall time of append() and attend() — how
// benchmarks report attention's share of a forward pass and the cost of compression.
#include <chrono>
#include <memory>

#include "core/stopwatch.h"
#include "kv/kv_cache.h"

namespace cvq {

class TimedKvCache final : public KvCache {
 public:
  explicit TimedKvCache(std::unique_ptr<KvCache> inner) : KvCache(inner->geometry()), inner_(std::move(inner)) {}

  void append(int layer, const float* k, const float* v, const int32_t* positions, int n) override {
    const auto t0 = Clock::now();
    inner_->append(layer, k, v, positions, n);
    append_s_ += seconds_since(t0);
  }
  void attend(int layer, const float* q, const int32_t* positions, int n, float* out) override {
    const auto t0 = Clock::now();
    inner_->attend(layer, q, positions, n, out);
    attend_s_ += seconds_since(t0);
  }
  size_t bytes() const override { return inner_->bytes(); }
  size_t projected_bytes(int64_t n) const override { return inner_->projected_bytes(n); }
  int64_t n_tokens(int layer) const override { return inner_->n_tokens(layer); }
  void clear() override { inner_->clear(); }
  std::string spec() const override { return inner_->spec(); }
  bool llamacpp_attention() const override { return inner_->llamacpp_attention(); }
  void set_bf16_prefill_attention(bool on) override { inner_->set_bf16_prefill_attention(on); }
  void settle_layer(int layer) override {  // compression: counted with append
    const auto t0 = Clock::now();
    inner_->settle_layer(layer);
    append_s_ += seconds_since(t0);
  }

  KvCache& inner() { return *inner_; }
  double append_seconds() const { return append_s_; }  // includes compression (it happens in append)
  double attend_seconds() const { return attend_s_; }
  void reset_timers() { append_s_ = attend_s_ = 0.0; }

 private:
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<KvCache> inner_;
  double append_s_ = 0.0, attend_s_ = 0.0;
};

}  // namespace cvq
