#pragma once
// What both ends of the service share: ciphertexts as bytes on the wire, the metadata names of
// the session credentials, chunk sizes.
#include <cstddef>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"

namespace hecnn::service {

// gRPC metadata keys of every call after OpenSession.
inline constexpr const char* kSessionHeader = "hecnn-session";
inline constexpr const char* kAuthorizationHeader = "authorization";  // "Bearer <token>"
// Bytes per streamed chunk (keys, ciphertexts, results): well under gRPC's message limits.
inline constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
// The largest message either end accepts: a chunk and its framing.
inline constexpr int kMaxMessageBytes = 4 << 20;

// The ciphertexts in hecnn's serialization, concatenated (seeded: fresh encryptions only).
std::string serialize_ciphertexts(const ckks::CkksContext& ctx, const std::vector<ckks::Ciphertext>& cts, bool seeded);
// Exactly `count` ciphertexts and nothing after them; throws hecnn::Error ("ciphertext k of n: ...")
// on anything else. Every object is validated and checksummed by the ckks loader.
std::vector<ckks::Ciphertext> parse_ciphertexts(const std::string& bytes, const ckks::CkksContext& ctx, std::size_t count);

}  // namespace hecnn::service
