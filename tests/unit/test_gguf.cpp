#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/gguf.h"
#include "support/gguf_writer.h"

namespace cvq {
namespace {

using test::encode_pod;
using test::encode_string;
using test::GgufWriter;

class GgufTest : public ::testing::Test {
 protected:
  std::string path_ = (std::filesystem::temp_directory_path() /
                       ("gguf_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".gguf"))
                          .string();
  void TearDown() override { std::filesystem::remove(path_); }
  void write_bytes(const std::string& bytes) {
    std::ofstream f(path_, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::string error_of(const std::string& bytes) {
    write_bytes(bytes);
    try {
      GgufFile f(path_);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

GgufWriter small_valid() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_f32_tensor("a", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.add_f32_tensor("b", {3}, {9, 10, 11});
  return w;
}

TEST_F(GgufTest, ReadsEveryMetadataType) {
  GgufWriter w;
  w.add_raw("u8", 0, encode_pod<uint8_t>(200));
  w.add_raw("i8", 1, encode_pod<int8_t>(-100));
  w.add_raw("u16", 2, encode_pod<uint16_t>(60000));
  w.add_raw("i16", 3, encode_pod<int16_t>(-30000));
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -2000000000);
  w.add_f32("f32", 1.5f);
  w.add_bool("bool", true);
  w.add_string("str", "héllo");
  w.add_raw("u64", 10, encode_pod<uint64_t>(1ull << 40));
  w.add_raw("i64", 11, encode_pod<int64_t>(-(1ll << 40)));
  w.add_raw("f64", 12, encode_pod<double>(0.25));
  w.add_string_array("strs", {"a", "", "ccc"});
  w.add_f32_array("floats", {0.5f, -1.0f});
  w.add_i32_array("ints", {1, -2, 3});
  // Nested array: array of 2 arrays of u8.
  std::string inner =
      encode_pod<uint32_t>(0) + encode_pod<uint64_t>(2) + encode_pod<uint8_t>(7) + encode_pod<uint8_t>(8);
  w.add_raw("nested", 9, encode_pod<uint32_t>(9) + encode_pod<uint64_t>(2) + inner + inner);
  w.write(path_);

  GgufFile f(path_);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("f32")), 1.5f);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("str"), "héllo");
  EXPECT_EQ(f.get_int("u64"), 1ll << 40);
  EXPECT_EQ(f.get_int("i64"), -(1ll << 40));
  EXPECT_DOUBLE_EQ(f.get_float("f64"), 0.25);
  EXPECT_EQ(f.get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_float_array("floats"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(f.get_int_array("ints"), (std::vector<int64_t>{1, -2, 3}));
  const GgufValue* nested = f.find("nested");
  ASSERT_NE(nested, nullptr);
  auto arr = std::get<std::shared_ptr<GgufArray>>(nested->v);
  ASSERT_EQ(arr->items.size(), 2u);
  EXPECT_EQ(std::get<std::shared_ptr<GgufArray>>(arr->items[1].v)->items.size(), 2u);
  EXPECT_FALSE(f.opt_int("missing").has_value());
}

TEST_F(GgufTest, WrongKindAndMissingKeysNameTheKey) {
  small_valid().write(path_);
  GgufFile f(path_);
  try {
    f.get_int("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos);
  }
  EXPECT_THROW(f.get_string("nope"), Error);
  EXPECT_THROW(f.tensor("nope"), Error);
}

TEST_F(GgufTest, TensorTableAndDataAlignment) {
  for (uint64_t align : {32ull, 64ull}) {
    GgufWriter w(3, align);
    w.add_f32_tensor("a", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
    w.add_f32_tensor("b", {3}, {9, 10, 11});
    w.write(path_);
    GgufFile f(path_);
    EXPECT_EQ(f.alignment(), align);
    ASSERT_EQ(f.tensors().size(), 2u);
    const auto& a = f.tensor("a");
    EXPECT_EQ(a.dims, (std::vector<int64_t>{4, 2}));
    EXPECT_EQ(a.rows(), 2);
    EXPECT_EQ(a.n_bytes, 32u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % align, 0u);
    const float* b = reinterpret_cast<const float*>(f.tensor("b").data);
    EXPECT_EQ(b[0], 9.0f);
    EXPECT_EQ(b[2], 11.0f);
  }
}

TEST_F(GgufTest, ReadsVersion2) {
  GgufWriter w(2);
  w.add_string("general.architecture", "llama");
  w.write(path_);
  EXPECT_EQ(GgufFile(path_).version(), 2u);
}

TEST_F(GgufTest, RejectsWrongMagic) {
  std::string bytes = small_valid().build();
  bytes[0] = 'X';
  EXPECT_NE(error_of(bytes).find("bad magic"), std::string::npos);
}

TEST_F(GgufTest, RejectsEmptyAndTinyFiles) {
  EXPECT_NE(error_of("").find("not a GGUF file"), std::string::npos);
  EXPECT_NE(error_of("GG").find("not a GGUF file"), std::string::npos);
}

TEST_F(GgufTest, RejectsUnsupportedVersion) {
  std::string bytes = small_valid().build();
  bytes[4] = 9;
  EXPECT_NE(error_of(bytes).find("unsupported GGUF version 9"), std::string::npos);
}

TEST_F(GgufTest, EveryTruncationIsAClearErrorNeverACrash) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_f32_tensor("a", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});  // 32 bytes: the file ends with tensor data,
  const std::string bytes = w.build();                      // so every cut removes something needed
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::string e = error_of(bytes.substr(0, cut));
    EXPECT_FALSE(e.empty()) << "truncated at " << cut << " was accepted";
    EXPECT_NE(e.find(path_), std::string::npos) << e;
  }
  EXPECT_EQ(error_of(bytes), "");
}

TEST_F(GgufTest, RejectsTensorPastEndOfFile) {
  GgufWriter w;
  w.add_f32_tensor("big", {1024}, std::vector<float>(1024, 1.0f));
  std::string bytes = w.build();
  bytes.resize(bytes.size() - 64);
  std::string e = error_of(bytes);
  EXPECT_NE(e.find("'big'"), std::string::npos) << e;
  EXPECT_NE(e.find("past the end"), std::string::npos) << e;
}

TEST_F(GgufTest, RejectsUnknownTensorType) {
  GgufWriter w;
  w.add_tensor("t", {32}, static_cast<GgmlType>(77), std::string(64, '\0'));
  std::string e = error_of(w.build());
  EXPECT_NE(e.find("unknown type number 77"), std::string::npos) << e;
}

TEST_F(GgufTest, RejectsAbsurdSizes) {
  // Absurd string length in a key.
  std::string bytes = std::string("GGUF") + encode_pod<uint32_t>(3) + encode_pod<uint64_t>(0) +
                      encode_pod<uint64_t>(1) + encode_pod<uint64_t>(1ull << 62);
  EXPECT_NE(error_of(bytes).find("absurd"), std::string::npos);
  // Absurd tensor count.
  bytes = std::string("GGUF") + encode_pod<uint32_t>(3) + encode_pod<uint64_t>(1ull << 50) + encode_pod<uint64_t>(0);
  EXPECT_NE(error_of(bytes).find("absurd"), std::string::npos);
  // Absurd array length.
  GgufWriter w;
  w.add_raw("arr", 9, encode_pod<uint32_t>(0) + encode_pod<uint64_t>(1ull << 60));
  EXPECT_NE(error_of(w.build()).find("absurd"), std::string::npos);
  // Absurd dimension product.
  GgufWriter w2;
  w2.add_tensor("huge", {1ll << 30, 1ll << 30}, GgmlType::F32, "");
  EXPECT_NE(error_of(w2.build()).find("absurd"), std::string::npos);
}

TEST_F(GgufTest, RejectsRowLengthNotMultipleOfBlock) {
  GgufWriter w;
  w.add_tensor("q", {48}, GgmlType::Q8_0, std::string(34, '\0'));
  EXPECT_NE(error_of(w.build()).find("not a multiple"), std::string::npos);
}

TEST_F(GgufTest, RejectsUnknownValueTypeAndBadBool) {
  GgufWriter w;
  w.add_raw("x", 42, "");
  EXPECT_NE(error_of(w.build()).find("unknown value type 42"), std::string::npos);
  GgufWriter w2;
  w2.add_raw("b", 7, encode_pod<uint8_t>(5));
  EXPECT_NE(error_of(w2.build()).find("neither 0 nor 1"), std::string::npos);
}

TEST_F(GgufTest, MissingFileNamesThePath) {
  try {
    GgufFile f("/nonexistent/model.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
}

}  // namespace
}  // namespace cvq

namespace cvq {
namespace {

// Deterministic corruption sweep (the libFuzzer target does the open-ended version): flipped bytes
// anywhere in a valid file must give a parse or an Error, never a crash (ASan build checks reads).
TEST_F(GgufTest, RandomByteCorruptionNeverCrashes) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.add_f32_array("scores", {1, 2, 3});
  w.add_f32_tensor("t", {8, 2}, std::vector<float>(16, 1.0f));
  const std::string valid = w.build();
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  int errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(next() % 4);
    for (int f = 0; f < flips; ++f) bytes[next() % bytes.size()] = static_cast<char>(next() >> 24);
    write_bytes(bytes);
    try {
      GgufFile f(path_);
      for (const auto& t : f.tensors()) {
        volatile uint8_t last = t.n_bytes ? t.data[t.n_bytes - 1] : 0;  // in bounds, or ASan says so
        (void)last;
      }
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);  // corruption is noticed, not silently accepted everywhere
}

}  // namespace
}  // namespace cvq
