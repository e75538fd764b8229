#include "ckks/context.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "ring/kernels.h"

namespace hecnn::ckks {

std::shared_ptr<const CkksContext> CkksContext::create(const CkksParameters& params) {
  return std::shared_ptr<const CkksContext>(new CkksContext(params));
}

CkksContext::CkksContext(const CkksParameters& params) : params_(params) {
  const std::size_t n = params.poly_degree();
  log_n_ = __builtin_ctzll(n);
  const std::size_t L = params.q().size(), K = params.p().size();
  for (u64 q : params.q()) moduli_.emplace_back(q);
  for (u64 p : params.p()) moduli_.emplace_back(p);
  ntt_.reserve(L + K);
  for (const auto& m : moduli_) ntt_.emplace_back(m.value, n);

  rescale_inv_.resize(L);
  for (std::size_t l = 1; l < L; ++l) {
    for (std::size_t i = 0; i < l; ++i) {
      rescale_inv_[l].emplace_back(moduli_[i].inv(moduli_[i].reduce(moduli_[l].value)), moduli_[i].value);
    }
  }

  p_mod_q_.resize(L);
  for (std::size_t i = 0; i < L; ++i) {
    u64 prod = 1;
    for (std::size_t k = 0; k < K; ++k) prod = moduli_[i].mul(prod, moduli_[i].reduce(params.p()[k]));
    p_mod_q_[i] = prod;
  }

  const std::vector<Modulus> special(moduli_.begin() + static_cast<long>(L), moduli_.end());
  const std::size_t alpha = params.digit_size();
  ks_.resize(L);
  for (std::size_t l = 0; l < L; ++l) {
    KeySwitchLevel& t = ks_[l];
    const std::size_t active = l + 1;
    t.digit_count = (active + alpha - 1) / alpha;
    for (std::size_t d = 0; d < t.digit_count; ++d) {
      const std::size_t b = d * alpha, e = std::min(active, b + alpha);
      std::vector<Modulus> src(moduli_.begin() + static_cast<long>(b), moduli_.begin() + static_cast<long>(e));
      std::vector<Modulus> dst;
      std::vector<std::size_t> idx;
      for (std::size_t i = 0; i < active; ++i) {
        if (i < b || i >= e) {
          dst.push_back(moduli_[i]);
          idx.push_back(i);
        }
      }
      for (std::size_t k = 0; k < K; ++k) {
        dst.push_back(special[k]);
        idx.push_back(active + k);  // extended layout: q_0..q_l, then p_0..p_K-1
      }
      // A digit of `a` primes with product S extends as x' + k*S (x' its residue in [0, S), k in
      // [0, a) the fast conversion's overflow, of mean (a-1)/2 for uniform x). Subtracting a
      // constant C of the same mean makes the digit zero-mean: for odd a, x' = (x + floor(S/2)) mod S
      // and C = floor(S/2) + (a-1)/2 * S (one prime: the residue in (-q/2, q/2)); for even a, x' = x
      // and C = a/2 * S. C is a multiple of S plus what was added, so the digit's own limbs are
      // unchanged. Uncentered digits give the key-switching noise a term mean(digit) *
      // (1 + X + ... + X^(N-1)) * e_d / P whose slot values grow like N near one root of unity: a
      // few slots then carry ~2^6 times the typical key-switching error.
      const std::size_t a = e - b;
      const bool odd = a % 2 == 1;
      std::vector<u64> pre, post;
      for (const Modulus& s : src) pre.push_back(odd ? (s.value - 1) / 2 : 0);  // floor(S/2) mod s_i (S odd)
      for (const Modulus& q : dst) {
        u64 s_mod = 1;
        for (const Modulus& s : src) s_mod = q.mul(s_mod, q.reduce(s.value));
        const u64 half = odd ? q.mul(q.sub(s_mod, 1), q.inv(2)) : 0;  // floor(S/2) = (S - 1) / 2 mod q
        const u64 c = q.add(half, q.mul(q.reduce(a / 2), s_mod));
        post.push_back(q.neg(c));
      }
      t.mod_up.emplace_back(src, dst);
      t.mod_up_targets.push_back(std::move(idx));
      t.mod_up_pre.push_back(std::move(pre));
      t.mod_up_post.push_back(std::move(post));
    }
    std::vector<Modulus> qs(moduli_.begin(), moduli_.begin() + static_cast<long>(active));
    t.mod_down = DivideRoundByP(special, qs);
    if (active >= 2) {
      std::vector<Modulus> divisor = special;
      divisor.push_back(moduli_[active - 1]);
      t.mod_down_rescale = DivideRoundByP(divisor, std::vector<Modulus>(qs.begin(), qs.end() - 1));
      const Modulus& top = moduli_[active - 1];
      u64 p_mod = 1;
      for (const Modulus& p : special) p_mod = top.mul(p_mod, top.reduce(p.value));
      t.p_mod_top = MulConst(p_mod, top.value);
    }
  }
}

std::uint32_t CkksContext::galois_element(int step) const {
  const std::size_t slots = n() / 2;
  const std::uint64_t m = 2 * n();
  long long s = step % static_cast<long long>(slots);
  if (s < 0) s += static_cast<long long>(slots);
  // 5^s mod 2N by squaring (2N is a power of two: reduction is a mask; a step of -1 was 8191
  // multiplications and divisions at N = 16384, ~0.1 ms per rotation).
  const std::uint64_t mask = m - 1;
  std::uint64_t g = 1, b = 5;
  for (auto e = static_cast<std::uint64_t>(s); e != 0; e >>= 1, b = (b * b) & mask) {
    if (e & 1) g = (g * b) & mask;
  }
  return static_cast<std::uint32_t>(g);
}

std::vector<std::uint32_t> CkksContext::galois_permutation_ntt(std::uint32_t galois_elt) const {
  const std::size_t N = n();
  const std::uint64_t mask = 2 * N - 1;
  if ((galois_elt & 1) == 0 || galois_elt > mask) throw Error("invalid Galois element " + std::to_string(galois_elt));
  std::vector<std::uint32_t> perm(N);
  for (std::size_t i = 0; i < N; ++i) {
    // Slot i of the NTT holds the evaluation at psi^(2*brev(i)+1); X -> X^g moves it to psi^(e*g).
    const std::uint64_t e = 2 * static_cast<std::uint64_t>(ring::reverse_bits(static_cast<std::uint32_t>(i), log_n_)) + 1;
    const std::uint64_t eg = (e * galois_elt) & mask;
    perm[i] = ring::reverse_bits(static_cast<std::uint32_t>((eg - 1) >> 1), log_n_);
  }
  return perm;
}

}  // namespace hecnn::ckks
