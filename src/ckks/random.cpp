#include "ckks/random.h"

#include <sodium.h>

#include <cmath>
#include <cstring>
#include <mutex>

#include "common/error.h"

namespace hecnn::ckks {

namespace {
void ensure_sodium() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = sodium_init() >= 0; });
  if (!ok) throw Error("libsodium failed to initialize; no secure randomness available");
}
}  // namespace

Seed random_seed() {
  ensure_sodium();
  Seed s;
  randombytes_buf(s.data(), s.size());
  return s;
}

void wipe(void* p, std::size_t bytes) { sodium_memzero(p, bytes); }

Prng Prng::fresh() {
  Seed s = random_seed();
  Prng p(s);
  sodium_memzero(s.data(), s.size());
  return p;
}

Prng::Prng(const Seed& seed, std::uint64_t domain) : key_(seed), domain_(domain) { ensure_sodium(); }

Prng::~Prng() {
  sodium_memzero(key_.data(), key_.size());
  sodium_memzero(buf_.data(), buf_.size());
}

void Prng::refill() {
  static_assert(crypto_stream_chacha20_ietf_NONCEBYTES == 12);
  std::uint8_t nonce[12];
  std::memcpy(nonce, &domain_, 8);
  std::memcpy(nonce + 8, &nonce_hi_, 4);
  std::memset(buf_.data(), 0, buf_.size());
  crypto_stream_chacha20_ietf_xor_ic(buf_.data(), buf_.data(), buf_.size(), nonce, block_, key_.data());
  const std::uint32_t blocks = static_cast<std::uint32_t>(buf_.size() / 64);
  if (block_ > UINT32_MAX - blocks) {
    block_ = 0;
    ++nonce_hi_;
  } else {
    block_ += blocks;
  }
  pos_ = 0;
}

void Prng::fill(std::uint8_t* out, std::size_t len) {
  while (len > 0) {
    if (pos_ == buf_.size()) refill();
    const std::size_t take = std::min(len, buf_.size() - pos_);
    std::memcpy(out, buf_.data() + pos_, take);
    pos_ += take;
    out += take;
    len -= take;
  }
}

std::uint64_t Prng::next_u64() {
  if (buf_.size() - pos_ < 8) {
    std::uint64_t v;
    fill(reinterpret_cast<std::uint8_t*>(&v), 8);
    return v;
  }
  std::uint64_t v;
  std::memcpy(&v, buf_.data() + pos_, 8);
  pos_ += 8;
  return v;
}

std::uint8_t Prng::next_u8() {
  if (pos_ == buf_.size()) refill();
  return buf_[pos_++];
}

void sample_uniform(Prng& prng, const std::vector<Modulus>& moduli, std::size_t n, u64* out) {
  for (std::size_t i = 0; i < moduli.size(); ++i) {
    const u64 q = moduli[i].value;
    const u64 mask = (moduli[i].bits == 64) ? ~0ULL : ((1ULL << moduli[i].bits) - 1);
    u64* o = out + i * n;
    for (std::size_t j = 0; j < n; ++j) {
      u64 v;
      do {
        v = prng.next_u64() & mask;
      } while (v >= q);  // rejection keeps the distribution exactly uniform
      o[j] = v;
    }
  }
}

void sample_ternary(Prng& prng, std::size_t n, std::int8_t* signed_out) {
  for (std::size_t j = 0; j < n; ++j) {
    std::uint8_t b;
    do {
      b = prng.next_u8();
    } while (b >= 255);  // 255 = 3 * 85: reject to stay uniform over {0,1,2}
    signed_out[j] = static_cast<std::int8_t>(static_cast<int>(b % 3) - 1);
  }
}

void sample_gaussian(Prng& prng, std::size_t n, std::int64_t* signed_out) {
  constexpr double kBound = 6.0 * kErrorStdDev;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  std::size_t j = 0;
  while (j < n) {
    // Box-Muller on two uniform doubles in (0, 1].
    const double u1 = (static_cast<double>(prng.next_u64() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(prng.next_u64() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * kErrorStdDev;
    const double z[2] = {r * std::cos(kTwoPi * u2), r * std::sin(kTwoPi * u2)};
    for (double v : z) {
      if (j < n && std::fabs(v) <= kBound) signed_out[j++] = static_cast<std::int64_t>(std::llround(v));
    }
  }
}

}  // namespace hecnn::ckks
