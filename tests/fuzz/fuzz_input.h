#pragma once
// The fuzz input as a file the readers can open by path: an anonymous memfd (no disk writes).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cvq::fuzz {

// Returns the fd (close it when done) or -1; *path is set to /proc/self/fd/<fd>.
inline int input_as_file(const uint8_t* data, size_t size, std::string* path) {
  const int fd = memfd_create("fuzz-input", 0);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  *path = "/proc/self/fd/" + std::to_string(fd);
  return fd;
}

}  // namespace cvq::fuzz
