#pragma once
// The KV methods this project compares, by name: the baselines of kv/ and CommVQ (this folder).
// It sits here because this is the lowest layer that knows them all (docs/ARCHITECTURE.md §1).
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"

namespace cvq {

// Builds a cache from a spec string such as "fp16" or "kivi:k=2,v=2,group=32,window=128".
// Unknown methods or options throw an Error that names the spec and lists what is known.
std::unique_ptr<KvCache> make_kv_cache(const std::string& spec, const KvGeometry& geo);
std::vector<std::string> kv_method_names();

}  // namespace cvq
