#include "ckks/keygen.h"

#include <sodium.h>

#include "ckks/error.h"
#include "ckks/polyops.h"

namespace hecnn::ckks {

SecretKey::~SecretKey() {
  wipe(coeffs);
  wipe(ntt);
}

SecretKey& SecretKey::operator=(const SecretKey& o) {
  if (this != &o) {
    wipe(coeffs);
    wipe(ntt);
    coeffs = o.coeffs;
    ntt = o.ntt;
    params_id = o.params_id;
  }
  return *this;
}

namespace {
// Domains separating the independent streams drawn from one seed.
constexpr std::uint64_t kDomainPublicA = 1;
constexpr std::uint64_t kDomainSwitchA = 0x100;

std::vector<std::size_t> all_indices(const CkksContext& ctx) {
  std::vector<std::size_t> v(ctx.chain_size() + ctx.special_count());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}
}  // namespace

void expand_public_key_a(const CkksContext& ctx, const Seed& seed, std::vector<u64>& a) {
  Prng prng(seed, kDomainPublicA);
  const auto& moduli = ctx.moduli();
  a.resize(moduli.size() * ctx.n());
  sample_uniform(prng, moduli, ctx.n(), a.data());
}

void expand_switch_key_a(const CkksContext& ctx, const Seed& seed, std::size_t digit, std::vector<u64>& a) {
  Prng prng(seed, kDomainSwitchA + digit);
  const auto& moduli = ctx.moduli();
  a.resize(moduli.size() * ctx.n());
  sample_uniform(prng, moduli, ctx.n(), a.data());
}

void compute_secret_ntt(const CkksContext& ctx, SecretKey& sk) {
  const auto idx = all_indices(ctx);
  wipe(sk.ntt);  // resize may move the key: wipe the old buffer first
  sk.ntt.clear();
  sk.ntt.resize(idx.size() * ctx.n());
  detail::small_to_ntt(ctx, sk.coeffs.data(), idx, sk.ntt.data());
  sk.params_id = ctx.params().id();
}

KeyGenerator::KeyGenerator(ContextPtr ctx) : ctx_(std::move(ctx)) {
  Prng prng = Prng::fresh();
  sk_.coeffs.resize(ctx_->n());
  sample_ternary(prng, ctx_->n(), sk_.coeffs.data());
  compute_secret_ntt(*ctx_, sk_);
}

KeyGenerator::KeyGenerator(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (sk_.params_id != ctx_->params().id() || sk_.coeffs.size() != ctx_->n()) {
    throw Error("secret key was made for other parameters");
  }
  if (sk_.ntt.size() != (ctx_->chain_size() + ctx_->special_count()) * ctx_->n()) compute_secret_ntt(*ctx_, sk_);
}

PublicKey KeyGenerator::create_public_key() const {
  const std::size_t n = ctx_->n(), L = ctx_->chain_size() + ctx_->special_count();
  PublicKey pk;
  pk.params_id = ctx_->params().id();
  pk.seed = random_seed();
  expand_public_key_a(*ctx_, *pk.seed, pk.a);
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  sample_gaussian(noise, n, e.data());
  pk.b.resize(L * n);
  detail::small_to_ntt(*ctx_, e.data(), all_indices(*ctx_), pk.b.data());
  const long limbs = static_cast<long>(L);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < limbs; ++i) {
    const Modulus& m = ctx_->modulus(static_cast<std::size_t>(i));
    const u64* a = pk.a.data() + i * n;
    const u64* s = sk_.ntt.data() + i * n;
    u64* b = pk.b.data() + i * n;
    for (std::size_t c = 0; c < n; ++c) b[c] = m.sub(b[c], m.mul(a[c], s[c]));
  }
  return pk;
}

KeySwitchKey KeyGenerator::make_switch_key(const std::vector<u64>& s_prime) const {
  const std::size_t n = ctx_->n(), L = ctx_->chain_size(), K = ctx_->special_count();
  const std::size_t total = L + K, alpha = ctx_->params().digit_size(), digits = ctx_->params().digits();
  const auto idx = all_indices(*ctx_);
  KeySwitchKey key;
  key.seed = random_seed();
  key.a.resize(digits);
  key.b.resize(digits);
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  for (std::size_t d = 0; d < digits; ++d) {
    expand_switch_key_a(*ctx_, *key.seed, d, key.a[d]);
    sample_gaussian(noise, n, e.data());
    auto& b = key.b[d];
    b.resize(total * n);
    detail::small_to_ntt(*ctx_, e.data(), idx, b.data());
    const std::size_t lo = d * alpha, hi = std::min(L, lo + alpha);
    const long count = static_cast<long>(total);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < count; ++i) {
      const std::size_t ii = static_cast<std::size_t>(i);
      const Modulus& m = ctx_->modulus(ii);
      const u64* a = key.a[d].data() + ii * n;
      const u64* s = sk_.ntt.data() + ii * n;
      u64* bb = b.data() + ii * n;
      const bool in_digit = ii >= lo && ii < hi;
      const u64 p_mod = in_digit ? ctx_->p_mod_q()[ii] : 0;
      const u64* sp = s_prime.data() + ii * n;
      for (std::size_t c = 0; c < n; ++c) {
        u64 v = m.sub(bb[c], m.mul(a[c], s[c]));
        if (in_digit) v = m.add(v, m.mul(p_mod, sp[c]));
        bb[c] = v;
      }
    }
  }
  return key;
}

RelinKeys KeyGenerator::create_relin_keys() const {
  const std::size_t n = ctx_->n(), total = ctx_->chain_size() + ctx_->special_count();
  WipedVector<u64> s2(total * n);
  for (std::size_t i = 0; i < total; ++i) {
    const Modulus& m = ctx_->modulus(i);
    for (std::size_t c = 0; c < n; ++c) s2[i * n + c] = m.mul(sk_.ntt[i * n + c], sk_.ntt[i * n + c]);
  }
  RelinKeys rk;
  rk.params_id = ctx_->params().id();
  rk.key = make_switch_key(s2);
  return rk;
}

GaloisKeys KeyGenerator::create_galois_keys_for_elements(const std::vector<std::uint32_t>& elements) const {
  const std::size_t n = ctx_->n(), total = ctx_->chain_size() + ctx_->special_count();
  GaloisKeys gk;
  gk.params_id = ctx_->params().id();
  WipedVector<u64> s_g(total * n);
  for (std::uint32_t g : elements) {
    if (gk.has(g) || g == 1) continue;
    const auto perm = ctx_->galois_permutation_ntt(g);
    for (std::size_t i = 0; i < total; ++i) {
      const u64* s = sk_.ntt.data() + i * n;
      u64* o = s_g.data() + i * n;
      for (std::size_t c = 0; c < n; ++c) o[c] = s[perm[c]];
    }
    gk.keys.emplace(g, make_switch_key(s_g));
  }
  return gk;
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int>& steps, bool conjugation) const {
  std::vector<std::uint32_t> elements;
  for (int s : steps) elements.push_back(ctx_->galois_element(s));
  if (conjugation) elements.push_back(ctx_->conjugation_element());
  return create_galois_keys_for_elements(elements);
}

GaloisKeys KeyGenerator::create_power_of_two_galois_keys() const {
  std::vector<int> steps;
  for (std::size_t s = 1; s < ctx_->n() / 2; s <<= 1) {
    steps.push_back(static_cast<int>(s));
    steps.push_back(-static_cast<int>(s));
  }
  return create_galois_keys(steps, true);
}

}  // namespace hecnn::ckks
