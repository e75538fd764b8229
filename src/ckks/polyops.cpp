#include "ckks/polyops.h"

#include <cmath>

#include "ckks/error.h"

namespace hecnn::ckks::detail {

std::vector<std::size_t> chain_indices(std::size_t level) {
  std::vector<std::size_t> v(level + 1);
  for (std::size_t i = 0; i <= level; ++i) v[i] = i;
  return v;
}

std::vector<std::size_t> extended_indices(const CkksContext& ctx, std::size_t level) {
  std::vector<std::size_t> v = chain_indices(level);
  for (std::size_t k = 0; k < ctx.special_count(); ++k) v.push_back(ctx.chain_size() + k);
  return v;
}

void ntt_forward(const CkksContext& ctx, u64* data, const std::vector<std::size_t>& key_indices) {
  const std::size_t n = ctx.n();
  const long count = static_cast<long>(key_indices.size());
#pragma omp parallel for schedule(static) if (count > 1)
  for (long j = 0; j < count; ++j) ctx.ntt(key_indices[j]).forward(data + j * n);
}

void ntt_inverse(const CkksContext& ctx, u64* data, const std::vector<std::size_t>& key_indices) {
  const std::size_t n = ctx.n();
  const long count = static_cast<long>(key_indices.size());
#pragma omp parallel for schedule(static) if (count > 1)
  for (long j = 0; j < count; ++j) ctx.ntt(key_indices[j]).inverse(data + j * n);
}

template <typename Int>
void small_to_ntt(const CkksContext& ctx, const Int* v, const std::vector<std::size_t>& key_indices, u64* out) {
  const std::size_t n = ctx.n();
  const long count = static_cast<long>(key_indices.size());
#pragma omp parallel for schedule(static) if (count > 1)
  for (long j = 0; j < count; ++j) {
    const Modulus& m = ctx.modulus(key_indices[j]);
    u64* o = out + j * n;
    for (std::size_t c = 0; c < n; ++c) {
      const std::int64_t x = v[c];
      o[c] = x >= 0 ? static_cast<u64>(x) : m.value - static_cast<u64>(-x);
    }
    ctx.ntt(key_indices[j]).forward(o);
  }
}
template void small_to_ntt<std::int8_t>(const CkksContext&, const std::int8_t*, const std::vector<std::size_t>&, u64*);
template void small_to_ntt<std::int64_t>(const CkksContext&, const std::int64_t*, const std::vector<std::size_t>&,
                                         u64*);

void divide_round_by_p(const CkksContext& ctx, u64* ext, std::size_t level, u64* out, bool accumulate) {
  const std::size_t n = ctx.n(), limbs = level + 1, K = ctx.special_count(), L = ctx.chain_size();
  const KeySwitchLevel& ks = ctx.key_switch(level);
  u64* p_part = ext + limbs * n;
  // Rounding instead of flooring: add floor(P/2) to the P part, subtract it again modulo each q_i.
  {
    const long count = static_cast<long>(K);
#pragma omp parallel for schedule(static) if (count > 1)
    for (long k = 0; k < count; ++k) {
      const std::size_t kk = static_cast<std::size_t>(k);
      const Modulus& m = ctx.modulus(L + kk);
      u64* x = p_part + kk * n;
      ctx.ntt(L + kk).inverse(x);
      const u64 h = ks.half_p_mod_p[kk];
      for (std::size_t c = 0; c < n; ++c) x[c] = m.add(x[c], h);
    }
  }
  thread_local std::vector<u64> conv, scratch;
  conv.resize(limbs * n);
  scratch.resize(K * n);
  std::vector<const u64*> in;
  for (std::size_t k = 0; k < K; ++k) in.push_back(p_part + k * n);
  std::vector<u64*> outp;
  for (std::size_t i = 0; i < limbs; ++i) outp.push_back(conv.data() + i * n);
  ks.mod_down.convert(in.data(), outp.data(), n, scratch.data());
  u64* const conv_p = conv.data();  // thread_local names resolve per OpenMP thread: pass by pointer
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    const Modulus& m = ctx.modulus(i);
    u64* cv = conv_p + i * n;
    const u64 h = ks.half_p_mod_q[i];
    for (std::size_t c = 0; c < n; ++c) cv[c] = m.sub(cv[c], h);
    ctx.ntt(i).forward(cv);
    const u64* x = ext + i * n;
    u64* o = out + i * n;
    const MulConst pinv = ks.p_inv[i];
    if (accumulate) {
      for (std::size_t c = 0; c < n; ++c) o[c] = m.add(o[c], mul_shoup(m.sub(x[c], cv[c]), pinv.w, pinv.ws, m.value));
    } else {
      for (std::size_t c = 0; c < n; ++c) o[c] = mul_shoup(m.sub(x[c], cv[c]), pinv.w, pinv.ws, m.value);
    }
  }
}

u64 double_to_residue(double x, const Modulus& m) {
  if (!std::isfinite(x)) throw Error("cannot encode a non-finite value (NaN or infinity)");
  x = std::nearbyint(x);
  const bool neg = x < 0;
  const double a = std::fabs(x);
  u64 r;
  if (a < 0x1p63) {
    r = m.reduce(static_cast<u64>(a));
  } else {
    // a = mantissa * 2^exp exactly, mantissa a 53-bit integer.
    int e = 0;
    const double frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
    const u64 mant = static_cast<u64>(std::ldexp(frac, 53));
    r = m.mul(m.reduce(mant), m.pow(2, static_cast<u64>(e - 53)));
  }
  return neg ? m.neg(r) : r;
}

}  // namespace hecnn::ckks::detail
