#include "he/linear_kernel.h"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>

namespace hecnn::he {

using ckks::u64;
using u128 = unsigned __int128;

void linear_block_portable(const ckks::Modulus& q, const u64* w, const u64* const* src, std::size_t terms,
                           std::size_t len, u64* dst) {
  u128 acc[kLinearBlock] = {};
  for (std::size_t t = 0; t < terms; ++t) {
    const u64 wt = w[t];
    const u64* s = src[t];
    for (std::size_t i = 0; i < len; ++i) acc[i] += static_cast<u128>(wt) * s[i];
  }
  for (std::size_t i = 0; i < len; ++i) dst[i] = q.reduce128(acc[i]);
}

namespace {

// Products of 50-bit operands split as lo (bits 0-51) and hi (bits 52-103); over at most 256 terms
// the two sums stay below 2^60 and 2^56. The sum x = hi 2^52 + lo is then reduced in vector form:
// x = H1 2^104 + H0 2^52 + l0 with 52-bit digits, each digit times its constant (2^104 mod q,
// 2^52 mod q, 1) by Shoup's method into [0, 2q), and the three results brought into [0, q).
// y * c mod q in [0, 2q) for y < 2^52: y c - floor(y c' / 2^52) q, computed modulo 2^52.
__attribute__((target("avx512f,avx512ifma"))) inline __m512i shoup52(__m512i y, __m512i c, __m512i cs, __m512i q,
                                                                     __m512i mask) {
  const __m512i zero = _mm512_set1_epi64(0);
  const __m512i qt = _mm512_madd52hi_epu64(zero, y, cs);
  const __m512i a = _mm512_madd52lo_epu64(zero, y, c);
  const __m512i b = _mm512_madd52lo_epu64(zero, qt, q);
  return _mm512_and_si512(_mm512_sub_epi64(a, b), mask);
}

__attribute__((target("avx512f,avx512ifma"))) void linear_block_ifma(const LinearModulus& lm, const u64* w,
                                                                      const u64* const* src, std::size_t terms,
                                                                      std::size_t len, u64* dst) {
  const std::size_t vecs = len / 8;
  __m512i l[8], h[8];
  for (std::size_t v = 0; v < 8; ++v) l[v] = h[v] = _mm512_set1_epi64(0);
  for (std::size_t t = 0; t < terms; ++t) {
    const __m512i wt = _mm512_set1_epi64(static_cast<long long>(w[t]));
    const u64* s = src[t];
    for (std::size_t v = 0; v < vecs; ++v) {
      const __m512i a = _mm512_loadu_si512(s + 8 * v);
      l[v] = _mm512_madd52lo_epu64(l[v], a, wt);
      h[v] = _mm512_madd52hi_epu64(h[v], a, wt);
    }
  }
  const __m512i mask = _mm512_set1_epi64((1ll << 52) - 1);
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(lm.q->value));
  const __m512i q2 = _mm512_set1_epi64(static_cast<long long>(2 * lm.q->value));
  const __m512i q4 = _mm512_set1_epi64(static_cast<long long>(4 * lm.q->value));
  const __m512i c52 = _mm512_set1_epi64(static_cast<long long>(lm.c52));
  const __m512i c52s = _mm512_set1_epi64(static_cast<long long>(lm.c52_shoup));
  const __m512i c104 = _mm512_set1_epi64(static_cast<long long>(lm.c104));
  const __m512i c104s = _mm512_set1_epi64(static_cast<long long>(lm.c104_shoup));
  const __m512i one = _mm512_set1_epi64(1), ones = _mm512_set1_epi64(static_cast<long long>(lm.one_shoup));
  for (std::size_t v = 0; v < vecs; ++v) {
    const __m512i l0 = _mm512_and_si512(l[v], mask);
    const __m512i hh = _mm512_add_epi64(h[v], _mm512_maskz_srli_epi64(0xFF, l[v], 52));
    const __m512i h0 = _mm512_and_si512(hh, mask), h1 = _mm512_maskz_srli_epi64(0xFF, hh, 52);
    __m512i r = _mm512_add_epi64(shoup52(l0, one, ones, q, mask), shoup52(h0, c52, c52s, q, mask));
    r = _mm512_add_epi64(r, shoup52(h1, c104, c104s, q, mask));  // < 6q
    r = _mm512_maskz_min_epu64(0xFF, r, _mm512_sub_epi64(r, q4));
    r = _mm512_maskz_min_epu64(0xFF, r, _mm512_sub_epi64(r, q2));
    r = _mm512_maskz_min_epu64(0xFF, r, _mm512_sub_epi64(r, q));
    _mm512_storeu_si512(dst + 8 * v, r);
  }
}

bool cpu_has_ifma() {
  static const bool ok = [] {
    const char* force = std::getenv("HECNN_SIMD");
    if (force && (std::strcmp(force, "portable") == 0 || std::strcmp(force, "avx2") == 0 || std::strcmp(force, "avx512") == 0)) {
      return false;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
  }();
  return ok;
}

}  // namespace

LinearModulus::LinearModulus(const ckks::Modulus& m) : q(&m) {
  const u64 v = m.value;
  vectorized = cpu_has_ifma() && v < (u64{1} << 50);
  c52 = static_cast<u64>((u128{1} << 52) % v);
  c104 = static_cast<u64>((static_cast<u128>(c52) << 52) % v);
  c52_shoup = static_cast<u64>((static_cast<u128>(c52) << 52) / v);
  c104_shoup = static_cast<u64>((static_cast<u128>(c104) << 52) / v);
  one_shoup = static_cast<u64>((u128{1} << 52) / v);
}

void linear_block(const LinearModulus& q, const u64* w, const u64* const* src, std::size_t terms, std::size_t len,
                  u64* dst) {
  if (q.vectorized && len % 8 == 0 && len <= kLinearBlock) {
    linear_block_ifma(q, w, src, terms, len, dst);
  } else {
    linear_block_portable(*q.q, w, src, terms, len, dst);
  }
}

}  // namespace hecnn::he
