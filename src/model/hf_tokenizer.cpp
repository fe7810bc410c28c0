#include "model/hf_tokenizer.h"

#include <filesystem>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// GGUF token types (llama.cpp's llama_token_type).
constexpr int64_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;

// One pre-tokenizer node as regexes (see the header for what each type means).
void pre_tokenizer_regexes(const json& node, const std::string& path, std::vector<std::string>& out) {
  if (node.is_null()) return;
  const std::string type = node.value("type", std::string());
  if (type == "Sequence") {
    for (const json& p : node.value("pretokenizers", json::array())) pre_tokenizer_regexes(p, path, out);
  } else if (type == "ByteLevel") {
    if (node.value("add_prefix_space", false)) {
      fail_file(path, "pre_tokenizer ByteLevel with add_prefix_space = true is not supported");
    }
    if (node.value("use_regex", true)) out.push_back(gpt2_pretokenizer_regex());
  } else if (type == "Split") {
    const json& pattern = node.value("pattern", json::object());
    if (!pattern.contains("Regex") || !pattern["Regex"].is_string()) {
      fail_file(path, "pre_tokenizer Split without a Regex pattern is not supported");
    }
    const std::string behavior = node.value("behavior", std::string());
    if (behavior != "Isolated" || node.value("invert", false)) {
      fail_file(path, "pre_tokenizer Split with behavior '" + behavior +
                          "' is not supported (supported: Isolated, not inverted)");
    }
    out.push_back(pattern["Regex"].get<std::string>());
  } else if (type == "Digits") {
    out.push_back(node.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
  } else {
    fail_file(path,
              "pre_tokenizer type '" + type + "' is not supported (supported: ByteLevel, Split, Digits, Sequence)");
  }
}

void check_normalizer(const json& node, const std::string& path) {
  if (node.is_null()) return;
  const std::string type = node.value("type", std::string());
  if (type == "NFC") return;
  if (type == "Sequence" && node.value("normalizers", json::array()).empty()) return;
  fail_file(path, "normalizer '" + type + "' is not supported for a byte-level BPE tokenizer (supported: none, NFC)");
}

std::vector<std::string> merge_strings(const json& merges, const std::string& path) {
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());  // tokenizers >= 0.20
    } else {
      fail_file(path, "model.merges holds an entry that is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

// "<s>" or {"content": "<s>", ...} or null.
std::optional<std::string> token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return std::nullopt;
}

std::vector<int64_t> id_list(const json& j) {
  std::vector<int64_t> ids;
  if (j.is_number_integer()) ids.push_back(j.get<int64_t>());
  if (j.is_array()) {
    for (const json& x : j)
      if (x.is_number_integer()) ids.push_back(x.get<int64_t>());
  }
  return ids;
}

json optional_json(const std::string& path) { return fs::exists(path) ? read_json_file(path) : json::object(); }

// Whether the post-processor puts a special token before the text (LLaMA-3's "<|begin_of_text|> $A").
std::optional<std::string> post_processor_bos(const json& node) {
  if (!node.is_object()) return std::nullopt;
  const std::string type = node.value("type", std::string());
  if (type == "Sequence") {
    for (const json& p : node.value("processors", json::array())) {
      if (auto t = post_processor_bos(p)) return t;
    }
  }
  if (type == "TemplateProcessing") {
    const json single = node.value("single", json::array());
    if (!single.empty() && single[0].contains("SpecialToken"))
      return single[0]["SpecialToken"].value("id", std::string());
  }
  return std::nullopt;
}

std::string chat_template_text(const std::string& dir, const json& tok_config, const std::string& config_path) {
  const std::string jinja = dir + "/chat_template.jinja";
  if (fs::exists(jinja)) return read_file(jinja);
  const json t = tok_config.value("chat_template", json());
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {  // [{"name": "default", "template": "..."}, ...]
    for (const json& e : t) {
      if (e.value("name", std::string()) == "default" && e.contains("template"))
        return e["template"].get<std::string>();
    }
    fail_file(config_path, "chat_template is a list without a 'default' entry");
  }
  return {};
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  int64_t id_of(const std::string& text, const std::string& who) const {
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == text) return static_cast<int64_t>(i);
    fail_file(who, "names token '" + text + "', which tokenizer.json does not have");
  }
};

// Tokens by id: the vocabulary, then the added tokens (which may extend it), padded to n_vocab
// (0: the tokenizer's own size).
Vocab read_vocab(const json& tj, const std::string& path, int64_t n_vocab) {
  Vocab v;
  auto place = [&](int64_t id, const std::string& text, int64_t t) {
    if (id < 0 || (n_vocab > 0 && id >= n_vocab) || id >= (int64_t{1} << 24)) {
      fail_file(path, "token '" + text + "' has id " + std::to_string(id) + ", outside the model's vocabulary of " +
                          std::to_string(n_vocab) + " (config.json vocab_size)");
    }
    if (static_cast<size_t>(id) >= v.tokens.size()) {
      v.tokens.resize(static_cast<size_t>(id) + 1);
      v.types.resize(static_cast<size_t>(id) + 1, 0);
    }
    v.tokens[static_cast<size_t>(id)] = text;
    v.types[static_cast<size_t>(id)] = t;
  };
  for (const auto& [text, id] : tj.at("model").at("vocab").items()) place(id.get<int64_t>(), text, kNormal);
  for (const json& a : tj.value("added_tokens", json::array())) {
    place(a.at("id").get<int64_t>(), a.at("content").get<std::string>(),
          a.value("special", false) ? kControl : kUserDefined);
  }
  if (n_vocab > 0) {
    v.tokens.resize(static_cast<size_t>(n_vocab));
    v.types.resize(static_cast<size_t>(n_vocab), 0);
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == 0) {
      v.tokens[i] = "[PAD" + std::to_string(i) + "]";
      v.types[i] = kUnused;
    }
  }
  return v;
}

// BOS/EOS: tokenizer_config.json names them; generation_config.json and config.json give ids. BOS is
// added when tokenizer_config.json says so, else when the post-processor puts a token first.
void add_special_ids(const std::string& dir, const json& tj, const Vocab& v, std::map<std::string, GgufValue>& md) {
  const std::string tok_config_path = dir + "/tokenizer_config.json";
  const json tok_config = optional_json(tok_config_path);
  const json gen_config = optional_json(dir + "/generation_config.json");
  const json config = optional_json(dir + "/config.json");
  auto first_id = [&](const char* key) -> std::optional<int64_t> {
    for (const json* j : {&gen_config, &config}) {
      const auto ids = id_list(j->value(key, json()));
      if (!ids.empty()) return ids[0];
    }
    return std::nullopt;
  };
  std::optional<int64_t> bos, eos;
  if (auto t = token_content(tok_config.value("bos_token", json()))) bos = v.id_of(*t, tok_config_path);
  if (auto t = token_content(tok_config.value("eos_token", json()))) eos = v.id_of(*t, tok_config_path);
  if (!bos) bos = first_id("bos_token_id");
  if (!eos) eos = first_id("eos_token_id");
  bool add_bos = false;
  if (tok_config.contains("add_bos_token") && tok_config["add_bos_token"].is_boolean()) {
    add_bos = tok_config["add_bos_token"].get<bool>();
  } else if (auto t = post_processor_bos(tj.value("post_processor", json()))) {
    add_bos = true;
    if (!bos) bos = v.id_of(*t, dir + "/tokenizer.json");
  }
  if (bos) md["tokenizer.ggml.bos_token_id"] = GgufValue::of(*bos);
  if (eos) md["tokenizer.ggml.eos_token_id"] = GgufValue::of(*eos);
  const std::vector<int64_t> eog = id_list(gen_config.value("eos_token_id", json()));
  if (!eog.empty()) md[kExtraEogKey] = GgufValue::of(eog);
  md["tokenizer.ggml.add_bos_token"] = GgufValue::of_bool(add_bos);
  md["tokenizer.ggml.add_eos_token"] = GgufValue::of_bool(false);
  const std::string chat = chat_template_text(dir, tok_config, tok_config_path);
  if (!chat.empty()) md["tokenizer.chat_template"] = GgufValue::of(chat);
}

bool has_type(const json& node, const char* type, const char* list_key) {
  if (!node.is_object()) return false;
  if (node.value("type", std::string()) == type) return true;
  for (const json& n : node.value(list_key, json::array()))
    if (has_type(n, type, list_key)) return true;
  return false;
}

// Byte-level BPE: GPT-2's byte alphabet, the pre-tokenizer's regexes.
void add_byte_level(const json& tj, const std::string& path, std::map<std::string, GgufValue>& md) {
  check_normalizer(tj.value("normalizer", json()), path);
  std::vector<std::string> regexes;
  pre_tokenizer_regexes(tj.value("pre_tokenizer", json()), path, regexes);
  if (regexes.empty()) fail_file(path, "the pre_tokenizer splits nothing (a byte-level BPE tokenizer needs one)");
  md["tokenizer.ggml.model"] = GgufValue::of(std::string("gpt2"));
  md["tokenizer.ggml.pre"] = GgufValue::of(std::string("tokenizer.json"));
  md[kPreRegexesKey] = GgufValue::of(regexes);
  md[kIgnoreMergesKey] = GgufValue::of_bool(tj.at("model").value("ignore_merges", false));
}

// SentencePiece-style BPE (LLaMA-2, Mistral): spaces as "▁", a "▁" prefix, <0xXX> byte fallback.
// Legacy files say so with the normalizer Prepend("▁") + Replace(" ", "▁"); newer ones with a
// Metaspace pre-tokenizer (replacement "▁", split false).
void add_sentencepiece_style(const json& tj, const std::string& path, Vocab& v, std::map<std::string, GgufValue>& md) {
  const json norm = tj.value("normalizer", json()), pre = tj.value("pre_tokenizer", json());
  bool prefix = false, metaspace = false, first_only = false;
  if (!norm.is_null()) {
    const json steps = norm.value("type", std::string()) == "Sequence" ? norm.value("normalizers", json::array())
                                                                       : json::array({norm});
    for (const json& n : steps) {
      const std::string type = n.value("type", std::string());
      if (type == "Prepend" && n.value("prepend", std::string()) == "\xE2\x96\x81") {
        prefix = true;
      } else if (type != "Replace" || n.value("content", std::string()) != "\xE2\x96\x81" ||
                 n.value("pattern", json::object()).value("String", std::string()) != " ") {
        fail_file(path, "normalizer '" + type +
                            "' is not supported for a SentencePiece-style BPE tokenizer "
                            "(supported: Prepend(\"\xE2\x96\x81\"), Replace(\" \" -> \"\xE2\x96\x81\"))");
      }
    }
  }
  if (!pre.is_null()) {
    if (pre.value("type", std::string()) != "Metaspace" || pre.value("split", false) || prefix) {
      fail_file(path, "pre_tokenizer '" + pre.value("type", std::string()) +
                          "' is not supported for a SentencePiece-style BPE tokenizer (supported: none, or Metaspace "
                          "without split and without a Prepend normalizer)");
    }
    metaspace = true;
    const std::string scheme =
        pre.value("prepend_scheme", std::string(pre.value("add_prefix_space", true) ? "always" : "never"));
    prefix = scheme != "never";
    first_only = scheme == "first";
  }
  if (auto unk = token_content(tj.at("model").value("unk_token", json()))) {
    const int64_t id = v.id_of(*unk, path);
    v.types[static_cast<size_t>(id)] = kUnknown;
    md["tokenizer.ggml.unknown_token_id"] = GgufValue::of(id);
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string& t = v.tokens[i];
    if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && v.types[i] == kNormal) v.types[i] = kByte;
  }
  md["tokenizer.ggml.model"] = GgufValue::of(std::string("llama"));
  md["tokenizer.ggml.add_space_prefix"] = GgufValue::of_bool(prefix);
  md[kSpacePrefixMetaspaceKey] = GgufValue::of_bool(metaspace);
  md[kSpacePrefixFirstOnlyKey] = GgufValue::of_bool(first_only);
}

}  // namespace

std::map<std::string, GgufValue> hf_tokenizer_metadata(const std::string& dir, int64_t n_vocab) {
  const std::string path = dir + "/tokenizer.json";
  const json tj = read_json_file(path);
  std::map<std::string, GgufValue> md;
  try {
    const json& model = tj.at("model");
    const std::string type = model.value("type", std::string());
    if (type != "BPE") fail_file(path, "tokenizer model type '" + type + "' is not supported (supported: BPE)");
    Vocab v = read_vocab(tj, path, n_vocab);
    // byte_fallback is moot under a ByteLevel pre-tokenizer (every byte is in the alphabet), as in
    // the folders transformers' GGUF loader writes.
    if (has_type(tj.value("pre_tokenizer", json()), "ByteLevel", "pretokenizers")) {
      add_byte_level(tj, path, md);
    } else if (model.value("byte_fallback", false)) {
      add_sentencepiece_style(tj, path, v, md);
    } else {
      fail_file(path, "a BPE model with neither a ByteLevel pre-tokenizer nor byte_fallback is not supported");
    }
    add_special_ids(dir, tj, v, md);
    md["tokenizer.ggml.merges"] = GgufValue::of(merge_strings(model.at("merges"), path));
    md["tokenizer.ggml.token_type"] = GgufValue::of(v.types);
    md["tokenizer.ggml.tokens"] = GgufValue::of(std::move(v.tokens));
  } catch (const json::exception& e) {
    fail_file(path, std::string("unexpected structure: ") + e.what());
  }
  return md;
}

TokenizerData hf_tokenizer_data(const std::string& dir) {
  const auto file = GgufFile::assemble(dir, hf_tokenizer_metadata(dir, 0), {}, {}, 0);
  return tokenizer_data_from_gguf(*file);
}

}  // namespace cvq
