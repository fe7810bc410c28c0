// The method registry: one line per KV-cache method.
#include "commvq/kv_methods.h"

#include <functional>
#include <map>

#include "commvq/commvq_cache.h"
#include "core/error.h"
#include "kv/fp16_cache.h"
#include "kv/kivi_cache.h"
#include "kv/kv_cache.h"
#include "kv/kv_spec.h"
#include "kv/kvquant_cache.h"
#include "kv/qblock_cache.h"

namespace cvq {
namespace {
using Factory = std::function<std::unique_ptr<KvCache>(const KvSpec&, const KvGeometry&)>;

const std::map<std::string, Factory>& registry() {
  static const std::map<std::string, Factory> r = {
      {"commvq", [](const KvSpec& s,
                    const KvGeometry& g) { return std::make_unique<CommvqCache>(g, CommvqOptions::parse(s, g)); }},
      {"fp16",
       [](const KvSpec& s, const KvGeometry& g) {
         s.allow_only({"mode", "arith"});
         const std::string arith = s.get("arith", "native");
         if (arith != "native" && arith != "llamacpp") {
           throw Error("kv method '" + s.text() + "': arith must be native or llamacpp, got '" + arith + "'");
         }
         return std::make_unique<Fp16Cache>(g, false, parse_kv_exec_mode(s), arith == "llamacpp");
       }},
      {"bf16",
       [](const KvSpec& s, const KvGeometry& g) {
         s.allow_only({"mode"});
         return std::make_unique<Fp16Cache>(g, true, parse_kv_exec_mode(s));
       }},
      {"kivi",
       [](const KvSpec& s, const KvGeometry& g) { return std::make_unique<KiviCache>(g, KiviOptions::parse(s, g)); }},
      {"kvquant", [](const KvSpec& s,
                     const KvGeometry& g) { return std::make_unique<KvQuantCache>(g, KvQuantOptions::parse(s, g)); }},
      {"q8_0",
       [](const KvSpec& s, const KvGeometry& g) {
         s.allow_only({"mode"});
         return std::make_unique<QBlockCache>(g, QBlockKind::Q8_0, parse_kv_exec_mode(s));
       }},
      {"q4_0",
       [](const KvSpec& s, const KvGeometry& g) {
         s.allow_only({"mode"});
         return std::make_unique<QBlockCache>(g, QBlockKind::Q4_0, parse_kv_exec_mode(s));
       }},
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
