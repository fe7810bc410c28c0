#include "core/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fp16.h"

namespace cvq {
namespace {

struct DtypeInfo {
  StDtype t;
  const char* name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {{StDtype::F32, "F32", 4}, {StDtype::F16, "F16", 2}, {StDtype::BF16, "BF16", 2},
                                 {StDtype::I32, "I32", 4}, {StDtype::I64, "I64", 8}, {StDtype::U8, "U8", 1},
                                 {StDtype::I8, "I8", 1},   {StDtype::U16, "U16", 2}, {StDtype::I16, "I16", 2},
                                 {StDtype::U32, "U32", 4}, {StDtype::F64, "F64", 8}};
constexpr uint64_t kMaxHeader = 100ull << 20;

}  // namespace

size_t st_dtype_size(StDtype t) {
  for (const auto& d : kDtypes)
    if (d.t == t) return d.size;
  return 0;
}
const char* st_dtype_name(StDtype t) {
  for (const auto& d : kDtypes)
    if (d.t == t) return d.name;
  return "?";
}

std::string st_shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t StTensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : map_(std::make_shared<MappedFile>(path)) {
  const size_t size = map_->size();
  if (size < 8) fail_file(path, "not a safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len;
  std::memcpy(&header_len, map_->data(), 8);
  if (header_len > kMaxHeader || header_len > size - 8) {
    fail_file(path, "not a safetensors file or truncated (header length " + std::to_string(header_len) + ", file " +
                        std::to_string(size) + " bytes)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(map_->data()) + 8,
                                   reinterpret_cast<const char*>(map_->data()) + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("safetensors header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail_file(path, "safetensors header is not a JSON object");
  const uint8_t* base = map_->data() + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail_file(path, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail_file(path, "__metadata__ value '" + m.key() + "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const auto& v = it.value();
    StTensorView t;
    t.name = it.key();
    try {
      const std::string dtype = v.at("dtype").get<std::string>();
      bool known = false;
      for (const auto& d : kDtypes)
        if (dtype == d.name) {
          t.dtype = d.t;
          known = true;
        }
      if (!known) fail_file(path, "tensor '" + t.name + "' has unsupported dtype " + dtype);
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      auto offs = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2 || offs[0] > offs[1] || offs[1] > data_size) {
        fail_file(path, "tensor '" + t.name + "' data offsets run past the end of the file (truncated or corrupt)");
      }
      int64_t numel = 1;
      for (int64_t d : t.shape) {
        if (d < 0 || (d > 0 && numel > (int64_t{1} << 50) / d))
          fail_file(path, "tensor '" + t.name + "' has an absurd shape");
        numel *= d;
      }
      t.n_bytes = static_cast<size_t>(offs[1] - offs[0]);
      if (static_cast<uint64_t>(numel) * st_dtype_size(t.dtype) != t.n_bytes) {
        fail_file(path, "tensor '" + t.name + "' shape " + st_shape_text(t.shape) + " does not match its " +
                            std::to_string(t.n_bytes) + " bytes");
      }
      t.data = base + offs[0];
    } catch (const nlohmann::json::exception& e) {
      fail_file(path, "tensor '" + t.name + "' entry is malformed: " + e.what());
    }
    tensors_[t.name] = t;
  }
}

const StTensorView& SafetensorsReader::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail_file(path(), "tensor '" + name + "' is missing");
  return it->second;
}

const StTensorView& SafetensorsReader::tensor(const std::string& name, StDtype dtype,
                                              const std::vector<int64_t>& shape) const {
  const StTensorView& t = tensor(name);
  if (t.dtype != dtype || t.shape != shape) {
    fail_file(path(), "tensor '" + name + "' is " + st_dtype_name(t.dtype) + " " + st_shape_text(t.shape) +
                          ", expected " + st_dtype_name(dtype) + " " + st_shape_text(shape));
  }
  return t;
}

std::vector<float> SafetensorsReader::floats(const std::string& name) const {
  const StTensorView& t = tensor(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype == StDtype::F32) {
    std::memcpy(out.data(), t.data, t.n_bytes);
  } else if (t.dtype == StDtype::F16 || t.dtype == StDtype::BF16) {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      out[i] = t.dtype == StDtype::F16 ? fp16_to_float(h) : bf16_to_float(h);
    }
  } else {
    fail_file(path(), "tensor '" + name + "' is " + st_dtype_name(t.dtype) + ", not a float tensor");
  }
  return out;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> n;
  for (const auto& [k, v] : tensors_) n.push_back(k);
  return n;
}

void SafetensorsWriter::add(const std::string& name, StDtype dtype, std::vector<int64_t> shape, const void* data,
                            size_t n_bytes) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (static_cast<size_t>(numel) * st_dtype_size(dtype) != n_bytes) {
    throw Error("safetensors: tensor '" + name + "' shape " + st_shape_text(shape) + " does not match " +
                std::to_string(n_bytes) + " bytes");
  }
  entries_.push_back({name, dtype, std::move(shape), std::string(static_cast<const char*>(data), n_bytes)});
}

void SafetensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  add(name, StDtype::F32, std::move(shape), v.data(), v.size() * sizeof(float));
}

void SafetensorsWriter::add_i32(const std::string& name, std::vector<int64_t> shape, const std::vector<int32_t>& v) {
  add(name, StDtype::I32, std::move(shape), v.data(), v.size() * sizeof(int32_t));
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& e : entries_) {
    header[e.name] = {
        {"dtype", st_dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');  // keep the data section 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  const uint64_t len = h.size();
  out.append(reinterpret_cast<const char*>(&len), 8);
  out += h;
  for (const auto& e : entries_) out += e.bytes;
  write_file_atomic(path, out);
}

}  // namespace cvq
