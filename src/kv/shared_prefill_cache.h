#pragma once
// One prefill for several KV methods: a KvCache that hands every appended token to each member cache
// and answers attention from the first. It is valid only while the members' prefill attention is the
// same arithmetic — empty caches with one prefill_signature() (kv/kv_cache.h) — which the constructor
// checks; after the prefill every member holds exactly what its own prefill would have left in it,
// and decoding goes on per member.
#include <vector>

#include "kv/kv_cache.h"

namespace cvq {

class SharedPrefillCache final : public KvCache {
 public:
  // Throws when a member is not empty, a signature is empty, or two signatures differ.
  explicit SharedPrefillCache(std::vector<KvCache*> members);

  void append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) override;
  void attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) override;
  size_t bytes() const override;
  int64_t n_tokens(int layer) const override { return members_.front()->n_tokens(layer); }
  void clear() override;
  std::string spec() const override;
  void set_bf16_prefill_attention(bool on) override;
  void settle_layer(int layer) override {
    for (KvCache* m : members_) m->settle_layer(layer);
  }

 private:
  std::vector<KvCache*> members_;
};

// Groups caches by prefill signature, in order of first appearance: indices into `caches`. A cache
// with an empty signature is a group of its own.
std::vector<std::vector<size_t>> prefill_groups(const std::vector<KvCache*>& caches);

}  // namespace cvq
