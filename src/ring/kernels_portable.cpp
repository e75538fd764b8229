// Reference kernels in plain C++: the behaviour every vectorized level must reproduce bit for bit.
#include <algorithm>
#include <cstring>

#include "ring/kernels.h"
#include "ring/ntt.h"

namespace hecnn::ring::kernels::portable {

void ntt_forward(const NttTables& tab, const u64* in, u64* a, u64 add) {
  if (add != 0) {
    for (std::size_t j = 0; j < tab.n(); ++j) a[j] = in[j] + add;
  } else if (in != a) {
    std::memcpy(a, in, tab.n() * sizeof(u64));
  }
  const auto& T = tab.tables();
  const std::size_t n = tab.n();
  const u64 q = tab.modulus().value, two_q = 2 * q;
  std::size_t t = n;
  for (std::size_t m = 1; m < n; m <<= 1) {
    t >>= 1;
    for (std::size_t i = 0; i < m; ++i) {
      const u64 w = T.fwd[m + i], ws = T.fwd_shoup[m + i];
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; ++j) {
        u64 u = x[j];
        u = u >= two_q ? u - two_q : u;
        const u64 v = mul_shoup_lazy(y[j], w, ws, q);
        x[j] = u + v;
        y[j] = u - v + two_q;
      }
    }
  }
  for (std::size_t j = 0; j < n; ++j) {
    u64 v = a[j];
    v = v >= two_q ? v - two_q : v;
    a[j] = v >= q ? v - q : v;
  }
}

void ntt_inverse(const NttTables& tab, const u64* in, u64* a, const InverseScale* scale) {
  if (in != a) std::memcpy(a, in, tab.n() * sizeof(u64));
  const auto& T = tab.tables();
  const InverseScale S = scale ? *scale : unit_scale(T);
  const std::size_t n = tab.n();
  const u64 q = tab.modulus().value, two_q = 2 * q;
  std::size_t t = 1;
  for (std::size_t m = n; m > 2; m >>= 1) {
    const std::size_t h = m >> 1;
    for (std::size_t i = 0; i < h; ++i) {
      const u64 w = T.inv[h + i], ws = T.inv_shoup[h + i];
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; ++j) {
        const u64 u = x[j], v = y[j];
        const u64 s = u + v;
        x[j] = s >= two_q ? s - two_q : s;
        y[j] = mul_shoup_lazy(u - v + two_q, w, ws, q);
      }
    }
    t <<= 1;
  }
  // Last stage fused with the scaling by n^-1.
  u64* x = a;
  u64* y = a + t;
  for (std::size_t j = 0; j < t; ++j) {
    const u64 u = x[j], v = y[j];
    x[j] = mul_shoup(u + v, S.n_inv, S.n_inv_shoup, q);
    y[j] = mul_shoup(u - v + two_q, S.last, S.last_shoup, q);
  }
}

void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) {
    const u64 s = a[i] + b[i];
    out[i] = s >= q ? s - q : s;
  }
}

void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] >= b[i] ? a[i] - b[i] : a[i] + q - b[i];
}

void neg_mod(const u64* a, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] == 0 ? 0 : q - a[i];
}

void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) {
    const u64 s = a[i] + c;
    out[i] = s >= q ? s - q : s;
  }
}

void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) out[i] = mul_shoup(a[i], w.w, w.ws, q);
}

void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n, u64 q,
                        bool accumulate) {
  if (accumulate) {
    for (std::size_t i = 0; i < n; ++i) {
      const u64 r = mul_shoup(x[i] + c + (q - y[i]), w.w, w.ws, q);
      const u64 s = out[i] + r;
      out[i] = s >= q ? s - q : s;
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = mul_shoup(x[i] + c + (q - y[i]), w.w, w.ws, q);
  }
}

void mul_scalar_add_mod(const u64* a, const MulConst& w, const u64* b, u64* out, std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) {
    const u64 s = b[i] + mul_shoup(a[i], w.w, w.ws, q);
    out[i] = s >= q ? s - q : s;
  }
}

void sub_mul_add_scalar_mod(const u64* x, const u64* y, const MulConst& w, const u64* z, const MulConst& v, u64* out,
                            std::size_t n, u64 q) {
  for (std::size_t i = 0; i < n; ++i) {
    const u64 s = mul_shoup(x[i] + (q - y[i]), w.w, w.ws, q) + mul_shoup(z[i], v.w, v.ws, q);
    out[i] = s >= q ? s - q : s;
  }
}

void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) out[i] = m.reduce(a[i]);
}

void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) out[i] = reduce_signed(a[i], m);
}

void mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) out[i] = m.mul(a[i], b[i]);
}

void mul_add_mod(const u64* a, const u64* b, const u64* c, u64* out, std::size_t n, const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) out[i] = m.reduce128(static_cast<u128>(a[i]) * b[i] + c[i]);
}

void tensor_mod(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* d0, u64* d1, u64* d2, std::size_t n,
                const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) {
    d0[i] = m.mul(a0[i], b0[i]);
    d1[i] = m.reduce128(static_cast<u128>(a0[i]) * b1[i] + static_cast<u128>(a1[i]) * b0[i]);
    d2[i] = m.mul(a1[i], b1[i]);
  }
}

void square_mod(const u64* a0, const u64* a1, u64* d0, u64* d1, u64* d2, std::size_t n, const Modulus& m) {
  for (std::size_t i = 0; i < n; ++i) {
    d0[i] = m.mul(a0[i], a0[i]);
    d1[i] = m.reduce128(static_cast<u128>(a0[i]) * a1[i] * 2);
    d2[i] = m.mul(a1[i], a1[i]);
  }
}

void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[perm[i]];
}

void ks_inner_product(const u64* const* digits, const u64* const* kb, const u64* const* ka, std::size_t D,
                      const std::uint32_t* perm, u64* out0, u64* out1, std::size_t n, const Modulus& m) {
  // One 128-bit accumulation per output coefficient, one reduction: D products of two values below
  // 2^61 stay below 2^128 for D < 64.
  constexpr std::size_t kChunk = 256;
  for (std::size_t c0 = 0; c0 < n; c0 += kChunk) {
    const std::size_t len = std::min(kChunk, n - c0);
    u128 s0[kChunk], s1[kChunk];
    for (std::size_t c = 0; c < len; ++c) s0[c] = s1[c] = 0;
    for (std::size_t d = 0; d < D; ++d) {
      const u64* e = digits[d];
      const u64* b = kb[d] + c0;
      const u64* a = ka[d] + c0;
      if (perm) {
        const std::uint32_t* p = perm + c0;
        for (std::size_t c = 0; c < len; ++c) {
          const u64 x = e[p[c]];
          s0[c] += static_cast<u128>(x) * b[c];
          s1[c] += static_cast<u128>(x) * a[c];
        }
      } else {
        const u64* x = e + c0;
        for (std::size_t c = 0; c < len; ++c) {
          s0[c] += static_cast<u128>(x[c]) * b[c];
          s1[c] += static_cast<u128>(x[c]) * a[c];
        }
      }
    }
    for (std::size_t c = 0; c < len; ++c) {
      out0[c0 + c] = m.reduce128(s0[c]);
      out1[c0 + c] = m.reduce128(s1[c]);
    }
  }
}

void convert_sum(const u64* const* y, const u64* hat, std::size_t k, u64 /*y_bound*/, u64* out, std::size_t n,
                 const Modulus& m) {
  for (std::size_t c = 0; c < n; ++c) {
    u128 acc = 0;
    for (std::size_t i = 0; i < k; ++i) acc += static_cast<u128>(y[i][c]) * hat[i];
    out[c] = m.reduce128(acc);
  }
}

void dot_block(const u64* w, const u64* const* src, std::size_t terms, std::size_t len, u64* dst, const Modulus& m,
               const DotConstants&) {
  u128 acc[kDotBlock] = {};
  for (std::size_t t = 0; t < terms; ++t) {
    const u64 wt = w[t];
    const u64* s = src[t];
    for (std::size_t i = 0; i < len; ++i) acc[i] += static_cast<u128>(wt) * s[i];
  }
  for (std::size_t i = 0; i < len; ++i) dst[i] = m.reduce128(acc[i]);
}

void dot_rows(const u64* w, std::size_t rows, const u64* const* src, std::size_t terms, std::size_t len,
              u64* const* dst, bool accumulate, const Modulus& m, const DotConstants& c) {
  u64 wr[kDotMaxTerms];
  const u64* s[kDotMaxTerms];
  u64 part[kDotBlock];
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t t = 0; t < terms; ++t) wr[t] = w[t * rows + r];
    for (std::size_t i = 0; i < len; i += kDotBlock) {
      const std::size_t l = len - i < kDotBlock ? len - i : kDotBlock;
      for (std::size_t t = 0; t < terms; ++t) s[t] = src[t] + i;
      portable::dot_block(wr, s, terms, l, part, m, c);
      u64* d = dst[r] + i;
      for (std::size_t k = 0; k < l; ++k) {
        if (accumulate) {
          const u64 v = d[k] + part[k];
          d[k] = v >= m.value ? v - m.value : v;
        } else {
          d[k] = part[k];
        }
      }
    }
  }
}

}  // namespace hecnn::ring::kernels::portable

namespace hecnn::ring::kernels {

DotConstants::DotConstants(const Modulus& m) {
  const u64 v = m.value;
  c52 = static_cast<u64>((u128{1} << 52) % v);
  c104 = static_cast<u64>((static_cast<u128>(c52) << 52) % v);
  c52_shoup = static_cast<u64>((static_cast<u128>(c52) << 52) / v);
  c104_shoup = static_cast<u64>((static_cast<u128>(c104) << 52) / v);
  one_shoup = static_cast<u64>((u128{1} << 52) / v);
}

}  // namespace hecnn::ring::kernels
