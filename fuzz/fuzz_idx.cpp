// IDX datasets (MNIST, Fashion-MNIST; raw or gzip): the input is split into an images file and a
// labels file at a position given by its first two bytes.
#include "fuzz_util.h"
#include "nn/dataset.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t cut = std::min<std::size_t>(size - 2, static_cast<std::size_t>(data[0]) << 8 | data[1]);
  const std::string images = fuzz::write_scratch("images-idx3-ubyte", data + 2, cut);
  const std::string labels = fuzz::write_scratch("labels-idx1-ubyte", data + 2 + cut, size - 2 - cut);
  fuzz::expect_clean([&] { (void)nn::read_idx(images, labels); });
  return 0;
}
