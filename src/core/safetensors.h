#pragma once
// safetensors files (the format numpy/PyTorch users open with `safetensors.safe_open`):
// u64 little-endian header size, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {string: string}}, then the tensor bytes. Reading validates every offset, shape and dtype.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace cvq {

enum class StDtype { F32, F16, BF16, I32, I64, U8, I8, U16, I16, U32, F64 };
size_t st_dtype_size(StDtype t);
const char* st_dtype_name(StDtype t);
std::string st_shape_text(const std::vector<int64_t>& shape);  // "[2, 3]", for error messages

struct StTensorView {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t n_bytes = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);
  const std::string& path() const { return map_->path(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws "<file>: tensor 'x' ..." when missing or when dtype/shape differ from what is expected.
  const StTensorView& tensor(const std::string& name) const;
  const StTensorView& tensor(const std::string& name, StDtype dtype, const std::vector<int64_t>& shape) const;
  std::vector<float> floats(const std::string& name) const;  // F32/F16/BF16 tensors as float
  std::vector<std::string> names() const;

 private:
  std::shared_ptr<MappedFile> map_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, StTensorView> tensors_;
};

class SafetensorsWriter {
 public:
  void add(const std::string& name, StDtype dtype, std::vector<int64_t> shape, const void* data, size_t n_bytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v);
  void add_i32(const std::string& name, std::vector<int64_t> shape, const std::vector<int32_t>& v);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;  // atomic: temp file + rename

 private:
  struct Entry {
    std::string name;
    StDtype dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace cvq
