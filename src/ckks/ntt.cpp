#include "ckks/ntt.h"

#include "ckks/error.h"
#include "ckks/primes.h"

namespace hecnn::ckks {

NttTables::NttTables(u64 q, std::size_t n) : q_(q), n_(n) {
  if (n < 2 || (n & (n - 1)) != 0) throw Error("NTT size must be a power of two");
  if ((q >> 61) != 0) throw Error("NTT prime must be below 2^61 for lazy reduction");
  log_n_ = __builtin_ctzll(n);
  psi_ = primitive_root_2n(q, n);
  const u64 psi_inv = q_.inv(psi_);
  fwd_.resize(n);
  inv_.resize(n);
  fwd_shoup_.resize(n);
  inv_shoup_.resize(n);
  u64 p = 1, pi = 1;
  std::vector<u64> pows(n), ipows(n);
  for (std::size_t i = 0; i < n; ++i) {
    pows[i] = p;
    ipows[i] = pi;
    p = q_.mul(p, psi_);
    pi = q_.mul(pi, psi_inv);
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint32_t r = reverse_bits(static_cast<std::uint32_t>(k), log_n_);
    fwd_[k] = pows[r];
    inv_[k] = ipows[r];
    fwd_shoup_[k] = shoup(fwd_[k], q);
    inv_shoup_[k] = shoup(inv_[k], q);
  }
  n_inv_ = q_.inv(static_cast<u64>(n));
  n_inv_shoup_ = shoup(n_inv_, q);
}

void NttTables::forward(u64* a) const {
  const u64 q = q_.value, two_q = 2 * q;
  std::size_t t = n_;
  for (std::size_t m = 1; m < n_; m <<= 1) {
    t >>= 1;
    for (std::size_t i = 0; i < m; ++i) {
      const u64 w = fwd_[m + i], ws = fwd_shoup_[m + i];
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
  for (std::size_t j = 0; j < n_; ++j) {
    u64 v = a[j];
    v = v >= two_q ? v - two_q : v;
    a[j] = v >= q ? v - q : v;
  }
}

void NttTables::inverse(u64* a) const {
  const u64 q = q_.value, two_q = 2 * q;
  std::size_t t = 1;
  for (std::size_t m = n_; m > 1; m >>= 1) {
    const std::size_t h = m >> 1;
    for (std::size_t i = 0; i < h; ++i) {
      const u64 w = inv_[h + i], ws = inv_shoup_[h + i];
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; ++j) {
        const u64 u = x[j], v = y[j];
        u64 s = u + v;
        x[j] = s >= two_q ? s - two_q : s;
        y[j] = mul_shoup_lazy(u - v + two_q, w, ws, q);
      }
    }
    t <<= 1;
  }
  for (std::size_t j = 0; j < n_; ++j) {
    a[j] = mul_shoup(a[j], n_inv_, n_inv_shoup_, q);
  }
}

}  // namespace hecnn::ckks
