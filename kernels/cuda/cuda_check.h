#pragma once
// Error checks for CUDA runtime and cuBLAS calls: a failure throws cvq::Error naming the call.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"

namespace cvq::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS: ") + what + ": " + cublasGetStatusString(s));
}

// After a kernel launch: launch-configuration errors surface here, execution errors at the next sync.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// The calling host thread's cuBLAS handle (handles are not meant to be shared across host threads);
// created on first use (kernels/cuda/gemm_gpu.cu).
cublasHandle_t cublas_handle();

inline int blocks_for(long long n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

}  // namespace cvq::cuda
