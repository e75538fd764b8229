#pragma once
// Versioned binary format for parameters, keys, ciphertexts and plaintexts.
//
//   header  : magic "HCKS" | u16 version | u16 object type | u64 parameter id | u64 payload bytes
//   payload : object fields, little-endian; polynomials as u64 words in NTT form
//   trailer : 32-byte BLAKE2b of header and payload
//
// Version 2 (keys) adds the 16-byte key-set id (KeySetId) at the start of the payload of the key
// objects (secret, public, relinearization and Galois keys), covered by the checksum like the rest.
// Objects without keys (parameters, ciphertexts, plaintexts) are unchanged and still written as
// version 1, so older readers read them; version 1 keys still load, with an all-zero key-set id.
//
// Loading checks the magic, version, type, parameter id and declared length before reading; every
// count against the parameters before allocating; every coefficient against its prime; and the
// checksum at the end. Any failure throws hecnn::Error with a message naming what is wrong.
// Uniform halves (secret-key ciphertexts, public and key-switching keys) can be stored as a
// 32-byte seed and are re-expanded on load.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "ckks/bootstrap_ops.h"
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
  kBootstrapKeys = 8,
};
constexpr std::uint16_t kFormatVersion = 1;      // parameters, ciphertexts, plaintexts
constexpr std::uint16_t kKeyFormatVersion = 3;   // keys: version 1 plus the key-set id (2), plus the
                                                 // chain primes each key-switching key covers (3)

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

// Bootstrapping's encapsulation keys (ckks/bootstrap_ops.h): the switch from the ephemeral sparse
// secret back to the client's (a key-switching key) and the level-0 switch to it (over q_0 p_0),
// with the key-set id of the client's keys.
struct BootstrapSwitchKeys {
  KeySwitchKey from_sparse;
  Level0SwitchKey to_sparse;
  KeySetId key_set{};
};
void save(std::ostream& os, const CkksContext& ctx, const BootstrapSwitchKeys& k, bool seeded = true);
BootstrapSwitchKeys load_bootstrap_keys(std::istream& is, const CkksContext& ctx);

std::string object_type_name(ObjectType t);

// File helpers: open (with a clear error naming the path), run `body`, and for reads require that
// the whole file was consumed. Writes are atomic (common/files.h: a temporary file beside `path`,
// fsynced, renamed over it; a symbolic link at `path` is replaced, never followed).
void write_file(const std::string& path, const std::function<void(std::ostream&)>& body);
void read_file(const std::string& path, const std::function<void(std::istream&)>& body);
// The same for secret keys: written with mode 0600 from creation; read only when no other user may
// access the file; every buffer that held the key's bytes is zeroed.
void write_secret_file(const std::string& path, const std::function<void(std::ostream&)>& body);
void read_secret_file(const std::string& path, const std::function<void(std::istream&)>& body);

// The checksum of this format (BLAKE2b, 32 bytes, libsodium), for files built from these objects.
class Checksum {
 public:
  static constexpr std::size_t kBytes = 32;
  using Digest = std::array<std::uint8_t, kBytes>;
  Checksum();
  Checksum(const Checksum&) = delete;
  Checksum& operator=(const Checksum&) = delete;
  ~Checksum();
  void update(const void* p, std::size_t n);
  Digest final();  // once
  static Digest of(const void* p, std::size_t n);

 private:
  struct State;
  std::unique_ptr<State> st_;
};

// The key-set id as 32 hexadecimal digits, and back (throws hecnn::Error on anything else).
std::string key_set_hex(const KeySetId& id);
KeySetId key_set_from_hex(const std::string& hex);
bool key_set_unset(const KeySetId& id);

}  // namespace hecnn::ckks
