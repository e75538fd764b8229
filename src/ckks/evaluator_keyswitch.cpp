// ckks::Evaluator, part two: hybrid key switching (digit decomposition, mod-up into the special
// primes, inner products with the key, division by P), relinearization, and Galois automorphisms:
// rotations one at a time or hoisted over one decomposition, conjugation. The arithmetic, rescaling
// and levels are in evaluator.cpp.
#include <algorithm>
#include <cstring>
#include <string>

#include "ckks/evaluator.h"
#include "ckks/evaluator_internal.h"
#include "common/error.h"
#include "common/threads.h"
#include "ring/kernels.h"
#include "ring/scratch.h"

namespace hecnn::ckks {

namespace {
// Limb `j` of an extended level-l polynomial maps to this key index.
inline std::size_t ext_key_index(std::size_t level, std::size_t chain, std::size_t j) {
  return j <= level ? j : chain + (j - level - 1);
}
}  // namespace

u64* Evaluator::mod_up(const u64* poly, std::size_t level, const std::uint32_t* perm, bool skip_own) const {
  const std::size_t n = ctx_->n(), limbs = level + 1, K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t ext = limbs + K, alpha = ctx_->params().digit_size();
  const KeySwitchLevel& ks = ctx_->key_switch(level);
  const std::size_t D = ks.digit_count;
  u64* const digits = ring::scratch(ring::Scratch::digits, D * ext * n);
  u64* const coeff = ring::scratch(ring::Scratch::coeff, limbs * n);
  // Coefficient form of every limb, shifted for centering (see KeySwitchLevel::mod_up_pre), scaled by
  // its digit's (Q_d / q_i)^-1 (nothing for 1-prime digits).
  {
    const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < count; ++t) {
      const std::size_t i = static_cast<std::size_t>(t), d = i / alpha;
      u64* x = coeff + i * n;
      const u64* src = poly + i * n;
      if (perm) {  // the permuted limb is its digit's own extended limb: written there once
        u64* own = digits + (d * ext + i) * n;
        ring::kernels::permute(poly + i * n, perm, own, n);
        src = own;
      }
      // (INTT + pre) c = INTT c + pre c: the conversion's factor c rides on the transform's scaling.
      const Modulus& m = ctx_->modulus(i);
      const u64 c = ks.mod_up[d].source_scale(i - d * alpha);
      if (c == 1) {
        ctx_->ntt(i).inverse(src, x);
      } else {
        ctx_->ntt(i).inverse(src, x, ctx_->ntt(i).inverse_scale(c));
      }
      const u64 pre = m.mul(ks.mod_up_pre[d][i - d * alpha], c);
      if (pre != 0) ring::kernels::add_scalar_mod(x, pre, x, n, m.value);
    }
  }
  // Every (digit, extended limb) pair: the digit's own limbs are copied (already in NTT form), the
  // others are converted from the digit's primes and transformed, the centering constant subtracted
  // by the NTT's offset. A single-prime digit below 3 times the target prime goes into the NTT as it
  // is (with the offset, below 4 times).
  const long count = static_cast<long>(D * ext);
#pragma omp parallel for schedule(dynamic)
  for (long t = 0; t < count; ++t) {
    const std::size_t d = static_cast<std::size_t>(t) / ext, j = static_cast<std::size_t>(t) % ext;
    const std::size_t lo = d * alpha, hi = std::min(limbs, lo + alpha);
    u64* out = digits + (d * ext + j) * n;
    if (j >= lo && j < hi) {
      if (!perm && !skip_own) std::memcpy(out, poly + j * n, n * sizeof(u64));  // with perm, written above
      continue;
    }
    const u64* y[64];
    for (std::size_t i = lo; i < hi; ++i) y[i - lo] = coeff + i * n;
    const std::size_t target = j < lo ? j : j - (hi - lo);
    const u64* src = ks.mod_up[d].to_target(y, target, out, n, true, 3);
    ctx_->ntt(ext_key_index(level, L, j)).forward(src, out, ks.mod_up_post[d][target]);
  }
  return digits;
}

void Evaluator::check_key(const KeySwitchKey& key, std::size_t level, std::size_t D) const {
  const std::size_t n = ctx_->n(), K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t chain = key.chain ? key.chain : L;
  if (chain > L) throw Error("key-switching key does not match these parameters");
  if (level >= chain) {
    throw Error("key-switching key made for levels below " + std::to_string(chain) + ", used at level " + std::to_string(level));
  }
  if (key.b.size() < D || key.a.size() < D) throw Error("key-switching key has too few digits for these parameters");
  for (std::size_t d = 0; d < D; ++d) {
    if (key.b[d].size() < (chain + K) * n || key.a[d].size() < (chain + K) * n) {
      throw Error("key-switching key does not match these parameters");
    }
  }
}

void Evaluator::key_switch(const u64* digits, std::size_t level, const KeySwitchKey* const* keys,
                           const std::uint32_t* const* perms, std::size_t count, u64* const* out0,
                           u64* const* out1, const u64* base0, const std::uint32_t* const* base_perms,
                           bool accumulate, bool sum) const {
  const std::size_t n = ctx_->n(), limbs = level + 1, K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t ext = limbs + K;
  const KeySwitchLevel& ks = ctx_->key_switch(level);
  const std::size_t D = ks.digit_count;
  for (std::size_t s = 0; s < count; ++s) check_key(*keys[s], level, D);
  // Inner product for extended limb j, coefficients [c0, c0 + len), of key s: the key's limb
  // (its special primes follow the chain primes it covers) and the prime's index.
  auto inner = [&](std::size_t s, std::size_t j, std::size_t c0, std::size_t len, u64* r0, u64* r1) {
    const std::size_t qi = ext_key_index(level, L, j);
    const std::size_t ki = ext_key_index(level, keys[s]->chain ? keys[s]->chain : L, j);
    const std::uint32_t* perm = perms ? perms[s] : nullptr;
    const u64* x[64];
    const u64* b[64];
    const u64* a[64];
    for (std::size_t d = 0; d < D; ++d) {
      x[d] = digits + (d * ext + j) * n + (perm ? 0 : c0);
      b[d] = keys[s]->b[d].data() + ki * n + c0;
      a[d] = keys[s]->a[d].data() + ki * n + c0;
    }
    ring::kernels::ks_inner_product(x, b, a, D, perm ? perm + c0 : nullptr, r0, r1, len, ctx_->modulus(qi));
  };
  // Result o's inner product: key o's, or with `sum` the sum over all keys (still over Q*P: one
  // mod-down for all). tmp holds 2 * len words.
  const std::size_t outputs = sum ? 1 : count;
  auto inner_out = [&](std::size_t o, std::size_t j, std::size_t c0, std::size_t len, u64* r0, u64* r1, u64* tmp) {
    if (!sum) return inner(o, j, c0, len, r0, r1);
    const u64 q = ctx_->modulus(ext_key_index(level, L, j)).value;
    inner(0, j, c0, len, r0, r1);
    for (std::size_t s = 1; s < count; ++s) {
      inner(s, j, c0, len, tmp, tmp + len);
      ring::kernels::add_mod(r0, tmp, r0, len, q);
      ring::kernels::add_mod(r1, tmp + len, r1, len, q);
    }
  };
  // 1. P limbs of every key's two results: inner product (in blocks, to spread it over the threads),
  //    then coefficient form + floor(P/2) for rounding, scaled for the conversion to the chain primes.
  u64* const pbuf = ring::scratch(ring::Scratch::acc, outputs * 2 * K * n);  // [o][poly][k]
  const ring::TeamScratch team(5 * n);
  {
    std::size_t blocks = 1;
    while (blocks < n / 1024 && outputs * K * blocks < 8 * static_cast<std::size_t>(num_threads())) blocks <<= 1;
    const std::size_t len = n / blocks;
    const long tasks = static_cast<long>(outputs * K * blocks);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; ++t) {
      const std::size_t o = static_cast<std::size_t>(t) / (K * blocks), k = static_cast<std::size_t>(t) / blocks % K;
      const std::size_t c0 = static_cast<std::size_t>(t) % blocks * len;
      u64* r0 = pbuf + (o * 2 * K + k) * n + c0;
      inner_out(o, limbs + k, c0, len, r0, r0 + K * n, team.mine());
    }
  }
  {
    const long tasks = static_cast<long>(outputs * 2 * K);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; ++t) {
      const std::size_t k = static_cast<std::size_t>(t) % K;
      u64* x = pbuf + static_cast<std::size_t>(t) * n;
      ks.mod_down.prepare_special(k, ctx_->ntt(L + k), x, n);
    }
  }
  // 2. Chain limbs, limb-major over the keys (the limb's digits stay in cache across keys): inner
  //    product, then out (+)= (ip - NTT(P part mod q_j - floor(P/2))) * P^-1 for both results.
  const long tasks = static_cast<long>(limbs * outputs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tasks; ++t) {
    const std::size_t j = static_cast<std::size_t>(t) / outputs, s = static_cast<std::size_t>(t) % outputs;
    const Modulus& m = ctx_->modulus(j);
    u64* const tmp = team.mine();
    u64* const ip[2] = {tmp, tmp + n};
    u64* const conv = tmp + 2 * n;
    inner_out(s, j, 0, n, ip[0], ip[1], tmp + 3 * n);
    if (base0) {
      u64* o0 = out0[s] + j * n;
      ring::kernels::permute(base0 + j * n, base_perms[s], o0, n);
      for (std::size_t k = 1; sum && k < count; ++k) {
        ring::kernels::permute(base0 + j * n, base_perms[k], conv, n);
        ring::kernels::add_mod(o0, conv, o0, n, m.value);
      }
    }
    for (std::size_t poly = 0; poly < 2; ++poly) {
      const u64* y[16];
      for (std::size_t k = 0; k < K; ++k) y[k] = pbuf + ((s * 2 + poly) * K + k) * n;
      u64* out = (poly == 0 ? out0[s] : out1[s]) + j * n;
      const bool acc = accumulate || (poly == 0 && base0);
      ks.mod_down.finish_chain(j, ctx_->ntt(j), y, ip[poly], out, acc, conv, n);
    }
  }
}

void Evaluator::relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const {
  check(a);
  if (a.size() == 2) return;
  if (rk.params_id != ctx_->params().id()) throw Error("relinearize: relinearization key was made for other parameters");
  const u64* digits = mod_up(a.poly(2), a.level());
  const KeySwitchKey* key = &rk.key;
  u64* const out0 = a.poly(0);
  u64* const out1 = a.poly(1);
  key_switch(digits, a.level(), &key, nullptr, 1, &out0, &out1, nullptr, nullptr, true, false);
  a.truncate_size(2);
}

void Evaluator::relinearize_rescale_inplace(Ciphertext& a, const RelinKeys& rk) const {
  Ciphertext& r = detail::spare();
  relinearize_rescale(a, rk, r);
  std::swap(a, r);
}

void Evaluator::relinearize_rescale(const Ciphertext& a, const RelinKeys& rk, Ciphertext& r) const {
  if (&a == &r) throw Error("rescale: the output must not be the input (use relinearize_rescale_inplace)");
  check(a);
  if (a.size() == 2) return rescale(a, r);
  if (rk.params_id != ctx_->params().id()) throw Error("relinearize: relinearization key was made for other parameters");
  const std::size_t l = a.level();
  if (l == 0) throw Error("rescale: the ciphertext is at level 0, no prime left to divide by");
  const std::size_t n = ctx_->n(), limbs = l + 1, K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t ext = limbs + K;
  const KeySwitchLevel& ks = ctx_->key_switch(l);
  const std::size_t D = ks.digit_count;
  const KeySwitchKey& key = rk.key;
  check_key(key, l, D);
  const std::size_t key_chain = key.chain ? key.chain : L;
  const u64* const digits = mod_up(a.poly(2), l, nullptr, true);
  const std::size_t alpha = ctx_->params().digit_size();
  // Inner product of extended limb j (q_0..q_l, then p_0..p_K-1), coefficients [c0, c0 + len). A
  // digit's own limbs are c2's (mod_up did not copy them).
  auto inner = [&](std::size_t j, std::size_t c0, std::size_t len, u64* r0, u64* r1) {
    const std::size_t ki = ext_key_index(l, key_chain, j);
    const u64* x[64];
    const u64* b[64];
    const u64* ka[64];
    for (std::size_t d = 0; d < D; ++d) {
      const bool own = j <= l && j / alpha == d;
      x[d] = (own ? a.poly(2) + j * n : digits + (d * ext + j) * n) + c0;
      b[d] = key.b[d].data() + ki * n + c0;
      ka[d] = key.a[d].data() + ki * n + c0;
    }
    ring::kernels::ks_inner_product(x, b, ka, D, nullptr, r0, r1, len, ctx_->modulus(ext_key_index(l, L, j)));
  };
  // 1. The divisor's limbs of both results, (ks + P c) modulo p_0..p_K-1 and q_l: the inner products
  //    (P c vanishes modulo the p_k), plus P c_l modulo q_l; then coefficient form, prepared for the
  //    conversion to q_0..q_l-1.
  const std::size_t S = K + 1;
  u64* const pbuf = ring::scratch(ring::Scratch::acc, 2 * S * n);  // [poly][k]
  {
    std::size_t blocks = 1;
    while (blocks < n / 1024 && S * blocks < 8 * static_cast<std::size_t>(num_threads())) blocks <<= 1;
    const std::size_t len = n / blocks;
    const long tasks = static_cast<long>(S * blocks);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; ++t) {
      const std::size_t k = static_cast<std::size_t>(t) / blocks, c0 = static_cast<std::size_t>(t) % blocks * len;
      u64* r0 = pbuf + k * n + c0;
      u64* r1 = pbuf + (S + k) * n + c0;
      if (k < K) {
        inner(limbs + k, c0, len, r0, r1);
        continue;
      }
      inner(l, c0, len, r0, r1);
      const u64 q = ctx_->modulus(l).value;
      ring::kernels::mul_scalar_add_mod(a.limb(0, l) + c0, ks.p_mod_top, r0, r0, len, q);
      ring::kernels::mul_scalar_add_mod(a.limb(1, l) + c0, ks.p_mod_top, r1, r1, len, q);
    }
  }
  {
    const long tasks = static_cast<long>(2 * S);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; ++t) {
      const std::size_t k = static_cast<std::size_t>(t) % S;
      ks.mod_down_rescale.prepare_special(k, ctx_->ntt(k < K ? L + k : l), pbuf + static_cast<std::size_t>(t) * n, n);
    }
  }
  // 2. Chain limbs q_0..q_l-1 of both results: c_j q_l^-1 + (ip_j - NTT(divisor part)) (P q_l)^-1.
  r.reset(n, l - 1, 2, a.slots(), a.scale() / static_cast<double>(ctx_->modulus(l).value));
  const auto& inv = ctx_->rescale_inv(l);
  const ring::TeamScratch team(3 * n);
  const long tasks = static_cast<long>(l);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tasks; ++t) {
    const std::size_t j = static_cast<std::size_t>(t);
    u64* const tmp = team.mine();
    u64* const ip[2] = {tmp, tmp + n};
    u64* const conv = tmp + 2 * n;
    inner(j, 0, n, ip[0], ip[1]);
    for (std::size_t poly = 0; poly < 2; ++poly) {
      const u64* y[17];
      for (std::size_t k = 0; k < S; ++k) y[k] = pbuf + (poly * S + k) * n;
      ks.mod_down_rescale.finish_chain_plus(j, ctx_->ntt(j), y, ip[poly], a.limb(poly, j), inv[j], r.limb(poly, j),
                                            conv, n);
    }
  }
}

std::shared_ptr<const std::vector<std::uint32_t>> Evaluator::permutation(std::uint32_t galois_elt) const {
  std::lock_guard<std::mutex> lock(perm_mutex_);
  auto it = perms_.find(galois_elt);
  if (it != perms_.end()) return it->second;
  auto p = std::make_shared<const std::vector<std::uint32_t>>(ctx_->galois_permutation_ntt(galois_elt));
  perms_.emplace(galois_elt, p);
  return p;
}

const KeySwitchKey& Evaluator::galois_key(const GaloisKeys& gk, std::uint32_t elt, int step) const {
  if (gk.params_id != ctx_->params().id()) throw Error("Galois keys were made for other parameters");
  auto it = gk.keys.find(elt);
  if (it == gk.keys.end()) {
    if (elt == ctx_->conjugation_element()) throw Error("no Galois key for conjugation; generate keys with conjugation");
    throw Error("no Galois key for rotation step " + std::to_string(step) + " (Galois element " + std::to_string(elt) +
                "); generate Galois keys with this step");
  }
  return it->second;
}


void Evaluator::switch_galois(const Ciphertext& a, const u64* digits, const std::uint32_t* galois_elts,
                              const KeySwitchKey* const* keys, std::size_t count, Ciphertext* const* r) const {
  const std::size_t n = ctx_->n(), level = a.level();
  std::vector<std::shared_ptr<const std::vector<std::uint32_t>>> perm_owners(count);
  std::vector<const std::uint32_t*> perms(count);
  std::vector<u64*> out0(count), out1(count);
  for (std::size_t s = 0; s < count; ++s) {
    perm_owners[s] = permutation(galois_elts[s]);
    perms[s] = perm_owners[s]->data();
    r[s]->reset(n, level, 2, a.slots(), a.scale());
    out0[s] = r[s]->poly(0);
    out1[s] = r[s]->poly(1);
  }
  key_switch(digits, level, keys, perms.data(), count, out0.data(), out1.data(), a.poly(0), perms.data(), false,
             false);
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                                  const GaloisKeys& gk) const {
  std::vector<Ciphertext> out;
  rotate_hoisted(a, steps, gk, out);
  return out;
}

void Evaluator::rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps, const GaloisKeys& gk,
                               std::vector<Ciphertext>& out) const {
  for (const Ciphertext& o : out) {
    if (&o == &a) {  // the source is one of the outputs: work from a copy
      const Ciphertext copy = a;
      rotate_hoisted(copy, steps, gk, out);
      return;
    }
  }
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  // Resolve every key before the expensive decomposition, so a missing key fails fast.
  std::vector<std::uint32_t> elts(steps.size());
  std::vector<const KeySwitchKey*> keys(steps.size(), nullptr);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    elts[s] = ctx_->galois_element(steps[s]);
    if (elts[s] != 1) keys[s] = &galois_key(gk, elts[s], steps[s]);
  }
  out.resize(steps.size());
  std::vector<std::uint32_t> batch_elts;
  std::vector<const KeySwitchKey*> batch_keys;
  std::vector<Ciphertext*> batch_out;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    if (elts[s] == 1) {
      out[s] = a;
    } else {
      batch_elts.push_back(elts[s]);
      batch_keys.push_back(keys[s]);
      batch_out.push_back(&out[s]);
    }
  }
  if (batch_elts.empty()) return;
  const u64* digits = mod_up(a.poly(1), a.level());
  // Steps one at a time: batching them (limb-major over several keys) measured no faster, since each
  // step's 19 MB key streams through L2 and evicts the shared digits anyway; and it needs more scratch.
  constexpr std::size_t kBatch = 1;
  for (std::size_t b = 0; b < batch_elts.size(); b += kBatch) {
    const std::size_t c = std::min(kBatch, batch_elts.size() - b);
    switch_galois(a, digits, batch_elts.data() + b, batch_keys.data() + b, c, batch_out.data() + b);
  }
}

Ciphertext Evaluator::rotate_sum_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                         const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  if (steps.empty()) throw Error("rotate_sum_hoisted: no steps");
  std::vector<std::uint32_t> elts;
  std::vector<const KeySwitchKey*> keys;
  std::size_t identities = 0;
  for (int step : steps) {
    const std::uint32_t e = ctx_->galois_element(step);
    if (e == 1) {
      ++identities;
    } else {
      elts.push_back(e);
      keys.push_back(&galois_key(gk, e, step));
    }
  }
  const std::size_t n = ctx_->n(), level = a.level();
  Ciphertext r(n, level, 2, a.slots(), a.scale());
  if (!elts.empty()) {
    std::vector<std::shared_ptr<const std::vector<std::uint32_t>>> owners;
    std::vector<const std::uint32_t*> perms;
    for (std::uint32_t e : elts) {
      owners.push_back(permutation(e));
      perms.push_back(owners.back()->data());
    }
    const u64* digits = mod_up(a.poly(1), level);
    u64* const out0 = r.poly(0);
    u64* const out1 = r.poly(1);
    key_switch(digits, level, keys.data(), perms.data(), elts.size(), &out0, &out1, a.poly(0), perms.data(), false,
               true);
  } else {
    std::fill(r.poly(0), r.poly(0) + r.word_count(), u64{0});
  }
  for (std::size_t k = 0; k < identities; ++k) add_inplace(r, a);  // steps that are no rotation at all
  return r;
}

void Evaluator::rotate_one(const Ciphertext& a, std::uint32_t galois_elt, const KeySwitchKey& key,
                           Ciphertext& r) const {
  const KeySwitchKey* kp = &key;
  if (ctx_->params().digit_size() != 1) {
    // Digits of several primes: the fast base conversion's overflow depends on the residues, so the
    // decomposition of c1 o g is in general not that of c1 permuted (a valid decomposition all the
    // same, but other words). Permuting after the decomposition keeps a separate rotation word for
    // word equal to the same step of rotate_hoisted.
    const u64* digits = mod_up(a.poly(1), a.level());
    Ciphertext* rp = &r;
    switch_galois(a, digits, &galois_elt, &kp, 1, &rp);
    return;
  }
  // One prime per digit: each digit extends as its centered residue, in (-q/2, q/2), exactly, and
  // the automorphism only moves coefficients and flips signs, which centering commutes with; so
  // mod_up(c1 o g) = mod_up(c1) o g word for word. Permuting the limbs of c1 once, inside the
  // decomposition, replaces the permutation of every digit's extended limbs (digits x (limbs + K)
  // limbs gathered inside the inner product: 72 against 8 at N = 16384 with SEAL's chain) and leaves
  // the key switch of a relinearization plus the permutation of c0; the result is the one
  // rotate_hoisted computes.
  const std::size_t n = ctx_->n(), level = a.level();
  const auto owner = permutation(galois_elt);
  const std::uint32_t* perm = owner->data();
  const u64* digits = mod_up(a.poly(1), level, perm);
  r.reset(n, level, 2, a.slots(), a.scale());
  u64* const out0 = r.poly(0);
  u64* const out1 = r.poly(1);
  key_switch(digits, level, &kp, nullptr, 1, &out0, &out1, a.poly(0), &perm, false, false);
}

void Evaluator::apply_galois_inplace(Ciphertext& a, std::uint32_t galois_elt, const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  if (galois_elt == 1) return;
  const KeySwitchKey& key = galois_key(gk, galois_elt, 0);
  Ciphertext& r = detail::spare();
  rotate_one(a, galois_elt, key, r);
  std::swap(a, r);
}

void Evaluator::rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt == 1) return;
  const KeySwitchKey& key = galois_key(gk, elt, step);
  Ciphertext& r = detail::spare();
  rotate_one(a, elt, key, r);
  std::swap(a, r);
}

void Evaluator::rotate(const Ciphertext& a, int step, const GaloisKeys& gk, Ciphertext& out) const {
  if (&out == &a) return rotate_inplace(out, step, gk);
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt == 1) {
    out = a;
    return;
  }
  rotate_one(a, elt, galois_key(gk, elt, step), out);
}

void Evaluator::switch_key_inplace(Ciphertext& a, const KeySwitchKey& key) const {
  check(a);
  if (a.size() != 2) throw Error("key switch: relinearize the ciphertext first");
  const std::size_t level = a.level();
  check_key(key, level, ctx_->key_switch(level).digit_count);
  // (c0, c1) -> (c0 + ks0, ks1) with (ks0, ks1) the key switch of c1.
  const u64* digits = mod_up(a.poly(1), level);
  std::fill(a.poly(1), a.poly(1) + a.limbs() * ctx_->n(), u64{0});
  const KeySwitchKey* kp = &key;
  u64* const out0 = a.poly(0);
  u64* const out1 = a.poly(1);
  key_switch(digits, level, &kp, nullptr, 1, &out0, &out1, nullptr, nullptr, true, false);
  a.clear_seed();
}

void Evaluator::conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const {
  apply_galois_inplace(a, ctx_->conjugation_element(), gk);
}

}  // namespace hecnn::ckks
