// SentencePiece BPE (llama.cpp llm_tokenizer_spm_session): spaces become "▁", a space is prefixed
// to text that starts the input or follows a special token (add_space_prefix), UTF-8 characters
// are merged pairwise highest-score first (ties: leftmost first) whenever the pair is a token, and
// whatever is left that is not a token falls back to <0xXX> byte tokens.
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "model/tokenizer_merge.h"

namespace cvq {

namespace {

struct Symbol {
  int prev, next;
  size_t offset, length;
};

struct Bigram {
  float score;
  int left, right;
  size_t size;
};

struct BigramOrder {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

}  // namespace

int32_t Tokenizer::spm_byte_token(uint8_t byte) const {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", byte);
  int32_t id = lookup(buf);
  if (id >= 0) return id;
  id = lookup(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  if (id >= 0) return id;
  if (unk_id_ >= 0) return unk_id_;
  throw Error(std::string("tokenizer: byte ") + buf + " has no token and the vocabulary has no unknown token");
}

void Tokenizer::spm_fragment(std::string_view raw, std::vector<int32_t>& out) const {
  std::string text;
  text.reserve(raw.size() + raw.size() / 4);
  for (char c : raw) {
    if (c == ' ') {
      text += "\xE2\x96\x81";
    } else {
      text += c;
    }
  }
  if (text.empty()) return;
  if (spm_by_rank_) {
    bpe_word(text, out);
    return;
  }

  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(text[off])), text.size() - off);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, off + len == text.size() ? -1 : index + 1, off, len});
    off += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  const std::string_view view(text);
  auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].length + symbols[right].length;
    const int32_t id = lookup(view.substr(symbols[left].offset, size));
    if (id < 0) return;
    queue.push({tokens_[id].score, left, right, size});
  };
  merge_symbols(symbols, queue, add_bigram, [](Symbol&, const Bigram&) {});

  for (int i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = view.substr(s.offset, s.length);
    const int32_t id = lookup(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) out.push_back(spm_byte_token(static_cast<uint8_t>(c)));
  }
}

void Tokenizer::encode_spm(std::string_view text, const std::vector<Fragment>& fragments,
                           std::vector<int32_t>& out) const {
  bool prev_special = true;  // the start of the input counts as "after a special token"
  std::string buf;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    buf.clear();
    const std::string_view raw = text.substr(f.offset, f.length);
    bool prefix = add_space_prefix_ && prev_special;
    if (space_prefix_metaspace_ && (raw.substr(0, 1) == " " || raw.substr(0, 3) == "\xE2\x96\x81")) prefix = false;
    if (space_prefix_first_only_ && f.offset != 0) prefix = false;
    if (prefix) buf += ' ';
    buf.append(raw);
    spm_fragment(buf, out);
    prev_special = false;
  }
}

}  // namespace cvq
