// TokenizerData from GGUF metadata, with llama.cpp's defaults (llama_vocab::impl::load).
#include "core/error.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace cvq {

namespace {

bool bpe_pre_adds_bos(const std::string& pre) {
  for (const char* p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                        "jina-v5-nano", "tekken", "chameleon"}) {
    if (pre == p) return true;
  }
  return false;
}

}  // namespace

TokenizerData tokenizer_data_from_gguf(const GgufFile& f) {
  TokenizerData d;
  d.model = f.get_string("tokenizer.ggml.model");
  d.pre = f.opt_string("tokenizer.ggml.pre").value_or("");
  d.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.has("tokenizer.ggml.scores")) d.scores = f.get_float_array("tokenizer.ggml.scores");
  if (f.has("tokenizer.ggml.token_type")) {
    for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) d.token_types.push_back(static_cast<int32_t>(t));
  }
  const bool spm = d.model == "llama";
  const bool bpe = d.model == "gpt2";
  if (bpe) {
    if (!f.has("tokenizer.ggml.merges")) fail_file(f.path(), "metadata key 'tokenizer.ggml.merges' is missing");
    d.merges = f.get_string_array("tokenizer.ggml.merges");
  }

  const auto n = static_cast<int64_t>(d.tokens.size());
  auto in_range = [n](int64_t id) { return id >= 0 && id < n; };
  if (spm) {
    d.bos_id = 1;
    d.eos_id = 2;
    d.unk_id = 0;
  } else if (bpe) {
    d.bos_id = 11;
    d.eos_id = 11;
  }
  for (int32_t* id : {&d.bos_id, &d.eos_id, &d.unk_id}) {
    if (!in_range(*id)) *id = -1;
  }
  auto read_id = [&](const char* key, int32_t& id) {
    if (const auto v = f.opt_int(key)) {
      if (in_range(*v)) id = static_cast<int32_t>(*v);  // llama.cpp keeps the default for a bad id
    }
  };
  read_id("tokenizer.ggml.bos_token_id", d.bos_id);
  read_id("tokenizer.ggml.eos_token_id", d.eos_id);
  read_id("tokenizer.ggml.eot_token_id", d.eot_id);
  read_id("tokenizer.ggml.unknown_token_id", d.unk_id);
  read_id("tokenizer.ggml.padding_token_id", d.pad_id);

  d.add_bos = spm || (bpe && bpe_pre_adds_bos(d.pre));
  d.add_eos = false;
  d.add_space_prefix = spm;
  if (const auto v = f.opt_bool("tokenizer.ggml.add_bos_token")) d.add_bos = *v;
  if (const auto v = f.opt_bool("tokenizer.ggml.add_eos_token")) d.add_eos = *v;
  if (const auto v = f.opt_bool("tokenizer.ggml.add_space_prefix")) d.add_space_prefix = *v;
  if (const auto v = f.opt_bool(kSpacePrefixFirstOnlyKey)) d.space_prefix_first_only = *v;
  if (const auto v = f.opt_bool(kSpacePrefixMetaspaceKey)) d.space_prefix_metaspace = *v;
  if (spm && f.has("tokenizer.ggml.merges")) d.merges = f.get_string_array("tokenizer.ggml.merges");
  if (f.has(kPreRegexesKey)) d.pre_regexes = f.get_string_array(kPreRegexesKey);
  if (const auto v = f.opt_bool(kIgnoreMergesKey)) d.ignore_merges = *v;
  if (f.has(kExtraEogKey)) {
    for (int64_t id : f.get_int_array(kExtraEogKey)) d.extra_eog_ids.push_back(static_cast<int32_t>(id));
  }
  return d;
}

}  // namespace cvq
