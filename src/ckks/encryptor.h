#pragma once
#include <optional>
#include <span>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encoder.h"
#include "ckks/keys.h"

namespace hecnn::ckks {

class Encryptor {
 public:
  // Public-key encryption (what a party without the secret key uses).
  Encryptor(ContextPtr ctx, const PublicKey& pk);
  // Secret-key encryption: component 1 expands from a seed, so the ciphertext serializes at half size.
  Encryptor(ContextPtr ctx, const SecretKey& sk);

  void encrypt(const Plaintext& pt, Ciphertext& out) const;
  Ciphertext encrypt(const Plaintext& pt) const {
    Ciphertext c;
    encrypt(pt, c);
    return c;
  }
  // Encodes real values (one per slot) at scale and level with `encoder` and encrypts them. With a
  // secret key the noise joins the message before its transform (one NTT per prime fewer than
  // encode then encrypt); with a public key it is encode then encrypt.
  void encrypt(const CkksEncoder& encoder, std::span<const double> values, double scale, std::size_t level,
               Ciphertext& out) const;

 private:
  void encrypt_public(const Plaintext& pt, Ciphertext& out) const;
  void encrypt_secret(const Plaintext& pt, Ciphertext& out) const;
  // out = (c0 - a s, a) with a expanded from a fresh seed into component 1; c0 (message plus noise,
  // NTT form) is in component 0 on entry.
  void finish_secret(Ciphertext& out) const;
  // Keys are copied so that an Encryptor never outlives them.
  ContextPtr ctx_;
  std::optional<PublicKey> pk_;
  std::optional<SecretKey> sk_;
  std::optional<SecretKey> neg_sk_;  // -s over the chain primes (NTT form), wiped with the object
};

// Recomputes component 1 of a seeded symmetric ciphertext (deserialization).
void expand_symmetric_a(const CkksContext& ctx, const Seed& seed, std::size_t level, u64* out);

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, const SecretKey& sk);
  // Accepts 2- and 3-component ciphertexts.
  void decrypt(const Ciphertext& ct, Plaintext& out) const;
  Plaintext decrypt(const Ciphertext& ct) const {
    Plaintext p;
    decrypt(ct, p);
    return p;
  }

 private:
  ContextPtr ctx_;
  SecretKey sk_;
};

}  // namespace hecnn::ckks
