// ONNX models: the protobuf, ONNX's checker and shape inference, and hecnn's mapping of the graph.
#include "fuzz_util.h"
#include "nn/onnx.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_scratch("model.onnx", data, size);
  fuzz::expect_clean([&] { (void)nn::import_onnx(path); });
  return 0;
}
