#include "kernels/cuda/device_memory.h"

#include <mutex>

#include "kernels/cuda/cuda_check.h"

namespace cvq::cuda {
namespace {

std::mutex g_mutex;
AllocatorStats g_stats;

std::string mib(size_t b) { return std::to_string(b / (1024 * 1024)) + " MiB"; }

}  // namespace

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_stats;
}

void reset_allocator_peak() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_stats.peak_bytes = g_stats.current_bytes;
}

DriverMemory driver_memory() {
  DriverMemory m;
  check(cudaMemGetInfo(&m.free_bytes, &m.total_bytes), "cudaMemGetInfo");
  return m;
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("CUDA: cannot allocate " + mib(bytes) + " on the device (" + cudaGetErrorString(e) + "; " +
                mib(free_b) + " free of " + mib(total_b) + ")");
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  g_stats.current_bytes += bytes;
  g_stats.allocations += 1;
  if (g_stats.current_bytes > g_stats.peak_bytes) g_stats.peak_bytes = g_stats.current_bytes;
  return p;
}

void device_free(void* p, size_t bytes) {
  if (!p) return;
  cudaFree(p);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_stats.current_bytes -= bytes;
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host to device");
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device to host");
}
void zero_device(void* dst, size_t bytes) { check(cudaMemset(dst, 0, bytes), "cudaMemset"); }
void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

}  // namespace cvq::cuda
