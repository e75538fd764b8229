// A key bundle's bytes (he/keys.h), as the server reads an upload (secret keys refused) and as a
// client reads its own (secret key taken).
#include "fuzz_util.h"
#include "he/keys.h"

using namespace hecnn;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  he::KeyReadOptions server;
  server.secret = he::SecretPart::Refuse;
  server.max_bytes = std::uint64_t{64} << 20;
  fuzz::expect_clean([&] { (void)he::KeyBundle::from_bytes(p, size, server); });
  he::KeyReadOptions client;
  client.max_bytes = std::uint64_t{64} << 20;
  fuzz::expect_clean([&] { (void)he::KeyBundle::from_bytes(p, size, client); });
  return 0;
}
