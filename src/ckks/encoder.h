#pragma once
// CKKS encoding through the canonical embedding: a vector of up to N/2 complex slots becomes a
// polynomial with integer coefficients, round(scale * inverse-embedding(values)). A vector of
// n < N/2 slots (n a power of two) is packed sparsely, so rotations act cyclically on n slots.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"

namespace hecnn::ckks {

// Bit-reversal permutation of a vector whose size is a power of two (the order the encoder's FFT
// stages leave; bootstrapping's DFT works in it).
void bit_reverse(std::vector<std::complex<double>>& v);

class CkksEncoder {
 public:
  explicit CkksEncoder(ContextPtr ctx);

  std::size_t max_slots() const { return ctx_->n() / 2; }

  // Encodes at `level` (the top of the chain by default). The slot count is the next power of two
  // at or above values.size(); missing slots are zero.
  void encode(std::span<const std::complex<double>> values, double scale, std::size_t level, Plaintext& out) const;
  void encode(std::span<const double> values, double scale, std::size_t level, Plaintext& out) const;
  // The same, adding `noise` (n small integers) to the scaled coefficients before the transform:
  // a secret-key encryption's noise joins the message in one NTT per prime (Encryptor::encrypt
  // with an encoder). The integers are wiped from every intermediate buffer.
  void encode(std::span<const double> values, double scale, std::size_t level, Plaintext& out,
              std::span<const std::int64_t> noise) const;
  void encode(std::span<const std::complex<double>> values, double scale, std::size_t level, Plaintext& out,
              std::span<const std::int64_t> noise) const;
  // The same into level + 1 limbs of n words at dst (a ciphertext's component, for the encryptor);
  // returns the slot count.
  std::size_t encode_to(std::span<const double> values, double scale, std::size_t level,
                        std::span<const std::int64_t> noise, u64* dst) const;
  Plaintext encode(std::span<const double> values, double scale) const;
  Plaintext encode(std::span<const std::complex<double>> values, double scale) const;

  std::vector<std::complex<double>> decode_complex(const Plaintext& pt) const;
  // Real parts of the slots.
  std::vector<double> decode(const Plaintext& pt) const;

 private:
  void embed_inverse(std::vector<std::complex<double>>& v) const;  // slots -> coefficients
  void embed(std::vector<std::complex<double>>& v) const;          // coefficients -> slots
  // Coefficient values (real parts, then imaginary parts) of the slot values, checked.
  std::vector<double> slot_coeffs(std::span<const std::complex<double>> values, double scale, std::size_t level,
                                  std::size_t& slots) const;
  void check_noise(std::span<const std::int64_t> noise) const;
  // Writes the level + 1 limbs (NTT form) at dst.
  void encode_coeffs(const std::vector<double>& coeffs, std::size_t gap_count, double scale, std::size_t level,
                     u64* dst, std::span<const std::int64_t> noise = {}) const;

  struct Crt {  // CRT reconstruction at one level
    std::vector<u64> q;                 // Q_l, little-endian words
    std::vector<u64> half_q;            // floor(Q_l / 2)
    std::vector<std::vector<u64>> hat;  // Q_l / q_i
    std::vector<MulConst> inv_hat;      // (Q_l / q_i)^-1 mod q_i
  };

  ContextPtr ctx_;
  std::vector<std::complex<double>> roots_;  // exp(2 pi i j / 2N), j = 0..2N
  std::vector<std::size_t> rot_group_;       // 5^j mod 2N
  std::vector<std::complex<double>> inv_twiddles_;  // embed_inverse's, stage by stage
  std::vector<Crt> crt_;
};

}  // namespace hecnn::ckks
