#include "ckks/keygen.h"

#include <sodium.h>

#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/threads.h"
#include "ring/kernels.h"
#include "ckks/polyops.h"
#include "ring/scratch.h"

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
    key_set = o.key_set;
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
  const Seed id = random_seed();  // independent of the key: the id is public
  std::copy_n(id.begin(), sk_.key_set.size(), sk_.key_set.begin());
}

KeyGenerator::KeyGenerator(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  if (sk_.params_id != ctx_->params().id() || sk_.coeffs.size() != ctx_->n()) {
    throw Error("secret key was made for other parameters");
  }
  if (sk_.ntt.size() != (ctx_->chain_size() + ctx_->special_count()) * ctx_->n()) compute_secret_ntt(*ctx_, sk_);
}

SecretKey sample_sparse_secret(const CkksContext& ctx, std::size_t hamming_weight) {
  const std::size_t n = ctx.n();
  if (hamming_weight == 0 || hamming_weight > n) {
    throw Error("sparse secret: the Hamming weight must be between 1 and N = " + std::to_string(n));
  }
  Prng prng = Prng::fresh();
  SecretKey sk;
  sk.coeffs.assign(n, 0);
  // Partial Fisher-Yates over the positions: the first `hamming_weight` of a uniform permutation.
  WipedVector<std::uint32_t> pos(n);
  for (std::size_t i = 0; i < n; ++i) pos[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = 0; i < hamming_weight; ++i) {
    const std::uint64_t range = n - i, limit = UINT64_MAX - UINT64_MAX % range;
    std::uint64_t r;
    do {
      r = prng.next_u64();
    } while (r >= limit);  // rejection: uniform over [0, range)
    std::swap(pos[i], pos[i + r % range]);
    sk.coeffs[pos[i]] = (prng.next_u8() & 1) ? 1 : -1;
  }
  compute_secret_ntt(ctx, sk);
  const Seed id = random_seed();
  std::copy_n(id.begin(), sk.key_set.size(), sk.key_set.begin());
  return sk;
}

KeySwitchKey KeyGenerator::create_switch_key(const SecretKey& from) const {
  if (from.params_id != ctx_->params().id() || from.ntt.size() != sk_.ntt.size()) {
    throw Error("switch key: the source secret key was made for other parameters");
  }
  return make_switch_key(from.ntt);
}

PublicKey KeyGenerator::create_public_key() const {
  const std::size_t n = ctx_->n(), L = ctx_->chain_size() + ctx_->special_count();
  PublicKey pk;
  pk.params_id = ctx_->params().id();
  pk.key_set = sk_.key_set;
  pk.seed = random_seed();
  expand_public_key_a(*ctx_, *pk.seed, pk.a);
  Prng noise = Prng::fresh();
  WipedVector<std::int64_t> e(n);
  sample_gaussian(noise, n, e.data());
  pk.b.resize(L * n);
  detail::small_to_ntt(*ctx_, e.data(), all_indices(*ctx_), pk.b.data());
  const long limbs = static_cast<long>(L);
  const ring::TeamScratch team(n);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < limbs; ++i) {
    const Modulus& m = ctx_->modulus(static_cast<std::size_t>(i));
    const u64* a = pk.a.data() + i * n;
    const u64* s = sk_.ntt.data() + i * n;
    u64* b = pk.b.data() + i * n;
    u64* tmp = team.mine();
    ring::kernels::neg_mod(s, tmp, n, m.value);
    ring::kernels::mul_add_mod(a, tmp, b, b, n, m);
    wipe(tmp, n * sizeof(u64));
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
    const ring::TeamScratch team(n);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < count; ++i) {
      const std::size_t ii = static_cast<std::size_t>(i);
      const Modulus& m = ctx_->modulus(ii);
      const u64* a = key.a[d].data() + ii * n;
      const u64* s = sk_.ntt.data() + ii * n;
      u64* bb = b.data() + ii * n;
      // b = e - a*s (+ P * s' on the digit's primes), as e + a*(q - s) (+ s' * (P mod q)).
      u64* tmp = team.mine();
      ring::kernels::neg_mod(s, tmp, n, m.value);
      ring::kernels::mul_add_mod(a, tmp, bb, bb, n, m);
      if (ii >= lo && ii < hi) {
        ring::kernels::mul_scalar_mod(s_prime.data() + ii * n, MulConst(ctx_->p_mod_q()[ii], m.value), tmp, n, m.value);
        ring::kernels::add_mod(bb, tmp, bb, n, m.value);
      }
      wipe(tmp, n * sizeof(u64));
    }
  }
  return key;
}

RelinKeys KeyGenerator::create_relin_keys() const {
  const std::size_t n = ctx_->n(), total = ctx_->chain_size() + ctx_->special_count();
  WipedVector<u64> s2(total * n);
  for (std::size_t i = 0; i < total; ++i) {
    ring::kernels::mul_mod(sk_.ntt.data() + i * n, sk_.ntt.data() + i * n, s2.data() + i * n, n, ctx_->modulus(i));
  }
  RelinKeys rk;
  rk.params_id = ctx_->params().id();
  rk.key_set = sk_.key_set;
  rk.key = make_switch_key(s2);
  return rk;
}

GaloisKeys KeyGenerator::create_galois_keys_for_elements(const std::vector<std::uint32_t>& elements) const {
  const std::size_t n = ctx_->n(), total = ctx_->chain_size() + ctx_->special_count();
  GaloisKeys gk;
  gk.params_id = ctx_->params().id();
  gk.key_set = sk_.key_set;
  std::vector<std::uint32_t> todo;
  for (std::uint32_t g : elements) {
    if (g != 1 && std::find(todo.begin(), todo.end(), g) == todo.end()) todo.push_back(g);
  }
  for (std::uint32_t g : todo) ctx_->galois_permutation_ntt(g);  // validates every element before the work
  // Keys are independent: one per thread (their inner loops then run serially).
  std::vector<KeySwitchKey> keys(todo.size());
  std::string failure;
  const long count = static_cast<long>(todo.size());
#pragma omp parallel for schedule(dynamic)
  for (long t = 0; t < count; ++t) {
    try {
      const auto perm = ctx_->galois_permutation_ntt(todo[static_cast<std::size_t>(t)]);
      WipedVector<u64> s_g(total * n);
      for (std::size_t i = 0; i < total; ++i) {
        ring::kernels::permute(sk_.ntt.data() + i * n, perm.data(), s_g.data() + i * n, n);
      }
      keys[static_cast<std::size_t>(t)] = make_switch_key(s_g);
    } catch (const std::exception& e) {  // no exception may leave an OpenMP region
#pragma omp critical(hecnn_galois_keys)
      failure = e.what();
    }
  }
  if (!failure.empty()) throw Error(failure);
  for (std::size_t t = 0; t < todo.size(); ++t) gk.keys.emplace(todo[t], std::move(keys[t]));
  return gk;
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int>& steps, bool conjugation) const {
  std::vector<std::uint32_t> elements;
  for (int s : steps) elements.push_back(ctx_->galois_element(s));
  if (conjugation) elements.push_back(ctx_->conjugation_element());
  return create_galois_keys_for_elements(elements);
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int>& steps, const std::vector<std::size_t>& levels) const {
  if (steps.size() != levels.size()) throw Error("create_galois_keys: one level per step");
  GaloisKeys gk;
  gk.params_id = ctx_->params().id();
  gk.key_set = sk_.key_set;
  // A few at a time, so that only a few full-size keys exist at once.
  const std::size_t chunk = 4 * static_cast<std::size_t>(std::max(1, num_threads()));
  for (std::size_t s0 = 0; s0 < steps.size(); s0 += chunk) {
    std::vector<std::uint32_t> elements;
    std::map<std::uint32_t, std::size_t> level_of;
    for (std::size_t s = s0; s < std::min(steps.size(), s0 + chunk); ++s) {
      const std::uint32_t e = ctx_->galois_element(steps[s]);
      if (e == 1) continue;
      elements.push_back(e);
      level_of[e] = std::max(level_of[e], levels[s]);
    }
    GaloisKeys part = create_galois_keys_for_elements(elements);
    for (auto& [e, key] : part.keys) {
      restrict_to_level(key, *ctx_, std::min(level_of[e], ctx_->max_level()));
      auto it = gk.keys.find(e);
      if (it == gk.keys.end() || key_chain(it->second, *ctx_) < key_chain(key, *ctx_)) gk.keys[e] = std::move(key);
    }
  }
  return gk;
}

void keep_chain_limbs(std::vector<u64>& limbs, std::size_t have, std::size_t keep, std::size_t special, std::size_t n) {
  std::copy(limbs.begin() + static_cast<std::ptrdiff_t>(have * n), limbs.begin() + static_cast<std::ptrdiff_t>((have + special) * n),
            limbs.begin() + static_cast<std::ptrdiff_t>(keep * n));
  limbs.resize((keep + special) * n);
  limbs.shrink_to_fit();
}

std::size_t key_chain(const KeySwitchKey& key, const CkksContext& ctx) { return key.chain ? key.chain : ctx.chain_size(); }

void restrict_to_level(KeySwitchKey& key, const CkksContext& ctx, std::size_t level) {
  const std::size_t K = ctx.special_count(), n = ctx.n();
  const std::size_t have = key_chain(key, ctx), keep = level + 1;
  if (keep > have) throw Error("restrict_to_level: the key covers only " + std::to_string(have) + " chain primes");
  if (keep == have) return;
  const std::size_t digits = ctx.key_switch(level).digit_count;
  if (key.b.size() < digits || key.a.size() < digits) throw Error("restrict_to_level: the key has too few digits");
  key.b.resize(digits);
  key.a.resize(digits);
  for (auto* part : {&key.b, &key.a}) {
    for (auto& limbs : *part) {
      if (limbs.size() < (have + K) * n) throw Error("restrict_to_level: malformed key");
      keep_chain_limbs(limbs, have, keep, K, n);
    }
  }
  key.chain = static_cast<std::uint32_t>(keep);
}

}  // namespace hecnn::ckks
