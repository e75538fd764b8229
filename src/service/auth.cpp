#include "service/auth.h"

#include <sodium.h>

#include <vector>

namespace hecnn::service {

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  randombytes_buf(b.data(), b.size());
  std::string hex(2 * bytes + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), b.data(), b.size());
  hex.pop_back();
  return hex;
}

Token Token::generate() {
  Token t;
  randombytes_buf(t.bytes_.data(), t.bytes_.size());
  return t;
}

Token::Token(Token&& o) noexcept : bytes_(o.bytes_) { sodium_memzero(o.bytes_.data(), o.bytes_.size()); }

Token::~Token() { sodium_memzero(bytes_.data(), bytes_.size()); }

std::string Token::hex() const {
  std::string h(2 * kTokenBytes + 1, '\0');
  sodium_bin2hex(h.data(), h.size(), bytes_.data(), bytes_.size());
  h.pop_back();
  return h;
}

bool Token::matches_bearer(const std::string& value) const {
  static const std::string prefix = "Bearer ";
  if (value.size() != prefix.size() + 2 * kTokenBytes || value.compare(0, prefix.size(), prefix) != 0) return false;
  std::array<unsigned char, kTokenBytes> given{};
  std::size_t len = 0;
  const bool parsed = sodium_hex2bin(given.data(), given.size(), value.data() + prefix.size(), 2 * kTokenBytes, nullptr, &len,
                                     nullptr) == 0 &&
                      len == kTokenBytes;
  const bool same = parsed && sodium_memcmp(given.data(), bytes_.data(), kTokenBytes) == 0;
  sodium_memzero(given.data(), given.size());
  return same;
}

}  // namespace hecnn::service
