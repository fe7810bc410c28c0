#pragma once
// `bench compress`: how long each KV method takes to compress a prompt's keys and values, against the
// prefill that produced them. The prompt is prefilled once with the fp16 cache while its pre-RoPE keys
// and values are recorded; each method then gets those tokens exactly as a prefill hands them over
// (append per layer) and compresses them (settle), timed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;
struct KvGeometry;

struct RecordedPrefill {
  std::vector<std::vector<float>> k, v;  // per layer [n x kv_dim], k before RoPE
  std::vector<int32_t> positions;
  double prefill_seconds = 0.0;
};
RecordedPrefill record_prefill(const LlamaModel& model, const std::vector<int32_t>& tokens);

struct CompressionTime {
  double seconds = 0.0;
  size_t kv_bytes = 0;  // the cache's bytes afterwards
};
CompressionTime time_compression(const KvGeometry& geo, const RecordedPrefill& rec, const std::string& spec);

}  // namespace cvq
