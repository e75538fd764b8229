#include "service/wire.h"

#include <sstream>

#include "ckks/serialization.h"
#include "common/error.h"

namespace hecnn::service {

std::string serialize_ciphertexts(const ckks::CkksContext& ctx, const std::vector<ckks::Ciphertext>& cts, bool seeded) {
  std::ostringstream os(std::ios::binary);
  for (const auto& ct : cts) ckks::save(os, ctx, ct, seeded);
  return std::move(os).str();
}

std::vector<ckks::Ciphertext> parse_ciphertexts(const std::string& bytes, const ckks::CkksContext& ctx, std::size_t count) {
  std::istringstream is(bytes, std::ios::binary);
  std::vector<ckks::Ciphertext> v;
  v.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    try {
      v.push_back(ckks::load_ciphertext(is, ctx));
    } catch (const Error& e) {
      throw Error("ciphertext " + std::to_string(i + 1) + " of " + std::to_string(count) + ": " + e.what());
    }
  }
  if (is.peek() != std::char_traits<char>::eof()) throw Error("bytes after the last of the " + std::to_string(count) + " ciphertexts");
  return v;
}

}  // namespace hecnn::service
