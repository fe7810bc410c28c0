// Byte-level BPE (llama.cpp llm_tokenizer_bpe_session): pre-tokenize, map bytes through the GPT-2
// table, then merge adjacent symbols lowest-rank first (ties: leftmost first).
#include <queue>

#include "core/error.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "model/tokenizer_merge.h"

namespace cvq {

namespace {

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Symbol {
  int prev, next;
  uint32_t offset, length;
  int32_t id;  // token id of the symbol's text, -1 when it is not a token
};

struct Bigram {
  int32_t rank;
  int left, right;
  uint32_t size;
  int32_t result;
};

struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
  }
};

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

void Tokenizer::init_bpe(const std::vector<std::string>& merges, const PretokenizerConfig& cfg) {
  pretokenizer_ = std::make_unique<Pretokenizer>(cfg.regexes);
  ignore_merges_ = cfg.ignore_merges;
  init_merges(merges);
}

void Tokenizer::init_merges(const std::vector<std::string>& merges) {
  merges_by_id_.reserve(merges.size() * 2);
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    std::string first, second;
    const size_t pos = m.find(' ', 1);
    if (pos != std::string::npos) {
      first = m.substr(0, pos);
      second = m.substr(pos + 1);
    }
    const int32_t a = lookup(first), b = lookup(second);
    const auto rank = static_cast<int32_t>(i);
    if (a >= 0 && b >= 0) {
      merges_by_id_.emplace(pair_key(a, b), MergeInfo{rank, lookup(first + second)});
    } else {
      merges_by_text_.emplace(first + '\0' + second, rank);
    }
  }
}

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t id = lookup(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(word[off])), word.size() - off);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, off + len == word.size() ? -1 : index + 1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(len), lookup(word.substr(off, len))});
    off += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::string scratch;
  auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    int32_t rank = -1, result = -1;
    if (l.id >= 0 && r.id >= 0) {
      const auto it = merges_by_id_.find(pair_key(l.id, r.id));
      if (it == merges_by_id_.end()) return;
      rank = it->second.rank;
      result = it->second.result;
    } else {
      if (merges_by_text_.empty()) return;
      scratch.assign(word.substr(l.offset, l.length));
      scratch += '\0';
      scratch.append(word.substr(r.offset, r.length));
      const auto it = merges_by_text_.find(std::string_view(scratch));
      if (it == merges_by_text_.end()) return;
      rank = it->second;
      result = lookup(word.substr(l.offset, l.length + r.length));
    }
    queue.push({rank, left, right, l.length + r.length, result});
  };

  merge_symbols(symbols, queue, add_bigram, [](Symbol& merged, const Bigram& b) { merged.id = b.result; });

  for (int i = symbols.empty() ? -1 : 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    if (spm_) {  // Hugging Face byte_fallback: <0xXX> per byte
      for (uint32_t k = 0; k < s.length; ++k) out.push_back(spm_byte_token(static_cast<uint8_t>(word[s.offset + k])));
      continue;
    }
    // Not a token: llama.cpp emits each byte of the mapped text that is itself a token, drops the rest.
    for (uint32_t k = 0; k < s.length; ++k) {
      const int32_t id = lookup(word.substr(s.offset + k, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

void Tokenizer::encode_bpe(std::string_view text, const std::vector<Fragment>& fragments,
                           std::vector<int32_t>& out) const {
  // Words repeat a lot in real text: remember each piece's ids for the length of this call.
  std::unordered_map<std::string, std::vector<int32_t>, StringViewHash, std::equal_to<>> cache;
  std::string mapped;
  std::vector<int32_t> ids;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      continue;
    }
    const std::string clean = sanitize_utf8(text.substr(f.offset, f.length));
    for (std::string_view piece : pretokenizer_->split(clean)) {
      const auto hit = cache.find(piece);
      if (hit != cache.end()) {
        out.insert(out.end(), hit->second.begin(), hit->second.end());
        continue;
      }
      mapped.clear();
      for (char c : piece) mapped += gpt2_byte_to_utf8(static_cast<uint8_t>(c));
      ids.clear();
      bpe_word(mapped, ids);
      out.insert(out.end(), ids.begin(), ids.end());
      cache.emplace(std::string(piece), ids);
    }
  }
}

}  // namespace cvq
