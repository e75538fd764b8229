#include "ckks/encryptor.h"

#include <vector>

#include <cstring>

#include "common/error.h"
#include "ring/kernels.h"
#include "ckks/polyops.h"
#include "ring/scratch.h"

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
  neg_sk_.emplace();
  const std::size_t n = ctx_->n(), L = ctx_->chain_size();
  neg_sk_->ntt.resize(L * n);
  for (std::size_t i = 0; i < L; ++i) {
    ring::kernels::neg_mod(sk.ntt.data() + i * n, neg_sk_->ntt.data() + i * n, n, ctx_->modulus(i).value);
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
  // Per-thread scratch, wiped before returning: it holds the ephemeral secret u and the noise.
  u64* const buf = ring::scratch(ring::Scratch::encrypt, 3 * ext * n);
  u64* const u_ntt = buf;
  u64* const c0 = buf + ext * n;
  u64* const c1 = buf + 2 * ext * n;
  detail::small_to_ntt(*ctx_, u.data(), idx, u_ntt);
  const std::int64_t* const errors[2] = {e0.data(), e1.data()};
  u64* const err_out[2] = {c0, c1};
  detail::small_to_ntt_many(*ctx_, errors, 2, idx, err_out);
  const long count = static_cast<long>(ext);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t j = static_cast<std::size_t>(t), ki = idx[j];
    const Modulus& m = ctx_->modulus(ki);
    const u64* uu = u_ntt + j * n;
    ring::kernels::mul_add_mod(pk_->b.data() + ki * n, uu, c0 + j * n, c0 + j * n, n, m);
    ring::kernels::mul_add_mod(pk_->a.data() + ki * n, uu, c1 + j * n, c1 + j * n, n, m);
  }
  out.reset(n, level, 2, pt.slots(), pt.scale());
  std::memcpy(out.poly(0), pt.data(), limbs * n * sizeof(u64));  // the message, added by the division
  u64* const ext_polys[2] = {c0, c1};
  u64* const outs[2] = {out.poly(0), out.poly(1)};
  const bool accumulate[2] = {true, false};
  detail::divide_round_by_p(*ctx_, ext_polys, 2, level, outs, accumulate);
  wipe(buf, 3 * ext * n * sizeof(u64));
}

void Encryptor::encrypt_secret(const Plaintext& pt, Ciphertext& out) const {
  const std::size_t n = ctx_->n(), level = pt.level(), limbs = level + 1;
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  sample_gaussian(noise, n, e.data());
  out.reset(n, level, 2, pt.slots(), pt.scale());
  detail::small_to_ntt(*ctx_, e.data(), detail::chain_indices(level), out.poly(0));
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < count; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    ring::kernels::add_mod(out.limb(0, ii), pt.limb(ii), out.limb(0, ii), n, ctx_->modulus(ii).value);
  }
  finish_secret(out);
}

void Encryptor::finish_secret(Ciphertext& out) const {
  const std::size_t n = ctx_->n(), level = out.level(), limbs = level + 1;
  const Seed seed = random_seed();
  expand_symmetric_a(*ctx_, seed, level, out.poly(1));
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < count; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    u64* c0 = out.limb(0, ii);
    // c0 - a*s as c0 + a*(q - s).
    ring::kernels::mul_add_mod(out.limb(1, ii), neg_sk_->ntt.data() + ii * n, c0, c0, n, ctx_->modulus(ii));
  }
  out.set_seed(seed);
}

void Encryptor::encrypt(const CkksEncoder& encoder, std::span<const double> values, double scale, std::size_t level,
                        Ciphertext& out) const {
  if (pk_) {
    Plaintext pt;
    encoder.encode(values, scale, level, pt);
    encrypt_public(pt, out);
    return;
  }
  const std::size_t n = ctx_->n();
  if (level > ctx_->max_level()) {
    throw Error("encode level " + std::to_string(level) + " exceeds the top level " + std::to_string(ctx_->max_level()));
  }
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  sample_gaussian(noise, n, e.data());
  // Message plus noise in one transform, straight into component 0 (where the encryption turns it
  // into c0 = m + e - a s).
  out.reset(n, level, 2, 1, scale);
  const std::size_t slots = encoder.encode_to(values, scale, level, e, out.poly(0));
  out.reset(n, level, 2, slots, scale);  // same size: the storage and component 0 stay
  finish_secret(out);
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
    u64* o = out.limb(ii);
    if (size == 3) {
      // c0 + (c1 + c2 s) s.
      ring::kernels::mul_add_mod(ct.limb(2, ii), s, ct.limb(1, ii), o, n, m);
      ring::kernels::mul_add_mod(o, s, ct.limb(0, ii), o, n, m);
    } else {
      ring::kernels::mul_add_mod(ct.limb(1, ii), s, ct.limb(0, ii), o, n, m);
    }
  }
}

}  // namespace hecnn::ckks
