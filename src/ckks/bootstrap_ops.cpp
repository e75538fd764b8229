#include "ckks/bootstrap_ops.h"

#include <algorithm>

#include "ckks/random.h"
#include "common/error.h"
#include "ring/kernels.h"

namespace hecnn::ckks {

namespace {

// The coefficients of one limb (NTT form, modulus key index `prime`), centered: in (-q/2, q/2].
void centered_coefficients(const CkksContext& ctx, std::size_t prime, const u64* limb, std::vector<std::int64_t>& out) {
  const std::size_t n = ctx.n();
  const u64 q = ctx.modulus(prime).value;
  std::vector<u64> c(n);
  ctx.ntt(prime).inverse(limb, c.data());
  out.resize(n);
  for (std::size_t k = 0; k < n; ++k) out[k] = c[k] > q / 2 ? static_cast<std::int64_t>(c[k]) - static_cast<std::int64_t>(q) : static_cast<std::int64_t>(c[k]);
}

}  // namespace

Level0SwitchKey make_level0_switch_key(const CkksContext& ctx, const SecretKey& from, const SecretKey& to) {
  const std::size_t n = ctx.n();
  const std::size_t total = (ctx.chain_size() + ctx.special_count()) * n;
  if (from.params_id != ctx.params().id() || to.params_id != ctx.params().id() || from.ntt.size() != total || to.ntt.size() != total) {
    throw Error("level-0 switch key: secret keys made for other parameters");
  }
  const SecretKey& sk = from;
  const SecretKey& sparse = to;
  Level0SwitchKey key;
  // b = -a s' + e + p_0 s over q_0 and p_0.
  const std::size_t L = ctx.chain_size();
  const std::vector<std::size_t> primes{0, L};  // key indices of q_0 and p_0
  key.a.resize(2 * n);
  key.b.resize(2 * n);
  ckks::Prng uniform = ckks::Prng::fresh();
  ckks::Prng noise = ckks::Prng::fresh();
  ckks::WipedVector<std::int64_t> e(n);
  ckks::WipedVector<u64> tmp(n);
  ckks::sample_gaussian(noise, n, e.data());
  for (std::size_t j = 0; j < 2; ++j) {
    const ckks::Modulus& m = ctx.modulus(primes[j]);
    u64* a = key.a.data() + j * n;
    u64* b = key.b.data() + j * n;
    ckks::sample_uniform(uniform, {m}, n, a);
    ring::kernels::reduce_signed_mod(e.data(), b, n, m);
    ctx.ntt(primes[j]).forward(b);
    ring::kernels::neg_mod(sparse.ntt.data() + primes[j] * n, tmp.data(), n, m.value);
    ring::kernels::mul_add_mod(a, tmp.data(), b, b, n, m);  // e - a s'
    if (j == 0) {
      const u64 p0 = m.reduce(ctx.modulus(L).value);
      ring::kernels::mul_scalar_mod(sk.ntt.data(), ckks::MulConst(p0, m.value), tmp.data(), n, m.value);
      ring::kernels::add_mod(b, tmp.data(), b, n, m.value);
    }
  }
  return key;
}

Ciphertext level0_switch(const CkksContext& ctx, const Ciphertext& in, const Level0SwitchKey& key) {
  if (in.level() != 0) throw Error("level-0 key switch takes a ciphertext at level 0");
  const std::size_t n = ctx.n(), L = ctx.chain_size();
  if (key.a.size() != 2 * n || key.b.size() != 2 * n) throw Error("level-0 key switch: the key was made for other parameters");
  const ckks::Modulus& q = ctx.modulus(0);
  const ckks::Modulus& p = ctx.modulus(L);
  // c1 over q_0 and p_0 (its centered lift), times the key: (u0, u1) over q_0 p_0.
  std::vector<std::int64_t> c1;
  centered_coefficients(ctx, 0, in.poly(1), c1);
  std::vector<u64> c1p(n), u(4 * n);
  ring::kernels::reduce_signed_mod(c1.data(), c1p.data(), n, p);
  ctx.ntt(L).forward(c1p.data());
  const u64* c1q = in.poly(1);
  ring::kernels::mul_mod(c1q, key.b.data(), u.data(), n, q);                 // u0 mod q_0
  ring::kernels::mul_mod(c1p.data(), key.b.data() + n, u.data() + n, n, p);  // u0 mod p_0
  ring::kernels::mul_mod(c1q, key.a.data(), u.data() + 2 * n, n, q);         // u1 mod q_0
  ring::kernels::mul_mod(c1p.data(), key.a.data() + n, u.data() + 3 * n, n, p);
  // round(u / p_0) mod q_0 = (u - [u]_p0) / p_0, [u]_p0 centered.
  const ckks::MulConst p_inv(q.inv(q.reduce(p.value)), q.value);
  Ciphertext out(n, 0, 2, in.slots(), in.scale());
  std::vector<std::int64_t> r;
  std::vector<u64> rq(n), tmp(n);
  for (std::size_t k = 0; k < 2; ++k) {
    centered_coefficients(ctx, L, u.data() + (2 * k + 1) * n, r);
    ring::kernels::reduce_signed_mod(r.data(), rq.data(), n, q);
    ctx.ntt(0).forward(rq.data());
    ring::kernels::sub_mod(u.data() + 2 * k * n, rq.data(), tmp.data(), n, q.value);
    ring::kernels::mul_scalar_mod(tmp.data(), p_inv, out.poly(k), n, q.value);
  }
  ring::kernels::add_mod(out.poly(0), in.poly(0), out.poly(0), n, q.value);
  return out;
}

Ciphertext mod_raise(const CkksContext& ctx, const Ciphertext& in, std::size_t level) {
  if (in.level() != 0) throw Error("ModRaise takes a ciphertext at level 0");
  if (level > ctx.max_level()) throw Error("ModRaise: level beyond the chain");
  const std::size_t n = ctx.n(), top = level;
  Ciphertext out(n, top, 2, in.slots(), static_cast<double>(ctx.modulus(0).value));
  for (std::size_t k = 0; k < 2; ++k) {
    std::vector<std::int64_t> v;
    centered_coefficients(ctx, 0, in.poly(k), v);
    const long count = static_cast<long>(top + 1);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < count; ++i) {
      const std::size_t l = static_cast<std::size_t>(i);
      u64* dst = out.limb(k, l);
      if (l == 0) {
        std::copy(in.poly(k), in.poly(k) + n, dst);
      } else {
        ring::kernels::reduce_signed_mod(v.data(), dst, n, ctx.modulus(l));
        ctx.ntt(l).forward(dst);
      }
    }
  }
  return out;
}

MultiplyByI::MultiplyByI(const CkksContext& ctx) : ctx_(&ctx) {
  const std::size_t N = ctx.n();
  ntt_.resize(ctx.chain_size());
  for (std::size_t l = 0; l < ctx.chain_size(); ++l) {
    ntt_[l].assign(N, 0);
    ntt_[l][N / 2] = 1;
    ctx.ntt(l).forward(ntt_[l].data());
  }
}

void MultiplyByI::apply(Ciphertext& ct) const {
  const std::size_t n = ctx_->n();
  for (std::size_t k = 0; k < ct.size(); ++k)
    for (std::size_t l = 0; l <= ct.level(); ++l) ring::kernels::mul_mod(ct.limb(k, l), ntt_[l].data(), ct.limb(k, l), n, ctx_->modulus(l));
}

}  // namespace hecnn::ckks
