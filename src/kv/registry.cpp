// The method registry: one line per KV-cache method.
#include <functional>
#include <map>

#include "core/error.h"
#include "kv/fp16_cache.h"
#include "kv/kv_cache.h"
#include "kv/kv_spec.h"

namespace cvq {
namespace {
using Factory = std::function<std::unique_ptr<KvCache>(const KvSpec&, const KvGeometry&)>;

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> r = {
      {"fp16", [](const KvSpec& s, const KvGeometry& g) { s.allow_only({}); return std::make_unique<Fp16Cache>(g, false); }},
      {"bf16", [](const KvSpec& s, const KvGeometry& g) { s.allow_only({}); return std::make_unique<Fp16Cache>(g, true); }},
  };
  return r;
}
}  // namespace

std::vector<std::string> kv_method_names() {
  std::vector<std::string> names;
  for (const auto& [k, v] : registry()) names.push_back(k);
  return names;
}

std::unique_ptr<KvCache> make_kv_cache(const std::string& spec_text, const KvGeometry& geo) {
  KvSpec spec(spec_text);
  auto it = registry().find(spec.method());
  if (it == registry().end()) {
    std::string known;
    for (const auto& n : kv_method_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown KV method '" + spec.method() + "' in spec '" + spec_text + "' (known: " + known + ")");
  }
  return it->second(spec, geo);
}

}  // namespace cvq
