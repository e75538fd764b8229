#include "ring/ntt.h"

#include "common/error.h"
#include "ring/kernels.h"
#include "ring/primes.h"

namespace hecnn::ring {

NttTables::NttTables(u64 q, std::size_t n) : q_(q), n_(n) {
  if (n < 2 || (n & (n - 1)) != 0) throw Error("NTT size must be a power of two");
  if ((q >> 61) != 0) throw Error("NTT prime must be below 2^61 for lazy reduction");
  log_n_ = __builtin_ctzll(n);
  psi_ = primitive_root_2n(q, n);
  const u64 psi_inv = q_.inv(psi_);
  const bool small = q < kernels::kIfmaPrimeBound;
  t_.fwd.resize(n);
  t_.inv.resize(n);
  t_.fwd_shoup.resize(n);
  t_.inv_shoup.resize(n);
  if (small) {
    t_.fwd_shoup52.resize(n);
    t_.inv_shoup52.resize(n);
  }
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
    t_.fwd[k] = pows[r];
    t_.inv[k] = ipows[r];
    t_.fwd_shoup[k] = shoup(t_.fwd[k], q);
    t_.inv_shoup[k] = shoup(t_.inv[k], q);
    if (small) {
      t_.fwd_shoup52[k] = shoup52(t_.fwd[k], q);
      t_.inv_shoup52[k] = shoup52(t_.inv[k], q);
    }
  }
  t_.n_inv = q_.inv(static_cast<u64>(n));
  t_.n_inv_shoup = shoup(t_.n_inv, q);
  t_.last = q_.mul(t_.n_inv, t_.inv[1]);
  t_.last_shoup = shoup(t_.last, q);
  if (small) {
    t_.n_inv_shoup52 = shoup52(t_.n_inv, q);
    t_.last_shoup52 = shoup52(t_.last, q);
  }
}

void NttTables::forward(const u64* in, u64* out, u64 add) const { kernels::ntt_forward(*this, in, out, add); }
void NttTables::inverse(const u64* in, u64* out) const { kernels::ntt_inverse(*this, in, out, nullptr); }

void NttTables::inverse(const u64* in, u64* out, const InverseScale& scale) const {
  kernels::ntt_inverse(*this, in, out, &scale);
}

InverseScale NttTables::inverse_scale(u64 c) const {
  const u64 q = q_.value;
  if (c >= q) throw Error("inverse NTT scale must be below the prime");
  InverseScale s;
  s.n_inv = q_.mul(t_.n_inv, c);
  s.last = q_.mul(t_.last, c);
  s.n_inv_shoup = shoup(s.n_inv, q);
  s.last_shoup = shoup(s.last, q);
  if (q < kernels::kIfmaPrimeBound) {
    s.n_inv_shoup52 = shoup52(s.n_inv, q);
    s.last_shoup52 = shoup52(s.last, q);
  }
  return s;
}

}  // namespace hecnn::ring
