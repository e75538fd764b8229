#pragma once
// All randomness for keys and encryption. Fresh seeds come from libsodium's CSPRNG
// (randombytes_buf); a seed expands deterministically through ChaCha20 (IETF variant), so the
// uniform half of a key or of a secret-key ciphertext can be stored as its 32-byte seed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckks/ring_types.h"

namespace hecnn::ckks {

using Seed = std::array<std::uint8_t, 32>;

// A fresh seed from the operating system's CSPRNG.
Seed random_seed();

// Overwrites memory that held secret or secret-derived values (keys, noise, ephemeral seeds).
void wipe(void* p, std::size_t bytes);
template <typename T>
void wipe(std::vector<T>& v) {
  if (!v.empty()) wipe(v.data(), v.size() * sizeof(T));
}

// A vector wiped when it goes out of scope (for noise, ephemeral secrets and their NTT forms).
template <typename T>
class WipedVector : public std::vector<T> {
 public:
  using std::vector<T>::vector;
  WipedVector(const WipedVector&) = delete;
  WipedVector& operator=(const WipedVector&) = delete;
  ~WipedVector() { wipe(static_cast<std::vector<T>&>(*this)); }
};

// Deterministic stream of bytes from a seed and a 64-bit domain separator.
class Prng {
 public:
  explicit Prng(const Seed& seed, std::uint64_t domain = 0);
  Prng(const Prng&) = delete;
  Prng& operator=(const Prng&) = delete;
  ~Prng();

  // Seeds itself from the CSPRNG (the seed is never stored elsewhere).
  static Prng fresh();
  Prng(Prng&&) = default;

  void fill(std::uint8_t* out, std::size_t len);
  std::uint64_t next_u64();
  std::uint8_t next_u8();

 private:
  void refill();
  // `blocks` 64-byte ChaCha20 blocks of the stream from the current counter (which it leaves as is).
  void keystream(std::uint8_t* out, std::size_t blocks) const;
  Seed key_;
  std::uint64_t domain_;
  std::uint32_t block_ = 0;      // IETF ChaCha20 block counter
  std::uint32_t nonce_hi_ = 0;   // extends the counter past 2^32 blocks
  std::array<std::uint8_t, 4096> buf_{};
  std::size_t pos_ = sizeof(buf_);
};

// Samplers. Each writes n coefficients per prime of `moduli`, limb-major (limb i at out + i*n).
// Uniform values modulo each prime, independently per limb (used directly as NTT-form values).
void sample_uniform(Prng& prng, const std::vector<Modulus>& moduli, std::size_t n, u64* out);
// Ternary {-1, 0, 1} uniformly; `signed_out` receives the integers.
void sample_ternary(Prng& prng, std::size_t n, std::int8_t* signed_out);
// Rounded Gaussian with standard deviation 3.2, clipped at 6 sigma (as SEAL and OpenFHE).
void sample_gaussian(Prng& prng, std::size_t n, std::int64_t* signed_out);

constexpr double kErrorStdDev = 3.2;

}  // namespace hecnn::ckks
