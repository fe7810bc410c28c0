// libFuzzer target for the safetensors reader (codebooks, KVQuant calibrations, Hugging Face
// weights): any input must load or throw cvq::Error — never crash, hang, or hand out a tensor that
// reaches past the file (run under ASan/UBSan). Build: cmake --preset fuzz (clang).
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  const int fd = cvq::fuzz::input_as_file(data, size, &path);
  if (fd < 0) return 0;
  try {
    cvq::SafetensorsReader r(path);
    for (const std::string& name : r.names()) {
      const cvq::StTensorView& t = r.tensor(name);
      volatile uint8_t sink = t.n_bytes ? t.data[t.n_bytes - 1] : 0;  // touch the last byte: must be in bounds
      (void)sink;
    }
  } catch (const cvq::Error&) {
  }
  close(fd);
  return 0;
}
