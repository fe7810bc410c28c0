#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace cvq {
namespace {

std::string tmp_path(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  const std::string p = tmp_path("st_roundtrip.safetensors");
  SafetensorsWriter w;
  w.add_f32("a.b", {2, 3}, {1, 2, 3, 4, 5, 6});
  w.add_i32("idx", {4}, {7, -8, 9, 10});
  w.set_metadata("model", "tiny");
  w.write(p);
  SafetensorsReader r(p);
  EXPECT_EQ(r.metadata().at("model"), "tiny");
  EXPECT_EQ(r.floats("a.b"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const auto& idx = r.tensor("idx", StDtype::I32, {4});
  EXPECT_EQ(reinterpret_cast<const int32_t*>(idx.data)[1], -8);
  EXPECT_THROW(r.tensor("idx", StDtype::F32, {4}), Error);
  EXPECT_THROW(r.tensor("missing"), Error);
  std::filesystem::remove(p);
}

TEST(Safetensors, CorruptFilesGiveClearErrors) {
  const std::string p = tmp_path("st_corrupt.safetensors");
  SafetensorsWriter w;
  w.add_f32("x", {16}, std::vector<float>(16, 1.0f));
  w.write(p);
  const std::string good = read_file(p);
  for (size_t cut : {size_t{0}, size_t{4}, size_t{12}, good.size() - 1}) {
    write_file_atomic(p, good.substr(0, cut));
    try {
      SafetensorsReader r(p);
      FAIL() << "accepted a file truncated at " << cut;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    }
  }
  std::string bad = good;
  bad[8] = '!';  // the header's opening brace: no longer JSON
  write_file_atomic(p, bad);
  EXPECT_THROW(SafetensorsReader{p}, Error);
  std::filesystem::remove(p);
}

}  // namespace
}  // namespace cvq
