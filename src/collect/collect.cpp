#include "collect/collect.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/json_file.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/text_source.h"
#include "kv/fp16_cache.h"
#include "model/model_identity.h"

namespace cvq {
namespace fs = std::filesystem;

namespace {

// A prefix of the text of about `bytes` bytes, cut before a space or newline so BPE pre-tokenization
// of the prefix agrees with the full text up to the cut.
std::string_view text_prefix(const std::string& text, size_t bytes) {
  if (bytes >= text.size()) return text;
  size_t cut = bytes;
  while (cut > bytes / 2 && text[cut] != ' ' && text[cut] != '\n') --cut;
  return std::string_view(text).substr(0, cut);
}

std::vector<CollectSequence> plan_from_token_lists(const std::vector<std::vector<int32_t>>& docs, int64_t tokens,
                                                   int piece, int32_t bos) {
  std::vector<CollectSequence> seqs;
  int64_t total = 0;
  for (size_t round = 0; total < tokens; ++round) {
    bool any = false;
    for (size_t d = 0; d < docs.size() && total < tokens; ++d) {
      const size_t begin = round * static_cast<size_t>(piece);
      if (begin >= docs[d].size()) continue;
      any = true;
      CollectSequence s;
      s.doc = static_cast<int>(d);
      if (bos >= 0) s.tokens.push_back(bos);
      const size_t end = std::min(docs[d].size(), begin + static_cast<size_t>(piece));
      s.tokens.insert(s.tokens.end(), docs[d].begin() + static_cast<int64_t>(begin),
                      docs[d].begin() + static_cast<int64_t>(end));
      if (static_cast<int64_t>(s.tokens.size()) > tokens - total) s.tokens.resize(static_cast<size_t>(tokens - total));
      total += static_cast<int64_t>(s.tokens.size());
      seqs.push_back(std::move(s));
    }
    if (!any) break;
  }
  return seqs;
}

}  // namespace

std::vector<CollectSequence> plan_collect_sequences(const Tokenizer& tok, const std::vector<std::string>& texts,
                                                    int64_t tokens, int ctx) {
  if (texts.empty()) throw Error("collect: no text sources given");
  if (tokens <= 0) throw Error("collect: --tokens must be positive");
  const int32_t bos = tok.add_bos_default() ? tok.bos() : -1;
  const int piece = ctx - (bos >= 0 ? 1 : 0);
  if (piece < 1) throw Error("collect: --ctx " + std::to_string(ctx) + " is too small");
  // Tokenize only a generous prefix of each document (English BPE is ~4 bytes/token); if the
  // round-robin then runs short, tokenize the truncated documents in full and plan again.
  const int64_t per_doc = (tokens + static_cast<int64_t>(texts.size()) - 1) / static_cast<int64_t>(texts.size()) + ctx;
  std::vector<std::vector<int32_t>> docs(texts.size());
  std::vector<bool> truncated(texts.size());
  for (size_t d = 0; d < texts.size(); ++d) {
    std::string_view p = text_prefix(texts[d], static_cast<size_t>(per_doc) * 8 + 4096);
    truncated[d] = p.size() < texts[d].size();
    docs[d] = tok.encode(p, false, false);
  }
  auto seqs = plan_from_token_lists(docs, tokens, piece, bos);
  int64_t got = 0;
  for (const auto& s : seqs) got += static_cast<int64_t>(s.tokens.size());
  if (got < tokens && std::find(truncated.begin(), truncated.end(), true) != truncated.end()) {
    for (size_t d = 0; d < texts.size(); ++d)
      if (truncated[d]) docs[d] = tok.encode(texts[d], false, false);
    seqs = plan_from_token_lists(docs, tokens, piece, bos);
  }
  return seqs;
}

std::string collect_layer_file(const std::string& out_dir, int layer) {
  char name[48];
  std::snprintf(name, sizeof name, "layer_%02d.safetensors", layer);
  return (fs::path(out_dir) / name).string();
}

// ---------------------------------------------------------------------------------------------
// collect

namespace {

// Exclusive lock on the output folder for the life of a collect run (two runs into one folder would
// interleave their chunks). flock on the directory itself: no lock file left behind.
class FolderLock {
 public:
  explicit FolderLock(const std::string& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) fail_file(dir, std::string("cannot open the output folder: ") + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fail_file(dir, "another `collect` is writing into this folder");
    }
  }
  ~FolderLock() { ::close(fd_); }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

const char* rope_layout_name(RopeLayout l) { return l == RopeLayout::Adjacent ? "adjacent" : "half_split"; }

std::string chunk_dir(const std::string& parts, int c) {
  char name[32];
  std::snprintf(name, sizeof name, "chunk_%05d", c);
  return (fs::path(parts) / name).string();
}

// Concatenates the chunk part files of one layer into the final layer file.
void merge_layer(const std::string& parts, int n_chunks, int layer, const KvGeometry& geo, StDtype dtype,
                 const std::string& out_path) {
  std::string k, v, q;
  std::vector<int32_t> pos, seq;
  for (int c = 0; c < n_chunks; ++c) {
    const std::string p = collect_layer_file(chunk_dir(parts, c), layer);
    SafetensorsReader r(p);
    const auto& tp = r.tensor("positions");
    const int64_t n = tp.numel();
    const auto& tk = r.tensor("keys", dtype, {n, geo.kv_dim()});
    const auto& tv = r.tensor("values", dtype, {n, geo.kv_dim()});
    const auto& tq = r.tensor("queries", dtype, {n, geo.q_dim()});
    const auto& tpos = r.tensor("positions", StDtype::I32, {n});
    const auto& tseq = r.tensor("seq_ids", StDtype::I32, {n});
    k.append(reinterpret_cast<const char*>(tk.data), tk.n_bytes);
    v.append(reinterpret_cast<const char*>(tv.data), tv.n_bytes);
    q.append(reinterpret_cast<const char*>(tq.data), tq.n_bytes);
    const auto* pp = reinterpret_cast<const int32_t*>(tpos.data);
    const auto* sp = reinterpret_cast<const int32_t*>(tseq.data);
    pos.insert(pos.end(), pp, pp + n);
    seq.insert(seq.end(), sp, sp + n);
  }
  const int64_t n = static_cast<int64_t>(pos.size());
  std::vector<int64_t> starts{0};
  for (int64_t i = 1; i < n; ++i)
    if (seq[i] != seq[i - 1]) starts.push_back(i);
  if (n > 0) starts.push_back(n);
  SafetensorsWriter w;
  w.add("keys", dtype, {n, geo.kv_dim()}, k.data(), k.size());
  w.add("values", dtype, {n, geo.kv_dim()}, v.data(), v.size());
  w.add("queries", dtype, {n, geo.q_dim()}, q.data(), q.size());
  w.add_i32("positions", {n}, pos);
  w.add_i32("seq_ids", {n}, seq);
  w.add("seq_starts", StDtype::I64, {static_cast<int64_t>(starts.size())}, starts.data(), starts.size() * 8);
  w.set_metadata("layer", std::to_string(layer));
  w.set_metadata("dtype", st_dtype_name(dtype));
  w.set_metadata("n_tokens", std::to_string(n));
  w.set_metadata("n_sequences", std::to_string(starts.size() - 1));
  w.set_metadata("keys", "k_proj output before RoPE (after bias)");
  w.set_metadata("queries", "q_proj output after RoPE");
  w.write(out_path);
}

}  // namespace

namespace {

// Chunks of consecutive sequences, each at least chunk_tokens tokens (the last may be smaller): the
// index of each chunk's first sequence, then the end.
std::vector<int> plan_chunks(const std::vector<CollectSequence>& seqs, int64_t chunk_tokens) {
  std::vector<int> chunk_first{0};
  for (size_t i = 0, acc = 0; i < seqs.size(); ++i) {
    acc += seqs[i].tokens.size();
    if (static_cast<int64_t>(acc) >= chunk_tokens && i + 1 < seqs.size()) {
      chunk_first.push_back(static_cast<int>(i + 1));
      acc = 0;
    }
  }
  chunk_first.push_back(static_cast<int>(seqs.size()));
  return chunk_first;
}

// Runs the model over every chunk not already marked done in parts/, writing each chunk's layer files;
// stops early after o.stop_after_chunks chunks (tests). Counts go to res.
void run_chunks(const LlamaModel& model, const CollectOptions& o, const std::vector<CollectSequence>& seqs,
                const std::vector<int>& chunk_first, const std::string& parts, int64_t total, CollectResult& res) {
  const KvGeometry geo = model.kv_geometry();
  const int n_chunks = static_cast<int>(chunk_first.size()) - 1;
  ActivationRecorder rec(geo, o.dtype);
  auto cache = std::make_unique<Fp16Cache>(geo, /*bf16=*/false);
  Progress prog("collect", total, "tok");
  int64_t done_tokens = 0;
  for (int c = 0; c < n_chunks; ++c) {
    int64_t chunk_tok = 0;
    for (int s = chunk_first[c]; s < chunk_first[c + 1]; ++s) chunk_tok += static_cast<int64_t>(seqs[s].tokens.size());
    const std::string dir = chunk_dir(parts, c);
    const std::string marker = (fs::path(dir) / "done").string();
    if (fs::exists(marker)) {
      ++res.chunks_skipped;
      done_tokens += chunk_tok;
      continue;
    }
    if (o.stop_after_chunks >= 0 && res.chunks_run >= o.stop_after_chunks) return;
    rec.clear();
    for (int s = chunk_first[c]; s < chunk_first[c + 1]; ++s) {
      const auto& toks = seqs[s].tokens;
      std::vector<int32_t> positions(toks.size());
      for (size_t i = 0; i < toks.size(); ++i) positions[i] = static_cast<int32_t>(i);
      cache->clear();
      rec.begin_sequence(s);
      model.forward(toks.data(), positions.data(), static_cast<int>(toks.size()), *cache, LlamaModel::Logits::None,
                    &rec.observer());
      done_tokens += static_cast<int64_t>(toks.size());
      prog.update(done_tokens, "(chunk " + std::to_string(c + 1) + "/" + std::to_string(n_chunks) + ")");
    }
    fs::create_directories(dir);
    for (int l = 0; l < geo.n_layers; ++l) rec.write_layer(l, collect_layer_file(dir, l));
    write_file_atomic(marker, std::to_string(chunk_tok) + "\n");
    ++res.chunks_run;
  }
  prog.finish();
}

// tokens.safetensors: every sequence's tokens, positions, sequence ids and row offsets.
void write_tokens_file(const std::vector<CollectSequence>& seqs, const std::string& path) {
  std::vector<int32_t> toks, pos, seq;
  std::vector<int64_t> starts{0};
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (size_t i = 0; i < seqs[s].tokens.size(); ++i) {
      toks.push_back(seqs[s].tokens[i]);
      pos.push_back(static_cast<int32_t>(i));
      seq.push_back(static_cast<int32_t>(s));
    }
    starts.push_back(static_cast<int64_t>(toks.size()));
  }
  SafetensorsWriter w;
  const int64_t n = static_cast<int64_t>(toks.size());
  w.add_i32("tokens", {n}, toks);
  w.add_i32("positions", {n}, pos);
  w.add_i32("seq_ids", {n}, seq);
  w.add("seq_starts", StDtype::I64, {static_cast<int64_t>(starts.size())}, starts.data(), starts.size() * 8);
  w.write(path);
}

// manifest.json: what was collected, from what, with which model and shapes, and what each tensor is.
nlohmann::json collect_manifest(const LlamaModel& model, const CollectOptions& o, const nlohmann::json& identity,
                                const nlohmann::json& sources, const std::vector<CollectSequence>& seqs,
                                int64_t total) {
  const KvGeometry geo = model.kv_geometry();
  const LlamaConfig& cfg = model.config();
  const std::string model_path = model.gguf().path();
  nlohmann::json seq_docs = nlohmann::json::array();
  for (const auto& s : seqs) seq_docs.push_back(s.doc);
  nlohmann::json layer_files = nlohmann::json::array();
  for (int l = 0; l < geo.n_layers; ++l)
    layer_files.push_back(fs::path(collect_layer_file(o.out_dir, l)).filename().string());
  const Tokenizer& tok = model.tokenizer();
  return {{"format", "commvq-activations"},
          {"version", 1},
          {"identity", identity},
          {"model",
           {{"path", model_path},
            {"name", cfg.name},
            {"arch", cfg.arch},
            {"sha256", identity["model_sha256"]},
            {"bytes", model_bytes(model_path)}}},
          {"geometry",
           {{"n_layers", geo.n_layers},
            {"n_head", geo.n_head},
            {"n_head_kv", geo.n_head_kv},
            {"head_dim", geo.head_dim},
            {"kv_dim", geo.kv_dim()},
            {"q_dim", geo.q_dim()},
            {"n_embd", cfg.n_embd},
            {"rope",
             {{"layout", rope_layout_name(geo.rope.layout())},
              {"theta", geo.rope.theta()},
              {"pos_scale", cfg.rope_pos_scale}}}}},
          {"sources", sources},
          {"n_tokens", total},
          {"n_sequences", seqs.size()},
          {"sequence_docs", seq_docs},
          {"ctx", o.ctx},
          {"bos", tok.add_bos_default() ? tok.bos() : -1},
          {"dtype", st_dtype_name(o.dtype)},
          {"kv_cache_during_collect", "fp16"},
          {"files", {{"layers", layer_files}, {"tokens", "tokens.safetensors"}}},
          {"tensors",
           {{"keys", "[n_tokens, kv_dim] k_proj output before RoPE (after bias)"},
            {"values", "[n_tokens, kv_dim] v_proj output"},
            {"queries", "[n_tokens, q_dim] q_proj output after RoPE (scores use 1/sqrt(head_dim))"},
            {"positions", "[n_tokens] I32 RoPE position within the sequence"},
            {"seq_ids", "[n_tokens] I32 sequence index"},
            {"seq_starts", "[n_sequences + 1] I64 row offsets of the sequences"}}}};
}

// Reads the sources into texts (and their path, size and sha256 into sources); returns the identity of
// the collection: what the data depends on, not where the files happen to be.
nlohmann::json read_sources(const std::string& model_path, const CollectOptions& o, std::vector<std::string>& texts,
                            nlohmann::json& sources) {
  sources = nlohmann::json::array();
  for (const auto& s : o.sources) {
    texts.push_back(read_text_file(s));
    sources.push_back({{"path", s},
                       {"bytes", texts.back().size()},
                       {"sha256", sha256_hex(texts.back().data(), texts.back().size())}});
  }
  nlohmann::json identity = {{"model_sha256", model_sha256(model_path)},
                             {"sources_sha256", nlohmann::json::array()},
                             {"tokens_requested", o.tokens},
                             {"ctx", o.ctx},
                             {"dtype", st_dtype_name(o.dtype)}};
  for (const auto& s : sources) identity["sources_sha256"].push_back(s["sha256"]);

  return identity;
}

}  // namespace

CollectResult collect_activations(const LlamaModel& model, const CollectOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) throw Error("collect: --out is required");
  if (o.ctx < 2) throw Error("collect: --ctx must be at least 2");
  if (o.chunk_tokens < 1) throw Error("collect: chunk size must be positive");
  const KvGeometry geo = model.kv_geometry();
  const std::string model_path = model.gguf().path();

  std::vector<std::string> texts;
  nlohmann::json sources;
  const nlohmann::json identity = read_sources(model_path, o, texts, sources);

  fs::create_directories(o.out_dir);
  FolderLock lock(o.out_dir);
  const std::string manifest_path = (fs::path(o.out_dir) / "manifest.json").string();
  const std::string parts = (fs::path(o.out_dir) / ".parts").string();
  CollectResult res;
  res.manifest_path = manifest_path;
  if (fs::exists(manifest_path)) {
    const nlohmann::json m = read_json_file(manifest_path);
    if (!m.contains("identity") || m["identity"] != identity) {
      fail_file(manifest_path,
                "this folder already holds a collection made with other settings (model, sources, "
                "--tokens, --ctx or dtype differ); use another --out or remove the folder");
    }
    res.n_tokens = m.value("n_tokens", int64_t{0});
    res.n_sequences = m.value("n_sequences", 0);
    res.complete = res.was_complete = true;
    std::error_code ec;
    fs::remove_all(parts, ec);  // leftovers of a run stopped after the manifest was written
    return res;
  }

  const auto seqs = plan_collect_sequences(model.tokenizer(), texts, o.tokens, o.ctx);
  int64_t total = 0;
  for (const auto& s : seqs) total += static_cast<int64_t>(s.tokens.size());
  if (total < o.tokens && !Progress::quiet()) {
    std::fprintf(stderr, "collect: the sources hold only %lld tokens (asked for %lld)\n", static_cast<long long>(total),
                 static_cast<long long>(o.tokens));
  }
  const std::vector<int> chunk_first = plan_chunks(seqs, o.chunk_tokens);
  const int n_chunks = static_cast<int>(chunk_first.size()) - 1;
  res.n_tokens = total;
  res.n_sequences = static_cast<int>(seqs.size());
  res.chunks_total = n_chunks;

  nlohmann::json plan = identity;
  plan["chunk_tokens"] = o.chunk_tokens;
  plan["n_tokens"] = total;
  plan["n_sequences"] = seqs.size();
  const std::string plan_path = (fs::path(parts) / "plan.json").string();
  if (fs::exists(plan_path) && read_json_file(plan_path) != plan) {
    if (!Progress::quiet())
      std::fprintf(stderr, "collect: settings changed since the interrupted run; starting over\n");
    fs::remove_all(parts);
  }
  fs::create_directories(parts);
  if (!fs::exists(plan_path)) write_file_atomic(plan_path, plan.dump(2) + "\n");

  run_chunks(model, o, seqs, chunk_first, parts, total, res);
  if (res.chunks_skipped + res.chunks_run < n_chunks) {
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;  // interrupted on request (tests)
  }

  // Assemble the final files from the parts, then the manifest (last: its presence means complete).
  for (int l = 0; l < geo.n_layers; ++l)
    merge_layer(parts, n_chunks, l, geo, o.dtype, collect_layer_file(o.out_dir, l));
  write_tokens_file(seqs, (fs::path(o.out_dir) / "tokens.safetensors").string());
  const nlohmann::json manifest = collect_manifest(model, o, identity, sources, seqs, total);
  write_file_atomic(manifest_path, manifest.dump(2) + "\n");
  std::error_code ec;
  fs::remove_all(parts, ec);
  res.complete = true;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace cvq
