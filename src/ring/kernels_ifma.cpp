// AVX-512 IFMA kernels (vpmadd52luq / vpmadd52huq) for primes below 2^50, where lazily reduced
// values in [0, 4q) fit 52 bits. Larger primes forward to the avx512 level.
// Only functions carrying HECNN_TARGET contain AVX-512 code, and they are reached only through the
// dispatcher once the CPU is known to support it; this file is compiled for the baseline ISA.
// GCC 12 reports false -Wmaybe-uninitialized in the AVX-512 intrinsic headers (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "ring/kernels.h"
#include "ring/ntt.h"

#define HECNN_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512ifma")))

namespace hecnn::ring::kernels {
namespace {

constexpr u64 kMask52 = (1ULL << 52) - 1;

HECNN_TARGET inline __m512i set1(u64 x) { return _mm512_set1_epi64(static_cast<long long>(x)); }
HECNN_TARGET inline __m512i load(const u64* p) { return _mm512_loadu_si512(p); }
HECNN_TARGET inline void store(u64* p, __m512i v) { _mm512_storeu_si512(p, v); }
HECNN_TARGET inline __m512i madd_lo(__m512i acc, __m512i a, __m512i b) { return _mm512_madd52lo_epu64(acc, a, b); }
HECNN_TARGET inline __m512i madd_hi(__m512i acc, __m512i a, __m512i b) { return _mm512_madd52hi_epu64(acc, a, b); }

struct Ops52 {
  static constexpr bool kWide = false;
  __m512i q, two_q, neg_q, mask;
  explicit HECNN_TARGET Ops52(u64 qv)
      : q(set1(qv)), two_q(set1(2 * qv)), neg_q(set1(0 - qv)), mask(set1(kMask52)) {}
  HECNN_TARGET __m512i reduce_wide(__m512i v) const { return v; }  // unused (kWide is false)
  // Shoup on 52-bit lanes: y * w - floor(y * ws / 2^52) * q, in [0, 2q), for y < 2^52 and
  // ws = floor(w 2^52 / q). Computed modulo 2^52: y*w mod 2^52 plus (-qt*q) mod 2^52, masked.
  HECNN_TARGET __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i qt = madd_hi(zero, y, ws);
    return _mm512_and_si512(madd_lo(madd_lo(zero, y, w), qt, neg_q), mask);
  }
};

// Ops52 for primes small enough that the forward transform's values, growing by at most 2q a stage
// from below 4q, stay below 2^52 (forward butterflies then skip one reduction).
struct Ops52Wide : Ops52 {
  static constexpr bool kWide = true;
  __m512i one_shoup;
  explicit HECNN_TARGET Ops52Wide(u64 qv) : Ops52(qv), one_shoup(set1((u64{1} << 52) / qv)) {}
  // v - floor(v floor(2^52 / q) / 2^52) q, in [0, 2q) for v < 2^52.
  HECNN_TARGET __m512i reduce_wide(__m512i v) const { return mul_lazy(v, set1(1), one_shoup); }
};

#include "ring/ntt_avx512_impl.h"
#include "ring/permute_avx512_impl.h"

// Barrett reduction of P = hi * 2^52 + lo < 2 q^2 (q of b bits, b <= 50): with s = b - 1,
// c1 = floor(P / 2^s) < 2^52, qe = floor(c1 * k / 2^52) for k = floor(2^(s+52) / q) is at most
// 2 below floor(P / q), so P - qe q is in [0, 3q) and two conditional subtractions finish.
struct Barrett52 {
  Ops52 o;
  __m128i shl, shr;
  __m512i k;
  explicit HECNN_TARGET Barrett52(u64 qv) : o(qv) {
    const int b = 64 - __builtin_clzll(qv), s = b - 1;
    shl = _mm_cvtsi32_si128(52 - s);
    shr = _mm_cvtsi32_si128(s);
    k = set1(static_cast<u64>((static_cast<u128>(1) << (s + 52)) / qv));
  }
  HECNN_TARGET __m512i reduce(__m512i hi, __m512i lo) const {
    const __m512i c1 = _mm512_add_epi64(_mm512_sll_epi64(hi, shl), _mm512_srl_epi64(lo, shr));
    const __m512i qe = madd_hi(_mm512_setzero_si512(), c1, k);
    const __m512i r = _mm512_and_si512(madd_lo(lo, qe, o.neg_q), o.mask);
    return reduce_once(reduce_once(r, o.q), o.q);
  }
};

// Reduces V = hi * 2^52 + lo (hi < 2^51, lo < 2^58) modulo q: hi * (2^52 mod q) by Shoup, lo by
// a one-word Barrett, then a final correction.
struct WideReducer {
  Ops52 o;
  __m512i r52, r52s, kq;
  explicit HECNN_TARGET WideReducer(u64 qv) : o(qv) {
    const u64 r = static_cast<u64>((static_cast<u128>(1) << 52) % qv);
    r52 = set1(r);
    r52s = set1(shoup52(r, qv));
    kq = set1((1ULL << 52) / qv);
  }
  HECNN_TARGET __m512i reduce(__m512i hi, __m512i lo) const {
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    lo = _mm512_and_si512(lo, o.mask);
    const __m512i r1 = o.mul_lazy(hi, r52, r52s);
    const __m512i qe = madd_hi(_mm512_setzero_si512(), lo, kq);
    const __m512i r2 = _mm512_and_si512(madd_lo(lo, qe, o.neg_q), o.mask);
    return reduce_once(reduce_once(_mm512_add_epi64(r1, r2), o.two_q), o.q);
  }
};

// Digits per group of lazy accumulation: 8 products below 2^100 keep hi < 2^51 and lo < 2^55.
constexpr std::size_t kGroup = 8;

// y * w mod q in [0, 2q) for y < 2^52: y w - floor(y w' / 2^52) q, computed modulo 2^52.
HECNN_TARGET inline __m512i shoup52_lazy(__m512i y, __m512i w, __m512i w_shoup, __m512i q, __m512i mask) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i qt = madd_hi(zero, y, w_shoup);
  return _mm512_and_si512(_mm512_sub_epi64(madd_lo(zero, y, w), madd_lo(zero, qt, q)), mask);
}

}  // namespace

namespace ifma {

HECNN_TARGET void ntt_forward(const NttTables& t, const u64* in, u64* a, u64 add) {
  const std::size_t n = t.n();
  const u64 q = t.modulus().value;
  if (q >= kIfmaPrimeBound || n < 16) return avx512::ntt_forward(t, in, a, add);
  // Values start below 4q and grow by at most 2q a stage: (4 + 2 log2 n) q below 2^52 lets every
  // butterfly skip reducing its first input.
  if (static_cast<u128>(4 + 2 * static_cast<u64>(t.log_n())) * q < (u128{1} << 52)) {
    const Ops52Wide o(q);
    return ntt_forward_avx512(o, t.tables().fwd.data(), t.tables().fwd_shoup52.data(), in, a, n, add);
  }
  const Ops52 o(q);
  ntt_forward_avx512(o, t.tables().fwd.data(), t.tables().fwd_shoup52.data(), in, a, n, add);
}

HECNN_TARGET void ntt_inverse(const NttTables& t, const u64* in, u64* a, const InverseScale* scale) {
  const std::size_t n = t.n();
  const u64 q = t.modulus().value;
  if (q >= kIfmaPrimeBound || n < 16) return avx512::ntt_inverse(t, in, a, scale);
  const auto& T = t.tables();
  const InverseScale S = scale ? *scale : unit_scale(T);
  const Ops52 o(q);
  ntt_inverse_avx512(o, T.inv.data(), T.inv_shoup52.data(), S.n_inv, S.n_inv_shoup52, S.last, S.last_shoup52, in, a, n);
}

void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) { avx512::add_mod(a, b, out, n, q); }
void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) { avx512::sub_mod(a, b, out, n, q); }
void neg_mod(const u64* a, u64* out, std::size_t n, u64 q) { avx512::neg_mod(a, out, n, q); }
void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q) { avx512::add_scalar_mod(a, c, out, n, q); }
void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m) { avx512::reduce_mod(a, out, n, m); }
void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m) {
  avx512::reduce_signed_mod(a, out, n, m);
}
void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n) { avx512::permute(a, perm, out, n); }

HECNN_TARGET void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q) {
  if (q >= kIfmaPrimeBound) return avx512::mul_scalar_mod(a, w, out, n, q);
  const Ops52 o(q);
  const __m512i vw = set1(w.w), vws = set1(shoup52(w.w, q));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, reduce_once(o.mul_lazy(load(a + i), vw, vws), o.q));
  portable::mul_scalar_mod(a + i, w, out + i, n - i, q);
}

HECNN_TARGET void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n,
                                     u64 q, bool accumulate) {
  if (q >= kIfmaPrimeBound) return avx512::sub_mul_scalar_mod(x, y, c, w, out, n, q, accumulate);
  const Ops52 o(q);
  const __m512i vw = set1(w.w), vws = set1(shoup52(w.w, q)), cq = set1(c + q);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i v = _mm512_sub_epi64(_mm512_add_epi64(load(x + i), cq), load(y + i));  // < 3q
    __m512i r = reduce_once(o.mul_lazy(v, vw, vws), o.q);
    if (accumulate) r = reduce_once(_mm512_add_epi64(r, load(out + i)), o.q);
    store(out + i, r);
  }
  portable::sub_mul_scalar_mod(x + i, y + i, c, w, out + i, n - i, q, accumulate);
}

HECNN_TARGET void mul_scalar_add_mod(const u64* a, const MulConst& w, const u64* b, u64* out, std::size_t n, u64 q) {
  if (q >= kIfmaPrimeBound) return avx512::mul_scalar_add_mod(a, w, b, out, n, q);
  const Ops52 o(q);
  const __m512i vw = set1(w.w), vws = set1(shoup52(w.w, q));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i s = _mm512_add_epi64(load(b + i), o.mul_lazy(load(a + i), vw, vws));  // < 3q
    store(out + i, reduce_once(reduce_once(s, o.two_q), o.q));
  }
  portable::mul_scalar_add_mod(a + i, w, b + i, out + i, n - i, q);
}

HECNN_TARGET void sub_mul_add_scalar_mod(const u64* x, const u64* y, const MulConst& w, const u64* z, const MulConst& v,
                                         u64* out, std::size_t n, u64 q) {
  if (q >= kIfmaPrimeBound) return avx512::sub_mul_add_scalar_mod(x, y, w, z, v, out, n, q);
  const Ops52 o(q);
  const __m512i vw = set1(w.w), vws = set1(shoup52(w.w, q)), vv = set1(v.w), vvs = set1(shoup52(v.w, q));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(load(x + i), o.q), load(y + i));  // < 2q
    const __m512i s = _mm512_add_epi64(o.mul_lazy(d, vw, vws), o.mul_lazy(load(z + i), vv, vvs));  // < 4q
    store(out + i, reduce_once(reduce_once(s, o.two_q), o.q));
  }
  portable::sub_mul_add_scalar_mod(x + i, y + i, w, z + i, v, out + i, n - i, q);
}

HECNN_TARGET void mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, const Modulus& m) {
  if (m.value >= kIfmaPrimeBound) return avx512::mul_mod(a, b, out, n, m);
  const Barrett52 br(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = load(a + i), y = load(b + i);
    store(out + i, br.reduce(madd_hi(zero, x, y), madd_lo(zero, x, y)));
  }
  portable::mul_mod(a + i, b + i, out + i, n - i, m);
}

HECNN_TARGET void mul_add_mod(const u64* a, const u64* b, const u64* c, u64* out, std::size_t n, const Modulus& m) {
  if (m.value >= kIfmaPrimeBound) return avx512::mul_add_mod(a, b, c, out, n, m);
  const Barrett52 br(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = load(a + i), y = load(b + i);
    store(out + i, br.reduce(madd_hi(zero, x, y), madd_lo(load(c + i), x, y)));
  }
  portable::mul_add_mod(a + i, b + i, c + i, out + i, n - i, m);
}

HECNN_TARGET void tensor_mod(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* d0, u64* d1, u64* d2,
                             std::size_t n, const Modulus& m) {
  if (m.value >= kIfmaPrimeBound) return avx512::tensor_mod(a0, a1, b0, b1, d0, d1, d2, n, m);
  const Barrett52 br(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x0 = load(a0 + i), x1 = load(a1 + i), y0 = load(b0 + i), y1 = load(b1 + i);
    store(d0 + i, br.reduce(madd_hi(zero, x0, y0), madd_lo(zero, x0, y0)));
    store(d1 + i, br.reduce(madd_hi(madd_hi(zero, x0, y1), x1, y0), madd_lo(madd_lo(zero, x0, y1), x1, y0)));
    store(d2 + i, br.reduce(madd_hi(zero, x1, y1), madd_lo(zero, x1, y1)));
  }
  portable::tensor_mod(a0 + i, a1 + i, b0 + i, b1 + i, d0 + i, d1 + i, d2 + i, n - i, m);
}

HECNN_TARGET void square_mod(const u64* a0, const u64* a1, u64* d0, u64* d1, u64* d2, std::size_t n,
                             const Modulus& m) {
  if (m.value >= kIfmaPrimeBound) return avx512::square_mod(a0, a1, d0, d1, d2, n, m);
  const Barrett52 br(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x0 = load(a0 + i), x1 = load(a1 + i);
    store(d0 + i, br.reduce(madd_hi(zero, x0, x0), madd_lo(zero, x0, x0)));
    const __m512i h = madd_hi(zero, x0, x1), l = madd_lo(zero, x0, x1);
    store(d1 + i, br.reduce(_mm512_add_epi64(h, h), _mm512_add_epi64(l, l)));
    store(d2 + i, br.reduce(madd_hi(zero, x1, x1), madd_lo(zero, x1, x1)));
  }
  portable::square_mod(a0 + i, a1 + i, d0 + i, d1 + i, d2 + i, n - i, m);
}

HECNN_TARGET void ks_inner_product(const u64* const* digits, const u64* const* kb, const u64* const* ka,
                                   std::size_t D, const std::uint32_t* perm, u64* out0, u64* out1, std::size_t n,
                                   const Modulus& m) {
  if (m.value >= kIfmaPrimeBound || D > 64) return avx512::ks_inner_product(digits, kb, ka, D, perm, out0, out1, n, m);
  const WideReducer red(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r0 = zero, r1 = zero;
    __m512i idx = zero;
    std::size_t base = 0;
    bool block = false;
    if (perm) {
      idx = perm_indices(perm + i);
      block = perm_is_block(idx, perm[i], &base);
    }
    for (std::size_t g = 0; g < D; g += kGroup) {
      const std::size_t end = g + kGroup < D ? g + kGroup : D;
      __m512i lo0 = r0, hi0 = zero, lo1 = r1, hi1 = zero;
      for (std::size_t d = g; d < end; ++d) {
        const __m512i x = perm ? perm_load(digits[d], idx, block, base) : load(digits[d] + i);
        // The keys stream from memory (tens of MB per key switch): fetch a little ahead.
        _mm_prefetch(reinterpret_cast<const char*>(kb[d] + i + 128), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ka[d] + i + 128), _MM_HINT_T0);
        const __m512i b = load(kb[d] + i), a = load(ka[d] + i);
        lo0 = madd_lo(lo0, x, b);
        hi0 = madd_hi(hi0, x, b);
        lo1 = madd_lo(lo1, x, a);
        hi1 = madd_hi(hi1, x, a);
      }
      r0 = red.reduce(hi0, lo0);
      r1 = red.reduce(hi1, lo1);
    }
    store(out0 + i, r0);
    store(out1 + i, r1);
  }
  if (i < n) {
    const u64* dd[64];
    const u64* bb[64];
    const u64* aa[64];
    for (std::size_t d = 0; d < D; ++d) {
      dd[d] = perm ? digits[d] : digits[d] + i;
      bb[d] = kb[d] + i;
      aa[d] = ka[d] + i;
    }
    portable::ks_inner_product(dd, bb, aa, D, perm ? perm + i : nullptr, out0 + i, out1 + i, n - i, m);
  }
}

HECNN_TARGET void convert_sum(const u64* const* y, const u64* hat, std::size_t k, u64 y_bound, u64* out,
                              std::size_t n, const Modulus& m) {
  if (m.value >= kIfmaPrimeBound || y_bound > kIfmaPrimeBound || k > 64) {
    return avx512::convert_sum(y, hat, k, y_bound, out, n, m);
  }
  const WideReducer red(m.value);
  const __m512i zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i r = zero;
    for (std::size_t g = 0; g < k; g += kGroup) {
      const std::size_t end = g + kGroup < k ? g + kGroup : k;
      __m512i lo = r, hi = zero;
      for (std::size_t j = g; j < end; ++j) {
        const __m512i x = load(y[j] + i), h = set1(hat[j]);
        lo = madd_lo(lo, x, h);
        hi = madd_hi(hi, x, h);
      }
      r = red.reduce(hi, lo);
    }
    store(out + i, r);
  }
  if (i < n) {
    const u64* yy[64];
    for (std::size_t j = 0; j < k; ++j) yy[j] = y[j] + i;
    portable::convert_sum(yy, hat, k, y_bound, out + i, n - i, m);
  }
}

}  // namespace ifma

namespace {

// Products of 50-bit operands split as lo (bits 0-51) and hi (bits 52-103); over at most 256 terms
// the two sums stay below 2^60 and 2^56. The sum x = hi 2^52 + lo is then reduced in vector form:
// x = H1 2^104 + H0 2^52 + l0 with 52-bit digits, each digit times its constant (2^104 mod q,
// 2^52 mod q, 1) by Shoup's method into [0, 2q), and the three results brought into [0, q).
struct DotReducer {
  __m512i mask, q, q2, q4, c52, c52s, c104, c104s, one, ones;
  HECNN_TARGET DotReducer(const Modulus& m, const DotConstants& c)
      : mask(set1(kMask52)), q(set1(m.value)), q2(set1(2 * m.value)), q4(set1(4 * m.value)), c52(set1(c.c52)),
        c52s(set1(c.c52_shoup)), c104(set1(c.c104)), c104s(set1(c.c104_shoup)), one(set1(1)),
        ones(set1(c.one_shoup)) {}
  HECNN_TARGET __m512i reduce(__m512i l, __m512i h) const {
    const __m512i l0 = _mm512_and_si512(l, mask);
    const __m512i hh = _mm512_add_epi64(h, _mm512_srli_epi64(l, 52));
    const __m512i h0 = _mm512_and_si512(hh, mask), h1 = _mm512_srli_epi64(hh, 52);
    __m512i r = _mm512_add_epi64(shoup52_lazy(l0, one, ones, q, mask), shoup52_lazy(h0, c52, c52s, q, mask));
    r = _mm512_add_epi64(r, shoup52_lazy(h1, c104, c104s, q, mask));  // < 6q
    r = _mm512_min_epu64(r, _mm512_sub_epi64(r, q4));
    r = _mm512_min_epu64(r, _mm512_sub_epi64(r, q2));
    return _mm512_min_epu64(r, _mm512_sub_epi64(r, q));
  }
};

// Coefficients a dot_rows call runs every chunk of rows over before moving on: the span's input
// lines (terms x 256 bytes) stay in L1 while each chunk reads them, and a chunk's weights
// (terms x rows) are read once per span, not once per vector.
constexpr std::size_t kDotRowsSpan = 32;

// RB rows from row r0 of a dot_rows call, 8 coefficients at a time: each input vector is loaded
// once and multiplied by the RB rows' weights (broadcast), so the kernel runs at the multipliers'
// rate instead of the loads'. 2 RB accumulators stay in registers (RB <= 12 of 32).
template <std::size_t RB>
HECNN_TARGET void dot_rows_chunk(const u64* w, std::size_t rows, std::size_t r0, const u64* const* src,
                                 std::size_t terms, std::size_t i0, std::size_t i1, u64* const* dst, bool accumulate,
                                 const DotReducer& red) {
  const __m512i zero = _mm512_setzero_si512();
  for (std::size_t i = i0; i < i1; i += 8) {
    __m512i l[RB], h[RB];
#pragma GCC unroll 16
    for (std::size_t r = 0; r < RB; ++r) l[r] = h[r] = zero;
    const u64* wt = w + r0;
    for (std::size_t t = 0; t < terms; ++t, wt += rows) {
      // The inputs are one stream per term, too many for the hardware prefetcher: the first chunk
      // fetches the next vector's lines while the multipliers work on this one.
      if (r0 == 0) _mm_prefetch(reinterpret_cast<const char*>(src[t] + i + kDotRowsSpan), _MM_HINT_T0);
      const __m512i a = load(src[t] + i);
#pragma GCC unroll 16
      for (std::size_t r = 0; r < RB; ++r) {
        const __m512i b = set1(wt[r]);
        l[r] = madd_lo(l[r], a, b);
        h[r] = madd_hi(h[r], a, b);
      }
    }
#pragma GCC unroll 16
    for (std::size_t r = 0; r < RB; ++r) {
      u64* d = dst[r0 + r] + i;
      __m512i v = red.reduce(l[r], h[r]);
      if (accumulate) v = reduce_once(_mm512_add_epi64(v, load(d)), red.q);
      store(d, v);
    }
  }
}

constexpr std::size_t kRowsPerChunk = 12;

}  // namespace

namespace ifma {

HECNN_TARGET void dot_block(const u64* w, const u64* const* src, std::size_t terms, std::size_t len, u64* dst,
                            const Modulus& m, const DotConstants& c) {
  if (m.value >= kIfmaPrimeBound || len % 8 != 0 || len > kDotBlock) {
    return portable::dot_block(w, src, terms, len, dst, m, c);
  }
  const std::size_t vecs = len / 8;
  const __m512i zero = _mm512_setzero_si512();
  __m512i l[kDotBlock / 8], h[kDotBlock / 8];
  for (std::size_t v = 0; v < kDotBlock / 8; ++v) l[v] = h[v] = zero;
  for (std::size_t t = 0; t < terms; ++t) {
    const __m512i wt = set1(w[t]);
    const u64* s = src[t];
    for (std::size_t v = 0; v < vecs; ++v) {
      const __m512i a = load(s + 8 * v);
      l[v] = madd_lo(l[v], a, wt);
      h[v] = madd_hi(h[v], a, wt);
    }
  }
  const DotReducer red(m, c);
  for (std::size_t v = 0; v < vecs; ++v) store(dst + 8 * v, red.reduce(l[v], h[v]));
}

HECNN_TARGET void dot_rows(const u64* w, std::size_t rows, const u64* const* src, std::size_t terms, std::size_t len,
                           u64* const* dst, bool accumulate, const Modulus& m, const DotConstants& c) {
  if (m.value >= kIfmaPrimeBound || len % 8 != 0) {
    return portable::dot_rows(w, rows, src, terms, len, dst, accumulate, m, c);
  }
  const DotReducer red(m, c);
  // Chunks of nearly equal size, at most kRowsPerChunk rows each (50 rows: 5 of 10).
  const std::size_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const std::size_t per = chunks == 0 ? 0 : (rows + chunks - 1) / chunks;
  for (std::size_t i0 = 0; i0 < len; i0 += kDotRowsSpan) {
    const std::size_t i1 = len - i0 < kDotRowsSpan ? len : i0 + kDotRowsSpan;
    for (std::size_t r0 = 0; r0 < rows; r0 += per) {
      const std::size_t rb = rows - r0 < per ? rows - r0 : per;
      switch (rb) {
#define HECNN_DOT_ROWS_CASE(k) \
  case k: dot_rows_chunk<k>(w, rows, r0, src, terms, i0, i1, dst, accumulate, red); break;
        HECNN_DOT_ROWS_CASE(1) HECNN_DOT_ROWS_CASE(2) HECNN_DOT_ROWS_CASE(3) HECNN_DOT_ROWS_CASE(4)
        HECNN_DOT_ROWS_CASE(5) HECNN_DOT_ROWS_CASE(6) HECNN_DOT_ROWS_CASE(7) HECNN_DOT_ROWS_CASE(8)
        HECNN_DOT_ROWS_CASE(9) HECNN_DOT_ROWS_CASE(10) HECNN_DOT_ROWS_CASE(11) HECNN_DOT_ROWS_CASE(12)
#undef HECNN_DOT_ROWS_CASE
        default: break;
      }
    }
  }
}

}  // namespace ifma
}  // namespace hecnn::ring::kernels
