#pragma once
// Word-size modular arithmetic for NTT-friendly primes below 2^61.
// Hot paths use Shoup multiplication (one operand fixed and precomputed) or
// Barrett reduction of 128-bit products; nothing here divides at run time.
#include <cstdint>

namespace hecnn::ring {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

inline u64 mul_hi(u64 a, u64 b) { return static_cast<u64>((static_cast<u128>(a) * b) >> 64); }

// A prime modulus with its Barrett constant floor(2^128 / q).
struct Modulus {
  u64 value = 0;
  u64 ratio_hi = 0;  // high word of floor(2^128 / q)
  u64 ratio_lo = 0;  // low word
  int bits = 0;

  Modulus() = default;
  explicit Modulus(u64 q);

  // x mod q for any 128-bit x.
  u64 reduce128(u128 x) const {
    const u64 x0 = static_cast<u64>(x), x1 = static_cast<u64>(x >> 64);
    // Estimate floor(x * ratio / 2^128); error at most 2 multiples of q... reduced to one by the
    // standard SEAL-style carry handling below.
    u64 carry = mul_hi(x0, ratio_lo);
    u128 t = static_cast<u128>(x0) * ratio_hi;
    u128 sum = static_cast<u128>(static_cast<u64>(t)) + carry;
    u64 tmp1 = static_cast<u64>(sum);
    u64 tmp3 = static_cast<u64>(t >> 64) + static_cast<u64>(sum >> 64);
    t = static_cast<u128>(x1) * ratio_lo;
    sum = static_cast<u128>(tmp1) + static_cast<u64>(t);
    carry = static_cast<u64>(t >> 64) + static_cast<u64>(sum >> 64);
    const u64 quot = x1 * ratio_hi + tmp3 + carry;
    u64 r = x0 - quot * value;
    return r >= value ? r - value : r;
  }
  // x mod q for a 64-bit x.
  u64 reduce(u64 x) const {
    const u64 quot = mul_hi(x, ratio_hi);
    u64 r = x - quot * value;
    return r >= value ? r - value : r;
  }
  u64 mul(u64 a, u64 b) const { return reduce128(static_cast<u128>(a) * b); }
  u64 add(u64 a, u64 b) const {
    u64 s = a + b;
    return s >= value ? s - value : s;
  }
  u64 sub(u64 a, u64 b) const { return a >= b ? a - b : a + value - b; }
  u64 neg(u64 a) const { return a == 0 ? 0 : value - a; }
  u64 pow(u64 base, u64 e) const;
  // Inverse modulo a prime q (Fermat); throws if a == 0 mod q.
  u64 inv(u64 a) const;
};

// Shoup precomputation for multiplying by a fixed w < q: floor(w * 2^64 / q).
inline u64 shoup(u64 w, u64 q) { return static_cast<u64>((static_cast<u128>(w) << 64) / q); }

// a * w mod q, result in [0, 2q). Valid for any a < 2^64.
inline u64 mul_shoup_lazy(u64 a, u64 w, u64 w_shoup, u64 q) { return a * w - mul_hi(a, w_shoup) * q; }

inline u64 mul_shoup(u64 a, u64 w, u64 w_shoup, u64 q) {
  u64 r = mul_shoup_lazy(a, w, w_shoup, q);
  return r >= q ? r - q : r;
}

// A constant multiplier with its Shoup companion.
struct MulConst {
  u64 w = 0;
  u64 ws = 0;
  MulConst() = default;
  MulConst(u64 w_, u64 q) : w(w_), ws(shoup(w_, q)) {}
  u64 apply(u64 a, u64 q) const { return mul_shoup(a, w, ws, q); }
};

// Reduce a signed 64-bit integer modulo q.
inline u64 reduce_signed(std::int64_t x, const Modulus& q) {
  if (x >= 0) return q.reduce(static_cast<u64>(x));
  return q.neg(q.reduce(static_cast<u64>(-(x + 1)) + 1));
}

}  // namespace hecnn::ring
