// The Keras structure JSON of an import, against PP-CNN's MNIST weights (HECNN_FUZZ_KERAS_WEIGHTS,
// default ../shared/models/ppcnn-mnist/...): the weights file is trusted input of the harness, the
// structure is fuzzed.
#include <cstdlib>

#include "fuzz_util.h"
#include "nn/keras.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string weights = [] {
    const char* w = std::getenv("HECNN_FUZZ_KERAS_WEIGHTS");
    return std::string(w ? w : "../shared/models/ppcnn-mnist/CKKS-swish_rg4_deg4-BN-DA_weights.h5");
  }();
  const std::string path = fuzz::write_scratch("structure.json", data, size);
  fuzz::expect_clean([&] { (void)nn::import_keras(path, weights); });
  return 0;
}
