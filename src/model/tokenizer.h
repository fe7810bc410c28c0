#pragma once
// Text <-> token ids, matching llama.cpp's llama_tokenize / llama_token_to_piece exactly for the two
// vocab types this project meets:
//   "gpt2"  - byte-level BPE (merges by rank, pre-tokenizer regexes chosen by tokenizer.ggml.pre)
//   "llama" - SentencePiece (llm_tokenizer_spm: bigram merges by score, <0xXX> byte fallback)
// and, for Hugging Face tokenizer.json files of the SentencePiece family (model/hf_tokenizer.h),
// "llama" with merges: the same "▁" text and byte fallback, but pairs merged by merge rank, as
// Hugging Face's BPE model does (scores are not in tokenizer.json, and a trained merge list is not
// always what the highest-scoring pair would give).
// Special tokens: control (3) and user-defined (4) token texts are cut out of the input first,
// longest first (llama.cpp tokenizer_st_partition); control ones only when parse_special is set.
// Kept independent of the GGUF reader: fill TokenizerData yourself or with tokenizer_data_from_gguf.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/pretokenizer.h"

namespace cvq {

class GgufFile;
class Pretokenizer;

struct TokenizerData {
  std::string model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;    // tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2", "default", ... ("" = default)
  std::vector<std::string> tokens;
  std::vector<float> scores;         // may be empty for BPE
  std::vector<int32_t> token_types;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  std::vector<std::string> merges;   // "a b" strings, BPE only
  int32_t bos_id = -1, eos_id = -1, eot_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;  // SPM: tokenizer.ggml.add_space_prefix. llama.cpp also strips one
                                 // leading space when decoding if this is set (any model type).
  // A tokenizer read from a Hugging Face tokenizer.json (model/hf_tokenizer.h) states its
  // pre-tokenizer as regexes rather than by llama.cpp name: when set, these replace `pre`.
  std::vector<std::string> pre_regexes;
  bool ignore_merges = false;          // with pre_regexes: a piece that is a whole token is not merged
  std::vector<int32_t> extra_eog_ids;  // more end-of-generation ids (e.g. generation_config.json's list)
  // SPM space prefix as Hugging Face's Metaspace pre-tokenizer adds it: only where the text does not
  // already start with a space, and with prepend_scheme "first" only at the start of the input (not
  // after special tokens). llama.cpp's own rule (and HF's legacy Prepend normalizer) is: always.
  bool space_prefix_metaspace = false;
  bool space_prefix_first_only = false;
};

// The pre-tokenizer a byte-level BPE vocabulary uses: its own regexes when it states them
// (pre_regexes), else llama.cpp's configuration for its `pre` name.
PretokenizerConfig pretokenizer_config_of(const TokenizerData& d);

// GGUF-style metadata keys (not GGUF standards) carrying the fields above that GGUF has no key for.
inline constexpr const char* kPreRegexesKey = "commvq.tokenizer.pre_regexes";
inline constexpr const char* kIgnoreMergesKey = "commvq.tokenizer.ignore_merges";
inline constexpr const char* kExtraEogKey = "commvq.tokenizer.eog_token_ids";
inline constexpr const char* kSpacePrefixFirstOnlyKey = "commvq.tokenizer.space_prefix_first_only";
inline constexpr const char* kSpacePrefixMetaspaceKey = "commvq.tokenizer.space_prefix_metaspace";

// Reads tokenizer.ggml.* the way llama.cpp's llama_vocab::load does, including its defaults for
// missing keys (SPM: bos 1, eos 2, unk 0, add_bos true, add_space_prefix true; BPE: bos = eos = 11
// when in range, add_bos false except for the LLaMA-3 family, add_space_prefix false).
TokenizerData tokenizer_data_from_gguf(const GgufFile& file);

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerData data);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // parse_special: recognise control/user-defined token texts (e.g. "<|im_start|>") in the input.
  // (User-defined token texts are always recognised, as in llama.cpp.) add_bos prepends bos();
  // it throws when the vocabulary has no BOS token. EOS is never appended.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Concatenated pieces, special tokens rendered as their text; like llama_detokenize with
  // remove_special = false, unparse_special = true, and no clean-up of spaces. With
  // add_space_prefix, one leading space of the first piece is dropped (so SPM round-trips).
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string token_to_piece(int32_t id) const;  // bytes this token contributes (special = its text)

  int32_t bos() const { return bos_id_; }
  int32_t eos() const { return eos_id_; }
  bool add_bos_default() const { return add_bos_; }
  size_t vocab_size() const { return tokens_.size(); }
  bool is_end_of_generation(int32_t id) const;  // eos, eot, <|im_end|>, <|eot_id|>, <|end_of_text|> etc.
  std::optional<int32_t> find_token(std::string_view text) const;

  bool is_spm() const { return spm_; }
  const std::string& token_text(int32_t id) const;  // raw vocabulary entry; throws when out of range

 private:
  // llama.cpp token attributes (llama_token_attr bits).
  enum Attr : uint32_t {
    kAttrUndefined = 0,
    kAttrUnknown = 1u << 0,
    kAttrUnused = 1u << 1,
    kAttrNormal = 1u << 2,
    kAttrControl = 1u << 3,
    kAttrUserDefined = 1u << 4,
    kAttrByte = 1u << 5,
  };
  struct TokenInfo {
    std::string text;
    float score = 0.0f;
    uint32_t attr = kAttrNormal;
  };
  struct MergeInfo {
    int32_t rank;
    int32_t result;  // id of the merged text, or -1 when it is not a token
  };
  struct Fragment {
    int32_t token;  // >= 0: a special token; -1: raw text
    size_t offset, length;
  };

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  void load_vocab(TokenizerData& d);
  void detect_special_tokens(const std::vector<int32_t>& extra_eog_ids);
  void check_id(int32_t id) const;
  int32_t lookup(std::string_view text) const;  // -1 when absent
  std::string compute_piece(int32_t id) const;
  std::vector<Fragment> partition_special(std::string_view text, bool parse_special) const;

  // tokenizer_bpe.cpp
  void init_bpe(const std::vector<std::string>& merges, const PretokenizerConfig& pre);
  void init_merges(const std::vector<std::string>& merges);
  void encode_bpe(std::string_view text, const std::vector<Fragment>& fragments, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  // tokenizer_spm.cpp
  void encode_spm(std::string_view text, const std::vector<Fragment>& fragments, std::vector<int32_t>& out) const;
  void spm_fragment(std::string_view text, std::vector<int32_t>& out) const;
  int32_t spm_byte_token(uint8_t byte) const;

  bool spm_ = false;
  std::vector<TokenInfo> tokens_;
  std::vector<std::string> pieces_;  // token_to_piece cache
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> token_to_id_;
  std::vector<int32_t> special_tokens_;  // control/user-defined/unknown ids, longest text first
  std::unordered_set<int32_t> eog_ids_;
  int32_t bos_id_ = -1, eos_id_ = -1, eot_id_ = -1, unk_id_ = -1;
  bool add_bos_ = false;
  bool add_space_prefix_ = false;
  bool space_prefix_first_only_ = false;
  bool space_prefix_metaspace_ = false;
  bool spm_by_rank_ = false;  // "llama" vocabulary with merges: SPM text handling, BPE merge order

  // BPE state
  std::unique_ptr<Pretokenizer> pretokenizer_;
  bool ignore_merges_ = false;
  std::unordered_map<uint64_t, MergeInfo> merges_by_id_;  // key: left id << 32 | right id
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> merges_by_text_;  // halves not both tokens
};

}  // namespace cvq
