// Internal: AVX-512 NTT driver shared by kernels_avx512.cpp (64-bit lanes) and kernels_ifma.cpp
// (52-bit lanes). Include inside an anonymous namespace after defining HECNN_TARGET (a target
// attribute) and an Ops type with
//   __m512i q, two_q;
//   __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const;   // y*w mod q in [0, 2q), y < 4q
//   static constexpr bool kWide;   // forward butterflies may skip reducing X (see fwd_bfly)
//   __m512i reduce_wide(__m512i v) const;   // with kWide: v mod q in [0, 2q), v < 2^52
// Stages with butterfly distance t >= 8 broadcast one twiddle; the last three (t = 4, 2, 1) work on
// 16 coefficients at a time, shuffled so that lane k of X pairs with lane k of Y.
// Requires n >= 16. The first stage reads `src` (which may equal `a`) and adds the forward transform's
// constant offset; the rest work in place.

HECNN_TARGET inline __m512i reduce_once(__m512i v, __m512i m) { return _mm512_min_epu64(v, _mm512_sub_epi64(v, m)); }

template <class Ops>
HECNN_TARGET inline void fwd_bfly(const Ops& o, __m512i& X, __m512i& Y, __m512i w, __m512i ws) {
  // Ops::kWide: the prime is small enough that values may grow by 2q a stage without leaving 52
  // bits (see ntt_forward in kernels_ifma.cpp), so X is not brought back below 2q.
  const __m512i x = Ops::kWide ? X : reduce_once(X, o.two_q);
  const __m512i t = o.mul_lazy(Y, w, ws);
  X = _mm512_add_epi64(x, t);
  Y = _mm512_add_epi64(_mm512_sub_epi64(x, t), o.two_q);
}

// The forward transform's output brought into [0, q): from [0, 4q), or with Ops::kWide from below
// 2^52 (a Shoup product by one, into [0, 2q), first).
template <class Ops>
HECNN_TARGET inline __m512i fwd_final(const Ops& o, __m512i v) {
  if constexpr (Ops::kWide) return reduce_once(o.reduce_wide(v), o.q);
  return reduce_once(reduce_once(v, o.two_q), o.q);
}

template <class Ops>
HECNN_TARGET inline void inv_bfly(const Ops& o, __m512i& X, __m512i& Y, __m512i w, __m512i ws) {
  const __m512i s = reduce_once(_mm512_add_epi64(X, Y), o.two_q);
  const __m512i d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), o.two_q);
  X = s;
  Y = o.mul_lazy(d, w, ws);
}

// Twiddles for the t = 4 stage: [w0 x4, w1 x4] from two consecutive entries.
HECNN_TARGET inline __m512i twiddle_t4(const u64* w) {
  const __m512i idx = _mm512_setr_epi64(0, 0, 0, 0, 1, 1, 1, 1);
  return _mm512_permutexvar_epi64(idx, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}
// t = 2: [w0 w0 w1 w1 w2 w2 w3 w3].
HECNN_TARGET inline __m512i twiddle_t2(const u64* w) {
  const __m512i idx = _mm512_setr_epi64(0, 0, 1, 1, 2, 2, 3, 3);
  return _mm512_permutexvar_epi64(idx,
                                  _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w))));
}
// t = 1, matching the unpacklo/unpackhi lane order: [w0 w4 w1 w5 w2 w6 w3 w7].
HECNN_TARGET inline __m512i twiddle_t1(const u64* w) {
  const __m512i idx = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);
  return _mm512_permutexvar_epi64(idx, _mm512_loadu_si512(w));
}

// Splits 16 coefficients v0 | v1 into butterfly halves for distance t (4, 2 or 1), and back.
template <int T>
HECNN_TARGET inline void split(__m512i v0, __m512i v1, __m512i& X, __m512i& Y) {
  if constexpr (T == 4) {
    X = _mm512_shuffle_i64x2(v0, v1, 0x44);
    Y = _mm512_shuffle_i64x2(v0, v1, 0xEE);
  } else if constexpr (T == 2) {
    X = _mm512_permutex2var_epi64(v0, _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), v1);
    Y = _mm512_permutex2var_epi64(v0, _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15), v1);
  } else {
    X = _mm512_unpacklo_epi64(v0, v1);
    Y = _mm512_unpackhi_epi64(v0, v1);
  }
}
template <int T>
HECNN_TARGET inline void merge(__m512i X, __m512i Y, __m512i& v0, __m512i& v1) {
  if constexpr (T == 4) {
    v0 = _mm512_shuffle_i64x2(X, Y, 0x44);
    v1 = _mm512_shuffle_i64x2(X, Y, 0xEE);
  } else if constexpr (T == 2) {
    v0 = _mm512_permutex2var_epi64(X, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), Y);
    v1 = _mm512_permutex2var_epi64(X, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), Y);
  } else {
    v0 = _mm512_unpacklo_epi64(X, Y);
    v1 = _mm512_unpackhi_epi64(X, Y);
  }
}

// Coefficients per cache block (32 KiB of 64-bit words, inside L1): the stages whose butterfly
// groups fit in a block run block by block, so only the first (forward) or last (inverse) stages
// stream the whole polynomial through L2; and consecutive stages run in pairs (radix 4), loading
// and storing each coefficient once for both. Every butterfly is the radix-2 one, in the same
// order per coefficient: the results are identical word for word.
constexpr std::size_t kNttBlock = 4096;

// Forward stage (m groups, distance t >= 8), groups [g0, g1); reads `in` (plus `vadd` when `add`).
template <class Ops>
HECNN_TARGET inline void fwd_stage(const Ops& o, const u64* W, const u64* WS, const u64* in, u64* a, std::size_t m,
                                   std::size_t t, std::size_t g0, std::size_t g1, __m512i vadd, bool add) {
  for (std::size_t i = g0; i < g1; ++i) {
    const __m512i w = _mm512_set1_epi64(static_cast<long long>(W[m + i]));
    const __m512i ws = _mm512_set1_epi64(static_cast<long long>(WS[m + i]));
    u64* x = a + 2 * i * t;
    u64* y = x + t;
    const u64* xi = in + 2 * i * t;
    const u64* yi = xi + t;
    for (std::size_t j = 0; j < t; j += 8) {
      __m512i X = _mm512_loadu_si512(xi + j), Y = _mm512_loadu_si512(yi + j);
      if (add) {
        X = _mm512_add_epi64(X, vadd);
        Y = _mm512_add_epi64(Y, vadd);
      }
      fwd_bfly(o, X, Y, w, ws);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(y + j, Y);
    }
  }
}

// Forward stages (m, t) and (2m, t/2) together, t >= 16, groups [g0, g1) of the first.
template <class Ops>
HECNN_TARGET inline void fwd_stage_pair(const Ops& o, const u64* W, const u64* WS, const u64* in, u64* a,
                                        std::size_t m, std::size_t t, std::size_t g0, std::size_t g1, __m512i vadd,
                                        bool add) {
  const std::size_t h = t / 2;
  for (std::size_t i = g0; i < g1; ++i) {
    const __m512i w1 = _mm512_set1_epi64(static_cast<long long>(W[m + i]));
    const __m512i w1s = _mm512_set1_epi64(static_cast<long long>(WS[m + i]));
    const __m512i w2 = _mm512_set1_epi64(static_cast<long long>(W[2 * m + 2 * i]));
    const __m512i w2s = _mm512_set1_epi64(static_cast<long long>(WS[2 * m + 2 * i]));
    const __m512i w3 = _mm512_set1_epi64(static_cast<long long>(W[2 * m + 2 * i + 1]));
    const __m512i w3s = _mm512_set1_epi64(static_cast<long long>(WS[2 * m + 2 * i + 1]));
    u64* p = a + 2 * i * t;
    const u64* pi = in + 2 * i * t;
    for (std::size_t j = 0; j < h; j += 8) {
      __m512i X0 = _mm512_loadu_si512(pi + j), X1 = _mm512_loadu_si512(pi + h + j);
      __m512i X2 = _mm512_loadu_si512(pi + t + j), X3 = _mm512_loadu_si512(pi + t + h + j);
      if (add) {
        X0 = _mm512_add_epi64(X0, vadd);
        X1 = _mm512_add_epi64(X1, vadd);
        X2 = _mm512_add_epi64(X2, vadd);
        X3 = _mm512_add_epi64(X3, vadd);
      }
      fwd_bfly(o, X0, X2, w1, w1s);
      fwd_bfly(o, X1, X3, w1, w1s);
      fwd_bfly(o, X0, X1, w2, w2s);
      fwd_bfly(o, X2, X3, w3, w3s);
      _mm512_storeu_si512(p + j, X0);
      _mm512_storeu_si512(p + h + j, X1);
      _mm512_storeu_si512(p + t + j, X2);
      _mm512_storeu_si512(p + t + h + j, X3);
    }
  }
}

// The last three forward stages (t = 4, 2, 1) on the 16 coefficients v0 | v1 of chunk c, in
// registers, fully reduced at the end.
template <class Ops>
HECNN_TARGET inline void fwd_last_three_regs(const Ops& o, const u64* W, const u64* WS, std::size_t n, std::size_t c,
                                             __m512i& v0, __m512i& v1) {
  const std::size_t m4 = n / 8, m2 = n / 4, m1 = n / 2;
  __m512i X, Y;
  split<4>(v0, v1, X, Y);
  fwd_bfly(o, X, Y, twiddle_t4(W + m4 + 2 * c), twiddle_t4(WS + m4 + 2 * c));
  merge<4>(X, Y, v0, v1);
  split<2>(v0, v1, X, Y);
  fwd_bfly(o, X, Y, twiddle_t2(W + m2 + 4 * c), twiddle_t2(WS + m2 + 4 * c));
  merge<2>(X, Y, v0, v1);
  split<1>(v0, v1, X, Y);
  fwd_bfly(o, X, Y, twiddle_t1(W + m1 + 8 * c), twiddle_t1(WS + m1 + 8 * c));
  X = fwd_final(o, X);
  Y = fwd_final(o, Y);
  merge<1>(X, Y, v0, v1);
}

// The first three inverse stages (t = 1, 2, 4) on the 16 coefficients v0 | v1 of chunk c.
template <class Ops>
HECNN_TARGET inline void inv_first_three_regs(const Ops& o, const u64* W, const u64* WS, std::size_t n, std::size_t c,
                                              __m512i& v0, __m512i& v1) {
  const std::size_t h1 = n / 2, h2 = n / 4, h4 = n / 8;
  __m512i X, Y;
  split<1>(v0, v1, X, Y);
  inv_bfly(o, X, Y, twiddle_t1(W + h1 + 8 * c), twiddle_t1(WS + h1 + 8 * c));
  merge<1>(X, Y, v0, v1);
  split<2>(v0, v1, X, Y);
  inv_bfly(o, X, Y, twiddle_t2(W + h2 + 4 * c), twiddle_t2(WS + h2 + 4 * c));
  merge<2>(X, Y, v0, v1);
  split<4>(v0, v1, X, Y);
  inv_bfly(o, X, Y, twiddle_t4(W + h4 + 2 * c), twiddle_t4(WS + h4 + 2 * c));
  merge<4>(X, Y, v0, v1);
}

// The last three forward stages on 16-coefficient chunks [c0, c1).
template <class Ops>
HECNN_TARGET inline void fwd_last_three(const Ops& o, const u64* W, const u64* WS, u64* a, std::size_t n,
                                        std::size_t c0, std::size_t c1) {
  for (std::size_t c = c0; c < c1; ++c) {
    u64* p = a + 16 * c;
    __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8);
    fwd_last_three_regs(o, W, WS, n, c, v0, v1);
    _mm512_storeu_si512(p, v0);
    _mm512_storeu_si512(p + 8, v1);
  }
}

// The first three inverse stages on 16-coefficient chunks [c0, c1), reading src.
template <class Ops>
HECNN_TARGET inline void inv_first_three(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                         std::size_t n, std::size_t c0, std::size_t c1) {
  for (std::size_t c = c0; c < c1; ++c) {
    __m512i v0 = _mm512_loadu_si512(src + 16 * c), v1 = _mm512_loadu_si512(src + 16 * c + 8);
    inv_first_three_regs(o, W, WS, n, c, v0, v1);
    _mm512_storeu_si512(a + 16 * c, v0);
    _mm512_storeu_si512(a + 16 * c + 8, v1);
  }
}

// The last four forward stages (t = 8, 4, 2, 1) on 32-coefficient chunks [c0, c1): t = 8 pairs the
// chunk's two 16-coefficient groups, then each group runs the last three stages, all in registers.
template <class Ops>
HECNN_TARGET inline void fwd_last_four(const Ops& o, const u64* W, const u64* WS, u64* a, std::size_t n,
                                       std::size_t c0, std::size_t c1) {
  const std::size_t m8 = n / 16;
  for (std::size_t c = c0; c < c1; ++c) {
    u64* p = a + 32 * c;
    __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8), v2 = _mm512_loadu_si512(p + 16),
            v3 = _mm512_loadu_si512(p + 24);
    fwd_bfly(o, v0, v1, _mm512_set1_epi64(static_cast<long long>(W[m8 + 2 * c])),
             _mm512_set1_epi64(static_cast<long long>(WS[m8 + 2 * c])));
    fwd_bfly(o, v2, v3, _mm512_set1_epi64(static_cast<long long>(W[m8 + 2 * c + 1])),
             _mm512_set1_epi64(static_cast<long long>(WS[m8 + 2 * c + 1])));
    fwd_last_three_regs(o, W, WS, n, 2 * c, v0, v1);
    fwd_last_three_regs(o, W, WS, n, 2 * c + 1, v2, v3);
    _mm512_storeu_si512(p, v0);
    _mm512_storeu_si512(p + 8, v1);
    _mm512_storeu_si512(p + 16, v2);
    _mm512_storeu_si512(p + 24, v3);
  }
}

// The first four inverse stages (t = 1, 2, 4, 8) on 32-coefficient chunks [c0, c1), reading src.
template <class Ops>
HECNN_TARGET inline void inv_first_four(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                        std::size_t n, std::size_t c0, std::size_t c1) {
  const std::size_t h8 = n / 16;
  for (std::size_t c = c0; c < c1; ++c) {
    const u64* s = src + 32 * c;
    __m512i v0 = _mm512_loadu_si512(s), v1 = _mm512_loadu_si512(s + 8), v2 = _mm512_loadu_si512(s + 16),
            v3 = _mm512_loadu_si512(s + 24);
    inv_first_three_regs(o, W, WS, n, 2 * c, v0, v1);
    inv_first_three_regs(o, W, WS, n, 2 * c + 1, v2, v3);
    inv_bfly(o, v0, v1, _mm512_set1_epi64(static_cast<long long>(W[h8 + 2 * c])),
             _mm512_set1_epi64(static_cast<long long>(WS[h8 + 2 * c])));
    inv_bfly(o, v2, v3, _mm512_set1_epi64(static_cast<long long>(W[h8 + 2 * c + 1])),
             _mm512_set1_epi64(static_cast<long long>(WS[h8 + 2 * c + 1])));
    u64* p = a + 32 * c;
    _mm512_storeu_si512(p, v0);
    _mm512_storeu_si512(p + 8, v1);
    _mm512_storeu_si512(p + 16, v2);
    _mm512_storeu_si512(p + 24, v3);
  }
}

// Inverse stage (h groups, distance t >= 8), groups [g0, g1).
template <class Ops>
HECNN_TARGET inline void inv_stage(const Ops& o, const u64* W, const u64* WS, u64* a, std::size_t h, std::size_t t,
                                   std::size_t g0, std::size_t g1) {
  for (std::size_t i = g0; i < g1; ++i) {
    const __m512i w = _mm512_set1_epi64(static_cast<long long>(W[h + i]));
    const __m512i ws = _mm512_set1_epi64(static_cast<long long>(WS[h + i]));
    u64* x = a + 2 * i * t;
    u64* y = x + t;
    for (std::size_t j = 0; j < t; j += 8) {
      __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
      inv_bfly(o, X, Y, w, ws);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(y + j, Y);
    }
  }
}

// Inverse stages (h, t) and (h/2, 2t) together, groups [g0, g1) of the second.
template <class Ops>
HECNN_TARGET inline void inv_stage_pair(const Ops& o, const u64* W, const u64* WS, u64* a, std::size_t h,
                                        std::size_t t, std::size_t g0, std::size_t g1) {
  for (std::size_t i = g0; i < g1; ++i) {
    const __m512i w1 = _mm512_set1_epi64(static_cast<long long>(W[h + 2 * i]));
    const __m512i w1s = _mm512_set1_epi64(static_cast<long long>(WS[h + 2 * i]));
    const __m512i w2 = _mm512_set1_epi64(static_cast<long long>(W[h + 2 * i + 1]));
    const __m512i w2s = _mm512_set1_epi64(static_cast<long long>(WS[h + 2 * i + 1]));
    const __m512i w3 = _mm512_set1_epi64(static_cast<long long>(W[h / 2 + i]));
    const __m512i w3s = _mm512_set1_epi64(static_cast<long long>(WS[h / 2 + i]));
    u64* p = a + 4 * i * t;
    for (std::size_t j = 0; j < t; j += 8) {
      __m512i X0 = _mm512_loadu_si512(p + j), X1 = _mm512_loadu_si512(p + t + j);
      __m512i X2 = _mm512_loadu_si512(p + 2 * t + j), X3 = _mm512_loadu_si512(p + 3 * t + j);
      inv_bfly(o, X0, X1, w1, w1s);
      inv_bfly(o, X2, X3, w2, w2s);
      inv_bfly(o, X0, X2, w3, w3s);
      inv_bfly(o, X1, X3, w3, w3s);
      _mm512_storeu_si512(p + j, X0);
      _mm512_storeu_si512(p + t + j, X1);
      _mm512_storeu_si512(p + 2 * t + j, X2);
      _mm512_storeu_si512(p + 3 * t + j, X3);
    }
  }
}

// The last inverse stage (t = n/2) fused with the scaling by n^-1, fully reduced: the sum times
// n^-1, the difference times n^-1 psi^-brev(1).
struct InvLast {
  __m512i ni, nis, lw, lws;
};
template <class Ops>
HECNN_TARGET inline void inv_last_bfly(const Ops& o, const InvLast& c, __m512i& X, __m512i& Y) {
  const __m512i s = _mm512_add_epi64(X, Y);
  const __m512i d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), o.two_q);
  X = reduce_once(o.mul_lazy(s, c.ni, c.nis), o.q);
  Y = reduce_once(o.mul_lazy(d, c.lw, c.lws), o.q);
}

template <class Ops>
HECNN_TARGET void ntt_forward_avx512(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                     std::size_t n, u64 add) {
  const __m512i vadd = _mm512_set1_epi64(static_cast<long long>(add));
  const std::size_t B = n < kNttBlock ? n : kNttBlock;
  std::size_t m = 1, t = n >> 1;
  bool first = true;  // the first stage reads src and adds the offset
  // Stages whose groups span more than a block: over the whole polynomial.
  while (2 * t > B) {
    if (t > B) {
      fwd_stage_pair(o, W, WS, first ? src : a, a, m, t, 0, m, vadd, first);
      m <<= 2;
      t >>= 2;
    } else {
      fwd_stage(o, W, WS, first ? src : a, a, m, t, 0, m, vadd, first);
      m <<= 1;
      t >>= 1;
    }
    first = false;
  }
  // The rest block by block: the groups of stage (mm, tt) inside block [b0, b0 + B).
  for (std::size_t b0 = 0; b0 < n; b0 += B) {
    std::size_t mm = m, tt = t;
    bool f = first;
    while (tt >= 8) {
      if (tt == 8 && !f && n >= 32) break;  // t = 8 runs with the last three
      const std::size_t g0 = b0 / (2 * tt), g1 = (b0 + B) / (2 * tt);
      if (tt >= 16) {
        fwd_stage_pair(o, W, WS, f ? src : a, a, mm, tt, g0, g1, vadd, f);
        mm <<= 2;
        tt >>= 2;
      } else {
        fwd_stage(o, W, WS, f ? src : a, a, mm, tt, g0, g1, vadd, f);
        mm <<= 1;
        tt >>= 1;
      }
      f = false;
    }
    if (tt == 8) {
      fwd_last_four(o, W, WS, a, n, b0 / 32, (b0 + B) / 32);
    } else {
      fwd_last_three(o, W, WS, a, n, b0 / 16, (b0 + B) / 16);
    }
  }
}

template <class Ops>
HECNN_TARGET void ntt_inverse_avx512(const Ops& o, const u64* W, const u64* WS, u64 n_inv, u64 n_inv_s, u64 last,
                                     u64 last_s, const u64* src, u64* a, std::size_t n) {
  const std::size_t B = n < kNttBlock ? n : kNttBlock;
  // Stages whose groups fit in a block (2t <= B), but the last: block by block.
  std::size_t t0 = 8;
  for (std::size_t b0 = 0; b0 < n; b0 += B) {
    std::size_t t = 8;
    if (n >= 64) {  // t = 8 with the first three (t = 8 is then not the last stage)
      inv_first_four(o, W, WS, src, a, n, b0 / 32, (b0 + B) / 32);
      t = 16;
    } else {
      inv_first_three(o, W, WS, src, a, n, b0 / 16, (b0 + B) / 16);
    }
    while (2 * t <= B && t < n / 2) {
      if (4 * t <= B && 2 * t < n / 2) {
        inv_stage_pair(o, W, WS, a, n / (2 * t), t, b0 / (4 * t), (b0 + B) / (4 * t));
        t <<= 2;
      } else {
        inv_stage(o, W, WS, a, n / (2 * t), t, b0 / (2 * t), (b0 + B) / (2 * t));
        t <<= 1;
      }
    }
    t0 = t;
  }
  // Then over the whole polynomial (stages t0 .. n/2), in pairs, the last stage fused with the
  // scaling (and with the one before it when two or more remain).
  std::size_t t = t0;
  std::size_t left = static_cast<std::size_t>(__builtin_ctzll(n / t));
  while (left >= 4) {
    inv_stage_pair(o, W, WS, a, n / (2 * t), t, 0, n / (4 * t));
    t <<= 2;
    left -= 2;
  }
  if (left == 3) {
    inv_stage(o, W, WS, a, n / (2 * t), t, 0, n / (2 * t));
    t <<= 1;
    left = 2;
  }
  const InvLast lc{_mm512_set1_epi64(static_cast<long long>(n_inv)), _mm512_set1_epi64(static_cast<long long>(n_inv_s)),
                   _mm512_set1_epi64(static_cast<long long>(last)), _mm512_set1_epi64(static_cast<long long>(last_s))};
  if (left == 2) {  // stages n/4 (two groups) and n/2
    const std::size_t q4 = n / 4;
    const __m512i w1 = _mm512_set1_epi64(static_cast<long long>(W[2])), w1s = _mm512_set1_epi64(static_cast<long long>(WS[2]));
    const __m512i w2 = _mm512_set1_epi64(static_cast<long long>(W[3])), w2s = _mm512_set1_epi64(static_cast<long long>(WS[3]));
    for (std::size_t j = 0; j < q4; j += 8) {
      __m512i X0 = _mm512_loadu_si512(a + j), X1 = _mm512_loadu_si512(a + q4 + j);
      __m512i X2 = _mm512_loadu_si512(a + 2 * q4 + j), X3 = _mm512_loadu_si512(a + 3 * q4 + j);
      inv_bfly(o, X0, X1, w1, w1s);
      inv_bfly(o, X2, X3, w2, w2s);
      inv_last_bfly(o, lc, X0, X2);
      inv_last_bfly(o, lc, X1, X3);
      _mm512_storeu_si512(a + j, X0);
      _mm512_storeu_si512(a + q4 + j, X1);
      _mm512_storeu_si512(a + 2 * q4 + j, X2);
      _mm512_storeu_si512(a + 3 * q4 + j, X3);
    }
    return;
  }
  u64* x = a;
  u64* y = a + n / 2;
  for (std::size_t j = 0; j < n / 2; j += 8) {
    __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
    inv_last_bfly(o, lc, X, Y);
    _mm512_storeu_si512(x + j, X);
    _mm512_storeu_si512(y + j, Y);
  }
}
