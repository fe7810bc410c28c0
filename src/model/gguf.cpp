#include "model/gguf.h"

#include <cstring>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace cvq {
namespace {

// Limits that keep a corrupt header from making us allocate absurd amounts before we notice.
constexpr uint64_t kMaxStringBytes = 1ull << 30;
constexpr uint64_t kMaxArrayItems = 1ull << 28;
constexpr uint64_t kMaxKeys = 1ull << 20;
constexpr uint64_t kMaxTensors = 1ull << 20;
constexpr uint32_t kMaxDims = 4;
constexpr uint32_t kMaxArrayDepth = 8;

class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > kMaxStringBytes) fail_at(std::string(what) + ": string length " + std::to_string(len) + " is absurd");
    need(len, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }
  size_t pos() const { return pos_; }
  [[noreturn]] void fail_at(const std::string& problem) const {
    fail_file(path_, problem + " (at byte " + std::to_string(pos_) + ")");
  }

 private:
  void need(uint64_t n, const char* what) const {
    if (n > size_ - pos_) {
      fail_file(path_, std::string("truncated file: ") + what + " needs " + std::to_string(n) + " bytes at offset " +
                           std::to_string(pos_) + " but the file has " + std::to_string(size_) + " bytes");
    }
  }
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

GgufValue read_value(Cursor& c, GgufValueType type, uint32_t depth);

GgufValue read_scalar(Cursor& c, GgufValueType type) {
  GgufValue out;
  out.type = type;
  switch (type) {
    case GgufValueType::UINT8:
      out.v = uint64_t{c.read<uint8_t>("u8 value")};
      break;
    case GgufValueType::INT8:
      out.v = int64_t{c.read<int8_t>("i8 value")};
      break;
    case GgufValueType::UINT16:
      out.v = uint64_t{c.read<uint16_t>("u16 value")};
      break;
    case GgufValueType::INT16:
      out.v = int64_t{c.read<int16_t>("i16 value")};
      break;
    case GgufValueType::UINT32:
      out.v = uint64_t{c.read<uint32_t>("u32 value")};
      break;
    case GgufValueType::INT32:
      out.v = int64_t{c.read<int32_t>("i32 value")};
      break;
    case GgufValueType::UINT64:
      out.v = uint64_t{c.read<uint64_t>("u64 value")};
      break;
    case GgufValueType::INT64:
      out.v = int64_t{c.read<int64_t>("i64 value")};
      break;
    case GgufValueType::FLOAT32:
      out.v = double{c.read<float>("f32 value")};
      break;
    case GgufValueType::FLOAT64:
      out.v = c.read<double>("f64 value");
      break;
    case GgufValueType::BOOL: {
      uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail_at("bool value " + std::to_string(b) + " is neither 0 nor 1");
      out.v = b != 0;
      break;
    }
    case GgufValueType::STRING:
      out.v = c.read_string("string value");
      break;
    default:
      c.fail_at("unknown metadata value type " + std::to_string(static_cast<uint32_t>(type)));
  }
  return out;
}

GgufValue read_value(Cursor& c, GgufValueType type, uint32_t depth) {
  if (type != GgufValueType::ARRAY) return read_scalar(c, type);
  if (depth >= kMaxArrayDepth) c.fail_at("metadata arrays nested too deeply");
  auto elem = static_cast<GgufValueType>(c.read<uint32_t>("array element type"));
  if (static_cast<uint32_t>(elem) > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
    c.fail_at("unknown array element type " + std::to_string(static_cast<uint32_t>(elem)));
  }
  uint64_t n = c.read<uint64_t>("array length");
  if (n > kMaxArrayItems) c.fail_at("array length " + std::to_string(n) + " is absurd");
  auto arr = std::make_shared<GgufArray>();
  arr->elem_type = elem;
  arr->items.reserve(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)));
  for (uint64_t i = 0; i < n; ++i) arr->items.push_back(read_value(c, elem, depth + 1));
  GgufValue out;
  out.type = GgufValueType::ARRAY;
  out.v = std::move(arr);
  return out;
}

const char* value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
      return "u8";
    case GgufValueType::INT8:
      return "i8";
    case GgufValueType::UINT16:
      return "u16";
    case GgufValueType::INT16:
      return "i16";
    case GgufValueType::UINT32:
      return "u32";
    case GgufValueType::INT32:
      return "i32";
    case GgufValueType::FLOAT32:
      return "f32";
    case GgufValueType::BOOL:
      return "bool";
    case GgufValueType::STRING:
      return "string";
    case GgufValueType::ARRAY:
      return "array";
    case GgufValueType::UINT64:
      return "u64";
    case GgufValueType::INT64:
      return "i64";
    case GgufValueType::FLOAT64:
      return "f64";
  }
  return "?";
}

bool as_int(const GgufValue& v, int64_t* out) {
  if (auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(*u);
    return true;
  }
  if (auto* i = std::get_if<int64_t>(&v.v)) {
    *out = *i;
    return true;
  }
  return false;
}

bool as_float(const GgufValue& v, double* out) {
  if (auto* d = std::get_if<double>(&v.v)) {
    *out = *d;
    return true;
  }
  int64_t i;
  if (as_int(v, &i)) {
    *out = static_cast<double>(i);
    return true;
  }
  return false;
}

}  // namespace

std::string GgufValue::describe() const {
  std::ostringstream os;
  if (auto* u = std::get_if<uint64_t>(&v))
    os << *u;
  else if (auto* i = std::get_if<int64_t>(&v))
    os << *i;
  else if (auto* d = std::get_if<double>(&v))
    os << *d;
  else if (auto* b = std::get_if<bool>(&v))
    os << (*b ? "true" : "false");
  else if (auto* s = std::get_if<std::string>(&v)) {
    if (s->size() > 60)
      os << '"' << s->substr(0, 57) << "...\" (" << s->size() << " bytes)";
    else
      os << '"' << *s << '"';
  } else if (auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v)) {
    os << "[" << value_type_name((*a)->elem_type) << " x " << (*a)->items.size() << "]";
  }
  return os.str();
}

int64_t GgufTensorInfo::rows() const {
  int64_t r = 1;
  for (size_t i = 1; i < dims.size(); ++i) r *= dims[i];
  return r;
}

GgufValue GgufValue::of(std::string s) { return {GgufValueType::STRING, std::move(s)}; }
GgufValue GgufValue::of(int64_t i) { return {GgufValueType::INT64, i}; }
GgufValue GgufValue::of(double d) { return {GgufValueType::FLOAT64, d}; }
GgufValue GgufValue::of_bool(bool b) { return {GgufValueType::BOOL, b}; }
GgufValue GgufValue::of(std::vector<std::string> items) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = GgufValueType::STRING;
  a->items.reserve(items.size());
  for (auto& s : items) a->items.push_back(of(std::move(s)));
  return {GgufValueType::ARRAY, a};
}
GgufValue GgufValue::of(const std::vector<int64_t>& items) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = GgufValueType::INT64;
  for (int64_t i : items) a->items.push_back(of(i));
  return {GgufValueType::ARRAY, a};
}

std::unique_ptr<GgufFile> GgufFile::assemble(std::string path, std::map<std::string, GgufValue> metadata,
                                             std::vector<GgufTensorInfo> tensors,
                                             std::vector<std::shared_ptr<const void>> owners, size_t size_bytes) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(path);
  f->size_bytes_ = size_bytes;
  f->kv_ = std::move(metadata);
  f->owners_ = std::move(owners);
  f->tensors_ = std::move(tensors);
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    if (!f->tensor_index_.emplace(f->tensors_[i].name, i).second) {
      fail_file(f->path_, "tensor '" + f->tensors_[i].name + "' is given twice");
    }
  }
  return f;
}

GgufFile::GgufFile(const std::string& path) : path_(path), size_bytes_(0), map_(std::make_shared<MappedFile>(path)) {
  size_bytes_ = map_->size();
  Cursor c(path, map_->data(), map_->size());
  if (map_->size() < 4) fail_file(path, "not a GGUF file (only " + std::to_string(map_->size()) + " bytes)");
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != 0x46554747u) {  // "GGUF" little-endian
    fail_file(path, "not a GGUF file (bad magic; expected the bytes 'GGUF')");
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    fail_file(path, "unsupported GGUF version " + std::to_string(version_) + " (this reader handles v2 and v3)");
  }
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > kMaxTensors) c.fail_at("tensor count " + std::to_string(n_tensors) + " is absurd");
  if (n_kv > kMaxKeys) c.fail_at("metadata count " + std::to_string(n_kv) + " is absurd");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key");
    auto type = static_cast<GgufValueType>(c.read<uint32_t>("metadata value type"));
    if (static_cast<uint32_t>(type) > static_cast<uint32_t>(GgufValueType::FLOAT64)) {
      c.fail_at("metadata key '" + key + "' has unknown value type " + std::to_string(static_cast<uint32_t>(type)));
    }
    GgufValue v = read_value(c, type, 0);
    if (!kv_.emplace(key, std::move(v)).second) c.fail_at("duplicate metadata key '" + key + "'");
  }
  if (auto a = opt_int("general.alignment")) {
    if (*a <= 0 || (*a & (*a - 1)) != 0)
      fail_file(path, "general.alignment " + std::to_string(*a) + " is not a power of two");
    alignment_ = static_cast<uint64_t>(*a);
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor name");
    uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims == 0 || n_dims > kMaxDims)
      c.fail_at("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions");
    t.n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = c.read<uint64_t>("tensor dimension");
      if (dim == 0 || dim > (1ull << 40))
        c.fail_at("tensor '" + t.name + "' has absurd dimension " + std::to_string(dim));
      if (t.n_elements > (int64_t{1} << 48) / static_cast<int64_t>(dim))
        c.fail_at("tensor '" + t.name + "' is absurdly large");
      t.dims.push_back(static_cast<int64_t>(dim));
      t.n_elements *= static_cast<int64_t>(dim);
    }
    uint32_t type = c.read<uint32_t>("tensor type");
    GgmlTypeInfo info = ggml_type_info(type);
    if (!info.known) c.fail_at("tensor '" + t.name + "' has unknown type number " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    if (t.dims[0] % info.block_elems != 0) {
      c.fail_at("tensor '" + t.name + "' row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                info.name + " block size " + std::to_string(info.block_elems));
    }
    t.n_bytes = static_cast<size_t>(t.n_elements / info.block_elems) * info.block_bytes;
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0)
      c.fail_at("tensor '" + t.name + "' offset is not aligned to " + std::to_string(alignment_));
    if (tensor_index_.count(t.name)) c.fail_at("duplicate tensor name '" + t.name + "'");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  uint64_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > map_->size() && !tensors_.empty()) {
    fail_file(path, "truncated file: the tensor data section would start at byte " + std::to_string(data_start) +
                        " but the file has " + std::to_string(map_->size()) + " bytes");
  }
  for (auto& t : tensors_) {
    uint64_t begin = data_start + t.offset;
    if (t.offset > map_->size() || begin > map_->size() || t.n_bytes > map_->size() - begin) {
      fail_file(path, "tensor '" + t.name + "' (" + std::to_string(t.n_bytes) + " bytes at data offset " +
                          std::to_string(t.offset) + ") runs past the end of the file (" +
                          std::to_string(map_->size()) + " bytes) — the file is truncated or corrupt");
    }
    t.data = map_->data() + begin;
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.find(key);
  if (!v) fail_file(f.path(), "metadata key '" + key + "' is missing");
  return *v;
}
[[noreturn]] void wrong_kind(const GgufFile& f, const std::string& key, const char* want, const GgufValue& v) {
  fail_file(f.path(), "metadata key '" + key + "' should be " + want + " but is " + value_type_name(v.type));
}
const GgufArray& require_array(const GgufFile& f, const std::string& key) {
  const GgufValue& v = require(f, key);
  auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.v);
  if (!a) wrong_kind(f, key, "an array", v);
  return **a;
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  auto* s = std::get_if<std::string>(&v.v);
  if (!s) wrong_kind(*this, key, "a string", v);
  return *s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  int64_t i;
  if (!as_int(v, &i)) wrong_kind(*this, key, "an integer", v);
  return i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  double d;
  if (!as_float(v, &d)) wrong_kind(*this, key, "a number", v);
  return d;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  auto* b = std::get_if<bool>(&v.v);
  if (!b) wrong_kind(*this, key, "a bool", v);
  return *b;
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufArray& a = require_array(*this, key);
  std::vector<std::string> out;
  out.reserve(a.items.size());
  for (const auto& item : a.items) {
    auto* s = std::get_if<std::string>(&item.v);
    if (!s) wrong_kind(*this, key, "an array of strings", item);
    out.push_back(*s);
  }
  return out;
}

std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufArray& a = require_array(*this, key);
  std::vector<float> out;
  out.reserve(a.items.size());
  for (const auto& item : a.items) {
    double d;
    if (!as_float(item, &d)) wrong_kind(*this, key, "an array of numbers", item);
    out.push_back(static_cast<float>(d));
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufArray& a = require_array(*this, key);
  std::vector<int64_t> out;
  out.reserve(a.items.size());
  for (const auto& item : a.items) {
    int64_t i;
    if (!as_int(item, &i)) wrong_kind(*this, key, "an array of integers", item);
    out.push_back(i);
  }
  return out;
}

std::optional<std::string> GgufFile::opt_string(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}
std::optional<int64_t> GgufFile::opt_int(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<double> GgufFile::opt_float(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}
std::optional<bool> GgufFile::opt_bool(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) fail_file(path(), "tensor '" + name + "' is missing");
  return *t;
}

}  // namespace cvq
