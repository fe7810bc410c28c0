// libFuzzer target for the GGUF parser: any input must parse or throw cvq::Error — never crash,
// hang, or read out of bounds (run under ASan/UBSan). Build: -DCOMMVQ_FUZZ=ON with clang.
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "fuzz_input.h"
#include "model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  const int fd = cvq::fuzz::input_as_file(data, size, &path);
  if (fd < 0) return 0;
  try {
    cvq::GgufFile f(path);
    for (const auto& t : f.tensors()) {
      volatile uint8_t sink = t.n_bytes ? t.data[t.n_bytes - 1] : 0;  // touch the last byte: must be in bounds
      (void)sink;
    }
    for (const auto& [k, v] : f.metadata()) (void)v.describe();
  } catch (const cvq::Error&) {
  }
  close(fd);
  return 0;
}
