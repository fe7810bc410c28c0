// libFuzzer target for the safetensors reader (codebooks, KVQuant calibrations, Hugging Face
// weights): any input must load or throw cvq::Error — never crash, hang, or hand out a tensor that
// reaches past the file (run under ASan/UBSan). Build: cmake --preset fuzz (clang).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  try {
    cvq::SafetensorsReader r("/proc/self/fd/" + std::to_string(fd));
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
