// Model architecture JSON (the metadata of a model file, and `hecnn train --arch FILE`).
#include "fuzz_util.h"
#include "nn/model.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::expect_clean([&] {
    const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded()) return;
    const nn::Model m = nn::Model::from_architecture(j);
    (void)m.shapes(false);
    (void)m.summary();
  });
  return 0;
}
