#include "ring/primes.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "ring/modarith.h"

namespace hecnn::ring {

namespace {
u64 mulmod_slow(u64 a, u64 b, u64 m) { return static_cast<u64>(static_cast<u128>(a) * b % m); }
u64 powmod_slow(u64 b, u64 e, u64 m) {
  u64 r = 1 % m;
  b %= m;
  while (e) {
    if (e & 1) r = mulmod_slow(r, b, m);
    b = mulmod_slow(b, b, m);
    e >>= 1;
  }
  return r;
}
}  // namespace

bool is_prime(u64 n) {
  if (n < 2) return false;
  for (u64 p : {2ULL, 3ULL, 5ULL, 7ULL, 11ULL, 13ULL, 17ULL, 19ULL, 23ULL, 29ULL, 31ULL, 37ULL}) {
    if (n % p == 0) return n == p;
  }
  u64 d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  // These bases are a deterministic witness set for all n < 2^64.
  for (u64 a : {2ULL, 325ULL, 9375ULL, 28178ULL, 450775ULL, 9780504ULL, 1795265022ULL}) {
    a %= n;
    if (a == 0) continue;
    u64 x = powmod_slow(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = mulmod_slow(x, x, n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

std::vector<u64> ntt_primes(int bits, std::size_t n, std::size_t count, const std::vector<u64>& exclude) {
  if (bits < 2 || bits > 60) throw Error("prime bit size must be between 2 and 60, got " + std::to_string(bits));
  const u64 m = 2 * static_cast<u64>(n);
  std::vector<u64> out;
  // Largest candidate below 2^bits congruent to 1 mod 2n.
  const u64 top = (bits == 64) ? ~0ULL : (1ULL << bits);
  u64 lo = 1ULL << (bits - 1);
  if (top <= m) throw Error("prime bit size " + std::to_string(bits) + " too small for ring degree " + std::to_string(n));
  u64 c = ((top - 1) / m) * m + 1;
  if (c >= top) c -= m;
  for (; c > lo && out.size() < count; c -= m) {
    if (std::find(exclude.begin(), exclude.end(), c) != exclude.end()) continue;
    if (is_prime(c)) out.push_back(c);
    if (c < m) break;
  }
  if (out.size() < count) {
    throw Error("not enough " + std::to_string(bits) + "-bit primes congruent to 1 mod " + std::to_string(m));
  }
  return out;
}

u64 primitive_root_2n(u64 q, std::size_t n) {
  const u64 m = 2 * static_cast<u64>(n);
  if ((q - 1) % m != 0) throw Error("prime is not congruent to 1 mod 2n");
  const u64 cofactor = (q - 1) / m;
  for (u64 g = 2; g < q; ++g) {
    u64 r = powmod_slow(g, cofactor, q);
    // r has order dividing 2n; it is primitive iff r^n = -1.
    if (powmod_slow(r, n, q) == q - 1) return r;
  }
  throw Error("no primitive root found");
}

}  // namespace hecnn::ring
