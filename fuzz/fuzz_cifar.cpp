// CIFAR-10 binary batch files.
#include "fuzz_util.h"
#include "nn/dataset.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_scratch("data_batch.bin", data, size);
  fuzz::expect_clean([&] { (void)nn::read_cifar10_batches({path}); });
  return 0;
}
