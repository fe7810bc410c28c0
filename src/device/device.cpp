#include "device/device.h"

#include "core/error.h"

#ifdef COMMVQ_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace cvq {

Backend parse_backend(const std::string& name) {
  if (name == "cpu") return Backend::Cpu;
  if (name == "cuda") return Backend::Cuda;
  throw Error("unknown device '" + name + "' (known: cpu, cuda)");
}

const char* backend_name(Backend b) { return b == Backend::Cuda ? "cuda" : "cpu"; }

#ifdef COMMVQ_HAVE_CUDA

bool cuda_compiled() { return true; }

std::vector<CudaDeviceInfo> cuda_devices() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return {};
  }
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.sm_count = p.multiProcessorCount;
    d.total_bytes = p.totalGlobalMem;
    int prev = 0;
    if (cudaGetDevice(&prev) == cudaSuccess && cudaSetDevice(i) == cudaSuccess) {
      size_t free_b = 0, total_b = 0;
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_bytes = free_b;
      cudaSetDevice(prev);
    }
    out.push_back(d);
  }
  return out;
}

std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device was found (") + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return "no CUDA device was found";
  return {};
}

#else

bool cuda_compiled() { return false; }
std::vector<CudaDeviceInfo> cuda_devices() { return {}; }
std::string cuda_unavailable_reason() { return "this build has no CUDA support (configure with -DCOMMVQ_CUDA=ON)"; }

#endif

void require_cuda(const std::string& what) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) throw Error(what + ": " + why);
}

}  // namespace cvq
