// The device layer itself: runs with or without a GPU (these checks do not need one).
#include <gtest/gtest.h>

#include "core/error.h"
#include "device/device.h"

namespace cvq {
namespace {

TEST(GpuDevice, BuildHasCudaSupport) { EXPECT_TRUE(cuda_compiled()); }

TEST(GpuDevice, ReasonAndDeviceListAgree) {
  const auto devices = cuda_devices();
  const std::string why = cuda_unavailable_reason();
  EXPECT_EQ(devices.empty(), !why.empty()) << why;
  if (devices.empty()) {
    EXPECT_NE(why.find("no CUDA device was found"), std::string::npos) << why;
    try {
      require_cuda("--device cuda");
      ADD_FAILURE() << "require_cuda did not throw without a device";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--device cuda: no CUDA device was found"), std::string::npos) << e.what();
    }
  } else {
    EXPECT_NO_THROW(require_cuda());
    for (const auto& d : devices) {
      EXPECT_FALSE(d.name.empty());
      EXPECT_GT(d.total_bytes, 0u);
      EXPECT_GT(d.sm_count, 0);
    }
  }
}

TEST(GpuDevice, ParseBackend) {
  EXPECT_EQ(parse_backend("cpu"), Backend::Cpu);
  EXPECT_EQ(parse_backend("cuda"), Backend::Cuda);
  EXPECT_THROW(parse_backend("gpu"), Error);
}

}  // namespace
}  // namespace cvq
