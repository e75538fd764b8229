#include "ckks/polyops.h"

#include <cmath>

#include "common/error.h"
#include "ring/kernels.h"
#include "ring/scratch.h"

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

namespace {
template <typename Int>
void small_limb_to_ntt(const CkksContext& ctx, const Int* v, std::size_t key_index, u64* o) {
  const std::size_t n = ctx.n();
  const u64 q = ctx.modulus(key_index).value;
  for (std::size_t c = 0; c < n; ++c) {
    const std::int64_t x = v[c];
    o[c] = x >= 0 ? static_cast<u64>(x) : q - static_cast<u64>(-x);
  }
  ctx.ntt(key_index).forward(o);
}
}  // namespace

template <typename Int>
void small_to_ntt(const CkksContext& ctx, const Int* v, const std::vector<std::size_t>& key_indices, u64* out) {
  u64* const o = out;
  small_to_ntt_many(ctx, &v, 1, key_indices, &o);
}

template <typename Int>
void small_to_ntt_many(const CkksContext& ctx, const Int* const* v, std::size_t count,
                       const std::vector<std::size_t>& key_indices, u64* const* out) {
  const std::size_t n = ctx.n(), limbs = key_indices.size();
  const long tasks = static_cast<long>(count * limbs);
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (long t = 0; t < tasks; ++t) {
    const std::size_t p = static_cast<std::size_t>(t) / limbs, j = static_cast<std::size_t>(t) % limbs;
    small_limb_to_ntt(ctx, v[p], key_indices[j], out[p] + j * n);
  }
}
template void small_to_ntt<std::int8_t>(const CkksContext&, const std::int8_t*, const std::vector<std::size_t>&, u64*);
template void small_to_ntt<std::int64_t>(const CkksContext&, const std::int64_t*, const std::vector<std::size_t>&,
                                         u64*);
template void small_to_ntt_many<std::int8_t>(const CkksContext&, const std::int8_t* const*, std::size_t,
                                             const std::vector<std::size_t>&, u64* const*);
template void small_to_ntt_many<std::int64_t>(const CkksContext&, const std::int64_t* const*, std::size_t,
                                              const std::vector<std::size_t>&, u64* const*);

void divide_round_by_p(const CkksContext& ctx, u64* ext, std::size_t level, u64* out, bool accumulate) {
  divide_round_by_p(ctx, &ext, 1, level, &out, &accumulate);
}

void divide_round_by_p(const CkksContext& ctx, u64* const* ext, std::size_t count, std::size_t level,
                       u64* const* out, const bool* accumulate) {
  const std::size_t n = ctx.n(), limbs = level + 1, K = ctx.special_count(), L = ctx.chain_size();
  const DivideRoundByP& down = ctx.key_switch(level).mod_down;
  // Step 1, per P limb of every polynomial.
  {
    const long tasks = static_cast<long>(count * K);
#pragma omp parallel for schedule(static) if (tasks > 1)
    for (long t = 0; t < tasks; ++t) {
      const std::size_t p = static_cast<std::size_t>(t) / K, k = static_cast<std::size_t>(t) % K;
      down.prepare_special(k, ctx.ntt(L + k), ext[p] + (limbs + k) * n, n);
    }
  }
  // Step 2, per Q limb of every polynomial.
  const long tasks = static_cast<long>(count * limbs);
  const ring::TeamScratch team(n);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tasks; ++t) {
    const std::size_t p = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    const u64* y[16];
    for (std::size_t k = 0; k < K; ++k) y[k] = ext[p] + (limbs + k) * n;
    down.finish_chain(i, ctx.ntt(i), y, ext[p] + i * n, out[p] + i * n, accumulate[p], team.mine(), n);
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
