// AVX-512 kernels on 64-bit lanes, for any prime below 2^61: Shoup products with an emulated 64x64
// high half (vpmuludq) and vpmullq for the low half. Element-wise products needing a Barrett
// reduction of a full 128-bit product are no faster than scalar mulx here and forward to portable;
// the IFMA level covers them for primes below 2^50.
// Only functions carrying HECNN_TARGET contain AVX-512 code, and they are reached only through the
// dispatcher once the CPU is known to support it; this file is compiled for the baseline ISA.
// GCC 12 reports false -Wmaybe-uninitialized in the AVX-512 intrinsic headers (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "ring/kernels.h"
#include "ring/ntt.h"

#define HECNN_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))

namespace hecnn::ring::kernels {
namespace {

HECNN_TARGET inline __m512i set1(u64 x) { return _mm512_set1_epi64(static_cast<long long>(x)); }
HECNN_TARGET inline __m512i load(const u64* p) { return _mm512_loadu_si512(p); }
HECNN_TARGET inline void store(u64* p, __m512i v) { _mm512_storeu_si512(p, v); }

// High 64 bits of the 128-bit products of the lanes.
HECNN_TARGET inline __m512i mulhi64(__m512i a, __m512i b) {
  const __m512i a_hi = _mm512_srli_epi64(a, 32), b_hi = _mm512_srli_epi64(b, 32);
  const __m512i ll = _mm512_mul_epu32(a, b), lh = _mm512_mul_epu32(a, b_hi);
  const __m512i hl = _mm512_mul_epu32(a_hi, b), hh = _mm512_mul_epu32(a_hi, b_hi);
  const __m512i mask = _mm512_set1_epi64(0xffffffffLL);
  __m512i mid = _mm512_add_epi64(_mm512_srli_epi64(ll, 32), _mm512_and_si512(lh, mask));
  mid = _mm512_add_epi64(mid, _mm512_and_si512(hl, mask));
  __m512i hi = _mm512_add_epi64(hh, _mm512_srli_epi64(lh, 32));
  hi = _mm512_add_epi64(hi, _mm512_srli_epi64(hl, 32));
  return _mm512_add_epi64(hi, _mm512_srli_epi64(mid, 32));
}

struct Ops64 {
  static constexpr bool kWide = false;
  __m512i q, two_q;
  HECNN_TARGET __m512i reduce_wide(__m512i v) const { return v; }  // unused (kWide is false)
  // Shoup: y * w - floor(y * ws / 2^64) * q, in [0, 2q) for any y.
  HECNN_TARGET __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const {
    const __m512i h = mulhi64(y, ws);
    return _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(h, q));
  }
};

#include "ring/ntt_avx512_impl.h"
#include "ring/permute_avx512_impl.h"

}  // namespace

namespace avx512 {

HECNN_TARGET void ntt_forward(const NttTables& t, const u64* in, u64* a, u64 add) {
  const std::size_t n = t.n();
  if (n < 16) return portable::ntt_forward(t, in, a, add);
  const u64 q = t.modulus().value;
  const Ops64 o{set1(q), set1(2 * q)};
  ntt_forward_avx512(o, t.tables().fwd.data(), t.tables().fwd_shoup.data(), in, a, n, add);
}

HECNN_TARGET void ntt_inverse(const NttTables& t, const u64* in, u64* a, const InverseScale* scale) {
  const std::size_t n = t.n();
  if (n < 16) return portable::ntt_inverse(t, in, a, scale);
  const u64 q = t.modulus().value;
  const auto& T = t.tables();
  const InverseScale S = scale ? *scale : unit_scale(T);
  const Ops64 o{set1(q), set1(2 * q)};
  ntt_inverse_avx512(o, T.inv.data(), T.inv_shoup.data(), S.n_inv, S.n_inv_shoup, S.last, S.last_shoup, in, a, n);
}

HECNN_TARGET void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  const __m512i vq = set1(q);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, reduce_once(_mm512_add_epi64(load(a + i), load(b + i)), vq));
  portable::add_mod(a + i, b + i, out + i, n - i, q);
}

HECNN_TARGET void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  const __m512i vq = set1(q);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i d = _mm512_sub_epi64(load(a + i), load(b + i));
    store(out + i, _mm512_min_epu64(d, _mm512_add_epi64(d, vq)));
  }
  portable::sub_mod(a + i, b + i, out + i, n - i, q);
}

HECNN_TARGET void neg_mod(const u64* a, u64* out, std::size_t n, u64 q) {
  const __m512i vq = set1(q);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, reduce_once(_mm512_sub_epi64(vq, load(a + i)), vq));
  portable::neg_mod(a + i, out + i, n - i, q);
}

HECNN_TARGET void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q) {
  const __m512i vq = set1(q), vc = set1(c);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, reduce_once(_mm512_add_epi64(load(a + i), vc), vq));
  portable::add_scalar_mod(a + i, c, out + i, n - i, q);
}

HECNN_TARGET void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q) {
  const Ops64 o{set1(q), set1(2 * q)};
  const __m512i vw = set1(w.w), vws = set1(w.ws);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, reduce_once(o.mul_lazy(load(a + i), vw, vws), o.q));
  portable::mul_scalar_mod(a + i, w, out + i, n - i, q);
}

HECNN_TARGET void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n,
                                     u64 q, bool accumulate) {
  const Ops64 o{set1(q), set1(2 * q)};
  const __m512i vw = set1(w.w), vws = set1(w.ws), cq = set1(c + q);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i v = _mm512_sub_epi64(_mm512_add_epi64(load(x + i), cq), load(y + i));
    __m512i r = reduce_once(o.mul_lazy(v, vw, vws), o.q);
    if (accumulate) r = reduce_once(_mm512_add_epi64(r, load(out + i)), o.q);
    store(out + i, r);
  }
  portable::sub_mul_scalar_mod(x + i, y + i, c, w, out + i, n - i, q, accumulate);
}

HECNN_TARGET void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m) {
  const __m512i vq = set1(m.value), ratio = set1(m.ratio_hi);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = load(a + i);
    const __m512i quot = mulhi64(x, ratio);
    store(out + i, reduce_once(_mm512_sub_epi64(x, _mm512_mullo_epi64(quot, vq)), vq));
  }
  portable::reduce_mod(a + i, out + i, n - i, m);
}

HECNN_TARGET void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m) {
  // |a| mod q (|INT64_MIN| = 2^63 is right as an unsigned lane), then q - r for negative a.
  const __m512i vq = set1(m.value), ratio = set1(m.ratio_hi), zero = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = _mm512_loadu_si512(a + i);
    const __m512i ax = _mm512_abs_epi64(x);
    const __m512i r = reduce_once(_mm512_sub_epi64(ax, _mm512_mullo_epi64(mulhi64(ax, ratio), vq)), vq);
    const __mmask8 neg = _mm512_cmplt_epi64_mask(x, zero);
    store(out + i, _mm512_mask_blend_epi64(neg, r, reduce_once(_mm512_sub_epi64(vq, r), vq)));
  }
  portable::reduce_signed_mod(a + i, out + i, n - i, m);
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

HECNN_TARGET void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i idx = perm_indices(perm + i);
    std::size_t base;
    const bool block = perm_is_block(idx, perm[i], &base);
    store(out + i, perm_load(a, idx, block, base));
  }
  for (; i < n; ++i) out[i] = a[perm[i]];
}

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
}  // namespace avx512
}  // namespace hecnn::ring::kernels
