#include "support/gguf_writer.h"

#include <fstream>

namespace cvq::test {

std::string encode_string(const std::string& s) { return encode_pod<uint64_t>(s.size()) + s; }

void GgufWriter::add_raw(const std::string& key, uint32_t type, const std::string& payload) {
  kv_ += encode_string(key) + encode_pod<uint32_t>(type) + payload;
  ++n_kv_;
}
void GgufWriter::add_u32(const std::string& key, uint32_t v) { add_raw(key, 4, encode_pod(v)); }
void GgufWriter::add_i32(const std::string& key, int32_t v) { add_raw(key, 5, encode_pod(v)); }
void GgufWriter::add_f32(const std::string& key, float v) { add_raw(key, 6, encode_pod(v)); }
void GgufWriter::add_bool(const std::string& key, bool v) { add_raw(key, 7, encode_pod<uint8_t>(v ? 1 : 0)); }
void GgufWriter::add_string(const std::string& key, const std::string& v) { add_raw(key, 8, encode_string(v)); }

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::string p = encode_pod<uint32_t>(8) + encode_pod<uint64_t>(v.size());
  for (const auto& s : v) p += encode_string(s);
  add_raw(key, 9, p);
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& v) {
  std::string p = encode_pod<uint32_t>(6) + encode_pod<uint64_t>(v.size());
  for (float f : v) p += encode_pod(f);
  add_raw(key, 9, p);
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  std::string p = encode_pod<uint32_t>(5) + encode_pod<uint64_t>(v.size());
  for (int32_t i : v) p += encode_pod(i);
  add_raw(key, 9, p);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, GgmlType type,
                            const std::string& data) {
  tensors_.push_back({name, std::move(dims), static_cast<uint32_t>(type), data});
}

void GgufWriter::add_f32_tensor(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& values) {
  add_tensor(name, std::move(dims), GgmlType::F32,
             std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
}

std::string GgufWriter::build() const {
  std::string out = "GGUF" + encode_pod<uint32_t>(version_) + encode_pod<uint64_t>(tensors_.size()) +
                    encode_pod<uint64_t>(n_kv_ + (alignment_ != 32 ? 1 : 0)) + kv_;
  if (alignment_ != 32)
    out += encode_string("general.alignment") + encode_pod<uint32_t>(4) + encode_pod<uint32_t>(alignment_);
  std::vector<uint64_t> offsets;
  uint64_t off = 0;
  for (const auto& t : tensors_) {
    offsets.push_back(off);
    off += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    out += encode_string(t.name) + encode_pod<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) out += encode_pod<uint64_t>(static_cast<uint64_t>(d));
    out += encode_pod<uint32_t>(t.type) + encode_pod<uint64_t>(offsets[i]);
  }
  out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  for (const auto& t : tensors_) {
    out += t.data;
    out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::ofstream f(path, std::ios::binary);
  const std::string bytes = build();
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace cvq::test
