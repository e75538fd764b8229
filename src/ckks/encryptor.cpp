#include "ckks/encryptor.h"

#include <vector>

#include "ckks/error.h"
#include "ckks/polyops.h"

namespace hecnn::ckks {

namespace {
constexpr std::uint64_t kDomainSymmetricA = 2;

void check_plaintext(const CkksContext& ctx, const Plaintext& pt) {
  if (pt.n() != ctx.n() || pt.level() > ctx.max_level() || pt.word_count() != pt.n() * pt.limbs()) {
    throw Error("plaintext does not match the encryption parameters");
  }
}
}  // namespace

void expand_symmetric_a(const CkksContext& ctx, const Seed& seed, std::size_t level, u64* out) {
  Prng prng(seed, kDomainSymmetricA);
  std::vector<Modulus> chain(ctx.moduli().begin(), ctx.moduli().begin() + static_cast<long>(level + 1));
  sample_uniform(prng, chain, ctx.n(), out);
}

Encryptor::Encryptor(ContextPtr ctx, const PublicKey& pk) : ctx_(std::move(ctx)), pk_(pk) {
  if (pk.params_id != ctx_->params().id() ||
      pk.a.size() != (ctx_->chain_size() + ctx_->special_count()) * ctx_->n() ||
      pk.b.size() != pk.a.size()) {
    throw Error("public key was made for other parameters");
  }
}

Encryptor::Encryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (sk.params_id != ctx_->params().id() || sk.coeffs.size() != ctx_->n() ||
      sk.ntt.size() != (ctx_->chain_size() + ctx_->special_count()) * ctx_->n()) {
    throw Error("secret key was made for other parameters");
  }
}

void Encryptor::encrypt(const Plaintext& pt, Ciphertext& out) const {
  check_plaintext(*ctx_, pt);
  if (pk_) encrypt_public(pt, out);
  else encrypt_secret(pt, out);
}

void Encryptor::encrypt_public(const Plaintext& pt, Ciphertext& out) const {
  const std::size_t n = ctx_->n(), level = pt.level(), limbs = level + 1;
  Prng prng = Prng::fresh();
  WipedVector<std::int8_t> u(n);
  WipedVector<std::int64_t> e0(n), e1(n);
  sample_ternary(prng, n, u.data());
  sample_gaussian(prng, n, e0.data());
  sample_gaussian(prng, n, e1.data());
  // (pk.b * u + e0, pk.a * u + e1) over q_0..q_l, P, then divided by P: the errors shrink by P.
  const auto idx = detail::extended_indices(*ctx_, level);
  const std::size_t ext = idx.size();
  WipedVector<u64> u_ntt(ext * n), c0(ext * n), c1(ext * n);
  detail::small_to_ntt(*ctx_, u.data(), idx, u_ntt.data());
  detail::small_to_ntt(*ctx_, e0.data(), idx, c0.data());
  detail::small_to_ntt(*ctx_, e1.data(), idx, c1.data());
  const long count = static_cast<long>(ext);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t j = static_cast<std::size_t>(t), ki = idx[j];
    const Modulus& m = ctx_->modulus(ki);
    const u64* uu = u_ntt.data() + j * n;
    const u64* b = pk_->b.data() + ki * n;
    const u64* a = pk_->a.data() + ki * n;
    u64* x0 = c0.data() + j * n;
    u64* x1 = c1.data() + j * n;
    for (std::size_t c = 0; c < n; ++c) {
      x0[c] = m.add(x0[c], m.mul(b[c], uu[c]));
      x1[c] = m.add(x1[c], m.mul(a[c], uu[c]));
    }
  }
  out.reset(n, level, 2, pt.slots(), pt.scale());
  detail::divide_round_by_p(*ctx_, c0.data(), level, out.poly(0), false);
  detail::divide_round_by_p(*ctx_, c1.data(), level, out.poly(1), false);
  const long lc = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < lc; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    const Modulus& m = ctx_->modulus(ii);
    const u64* mm = pt.limb(ii);
    u64* o = out.limb(0, ii);
    for (std::size_t c = 0; c < n; ++c) o[c] = m.add(o[c], mm[c]);
  }
}

void Encryptor::encrypt_secret(const Plaintext& pt, Ciphertext& out) const {
  const std::size_t n = ctx_->n(), level = pt.level(), limbs = level + 1;
  const Seed seed = random_seed();
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  sample_gaussian(noise, n, e.data());
  out.reset(n, level, 2, pt.slots(), pt.scale());
  expand_symmetric_a(*ctx_, seed, level, out.poly(1));
  detail::small_to_ntt(*ctx_, e.data(), detail::chain_indices(level), out.poly(0));
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < count; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    const Modulus& m = ctx_->modulus(ii);
    const u64* s = sk_->ntt.data() + ii * n;
    const u64* mm = pt.limb(ii);
    const u64* a = out.limb(1, ii);
    u64* c0 = out.limb(0, ii);
    for (std::size_t c = 0; c < n; ++c) c0[c] = m.add(m.sub(c0[c], m.mul(a[c], s[c])), mm[c]);
  }
  out.set_seed(seed);
}

Decryptor::Decryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (sk.params_id != ctx_->params().id() || sk.ntt.size() != (ctx_->chain_size() + ctx_->special_count()) * ctx_->n()) {
    throw Error("secret key was made for other parameters");
  }
}

void Decryptor::decrypt(const Ciphertext& ct, Plaintext& out) const {
  const std::size_t n = ctx_->n();
  if (ct.n() != n || ct.level() > ctx_->max_level() || ct.size() < 2 || ct.size() > 3) {
    throw Error("ciphertext does not match the decryption parameters");
  }
  const std::size_t level = ct.level();
  out.reset(n, level, ct.slots(), ct.scale());
  const long count = static_cast<long>(level + 1);
  const std::size_t size = ct.size();
#pragma omp parallel for schedule(static)
  for (long i = 0; i < count; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    const Modulus& m = ctx_->modulus(ii);
    const u64* s = sk_.ntt.data() + ii * n;
    const u64* c0 = ct.limb(0, ii);
    const u64* c1 = ct.limb(1, ii);
    const u64* c2 = size == 3 ? ct.limb(2, ii) : nullptr;
    u64* o = out.limb(ii);
    for (std::size_t c = 0; c < n; ++c) {
      u64 v = m.add(c0[c], m.mul(c1[c], s[c]));
      if (c2) v = m.add(v, m.mul(m.mul(c2[c], s[c]), s[c]));
      o[c] = v;
    }
  }
}

}  // namespace hecnn::ckks
