// Model files: safetensors container, architecture and info metadata, parameter tensors.
#include "fuzz_util.h"
#include "nn/safetensors.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_scratch("model.safetensors", data, size);
  fuzz::expect_clean([&] { (void)nn::load_model(path); });
  return 0;
}
