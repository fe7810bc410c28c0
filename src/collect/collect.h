#pragma once
// `collect`: run the frozen model over calibration text and record, per layer, what the codebook
// trainers need — keys before RoPE (k_proj output, after bias), values (v_proj output), queries
// after RoPE, positions and sequence ids (so attention can be recomputed within each sequence).
//
// Output folder (numpy: `safetensors.numpy.load_file`):
//   layer_XX.safetensors  keys [N x kv_dim], values [N x kv_dim], queries [N x q_dim] (F16 or F32),
//                         positions [N] I32, seq_ids [N] I32, seq_starts [n_seq + 1] I64;
//                         metadata: layer, dtype, n_tokens, n_sequences.
//   tokens.safetensors    tokens [N] I32, positions [N] I32, seq_ids [N] I32, seq_starts [n_seq + 1] I64.
//   manifest.json         written last: model identity (path, name, sha256) and geometry (layers,
//                         heads, head_dim, RoPE layout/theta), sources, token count, ctx, dtype.
// Rows are token order within sequences, sequences in collection order. Resumable: sequences are
// grouped into chunks; each finished chunk is saved under <out>/.parts/ (atomic writes, a `done`
// marker last) and skipped when the same command runs again; the final files are assembled from the
// parts, then the manifest is written and the parts are removed.
#include <cstdint>
#include <string>
#include <vector>

#include "collect/activation_recorder.h"
#include "core/safetensors.h"
#include "model/llama_model.h"

namespace cvq {

struct CollectOptions {
  std::vector<std::string> sources;  // text files (UTF-8)
  int64_t tokens = 32768;            // total tokens to record (fewer if the sources run out)
  int ctx = 2048;                    // max tokens per sequence; each sequence gets a fresh cache
  std::string out_dir;
  StDtype dtype = StDtype::F16;  // F16 or F32 for keys/values/queries
  int64_t chunk_tokens = 8192;   // resume granularity (and the in-memory buffer size)
  int stop_after_chunks = -1;    // tests: stop after running this many chunks (simulated interruption)
};

struct CollectResult {
  int64_t n_tokens = 0;
  int n_sequences = 0;
  int chunks_total = 0;
  int chunks_skipped = 0;  // found complete from an earlier run
  int chunks_run = 0;
  bool complete = false;      // final files and manifest written (or already there)
  bool was_complete = false;  // the manifest was already there with the same settings
  double seconds = 0.0;
  std::string manifest_path;
};

// How the sources are cut into sequences: documents are tokenized (no BOS), split into pieces of
// ctx tokens (ctx - 1 plus BOS when the tokenizer adds BOS), and pieces are taken round-robin over the
// documents (piece 0 of every document, then piece 1, ...) until `tokens` are reached; the last
// piece is shortened to fit. Deterministic.
struct CollectSequence {
  int doc = 0;
  std::vector<int32_t> tokens;
};
std::vector<CollectSequence> plan_collect_sequences(const Tokenizer& tok, const std::vector<std::string>& texts,
                                                    int64_t tokens, int ctx);

CollectResult collect_activations(const LlamaModel& model, const CollectOptions& o);

std::string collect_layer_file(const std::string& out_dir, int layer);  // <out>/layer_XX.safetensors

}  // namespace cvq
