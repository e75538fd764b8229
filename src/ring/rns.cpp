#include "ring/rns.h"

#include <algorithm>
#include <cstring>

#include "ring/kernels.h"

namespace hecnn::ring {

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

DivideRoundByP::DivideRoundByP(const std::vector<Modulus>& special, const std::vector<Modulus>& chain)
    : conv_(special, chain) {
  // The conversion of the P part overflows by k*P, k in [0, K), of mean (K-1)/2: the quotient comes
  // out k too small. A mean left in the error becomes mean * (1 + X + ... + X^(N-1)) (times s for
  // the second component), whose slot values grow like N near one root of unity; so the constant
  // added to the P part and subtracted from the result also cancels that mean. Odd K: floor(P/2)
  // (rounding) and floor(P/2) + (K-1)/2 * P. Even K: nothing, and K/2 * P (the residue in [0, P),
  // of mean P/2, and the overflow together have mean K/2 * P). K = 1: plain rounding.
  const std::size_t K = special.size();
  const bool odd = K % 2 == 1;
  for (const Modulus& q : chain) {
    u64 p_mod_q = 1;
    for (const Modulus& p : special) p_mod_q = q.mul(p_mod_q, q.reduce(p.value));
    p_inv_.emplace_back(q.inv(p_mod_q), q.value);
    // P is odd, so floor(P/2) = (P - 1) / 2 = (P - 1) * 2^-1 modulo any odd prime.
    const u64 half = odd ? q.mul(q.sub(p_mod_q, 1), q.inv(2)) : 0;
    offset_mod_q_.push_back(q.neg(q.add(half, q.mul(q.reduce(K / 2), p_mod_q))));
  }
  for (const Modulus& p : special) half_p_mod_p_.push_back(odd ? (p.value - 1) / 2 : 0);
}

void DivideRoundByP::prepare_special(std::size_t k, const NttTables& ntt_pk, u64* x, std::size_t n) const {
  // (INTT(x) + h) c = INTT(x) c + h c: the conversion's factor c rides on the transform's scaling.
  const Modulus& p = ntt_pk.modulus();
  const u64 c = conv_.source_scale(k);
  if (c == 1) {
    ntt_pk.inverse(x);
  } else {
    ntt_pk.inverse(x, x, ntt_pk.inverse_scale(c));
  }
  const u64 h = p.mul(half_p_mod_p_[k], c);
  if (h != 0) kernels::add_scalar_mod(x, h, x, n, p.value);
}

void DivideRoundByP::finish_chain(std::size_t i, const NttTables& ntt_qi, const u64* const* y, const u64* x_i,
                                  u64* out, bool accumulate, u64* tmp, std::size_t n) const {
  const u64 qi = ntt_qi.modulus().value;
  // Lazy conversion leaves values below 3 q_i, so adding the offset (< q_i) stays below 4 q_i.
  const u64* c = conv_.to_target(y, i, tmp, n, true, 3);
  ntt_qi.forward(c, tmp, offset_mod_q_[i]);
  kernels::sub_mul_scalar_mod(x_i, tmp, 0, p_inv_[i], out, n, qi, accumulate);
}

void DivideRoundByP::finish_chain_plus(std::size_t i, const NttTables& ntt_qi, const u64* const* y, const u64* x_i,
                                       const u64* z, const MulConst& v, u64* out, u64* tmp, std::size_t n) const {
  const u64* c = conv_.to_target(y, i, tmp, n, true, 3);
  ntt_qi.forward(c, tmp, offset_mod_q_[i]);
  kernels::sub_mul_add_scalar_mod(x_i, tmp, p_inv_[i], z, v, out, n, ntt_qi.modulus().value);
}

}  // namespace hecnn::ring
