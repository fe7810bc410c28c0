// Vocabulary set-up, special-token handling, encode dispatch and decoding (llama.cpp llama-vocab.cpp
// semantics). The BPE and SentencePiece algorithms live in tokenizer_bpe.cpp / tokenizer_spm.cpp.
#include "model/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "model/pretokenizer.h"

namespace cvq {

namespace {

bool text_in(const std::string& t, std::initializer_list<std::string_view> list) {
  for (auto s : list) {
    if (t == s) return true;
  }
  return false;
}

// Token texts llama.cpp (llama_vocab::impl::load) treats as end-of-generation, forcing them to
// control type. The FIM lists below are used the same way.
const std::initializer_list<std::string_view> kEotTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",         "<|endoftext|>",     "<|end_of_text|>",
    "<EOT>",      "_<EOT>",     "[EOT]",   "<｜end▁of▁sentence｜>", "<end_of_utterance>"};
const std::initializer_list<std::string_view> kEogTexts = {"<|eot_id|>",
                                                           "<|im_end|>",
                                                           "<|end|>",
                                                           "<|return|>",
                                                           "<|call|>",
                                                           "<|flush|>",
                                                           "<|calls|>",
                                                           "<end_of_turn>",
                                                           "<|endoftext|>",
                                                           "</s>",
                                                           "<|eom_id|>",
                                                           "<EOT>",
                                                           "_<EOT>",
                                                           "[EOT]",
                                                           "[EOS]",
                                                           "<|end_of_text|>",
                                                           "<end_of_utterance>",
                                                           "<eos>",
                                                           "<turn|>",
                                                           "<|tool_response>",
                                                           "<｜end▁of▁sentence｜>",
                                                           "[e~["};
const std::initializer_list<std::string_view> kEomTexts = {"<|eom_id|>"};
const std::initializer_list<std::string_view> kFimPre = {"<|fim_prefix|>",  "<fim-prefix>", "<fim_prefix>",
                                                         "<｜fim▁begin｜>", "<PRE>",        "▁<PRE>",
                                                         "<|code_prefix|>", "<|prefix|>"};
const std::initializer_list<std::string_view> kFimSuf = {"<|fim_suffix|>",  "<fim-suffix>", "<fim_suffix>",
                                                         "<｜fim▁hole｜>",  "<SUF>",        "▁<SUF>",
                                                         "<|code_suffix|>", "<|suffix|>"};
const std::initializer_list<std::string_view> kFimMid = {"<|fim_middle|>",  "<fim-middle>", "<fim_middle>",
                                                         "<｜fim▁end｜>",   "<MID>",        "▁<MID>",
                                                         "<|code_middle|>", "<|middle|>"};
const std::initializer_list<std::string_view> kFimPad = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const std::initializer_list<std::string_view> kFimRep = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                                         "<reponame>"};
const std::initializer_list<std::string_view> kFimSep = {"<|file_sep|>"};

}  // namespace

PretokenizerConfig pretokenizer_config_of(const TokenizerData& d) {
  if (d.pre_regexes.empty()) return pretokenizer_config_for(d.pre);
  PretokenizerConfig pre;
  pre.regexes = d.pre_regexes;
  pre.ignore_merges = d.ignore_merges;
  return pre;
}

// Token texts, scores and attributes (GGUF token types 1..6), and the text -> id map.
void Tokenizer::load_vocab(TokenizerData& d) {
  const size_t n = d.tokens.size();
  tokens_.resize(n);
  token_to_id_.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    TokenInfo& t = tokens_[i];
    t.text = std::move(d.tokens[i]);
    if (t.text.empty()) t.text = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp does
    const auto [it, inserted] = token_to_id_.emplace(t.text, static_cast<int32_t>(i));
    if (!inserted) {
      throw Error("tokenizer: duplicate token '" + t.text + "' has ids " + std::to_string(it->second) + " and " +
                  std::to_string(i));
    }
    t.score = d.scores.empty() ? 0.0f : d.scores[i];
    if (!d.token_types.empty()) {
      switch (d.token_types[i]) {
        case 1:
          t.attr = kAttrNormal;
          break;
        case 2:
          t.attr = kAttrUnknown;
          break;
        case 3:
          t.attr = kAttrControl;
          break;
        case 4:
          t.attr = kAttrUserDefined;
          break;
        case 5:
          t.attr = kAttrUnused;
          break;
        case 6:
          t.attr = kAttrByte;
          break;
        default:
          t.attr = kAttrUndefined;
          break;
      }
    }
  }
}

// End-of-generation and FIM tokens found by their text (as llama.cpp's vocab loader does), plus
// the ids the model's files name; the tokens found are marked control.
void Tokenizer::detect_special_tokens(const std::vector<int32_t>& extra_eog_ids) {
  const size_t n = tokens_.size();
  // Auto-detection by token text, in id order (llama.cpp walks a hash map; the result only differs
  // for vocabularies that hold two candidates for the same role).
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1, eom = -1;
  auto force_control = [](TokenInfo& t) { t.attr |= kAttrControl; };
  const std::pair<int32_t*, std::initializer_list<std::string_view>> by_text[] = {
      {&eot_id_, kEotTexts}, {&eom, kEomTexts},   {&fim_pre, kFimPre}, {&fim_suf, kFimSuf},
      {&fim_mid, kFimMid},   {&fim_pad, kFimPad}, {&fim_rep, kFimRep}, {&fim_sep, kFimSep}};
  for (size_t i = 0; i < n; ++i) {
    TokenInfo& t = tokens_[i];
    for (const auto& [slot, texts] : by_text) {
      if (*slot < 0 && text_in(t.text, texts)) {
        *slot = static_cast<int32_t>(i);
        force_control(t);
      }
    }
  }
  for (int32_t id : {fim_pad, fim_rep, fim_sep}) {
    if (id >= 0) eog_ids_.insert(id);
  }
  for (size_t i = 0; i < n; ++i) {
    TokenInfo& t = tokens_[i];
    if (text_in(t.text, kEogTexts)) {
      eog_ids_.insert(static_cast<int32_t>(i));
      force_control(t);
    }
    // llama.cpp's gpt-oss hack: always render these.
    if (text_in(t.text, {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) t.attr = kAttrUserDefined;
  }
  for (int32_t id : {eos_id_, eot_id_, eom}) {
    if (id >= 0) eog_ids_.insert(id);
  }
  for (int32_t id : extra_eog_ids) {
    if (id >= 0 && static_cast<size_t>(id) < n) eog_ids_.insert(id);
  }
  {
    // o200k_harmony / solar-open: "<|end|>" is not end-of-generation when these are present.
    bool has_return = false, has_call = false, has_flush = false;
    int32_t end_id = -1;
    for (int32_t id : eog_ids_) {
      const std::string& t = tokens_[id].text;
      if (t == "<|return|>")
        has_return = true;
      else if (t == "<|call|>" || t == "<|calls|>")
        has_call = true;
      else if (t == "<|flush|>")
        has_flush = true;
      else if (t == "<|end|>")
        end_id = id;
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
      eog_ids_.erase(end_id);
      tokens_[end_id].attr = kAttrUserDefined;
    }
    // gemma4 / paddleocr: "</s>" is not end-of-generation next to "<|tool_response>".
    bool has_tool_response = false;
    int32_t s_id = -1;
    for (int32_t id : eog_ids_) {
      if (tokens_[id].text == "<|tool_response>")
        has_tool_response = true;
      else if (tokens_[id].text == "</s>")
        s_id = id;
    }
    if (has_tool_response && s_id >= 0) {
      eog_ids_.erase(s_id);
      tokens_[s_id].attr = kAttrNormal;
    }
  }
}

Tokenizer::Tokenizer(TokenizerData d) {
  if (d.model == "llama") {
    spm_ = true;
  } else if (d.model == "gpt2") {
    spm_ = false;
  } else {
    throw Error("unsupported tokenizer model '" + d.model +
                "' (tokenizer.ggml.model); expected \"gpt2\" (byte-level BPE) or \"llama\" (SentencePiece)");
  }
  const size_t n = d.tokens.size();
  if (n == 0) throw Error("tokenizer: the vocabulary (tokenizer.ggml.tokens) is empty");
  if (n > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer: vocabulary too large");
  if (!d.scores.empty() && d.scores.size() < n) {
    throw Error("tokenizer: " + std::to_string(d.scores.size()) + " scores for " + std::to_string(n) + " tokens");
  }
  if (!d.token_types.empty() && d.token_types.size() < n) {
    throw Error("tokenizer: " + std::to_string(d.token_types.size()) + " token types for " + std::to_string(n) +
                " tokens");
  }

  load_vocab(d);

  auto in_range = [n](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n ? id : -1; };
  bos_id_ = in_range(d.bos_id);
  eos_id_ = in_range(d.eos_id);
  eot_id_ = in_range(d.eot_id);
  unk_id_ = in_range(d.unk_id);
  add_bos_ = d.add_bos;
  add_space_prefix_ = d.add_space_prefix;
  space_prefix_first_only_ = d.space_prefix_first_only;
  space_prefix_metaspace_ = d.space_prefix_metaspace;

  if (!spm_) {
    init_bpe(d.merges, pretokenizer_config_of(d));
  } else if (!d.merges.empty()) {
    spm_by_rank_ = true;
    init_merges(d.merges);
  }

  detect_special_tokens(d.extra_eog_ids);

  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].attr & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      special_tokens_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [this](int32_t a, int32_t b) { return tokens_[a].text.size() > tokens_[b].text.size(); });

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) pieces_[i] = compute_piece(static_cast<int32_t>(i));
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) {
    throw Error("token id " + std::to_string(id) + " is out of range (vocabulary has " +
                std::to_string(tokens_.size()) + " tokens)");
  }
}

int32_t Tokenizer::lookup(std::string_view text) const {
  const auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  const int32_t id = lookup(text);
  if (id < 0) return std::nullopt;
  return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return tokens_[id].text;
}

bool Tokenizer::is_end_of_generation(int32_t id) const { return id >= 0 && eog_ids_.count(id) != 0; }

// llama.cpp llama_vocab::impl::token_to_piece with special = true, lstrip = 0.
std::string Tokenizer::compute_piece(int32_t id) const {
  const TokenInfo& t = tokens_[id];
  if (t.attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return t.text;
  if (t.attr & kAttrNormal) {
    if (spm_) {
      std::string out;
      out.reserve(t.text.size());
      for (size_t i = 0; i < t.text.size(); ++i) {
        if (t.text.compare(i, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          i += 2;
        } else {
          out += t.text[i];
        }
      }
      return out;
    }
    std::string out;
    for (uint32_t cp : decode_utf8_lenient(t.text)) {
      const int b = gpt2_codepoint_to_byte(cp);
      if (b >= 0) {
        out += static_cast<char>(b);
      } else {
        std::string utf8;
        append_utf8(utf8, cp);
        out += "[UNK_BYTE_0x";
        for (unsigned char c : utf8) {
          char hex[3];
          std::snprintf(hex, sizeof hex, "%02x", c);
          out += hex;
        }
        out += t.text + "]";
      }
    }
    return out;
  }
  if (t.attr & kAttrByte) {
    const std::string hex = t.text.size() >= 5 ? t.text.substr(3, 2) : std::string();
    return std::string(1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
  }
  return std::string();
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool remove_space = add_space_prefix_;
  for (int32_t id : ids) {
    check_id(id);
    const std::string& piece = pieces_[id];
    if (remove_space && !piece.empty() && piece[0] == ' ') {
      out.append(piece, 1, std::string::npos);
    } else {
      out += piece;
    }
    remove_space = false;
  }
  return out;
}

// llama.cpp tokenizer_st_partition: for each special token (longest first), cut every occurrence
// out of the raw-text fragments that remain.
std::vector<Tokenizer::Fragment> Tokenizer::partition_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    const TokenInfo& info = tokens_[id];
    if (!parse_special && (info.attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& st = info.text;
    if (text.find(st) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const size_t end = f.offset + f.length;
      const std::string_view window = text.substr(0, end);
      size_t pos = f.offset;
      while (true) {
        const size_t m = window.find(st, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back({-1, pos, m - pos});
        next.push_back({id, 0, 0});
        pos = m + st.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_bos) {
    if (bos_id_ < 0) throw Error("tokenizer: a BOS token was requested but the vocabulary has none");
    out.push_back(bos_id_);
  }
  const std::vector<Fragment> frags = partition_special(text, parse_special);
  if (spm_) {
    encode_spm(text, frags, out);
  } else {
    encode_bpe(text, frags, out);
  }
  return out;
}

}  // namespace cvq
