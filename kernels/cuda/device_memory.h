#pragma once
// Device memory owned by RAII buffers, with the project's own allocation statistics (current and
// peak bytes through DeviceBuffer) next to what the driver reports (cudaMemGetInfo), so studies can
// put the measured peak beside the analytical count.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cvq::cuda {

struct AllocatorStats {
  size_t current_bytes = 0;
  size_t peak_bytes = 0;
  int64_t allocations = 0;
};
AllocatorStats allocator_stats();
void reset_allocator_peak();  // peak := current

struct DriverMemory {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  size_t used_bytes() const { return total_bytes - free_bytes; }
};
DriverMemory driver_memory();  // cudaMemGetInfo on the current device

void* device_alloc(size_t bytes);  // counted; throws cvq::Error on failure
void device_free(void* p, size_t bytes);

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count)
      : n_(count), p_(count ? static_cast<T*>(device_alloc(count * sizeof(T))) : nullptr) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      n_ = std::exchange(o.n_, 0);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  void reset() {
    if (p_) device_free(p_, n_ * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }
  // Grows (never shrinks) to at least count elements; contents are not kept.
  void ensure(size_t count) {
    if (count > n_) *this = DeviceBuffer(count);
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }

 private:
  size_t n_ = 0;
  T* p_ = nullptr;
};

// Synchronous copies (the default stream); sizes in elements.
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void zero_device(void* dst, size_t bytes);
void synchronize();

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& v) {
  DeviceBuffer<T> b(v.size());
  if (!v.empty()) copy_to_device(b.get(), v.data(), v.size() * sizeof(T));
  return b;
}
template <class T>
std::vector<T> download(const T* p, size_t count) {
  std::vector<T> v(count);
  if (count) copy_to_host(v.data(), p, count * sizeof(T));
  return v;
}

}  // namespace cvq::cuda
