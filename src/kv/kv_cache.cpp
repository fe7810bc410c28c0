#include "kv/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace cvq {

size_t KvCache::projected_bytes(int64_t) const {
  throw Error("KV method '" + spec() + "' does not report projected bytes");
}

void visible_counts(const std::vector<int32_t>& cached_positions, const int32_t* q_positions, int n, int32_t* out) {
  for (int i = 0; i < n; ++i) {
    auto it = std::upper_bound(cached_positions.begin(), cached_positions.end(), q_positions[i]);
    out[i] = static_cast<int32_t>(it - cached_positions.begin());
  }
}

}  // namespace cvq
