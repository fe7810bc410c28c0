#pragma once
// Which backend runs the model and kernels (`--device cpu|cuda`), and what CUDA devices exist.
// Compiled into every build: without CUDA support (-DCOMMVQ_CUDA=OFF) the queries report no
// device and require_cuda() throws a message that says how to get one.
#include <cstddef>
#include <string>
#include <vector>

namespace cvq {

enum class Backend { Cpu, Cuda };

// "cpu" or "cuda"; anything else throws an Error listing both.
Backend parse_backend(const std::string& name);
const char* backend_name(Backend b);

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;
  size_t total_bytes = 0;
  size_t free_bytes = 0;
};

// Whether this binary was built with -DCOMMVQ_CUDA=ON.
bool cuda_compiled();
// Devices visible to the CUDA runtime (empty without CUDA support or without a device).
std::vector<CudaDeviceInfo> cuda_devices();
// Empty when a CUDA device can be used; otherwise why not, as a complete sentence.
std::string cuda_unavailable_reason();
// Throws an Error with cuda_unavailable_reason() (prefixed by `what`) when no device can be used.
void require_cuda(const std::string& what = "--device cuda");

}  // namespace cvq
