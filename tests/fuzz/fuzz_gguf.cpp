// libFuzzer target for the GGUF parser: any input must parse or throw cvq::Error — never crash,
// hang, or read out of bounds (run under ASan/UBSan). Build: -DCOMMVQ_FUZZ=ON with clang.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("fuzz.gguf", 0);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  try {
    cvq::GgufFile f("/proc/self/fd/" + std::to_string(fd));
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
