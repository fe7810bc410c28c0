#include "kv/shared_prefill_cache.h"

#include <map>

#include "core/error.h"

namespace cvq {

SharedPrefillCache::SharedPrefillCache(std::vector<KvCache*> members)
    : KvCache(members.empty() ? KvGeometry{} : members.front()->geometry()), members_(std::move(members)) {
  if (members_.empty()) throw Error("shared prefill: no caches");
  const std::string sig = members_.front()->prefill_signature();
  for (KvCache* m : members_) {
    if (m->prefill_signature().empty() || m->prefill_signature() != sig) {
      throw Error("shared prefill: '" + m->spec() + "' does not attend like '" + members_.front()->spec() +
                  "' during a prefill (signatures '" + m->prefill_signature() + "' and '" + sig + "')");
    }
    for (int l = 0; l < geo_.n_layers; ++l)
      if (m->n_tokens(l) != 0) throw Error("shared prefill: cache '" + m->spec() + "' is not empty");
  }
}

void SharedPrefillCache::append(int layer, const float* k_pre_rope, const float* v, const int32_t* positions, int n) {
  for (KvCache* m : members_) m->append(layer, k_pre_rope, v, positions, n);
}

void SharedPrefillCache::attend(int layer, const float* q_post_rope, const int32_t* positions, int n, float* out) {
  members_.front()->attend(layer, q_post_rope, positions, n, out);
}

size_t SharedPrefillCache::bytes() const {
  size_t b = 0;
  for (const KvCache* m : members_) b += m->bytes();
  return b;
}

void SharedPrefillCache::clear() {
  for (KvCache* m : members_) m->clear();
}

std::string SharedPrefillCache::spec() const {
  std::string s = "shared(";
  for (size_t i = 0; i < members_.size(); ++i) s += (i ? " | " : "") + members_[i]->spec();
  return s + ")";
}

void SharedPrefillCache::set_bf16_prefill_attention(bool on) {
  for (KvCache* m : members_) m->set_bf16_prefill_attention(on);
}

std::vector<std::vector<size_t>> prefill_groups(const std::vector<KvCache*>& caches) {
  std::vector<std::vector<size_t>> groups;
  std::map<std::string, size_t> by_signature;
  for (size_t i = 0; i < caches.size(); ++i) {
    const std::string sig = caches[i]->prefill_signature();
    if (sig.empty()) {
      groups.push_back({i});
      continue;
    }
    auto [it, inserted] = by_signature.emplace(sig, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

}  // namespace cvq
