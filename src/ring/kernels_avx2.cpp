// AVX2 kernels on 4 x 64-bit lanes, for any prime below 2^61. AVX2 has neither a 64-bit multiply
// nor unsigned 64-bit compares: products are assembled from vpmuludq, comparisons are signed
// (every value here stays below 2^63). Barrett products of full 128-bit width and the 128-bit
// accumulations forward to portable, which is faster than emulating them.
// Only functions carrying HECNN_TARGET contain AVX2 code, and they are reached only through the
// dispatcher once the CPU is known to support it; this file is compiled for the baseline ISA.
// GCC 12 reports false -Wmaybe-uninitialized in the AVX-512 intrinsic headers (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "ring/kernels.h"
#include "ring/ntt.h"

#define HECNN_TARGET __attribute__((target("avx2")))

namespace hecnn::ring::kernels {
namespace {

HECNN_TARGET inline __m256i set1(u64 x) { return _mm256_set1_epi64x(static_cast<long long>(x)); }
HECNN_TARGET inline __m256i load(const u64* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
HECNN_TARGET inline void store(u64* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// v >= m ? v - m : v, for v, m < 2^63.
HECNN_TARGET inline __m256i reduce_once(__m256i v, __m256i m) {
  return _mm256_sub_epi64(v, _mm256_andnot_si256(_mm256_cmpgt_epi64(m, v), m));
}

HECNN_TARGET inline __m256i mulhi64(__m256i a, __m256i b) {
  const __m256i a_hi = _mm256_srli_epi64(a, 32), b_hi = _mm256_srli_epi64(b, 32);
  const __m256i ll = _mm256_mul_epu32(a, b), lh = _mm256_mul_epu32(a, b_hi);
  const __m256i hl = _mm256_mul_epu32(a_hi, b), hh = _mm256_mul_epu32(a_hi, b_hi);
  const __m256i mask = _mm256_set1_epi64x(0xffffffffLL);
  __m256i mid = _mm256_add_epi64(_mm256_srli_epi64(ll, 32), _mm256_and_si256(lh, mask));
  mid = _mm256_add_epi64(mid, _mm256_and_si256(hl, mask));
  __m256i hi = _mm256_add_epi64(hh, _mm256_srli_epi64(lh, 32));
  hi = _mm256_add_epi64(hi, _mm256_srli_epi64(hl, 32));
  return _mm256_add_epi64(hi, _mm256_srli_epi64(mid, 32));
}

HECNN_TARGET inline __m256i mullo64(__m256i a, __m256i b) {
  const __m256i ll = _mm256_mul_epu32(a, b);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)),
                                         _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b));
  return _mm256_add_epi64(ll, _mm256_slli_epi64(cross, 32));
}

struct Ops {
  __m256i q, two_q;
  HECNN_TARGET __m256i mul_lazy(__m256i y, __m256i w, __m256i ws) const {
    return _mm256_sub_epi64(mullo64(y, w), mullo64(mulhi64(y, ws), q));
  }
  HECNN_TARGET void fwd(__m256i& X, __m256i& Y, __m256i w, __m256i ws) const {
    const __m256i x = reduce_once(X, two_q);
    const __m256i t = mul_lazy(Y, w, ws);
    X = _mm256_add_epi64(x, t);
    Y = _mm256_add_epi64(_mm256_sub_epi64(x, t), two_q);
  }
  HECNN_TARGET void inv(__m256i& X, __m256i& Y, __m256i w, __m256i ws) const {
    const __m256i s = reduce_once(_mm256_add_epi64(X, Y), two_q);
    const __m256i d = _mm256_add_epi64(_mm256_sub_epi64(X, Y), two_q);
    X = s;
    Y = mul_lazy(d, w, ws);
  }
};

// Last two stages work on 8 coefficients: t = 2 pairs 128-bit halves, t = 1 interleaves.
template <int T>
HECNN_TARGET inline void split(__m256i v0, __m256i v1, __m256i& X, __m256i& Y) {
  if constexpr (T == 2) {
    X = _mm256_permute2x128_si256(v0, v1, 0x20);
    Y = _mm256_permute2x128_si256(v0, v1, 0x31);
  } else {
    X = _mm256_unpacklo_epi64(v0, v1);
    Y = _mm256_unpackhi_epi64(v0, v1);
  }
}
template <int T>
HECNN_TARGET inline void merge(__m256i X, __m256i Y, __m256i& v0, __m256i& v1) {
  if constexpr (T == 2) {
    v0 = _mm256_permute2x128_si256(X, Y, 0x20);
    v1 = _mm256_permute2x128_si256(X, Y, 0x31);
  } else {
    v0 = _mm256_unpacklo_epi64(X, Y);
    v1 = _mm256_unpackhi_epi64(X, Y);
  }
}
template <int T>
HECNN_TARGET inline __m256i twiddle(const u64* w) {
  if constexpr (T == 2) {
    return _mm256_permute4x64_epi64(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))),
                                    0x50);  // [w0 w0 w1 w1]
  } else {
    return _mm256_permute4x64_epi64(load(w), 0xD8);  // [w0 w2 w1 w3]
  }
}

template <int T, bool Forward, bool Last>
HECNN_TARGET inline void small_stage(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                     std::size_t m) {
  constexpr std::size_t blocks = 8 / (2 * T);
  for (std::size_t i = 0; i < m; i += blocks) {
    u64* p = a + 2 * T * i;
    const u64* s = src + 2 * T * i;
    __m256i v0 = load(s), v1 = load(s + 4), X, Y;
    split<T>(v0, v1, X, Y);
    const __m256i w = twiddle<T>(W + m + i), ws = twiddle<T>(WS + m + i);
    if constexpr (Forward) {
      o.fwd(X, Y, w, ws);
    } else {
      o.inv(X, Y, w, ws);
    }
    if constexpr (Last) {
      X = reduce_once(reduce_once(X, o.two_q), o.q);
      Y = reduce_once(reduce_once(Y, o.two_q), o.q);
    }
    merge<T>(X, Y, v0, v1);
    store(p, v0);
    store(p + 4, v1);
  }
}

}  // namespace

namespace avx2 {

HECNN_TARGET void ntt_forward(const NttTables& tab, const u64* in, u64* a, u64 add) {
  const std::size_t n = tab.n();
  if (n < 8) return portable::ntt_forward(tab, in, a, add);
  const __m256i vadd = set1(add);
  const auto& T = tab.tables();
  const u64 q = tab.modulus().value;
  const Ops o{set1(q), set1(2 * q)};
  std::size_t m = 1, t = n >> 1;
  for (; t >= 4; m <<= 1, t >>= 1) {
    const u64* src = m == 1 ? in : a;  // the first stage reads the input, the others work in place
    for (std::size_t i = 0; i < m; ++i) {
      const __m256i w = set1(T.fwd[m + i]), ws = set1(T.fwd_shoup[m + i]);
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      const u64* xi = src + 2 * i * t;
      const u64* yi = xi + t;
      for (std::size_t j = 0; j < t; j += 4) {
        __m256i X = load(xi + j), Y = load(yi + j);
        if (m == 1) {
          X = _mm256_add_epi64(X, vadd);
          Y = _mm256_add_epi64(Y, vadd);
        }
        o.fwd(X, Y, w, ws);
        store(x + j, X);
        store(y + j, Y);
      }
    }
  }
  small_stage<2, true, false>(o, T.fwd.data(), T.fwd_shoup.data(), a, a, m);
  small_stage<1, true, true>(o, T.fwd.data(), T.fwd_shoup.data(), a, a, 2 * m);
}

HECNN_TARGET void ntt_inverse(const NttTables& tab, const u64* in, u64* a, const InverseScale* scale) {
  const std::size_t n = tab.n();
  if (n < 8) return portable::ntt_inverse(tab, in, a, scale);
  const auto& T = tab.tables();
  const InverseScale S = scale ? *scale : unit_scale(T);
  const u64 q = tab.modulus().value;
  const Ops o{set1(q), set1(2 * q)};
  small_stage<1, false, false>(o, T.inv.data(), T.inv_shoup.data(), in, a, n >> 1);
  small_stage<2, false, false>(o, T.inv.data(), T.inv_shoup.data(), a, a, n >> 2);
  std::size_t t = 4;
  for (std::size_t h = n >> 3; h > 1; h >>= 1, t <<= 1) {
    for (std::size_t i = 0; i < h; ++i) {
      const __m256i w = set1(T.inv[h + i]), ws = set1(T.inv_shoup[h + i]);
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; j += 4) {
        __m256i X = load(x + j), Y = load(y + j);
        o.inv(X, Y, w, ws);
        store(x + j, X);
        store(y + j, Y);
      }
    }
  }
  const __m256i ni = set1(S.n_inv), nis = set1(S.n_inv_shoup), lw = set1(S.last), lws = set1(S.last_shoup);
  u64* x = a;
  u64* y = a + t;
  for (std::size_t j = 0; j < t; j += 4) {
    const __m256i X = load(x + j), Y = load(y + j);
    const __m256i s = _mm256_add_epi64(X, Y);
    const __m256i d = _mm256_add_epi64(_mm256_sub_epi64(X, Y), o.two_q);
    store(x + j, reduce_once(o.mul_lazy(s, ni, nis), o.q));
    store(y + j, reduce_once(o.mul_lazy(d, lw, lws), o.q));
  }
}

HECNN_TARGET void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  const __m256i vq = set1(q);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) store(out + i, reduce_once(_mm256_add_epi64(load(a + i), load(b + i)), vq));
  portable::add_mod(a + i, b + i, out + i, n - i, q);
}

HECNN_TARGET void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  const __m256i vq = set1(q);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i x = load(a + i), y = load(b + i);
    store(out + i, _mm256_add_epi64(_mm256_sub_epi64(x, y), _mm256_and_si256(_mm256_cmpgt_epi64(y, x), vq)));
  }
  portable::sub_mod(a + i, b + i, out + i, n - i, q);
}

HECNN_TARGET void neg_mod(const u64* a, u64* out, std::size_t n, u64 q) {
  const __m256i vq = set1(q);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) store(out + i, reduce_once(_mm256_sub_epi64(vq, load(a + i)), vq));
  portable::neg_mod(a + i, out + i, n - i, q);
}

HECNN_TARGET void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q) {
  const __m256i vq = set1(q), vc = set1(c);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) store(out + i, reduce_once(_mm256_add_epi64(load(a + i), vc), vq));
  portable::add_scalar_mod(a + i, c, out + i, n - i, q);
}

HECNN_TARGET void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q) {
  const Ops o{set1(q), set1(2 * q)};
  const __m256i vw = set1(w.w), vws = set1(w.ws);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) store(out + i, reduce_once(o.mul_lazy(load(a + i), vw, vws), o.q));
  portable::mul_scalar_mod(a + i, w, out + i, n - i, q);
}

HECNN_TARGET void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n,
                                     u64 q, bool accumulate) {
  const Ops o{set1(q), set1(2 * q)};
  const __m256i vw = set1(w.w), vws = set1(w.ws), cq = set1(c + q);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i v = _mm256_sub_epi64(_mm256_add_epi64(load(x + i), cq), load(y + i));
    __m256i r = reduce_once(o.mul_lazy(v, vw, vws), o.q);
    if (accumulate) r = reduce_once(_mm256_add_epi64(r, load(out + i)), o.q);
    store(out + i, r);
  }
  portable::sub_mul_scalar_mod(x + i, y + i, c, w, out + i, n - i, q, accumulate);
}

HECNN_TARGET void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m) {
  // The quotient estimate leaves r < 2q < 2^62 but x itself may reach 2^64: subtract in 64-bit
  // arithmetic first, compare afterwards.
  const __m256i vq = set1(m.value), ratio = set1(m.ratio_hi);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i x = load(a + i);
    const __m256i r = _mm256_sub_epi64(x, mullo64(mulhi64(x, ratio), vq));
    store(out + i, reduce_once(r, vq));
  }
  portable::reduce_mod(a + i, out + i, n - i, m);
}

void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m) {
  portable::reduce_signed_mod(a, out, n, m);
}
void mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, const Modulus& m) {
  portable::mul_mod(a, b, out, n, m);
}
void mul_add_mod(const u64* a, const u64* b, const u64* c, u64* out, std::size_t n, const Modulus& m) {
  portable::mul_add_mod(a, b, c, out, n, m);
}
void tensor_mod(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* d0, u64* d1, u64* d2, std::size_t n,
                const Modulus& m) {
  portable::tensor_mod(a0, a1, b0, b1, d0, d1, d2, n, m);
}
void square_mod(const u64* a0, const u64* a1, u64* d0, u64* d1, u64* d2, std::size_t n, const Modulus& m) {
  portable::square_mod(a0, a1, d0, d1, d2, n, m);
}
void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n) { portable::permute(a, perm, out, n); }
void ks_inner_product(const u64* const* digits, const u64* const* kb, const u64* const* ka, std::size_t D,
                      const std::uint32_t* perm, u64* out0, u64* out1, std::size_t n, const Modulus& m) {
  portable::ks_inner_product(digits, kb, ka, D, perm, out0, out1, n, m);
}
void convert_sum(const u64* const* y, const u64* hat, std::size_t k, u64 y_bound, u64* out, std::size_t n,
                 const Modulus& m) {
  portable::convert_sum(y, hat, k, y_bound, out, n, m);
}

void dot_block(const u64* w, const u64* const* src, std::size_t terms, std::size_t len, u64* dst, const Modulus& m,
               const DotConstants& c) {
  portable::dot_block(w, src, terms, len, dst, m, c);
}

void dot_rows(const u64* w, std::size_t rows, const u64* const* src, std::size_t terms, std::size_t len,
              u64* const* dst, bool accumulate, const Modulus& m, const DotConstants& c) {
  portable::dot_rows(w, rows, src, terms, len, dst, accumulate, m, c);
}


void mul_scalar_add_mod(const u64* a, const MulConst& w, const u64* b, u64* out, std::size_t n, u64 q) {
  portable::mul_scalar_add_mod(a, w, b, out, n, q);
}

// Two passes on this level: z * v, then (x - y) * w added.
void sub_mul_add_scalar_mod(const u64* x, const u64* y, const MulConst& w, const u64* z, const MulConst& v, u64* out,
                            std::size_t n, u64 q) {
  if (out == x || out == y) return portable::sub_mul_add_scalar_mod(x, y, w, z, v, out, n, q);
  mul_scalar_mod(z, v, out, n, q);
  sub_mul_scalar_mod(x, y, 0, w, out, n, q, true);
}
}  // namespace avx2
}  // namespace hecnn::ring::kernels
