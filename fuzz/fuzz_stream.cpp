// Query and result files (header and ciphertext batches) against a valid key directory; the first
// byte picks the kind.
#include "fuzz_util.h"
#include "he/files.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const he::ServerKeys keys = he::load_server_keys(fuzz::tiny_setup().key_dir);
  const std::string path = fuzz::write_scratch("stream.bin", data + 1, size - 1);
  fuzz::expect_clean([&] {
    he::StreamReader r(path, data[0] % 2 ? "query" : "result", keys.info, keys.ctx);
    for (std::size_t b = 0; b < r.header().batches.size(); ++b) (void)r.read_batch();
    r.finish();
  });
  return 0;
}
