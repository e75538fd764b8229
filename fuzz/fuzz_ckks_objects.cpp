// CKKS serialization: parameters, ciphertexts, plaintexts and every key type, read against a fixed
// small context. The first byte picks the object type.
#include <sstream>

#include "ckks/ckks.h"
#include "fuzz_util.h"

using namespace hecnn;

namespace {
const ckks::CkksContext& context() {
  static const auto ctx = [] {
    ckks::ParameterOptions po;
    po.allow_insecure = true;
    return ckks::CkksContext::create(ckks::CkksParameters::from_bit_sizes(1024, {40, 30, 30}, {40}, po));
  }();
  return *ctx;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto& ctx = context();
  std::istringstream is(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  fuzz::expect_clean([&] {
    ckks::ParameterOptions po;
    po.allow_insecure = true;
    switch (data[0] % 7) {
      case 0: (void)ckks::load_parameters(is, po); break;
      case 1: (void)ckks::load_ciphertext(is, ctx); break;
      case 2: (void)ckks::load_plaintext(is, ctx); break;
      case 3: (void)ckks::load_secret_key(is, ctx); break;
      case 4: (void)ckks::load_public_key(is, ctx); break;
      case 5: (void)ckks::load_relin_keys(is, ctx); break;
      default: (void)ckks::load_galois_keys(is, ctx); break;
    }
  });
  return 0;
}
