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
// the two sums stay below 2^60.
__attribute__((target("avx512f,avx512ifma"))) void linear_block_ifma(const ckks::Modulus& q, const u64* w,
                                                                      const u64* const* src, std::size_t terms,
                                                                      std::size_t len, u64* dst) {
  alignas(64) u64 lo[kLinearBlock], hi[kLinearBlock];
  const std::size_t vecs = len / 8;
  __m512i l[8], h[8];
  for (std::size_t v = 0; v < 8; ++v) l[v] = h[v] = _mm512_setzero_si512();
  for (std::size_t t = 0; t < terms; ++t) {
    const __m512i wt = _mm512_set1_epi64(static_cast<long long>(w[t]));
    const u64* s = src[t];
    for (std::size_t v = 0; v < vecs; ++v) {
      const __m512i a = _mm512_loadu_si512(s + 8 * v);
      l[v] = _mm512_madd52lo_epu64(l[v], a, wt);
      h[v] = _mm512_madd52hi_epu64(h[v], a, wt);
    }
  }
  for (std::size_t v = 0; v < vecs; ++v) {
    _mm512_store_si512(lo + 8 * v, l[v]);
    _mm512_store_si512(hi + 8 * v, h[v]);
  }
  for (std::size_t i = 0; i < len; ++i) dst[i] = q.reduce128((static_cast<u128>(hi[i]) << 52) + lo[i]);
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

bool linear_block_vectorized(const ckks::Modulus& q) { return cpu_has_ifma() && q.value < (u64{1} << 50); }

void linear_block(const ckks::Modulus& q, const u64* w, const u64* const* src, std::size_t terms, std::size_t len,
                  u64* dst) {
  if (linear_block_vectorized(q) && len % 8 == 0) {
    linear_block_ifma(q, w, src, terms, len, dst);
  } else {
    linear_block_portable(q, w, src, terms, len, dst);
  }
}

}  // namespace hecnn::he
