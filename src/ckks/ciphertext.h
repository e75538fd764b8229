#pragma once
// Plaintexts and ciphertexts. Both are kept in NTT form, limb-major: limb i (prime q_i) of
// component k starts at data + (k * (level+1) + i) * N.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "ring/aligned.h"
#include "ckks/ring_types.h"
#include "ckks/random.h"

namespace hecnn::ckks {

// The most polynomial storage (ciphertexts, plaintexts, keys) held at once in this process: what the
// memory plans predict, without the allocator's slack.
inline std::size_t polynomial_bytes_peak() { return ring::aligned_bytes_peak(); }

class Plaintext {
 public:
  Plaintext() = default;
  Plaintext(std::size_t n, std::size_t level, std::size_t slots, double scale) { reset(n, level, slots, scale); }
  void reset(std::size_t n, std::size_t level, std::size_t slots, double scale) {
    n_ = n;
    level_ = level;
    slots_ = slots;
    scale_ = scale;
    data_.assign(n * (level + 1), 0);
  }
  std::size_t n() const { return n_; }
  std::size_t level() const { return level_; }
  std::size_t limbs() const { return level_ + 1; }
  std::size_t slots() const { return slots_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  u64* limb(std::size_t i) { return data_.data() + i * n_; }
  const u64* limb(std::size_t i) const { return data_.data() + i * n_; }
  u64* data() { return data_.data(); }
  const u64* data() const { return data_.data(); }
  std::size_t word_count() const { return data_.size(); }
  // Drops the top limbs; cheap because every limb is independent in NTT form.
  void drop_to_level(std::size_t level) {
    level_ = level;
    data_.resize(n_ * (level + 1));
  }

 private:
  std::size_t n_ = 0, level_ = 0, slots_ = 0;
  double scale_ = 1.0;
  std::vector<u64> data_;
};

class Ciphertext {
 public:
  Ciphertext() = default;
  Ciphertext(std::size_t n, std::size_t level, std::size_t size, std::size_t slots, double scale) {
    reset(n, level, size, slots, scale);
  }
  // Resizes (reusing capacity) and zeroes nothing: callers overwrite every word. New storage is left
  // uninitialized, also by the sizing constructor.
  void reset(std::size_t n, std::size_t level, std::size_t size, std::size_t slots, double scale) {
    n_ = n;
    level_ = level;
    size_ = size;
    slots_ = slots;
    scale_ = scale;
    data_.resize(n * (level + 1) * size);
    seed_.reset();
  }
  std::size_t n() const { return n_; }
  std::size_t level() const { return level_; }
  std::size_t limbs() const { return level_ + 1; }
  // Number of polynomial components: 2 normally, 3 after an unrelinearized multiplication.
  std::size_t size() const { return size_; }
  std::size_t slots() const { return slots_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  void set_slots(std::size_t s) { slots_ = s; }

  u64* poly(std::size_t k) { return data_.data() + k * n_ * (level_ + 1); }
  const u64* poly(std::size_t k) const { return data_.data() + k * n_ * (level_ + 1); }
  u64* limb(std::size_t k, std::size_t i) { return poly(k) + i * n_; }
  const u64* limb(std::size_t k, std::size_t i) const { return poly(k) + i * n_; }
  std::size_t word_count() const { return data_.size(); }

  // For symmetric encryptions: the seed from which component 1 was expanded (see Encryptor).
  // In-place operations may leave it stale; serialization re-expands it and stores the seed only
  // if it still reproduces component 1.
  const std::optional<Seed>& seed() const { return seed_; }
  void set_seed(const Seed& s) { seed_ = s; }
  void clear_seed() { seed_.reset(); }

  // Drops the top limbs of every component and sets the new level.
  void drop_to_level(std::size_t level);
  // Keeps the first `size` components.
  void truncate_size(std::size_t size) {
    size_ = size;
    data_.resize(n_ * (level_ + 1) * size);
  }
  // Releases storage left over from a higher level or size (a rescaled or relinearized result
  // keeps its first allocation otherwise): for ciphertexts held a long time.
  void shrink_to_fit() { data_.shrink_to_fit(); }

 private:
  std::size_t n_ = 0, level_ = 0, size_ = 0, slots_ = 0;
  double scale_ = 1.0;
  ring::AlignedVector<u64> data_;
  std::optional<Seed> seed_;
};

}  // namespace hecnn::ckks
