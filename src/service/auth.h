#pragma once
// Session credentials: random ids and bearer tokens (32 bytes from libsodium), and the check of a
// call's metadata against a session's token (in constant time). A token is never logged; the
// buffers that held it are wiped.
#include <array>
#include <cstddef>
#include <string>

namespace hecnn::service {

inline constexpr std::size_t kTokenBytes = 32;

// `bytes` random bytes in hexadecimal (ids of sessions and queries).
std::string random_hex(std::size_t bytes);

class Token {
 public:
  // A fresh random token.
  static Token generate();
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  Token(Token&&) noexcept;
  ~Token();
  // The token in hexadecimal, for the client (the caller wipes it once sent).
  std::string hex() const;
  // Whether an "authorization" metadata value is "Bearer <this token>" (constant time in the token).
  bool matches_bearer(const std::string& value) const;

 private:
  Token() = default;
  std::array<unsigned char, kTokenBytes> bytes_{};
};

}  // namespace hecnn::service
