#include "ckks/context.h"

#include <algorithm>
#include <cstring>

#include "ckks/error.h"
#include "ckks/kernels.h"

namespace hecnn::ckks {

BaseConverter::BaseConverter(const std::vector<Modulus>& source, const std::vector<Modulus>& target)
    : source_(source), target_(target) {
  const std::size_t k = source.size();
  inv_hat_.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    u64 hat = 1;
    for (std::size_t j = 0; j < k; ++j) {
      if (j != i) hat = source[i].mul(hat, source[i].reduce(source[j].value));
    }
    inv_hat_[i] = MulConst(source[i].inv(hat), source[i].value);
  }
  hat_mod_target_.resize(target.size() * k);
  for (std::size_t t = 0; t < target.size(); ++t) {
    for (std::size_t i = 0; i < k; ++i) {
      u64 hat = 1;
      for (std::size_t j = 0; j < k; ++j) {
        if (j != i) hat = target[t].mul(hat, target[t].reduce(source[j].value));
      }
      hat_mod_target_[t * k + i] = hat;
    }
  }
  for (const auto& s : source) max_source_ = std::max(max_source_, s.value);
}

void BaseConverter::scale_source(std::size_t i, const u64* in, u64* out, std::size_t n) const {
  if (source_.size() == 1) {
    if (in != out) std::memcpy(out, in, n * sizeof(u64));
    return;
  }
  kernels::mul_scalar_mod(in, inv_hat_[i], out, n, source_[i].value);
}

const u64* BaseConverter::to_target(const u64* const* y, std::size_t t, u64* out, std::size_t n, bool lazy,
                                    u64 lazy_factor) const {
  const std::size_t k = source_.size();
  const Modulus& m = target_[t];
  if (k == 1) {
    // (S/s_0) = 1: a plain reduction, or nothing when the NTT can take the values as they are.
    if (lazy && source_[0].value < lazy_factor * m.value) return y[0];
    if (source_[0].value <= m.value) {
      if (y[0] != out) std::memcpy(out, y[0], n * sizeof(u64));
    } else {
      kernels::reduce_mod(y[0], out, n, m);
    }
    return out;
  }
  kernels::convert_sum(y, hat_mod_target_.data() + t * k, k, max_source_, out, n, m);
  return out;
}

void BaseConverter::convert(const u64* const* in, u64* const* out, std::size_t n, u64* scratch) const {
  const std::size_t k = source_.size();
  std::vector<const u64*> y(k);
  for (std::size_t i = 0; i < k; ++i) {
    scale_source(i, in[i], scratch + i * n, n);
    y[i] = scratch + i * n;
  }
  for (std::size_t t = 0; t < target_.size(); ++t) to_target(y.data(), t, out[t], n, false);
}

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
      t.mod_up.emplace_back(src, dst);
      t.mod_up_targets.push_back(std::move(idx));
    }
    std::vector<Modulus> qs(moduli_.begin(), moduli_.begin() + static_cast<long>(active));
    t.mod_down = BaseConverter(special, qs);
    for (std::size_t i = 0; i < active; ++i) {
      t.p_inv.emplace_back(moduli_[i].inv(p_mod_q_[i]), moduli_[i].value);
      // P is odd, so floor(P/2) = (P - 1) / 2 = (P - 1) * 2^-1 modulo any odd prime.
      t.half_p_mod_q.push_back(moduli_[i].mul(moduli_[i].sub(p_mod_q_[i], 1), moduli_[i].inv(2)));
    }
    for (std::size_t k = 0; k < K; ++k) t.half_p_mod_p.push_back((special[k].value - 1) / 2);
  }
}

std::uint32_t CkksContext::galois_element(int step) const {
  const std::size_t slots = n() / 2;
  const std::uint64_t m = 2 * n();
  long long s = step % static_cast<long long>(slots);
  if (s < 0) s += static_cast<long long>(slots);
  std::uint64_t g = 1;
  for (long long i = 0; i < s; ++i) g = (g * 5) % m;
  return static_cast<std::uint32_t>(g);
}

std::vector<std::uint32_t> CkksContext::galois_permutation_ntt(std::uint32_t galois_elt) const {
  const std::size_t N = n();
  const std::uint64_t mask = 2 * N - 1;
  if ((galois_elt & 1) == 0 || galois_elt > mask) throw Error("invalid Galois element " + std::to_string(galois_elt));
  std::vector<std::uint32_t> perm(N);
  for (std::size_t i = 0; i < N; ++i) {
    // Slot i of the NTT holds the evaluation at psi^(2*brev(i)+1); X -> X^g moves it to psi^(e*g).
    const std::uint64_t e = 2 * static_cast<std::uint64_t>(reverse_bits(static_cast<std::uint32_t>(i), log_n_)) + 1;
    const std::uint64_t eg = (e * galois_elt) & mask;
    perm[i] = reverse_bits(static_cast<std::uint32_t>((eg - 1) >> 1), log_n_);
  }
  return perm;
}

}  // namespace hecnn::ckks
