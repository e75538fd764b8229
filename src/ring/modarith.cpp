#include "ring/modarith.h"

#include "common/error.h"

namespace hecnn::ring {

Modulus::Modulus(u64 q) : value(q) {
  if (q < 2 || (q >> 61) != 0) throw Error("modulus must be in [2, 2^61)");
  // floor(2^128 / q) computed as two long divisions.
  const u128 hi = (~static_cast<u128>(0)) / q;  // floor((2^128 - 1) / q)
  // (2^128 - 1)/q equals floor(2^128/q) unless q divides 2^128, impossible for odd q > 1
  // and for even q we never use Barrett (primes only).
  ratio_hi = static_cast<u64>(hi >> 64);
  ratio_lo = static_cast<u64>(hi);
  bits = 64 - __builtin_clzll(q);
}

u64 Modulus::pow(u64 base, u64 e) const {
  u64 result = 1 % value;
  base = reduce(base);
  while (e) {
    if (e & 1) result = mul(result, base);
    base = mul(base, base);
    e >>= 1;
  }
  return result;
}

u64 Modulus::inv(u64 a) const {
  a = reduce(a);
  if (a == 0) throw Error("no modular inverse of 0");
  return pow(a, value - 2);
}

}  // namespace hecnn::ring
