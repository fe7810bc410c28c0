#pragma once
// Builds small GGUF files in memory for tests and fuzz seeds (v3, little-endian).
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/ggml_type.h"
#include "model/gguf.h"

namespace cvq::test {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3, uint64_t alignment = 32) : version_(version), alignment_(alignment) {}

  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // Raw value: type number + already-encoded payload (for every-type and corrupt-input tests).
  void add_raw(const std::string& key, uint32_t type, const std::string& payload);

  // dims in GGML order (dims[0] contiguous); data must be the exact encoded bytes.
  void add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type, const std::string& data);
  void add_f32_tensor(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& values);

  std::string build() const;
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type;
    std::string data;
  };
  uint32_t version_;
  uint64_t alignment_;
  uint64_t n_kv_ = 0;
  std::string kv_;
  std::vector<Tensor> tensors_;
};

std::string encode_string(const std::string& s);  // u64 length + bytes
template <typename T>
std::string encode_pod(T v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}

}  // namespace cvq::test
