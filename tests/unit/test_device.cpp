// The device layer in every build: backend names, and in a build without CUDA the clear error
// `--device cuda` gives (builds with CUDA check their side in tests/gpu/test_gpu_device.cpp).
#include <gtest/gtest.h>

#include "core/error.h"
#include "device/device.h"

namespace cvq {
namespace {

TEST(Device, BackendNames) {
  EXPECT_EQ(parse_backend("cpu"), Backend::Cpu);
  EXPECT_EQ(parse_backend("cuda"), Backend::Cuda);
  EXPECT_STREQ(backend_name(Backend::Cuda), "cuda");
  try {
    parse_backend("tpu");
    ADD_FAILURE() << "no error for an unknown device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown device 'tpu' (known: cpu, cuda)"), std::string::npos) << e.what();
  }
}

#ifndef COMMVQ_HAVE_CUDA
TEST(Device, CudaRequestedWithoutCudaSupportIsAClearError) {
  EXPECT_FALSE(cuda_compiled());
  EXPECT_TRUE(cuda_devices().empty());
  try {
    require_cuda("--device cuda");
    ADD_FAILURE() << "require_cuda did not throw in a build without CUDA";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--device cuda: this build has no CUDA support (configure with -DCOMMVQ_CUDA=ON)");
  }
}
#endif

}  // namespace
}  // namespace cvq
