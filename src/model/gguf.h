#pragma once
// GGUF v2/v3 reader over a memory map. Every metadata type (including nested arrays) is parsed;
// tensor data is bounds-checked and left in place. Errors name the file and what is wrong.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "kernels/cpu/ggml_type.h"

namespace cvq {

enum class GgufValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufValueType elem_type = GgufValueType::UINT8;
  std::vector<GgufValue> items;
};

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Integers of every width are held as int64/uint64; floats as double.
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  std::string describe() const;  // short human-readable form for `info`

  static GgufValue of(std::string s);
  static GgufValue of(int64_t i);
  static GgufValue of(double d);
  static GgufValue of_bool(bool b);
  static GgufValue of(std::vector<std::string> items);
  static GgufValue of(const std::vector<int64_t>& items);
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGML order: dims[0] is the row length (contiguous)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to the data section
  const uint8_t* data = nullptr;
  size_t n_bytes = 0;
  int64_t n_elements = 0;
  int64_t rows() const;  // product of dims[1..]
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);
  // A model stored otherwise (a Hugging Face folder, model/hf_checkpoint.h) presented as one GGUF:
  // metadata under GGUF's keys, tensors under GGUF's names and dimension order, their data kept
  // alive by `owners` (the memory-mapped shards). version() is 0; size_bytes is the files' total.
  static std::unique_ptr<GgufFile> assemble(std::string path, std::map<std::string, GgufValue> metadata,
                                            std::vector<GgufTensorInfo> tensors,
                                            std::vector<std::shared_ptr<const void>> owners, size_t size_bytes);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t file_size() const { return size_bytes_; }
  uint64_t alignment() const { return alignment_; }

  // Metadata. get_* throw Error("<file>: metadata key '<k>' ...") when missing or of the wrong kind.
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // accepts integer values too
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;
  std::optional<std::string> opt_string(const std::string& key) const;
  std::optional<int64_t> opt_int(const std::string& key) const;
  std::optional<double> opt_float(const std::string& key) const;
  std::optional<bool> opt_bool(const std::string& key) const;

  // Tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws naming the file

 private:
  GgufFile() = default;

  std::string path_;
  size_t size_bytes_ = 0;
  std::shared_ptr<MappedFile> map_;
  std::vector<std::shared_ptr<const void>> owners_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace cvq
