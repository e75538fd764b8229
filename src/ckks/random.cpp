#include "ckks/random.h"

#include <sodium.h>

#include <algorithm>
#include <array>
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

void Prng::keystream(std::uint8_t* out, std::size_t blocks) const {
  static_assert(crypto_stream_chacha20_ietf_NONCEBYTES == 12);
  std::uint8_t nonce[12];
  std::memcpy(nonce, &domain_, 8);
  std::memcpy(nonce + 8, &nonce_hi_, 4);
  std::memset(out, 0, blocks * 64);
  crypto_stream_chacha20_ietf_xor_ic(out, out, blocks * 64, nonce, block_, key_.data());
}

void Prng::refill() {
  keystream(buf_.data(), buf_.size() / 64);
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
    if (pos_ == buf_.size()) {
      // Whole 64-byte blocks straight into out (the same bytes the buffer would have held), while
      // the 32-bit block counter stays below 2^32 (libsodium's bound for one call); the rest, and
      // the counter's wrap into the next nonce, through the buffer.
      const std::uint64_t left_in_counter = std::uint64_t{UINT32_MAX} - block_;
      const std::size_t blocks = static_cast<std::size_t>(std::min<std::uint64_t>(len / 64, left_in_counter));
      if (blocks > 0) {
        keystream(out, blocks);
        block_ += static_cast<std::uint32_t>(blocks);
        out += blocks * 64;
        len -= blocks * 64;
        continue;
      }
      refill();
    }
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
    // n words of the stream at once, then kept in order where below q after masking: rejection keeps
    // the distribution exactly uniform, and a rejected word is replaced by the next one of the
    // stream (drawn at the end), as drawing word by word would.
    prng.fill(reinterpret_cast<std::uint8_t*>(o), n * sizeof(u64));
    std::size_t kept = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const u64 v = o[j] & mask;
      o[kept] = v;
      kept += v < q;
    }
    while (kept < n) {
      const u64 v = prng.next_u64() & mask;
      if (v < q) o[kept++] = v;
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

namespace {

// The clipped rounded Gaussian by inversion of its cumulative distribution: x ~ N(0, sigma^2)
// conditioned on |x| <= 6 sigma, rounded, has |round(x)| <= k with probability
// erf(min(k + 1/2, 6 sigma) / (sigma sqrt 2)) / erf(6 sigma / (sigma sqrt 2)). The table holds those
// probabilities times 2^63 for k = 0..18 (k = 19 takes the rest, up to 19.2); a 63-bit uniform u
// gives |round(x)| = #{k : u >= T[k]}, and one more bit the sign. Every sample reads the whole table
// (no data-dependent branch or early exit). Its precision, 2^-63 per entry, is far below anything
// a statistical test or an attack could resolve; the distribution is the one Box-Muller sampling
// with rejection at 6 sigma gives.
constexpr int kCdtSize = 19;

struct CdtTable {
  std::array<std::uint64_t, kCdtSize> t{};
  CdtTable() {
    const long double sigma = kErrorStdDev, bound = 6.0L * sigma, scale = 0x1p63L;
    const long double total = std::erf(bound / (sigma * std::sqrt(2.0L)));
    for (int k = 0; k < kCdtSize; ++k) {
      const long double edge = std::min<long double>(k + 0.5L, bound);
      const long double cdf = std::erf(edge / (sigma * std::sqrt(2.0L))) / total;
      t[static_cast<std::size_t>(k)] = static_cast<std::uint64_t>(cdf * scale);
    }
  }
};

}  // namespace

void sample_gaussian(Prng& prng, std::size_t n, std::int64_t* signed_out) {
  static const CdtTable table;
  constexpr std::size_t kChunk = 512;
  std::uint64_t u[kChunk];
  for (std::size_t j0 = 0; j0 < n; j0 += kChunk) {
    const std::size_t len = std::min(kChunk, n - j0);
    prng.fill(reinterpret_cast<std::uint8_t*>(u), len * sizeof(std::uint64_t));
    for (std::size_t j = 0; j < len; ++j) {
      const std::uint64_t v = u[j] >> 1;
      std::int64_t k = 0;
      for (int i = 0; i < kCdtSize; ++i) k += static_cast<std::int64_t>(v >= table.t[static_cast<std::size_t>(i)]);
      const std::int64_t sign = -static_cast<std::int64_t>(u[j] & 1);  // 0 or -1
      signed_out[j0 + j] = (k ^ sign) - sign;
    }
  }
  sodium_memzero(u, sizeof(u));
}

}  // namespace hecnn::ckks
