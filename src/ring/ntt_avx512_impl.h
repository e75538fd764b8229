// Internal: AVX-512 NTT driver shared by kernels_avx512.cpp (64-bit lanes) and kernels_ifma.cpp
// (52-bit lanes). Include inside an anonymous namespace after defining HECNN_TARGET (a target
// attribute) and an Ops type with
//   __m512i q, two_q;
//   __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const;   // y*w mod q in [0, 2q), y < 4q
// Stages with butterfly distance t >= 8 broadcast one twiddle; the last three (t = 4, 2, 1) work on
// 16 coefficients at a time, shuffled so that lane k of X pairs with lane k of Y.
// Requires n >= 16. The first stage reads `src` (which may equal `a`) and adds the forward transform's
// constant offset; the rest work in place.

HECNN_TARGET inline __m512i reduce_once(__m512i v, __m512i m) { return _mm512_min_epu64(v, _mm512_sub_epi64(v, m)); }

template <class Ops>
HECNN_TARGET inline void fwd_bfly(const Ops& o, __m512i& X, __m512i& Y, __m512i w, __m512i ws) {
  const __m512i x = reduce_once(X, o.two_q);
  const __m512i t = o.mul_lazy(Y, w, ws);
  X = _mm512_add_epi64(x, t);
  Y = _mm512_add_epi64(_mm512_sub_epi64(x, t), o.two_q);
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

template <int T>
HECNN_TARGET inline __m512i twiddle_small(const u64* w) {
  if constexpr (T == 4) return twiddle_t4(w);
  else if constexpr (T == 2) return twiddle_t2(w);
  else return twiddle_t1(w);
}

// One of the last three forward stages: m blocks of 2T coefficients, twiddles W[m + i].
template <int T, bool Last, class Ops>
HECNN_TARGET inline void fwd_small_stage(const Ops& o, const u64* W, const u64* WS, u64* a, std::size_t m) {
  constexpr std::size_t blocks = 16 / (2 * T);
  for (std::size_t i = 0; i < m; i += blocks) {
    u64* p = a + 2 * T * i;
    __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 8), X, Y;
    split<T>(v0, v1, X, Y);
    fwd_bfly(o, X, Y, twiddle_small<T>(W + m + i), twiddle_small<T>(WS + m + i));
    if constexpr (Last) {
      const __m512i q = o.q;
      X = reduce_once(reduce_once(X, o.two_q), q);
      Y = reduce_once(reduce_once(Y, o.two_q), q);
    }
    merge<T>(X, Y, v0, v1);
    _mm512_storeu_si512(p, v0);
    _mm512_storeu_si512(p + 8, v1);
  }
}

template <int T, class Ops>
HECNN_TARGET inline void inv_small_stage(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                         std::size_t h) {
  constexpr std::size_t blocks = 16 / (2 * T);
  for (std::size_t i = 0; i < h; i += blocks) {
    u64* p = a + 2 * T * i;
    const u64* s = src + 2 * T * i;
    __m512i v0 = _mm512_loadu_si512(s), v1 = _mm512_loadu_si512(s + 8), X, Y;
    split<T>(v0, v1, X, Y);
    inv_bfly(o, X, Y, twiddle_small<T>(W + h + i), twiddle_small<T>(WS + h + i));
    merge<T>(X, Y, v0, v1);
    _mm512_storeu_si512(p, v0);
    _mm512_storeu_si512(p + 8, v1);
  }
}

template <class Ops>
HECNN_TARGET void ntt_forward_avx512(const Ops& o, const u64* W, const u64* WS, const u64* src, u64* a,
                                     std::size_t n, u64 add) {
  const __m512i vadd = _mm512_set1_epi64(static_cast<long long>(add));
  std::size_t m = 1, t = n >> 1;
  for (; t >= 8; m <<= 1, t >>= 1) {
    const u64* in = m == 1 ? src : a;  // the first stage reads the input, the others work in place
    for (std::size_t i = 0; i < m; ++i) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(W[m + i]));
      const __m512i ws = _mm512_set1_epi64(static_cast<long long>(WS[m + i]));
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      const u64* xi = in + 2 * i * t;
      const u64* yi = xi + t;
      for (std::size_t j = 0; j < t; j += 8) {
        __m512i X = _mm512_loadu_si512(xi + j), Y = _mm512_loadu_si512(yi + j);
        if (m == 1) {
          X = _mm512_add_epi64(X, vadd);
          Y = _mm512_add_epi64(Y, vadd);
        }
        fwd_bfly(o, X, Y, w, ws);
        _mm512_storeu_si512(x + j, X);
        _mm512_storeu_si512(y + j, Y);
      }
    }
  }
  fwd_small_stage<4, false>(o, W, WS, a, m);
  fwd_small_stage<2, false>(o, W, WS, a, 2 * m);
  fwd_small_stage<1, true>(o, W, WS, a, 4 * m);
}

template <class Ops>
HECNN_TARGET void ntt_inverse_avx512(const Ops& o, const u64* W, const u64* WS, u64 n_inv, u64 n_inv_s, u64 last,
                                     u64 last_s, const u64* src, u64* a, std::size_t n) {
  inv_small_stage<1>(o, W, WS, src, a, n >> 1);
  inv_small_stage<2>(o, W, WS, a, a, n >> 2);
  inv_small_stage<4>(o, W, WS, a, a, n >> 3);
  std::size_t t = 8;
  for (std::size_t h = n >> 4; h > 1; h >>= 1, t <<= 1) {
    for (std::size_t i = 0; i < h; ++i) {
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
  // Last stage (t = n/2) fused with the scaling by n^-1, fully reduced.
  const __m512i ni = _mm512_set1_epi64(static_cast<long long>(n_inv));
  const __m512i nis = _mm512_set1_epi64(static_cast<long long>(n_inv_s));
  const __m512i lw = _mm512_set1_epi64(static_cast<long long>(last));
  const __m512i lws = _mm512_set1_epi64(static_cast<long long>(last_s));
  u64* x = a;
  u64* y = a + t;
  for (std::size_t j = 0; j < t; j += 8) {
    const __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
    const __m512i s = _mm512_add_epi64(X, Y);
    const __m512i d = _mm512_add_epi64(_mm512_sub_epi64(X, Y), o.two_q);
    _mm512_storeu_si512(x + j, reduce_once(o.mul_lazy(s, ni, nis), o.q));
    _mm512_storeu_si512(y + j, reduce_once(o.mul_lazy(d, lw, lws), o.q));
  }
}
