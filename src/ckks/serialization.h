#pragma once
// Versioned binary format for parameters, keys, ciphertexts and plaintexts.
//
//   header  : magic "HCKS" | u16 version | u16 object type | u64 parameter id | u64 payload bytes
//   payload : object fields, little-endian; polynomials as u64 words in NTT form
//   trailer : 32-byte BLAKE2b of header and payload
//
// Loading checks the magic, version, type, parameter id and declared length before reading; every
// count against the parameters before allocating; every coefficient against its prime; and the
// checksum at the end. Any failure throws hecnn::Error with a message naming what is wrong.
// Uniform halves (secret-key ciphertexts, public and key-switching keys) can be stored as a
// 32-byte seed and are re-expanded on load.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "ckks/params.h"

namespace hecnn::ckks {

enum class ObjectType : std::uint16_t {
  kParameters = 1,
  kCiphertext = 2,
  kPlaintext = 3,
  kPublicKey = 4,
  kSecretKey = 5,
  kRelinKeys = 6,
  kGaloisKeys = 7,
};
constexpr std::uint16_t kFormatVersion = 1;

void save(std::ostream& os, const CkksParameters& params);
// Insecure parameters load only when `opts.allow_insecure` is set.
CkksParameters load_parameters(std::istream& is, const ParameterOptions& opts = {});

// `seeded`: store component 1 of a fresh secret-key encryption as its seed (half the size).
void save(std::ostream& os, const CkksContext& ctx, const Ciphertext& ct, bool seeded = true);
Ciphertext load_ciphertext(std::istream& is, const CkksContext& ctx);

void save(std::ostream& os, const CkksContext& ctx, const Plaintext& pt);
Plaintext load_plaintext(std::istream& is, const CkksContext& ctx);

void save(std::ostream& os, const CkksContext& ctx, const SecretKey& sk);
SecretKey load_secret_key(std::istream& is, const CkksContext& ctx);

void save(std::ostream& os, const CkksContext& ctx, const PublicKey& pk, bool seeded = true);
PublicKey load_public_key(std::istream& is, const CkksContext& ctx);

void save(std::ostream& os, const CkksContext& ctx, const RelinKeys& rk, bool seeded = true);
RelinKeys load_relin_keys(std::istream& is, const CkksContext& ctx);

void save(std::ostream& os, const CkksContext& ctx, const GaloisKeys& gk, bool seeded = true);
GaloisKeys load_galois_keys(std::istream& is, const CkksContext& ctx);

// Reads the header of the next object without consuming it: its type and parameter id.
struct ObjectHeader {
  ObjectType type;
  std::uint64_t params_id;
  std::uint64_t payload_bytes;
};
ObjectHeader peek_header(std::istream& is);
std::string object_type_name(ObjectType t);

// File helpers: open (with a clear error naming the path), run `body`, and for reads require that
// the whole file was consumed.
void write_file(const std::string& path, const std::function<void(std::ostream&)>& body);
void read_file(const std::string& path, const std::function<void(std::istream&)>& body);

}  // namespace hecnn::ckks
