#include "ckks/evaluator.h"

#include <cmath>
#include <cstring>
#include <string>

#include "ckks/error.h"
#include "ckks/polyops.h"

namespace hecnn::ckks {

void Ciphertext::drop_to_level(std::size_t level) {
  if (level > level_) throw Error("cannot raise a ciphertext's level");
  if (level == level_) return;
  const std::size_t old_limbs = level_ + 1, new_limbs = level + 1;
  for (std::size_t k = 1; k < size_; ++k) {
    std::memmove(data_.data() + k * new_limbs * n_, data_.data() + k * old_limbs * n_, new_limbs * n_ * sizeof(u64));
  }
  level_ = level;
  data_.resize(size_ * new_limbs * n_);
  seed_.reset();
}

namespace {
constexpr double kScaleTolerance = 1e-9;

bool scales_match(double a, double b) { return std::fabs(a - b) <= kScaleTolerance * std::max(a, b); }

std::string scale_str(double s) { return "2^" + std::to_string(std::log2(s)); }

// Limb `j` of an extended level-l polynomial maps to this key index.
inline std::size_t ext_key_index(std::size_t level, std::size_t chain, std::size_t j) {
  return j <= level ? j : chain + (j - level - 1);
}
}  // namespace

Evaluator::Evaluator(ContextPtr ctx) : ctx_(std::move(ctx)) {}

void Evaluator::check(const Ciphertext& a) const {
  if (a.n() != ctx_->n() || a.level() > ctx_->max_level() || a.size() < 2 || a.size() > 3 ||
      a.word_count() != a.size() * a.limbs() * a.n()) {
    throw Error("ciphertext does not belong to these parameters");
  }
}

void Evaluator::check_pair(const Ciphertext& a, const Ciphertext& b, const char* op) const {
  check(a);
  check(b);
  if (a.level() != b.level()) {
    throw Error(std::string(op) + ": operands are at levels " + std::to_string(a.level()) + " and " +
                std::to_string(b.level()) + "; align them first (drop_to_level_inplace or align_inplace)");
  }
  if (a.slots() != b.slots()) {
    throw Error(std::string(op) + ": operands have " + std::to_string(a.slots()) + " and " +
                std::to_string(b.slots()) + " slots");
  }
}

void Evaluator::add_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check_pair(a, b, subtract ? "sub" : "add");
  if (!scales_match(a.scale(), b.scale())) {
    throw Error(std::string(subtract ? "sub" : "add") + ": scales differ (" + scale_str(a.scale()) + " vs " +
                scale_str(b.scale()) + "); align them first (align_inplace)");
  }
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  if (b.size() > a.size()) {
    const std::size_t old = a.size();
    Ciphertext grown(n, a.level(), b.size(), a.slots(), a.scale());
    std::memcpy(grown.poly(0), a.poly(0), old * limbs * n * sizeof(u64));
    std::memset(grown.poly(old), 0, (b.size() - old) * limbs * n * sizeof(u64));
    a = std::move(grown);
  }
  const long count = static_cast<long>(b.size() * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    const Modulus& m = ctx_->modulus(i);
    u64* x = a.limb(k, i);
    const u64* y = b.limb(k, i);
    if (subtract) {
      for (std::size_t c = 0; c < n; ++c) x[c] = m.sub(x[c], y[c]);
    } else {
      for (std::size_t c = 0; c < n; ++c) x[c] = m.add(x[c], y[c]);
    }
  }
}

void Evaluator::add_inplace(Ciphertext& a, const Ciphertext& b) const { add_sub(a, b, false); }
void Evaluator::sub_inplace(Ciphertext& a, const Ciphertext& b) const { add_sub(a, b, true); }

void Evaluator::negate_inplace(Ciphertext& a) const {
  check(a);
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  const long count = static_cast<long>(a.size() * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    const Modulus& m = ctx_->modulus(i);
    u64* x = a.limb(k, i);
    for (std::size_t c = 0; c < n; ++c) x[c] = m.neg(x[c]);
  }
}

namespace {
void check_plain(const CkksContext& ctx, const Ciphertext& a, const Plaintext& p, const char* op) {
  if (p.n() != ctx.n() || p.word_count() != p.limbs() * p.n()) throw Error(std::string(op) + ": plaintext does not belong to these parameters");
  if (p.level() < a.level()) {
    throw Error(std::string(op) + ": plaintext at level " + std::to_string(p.level()) +
                " is below the ciphertext's level " + std::to_string(a.level()) + "; encode it at a higher level");
  }
  if (p.slots() != a.slots()) {
    throw Error(std::string(op) + ": plaintext has " + std::to_string(p.slots()) + " slots, ciphertext " +
                std::to_string(a.slots()));
  }
}
}  // namespace

void Evaluator::add_sub_plain(Ciphertext& a, const Plaintext& p, bool subtract) const {
  const char* op = subtract ? "sub_plain" : "add_plain";
  check(a);
  check_plain(*ctx_, a, p, op);
  if (!scales_match(a.scale(), p.scale())) {
    throw Error(std::string(op) + ": scales differ (" + scale_str(a.scale()) + " vs " + scale_str(p.scale()) + ")");
  }
  const std::size_t n = ctx_->n();
  u64* const c0 = a.poly(0);
  const long limbs = static_cast<long>(a.limbs());
#pragma omp parallel for schedule(static)
  for (long i = 0; i < limbs; ++i) {
    const std::size_t ii = static_cast<std::size_t>(i);
    const Modulus& m = ctx_->modulus(ii);
    u64* x = c0 + ii * n;
    const u64* y = p.limb(ii);
    if (subtract) {
      for (std::size_t c = 0; c < n; ++c) x[c] = m.sub(x[c], y[c]);
    } else {
      for (std::size_t c = 0; c < n; ++c) x[c] = m.add(x[c], y[c]);
    }
  }
}

void Evaluator::add_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_sub_plain(a, p, false); }
void Evaluator::sub_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_sub_plain(a, p, true); }

namespace {
void check_scale_room(const CkksContext& ctx, std::size_t level, double scale, const char* op) {
  double log_q = 0;
  for (std::size_t i = 0; i <= level; ++i) log_q += std::log2(static_cast<double>(ctx.modulus(i).value));
  if (std::log2(scale) >= log_q - 1) {
    throw Error(std::string(op) + ": resulting scale " + scale_str(scale) + " does not fit the modulus at level " +
                std::to_string(level) + " (" + std::to_string(static_cast<int>(log_q)) + " bits); rescale first");
  }
}
}  // namespace

void Evaluator::add_const_inplace(Ciphertext& a, double c) const {
  check(a);
  if (!std::isfinite(c)) throw Error("add_const: constant is not finite");
  const double v = c * a.scale();
  if (v != 0) check_scale_room(*ctx_, a.level(), std::fabs(v) * 2, "add_const");
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  // A constant polynomial is the same value at every NTT point.
  std::vector<u64> r(limbs);
  for (std::size_t i = 0; i < limbs; ++i) r[i] = detail::double_to_residue(v, ctx_->modulus(i));
  u64* const c0 = a.poly(0);
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < count; ++i) {
    const Modulus& m = ctx_->modulus(static_cast<std::size_t>(i));
    const u64 ri = r[static_cast<std::size_t>(i)];
    u64* x = c0 + static_cast<std::size_t>(i) * n;
    for (std::size_t j = 0; j < n; ++j) x[j] = m.add(x[j], ri);
  }
}

void Evaluator::multiply_inplace(Ciphertext& a, const Ciphertext& b) const {
  check_pair(a, b, "multiply");
  if (a.size() != 2 || b.size() != 2) throw Error("multiply: relinearize 3-component operands first");
  check_scale_room(*ctx_, a.level(), a.scale() * b.scale(), "multiply");
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  Ciphertext r(n, a.level(), 3, a.slots(), a.scale() * b.scale());
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    const Modulus& m = ctx_->modulus(i);
    const u64 *a0 = a.limb(0, i), *a1 = a.limb(1, i), *b0 = b.limb(0, i), *b1 = b.limb(1, i);
    u64 *d0 = r.limb(0, i), *d1 = r.limb(1, i), *d2 = r.limb(2, i);
    for (std::size_t c = 0; c < n; ++c) {
      d0[c] = m.mul(a0[c], b0[c]);
      d1[c] = m.reduce128(static_cast<u128>(a0[c]) * b1[c] + static_cast<u128>(a1[c]) * b0[c]);
      d2[c] = m.mul(a1[c], b1[c]);
    }
  }
  a = std::move(r);
}

void Evaluator::square_inplace(Ciphertext& a) const {
  check(a);
  if (a.size() != 2) throw Error("square: relinearize a 3-component operand first");
  check_scale_room(*ctx_, a.level(), a.scale() * a.scale(), "square");
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  Ciphertext r(n, a.level(), 3, a.slots(), a.scale() * a.scale());
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    const Modulus& m = ctx_->modulus(i);
    const u64 *a0 = a.limb(0, i), *a1 = a.limb(1, i);
    u64 *d0 = r.limb(0, i), *d1 = r.limb(1, i), *d2 = r.limb(2, i);
    for (std::size_t c = 0; c < n; ++c) {
      d0[c] = m.mul(a0[c], a0[c]);
      const u64 x = m.mul(a0[c], a1[c]);
      d1[c] = m.add(x, x);
      d2[c] = m.mul(a1[c], a1[c]);
    }
  }
  a = std::move(r);
}

void Evaluator::multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const {
  check(a);
  check_plain(*ctx_, a, p, "multiply_plain");
  check_scale_room(*ctx_, a.level(), a.scale() * p.scale(), "multiply_plain");
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  const long count = static_cast<long>(a.size() * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    const Modulus& m = ctx_->modulus(i);
    u64* x = a.limb(k, i);
    const u64* y = p.limb(i);
    for (std::size_t c = 0; c < n; ++c) x[c] = m.mul(x[c], y[c]);
  }
  a.set_scale(a.scale() * p.scale());
}

void Evaluator::multiply_const_inplace(Ciphertext& a, double c, double const_scale) const {
  check(a);
  if (const_scale == 0) const_scale = static_cast<double>(ctx_->modulus(a.level()).value);
  if (!(const_scale >= 1.0) || !std::isfinite(const_scale)) throw Error("multiply_const: scale must be >= 1");
  if (!std::isfinite(c)) throw Error("multiply_const: constant is not finite");
  check_scale_room(*ctx_, a.level(), a.scale() * const_scale, "multiply_const");
  const double v = c * const_scale;
  std::vector<MulConst> w(a.limbs());
  for (std::size_t i = 0; i < a.limbs(); ++i) {
    w[i] = MulConst(detail::double_to_residue(v, ctx_->modulus(i)), ctx_->modulus(i).value);
  }
  multiply_residues(a, w);
  a.set_scale(a.scale() * const_scale);
}

void Evaluator::multiply_integer_inplace(Ciphertext& a, std::int64_t c) const {
  check(a);
  std::vector<MulConst> w(a.limbs());
  for (std::size_t i = 0; i < a.limbs(); ++i) w[i] = MulConst(reduce_signed(c, ctx_->modulus(i)), ctx_->modulus(i).value);
  multiply_residues(a, w);
}

void Evaluator::multiply_residues(Ciphertext& a, const std::vector<MulConst>& w) const {
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  u64* const base = a.poly(0);
  const long count = static_cast<long>(a.size() * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t) % limbs;
    const u64 q = ctx_->modulus(i).value;
    u64* x = base + static_cast<std::size_t>(t) * n;
    for (std::size_t j = 0; j < n; ++j) x[j] = mul_shoup(x[j], w[i].w, w[i].ws, q);
  }
}

void Evaluator::rescale_inplace(Ciphertext& a) const {
  check(a);
  const std::size_t l = a.level(), n = ctx_->n();
  if (l == 0) throw Error("rescale: the ciphertext is at level 0, no prime left to divide by");
  const Modulus& ql = ctx_->modulus(l);
  const u64 half = ql.value >> 1;
  const auto& inv = ctx_->rescale_inv(l);
  std::vector<u64> last(n);
  for (std::size_t k = 0; k < a.size(); ++k) {
    std::memcpy(last.data(), a.limb(k, l), n * sizeof(u64));
    ctx_->ntt(l).inverse(last.data());
    for (std::size_t c = 0; c < n; ++c) last[c] = ql.add(last[c], half);
    const long count = static_cast<long>(l);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < count; ++t) {
      const std::size_t i = static_cast<std::size_t>(t);
      thread_local std::vector<u64> tmp;
      tmp.resize(n);
      const Modulus& m = ctx_->modulus(i);
      const u64 half_i = m.reduce(half);
      for (std::size_t c = 0; c < n; ++c) tmp[c] = m.sub(m.reduce(last[c]), half_i);
      ctx_->ntt(i).forward(tmp.data());
      u64* x = a.limb(k, i);
      for (std::size_t c = 0; c < n; ++c) x[c] = mul_shoup(m.sub(x[c], tmp[c]), inv[i].w, inv[i].ws, m.value);
    }
  }
  a.drop_to_level(l - 1);
  a.set_scale(a.scale() / static_cast<double>(ql.value));
}

void Evaluator::drop_to_level_inplace(Ciphertext& a, std::size_t level) const {
  check(a);
  if (level > a.level()) {
    throw Error("drop_to_level: target level " + std::to_string(level) + " is above the ciphertext's level " +
                std::to_string(a.level()));
  }
  a.drop_to_level(level);
}

void Evaluator::drop_to_level_inplace(Plaintext& p, std::size_t level) const {
  if (level > p.level()) throw Error("drop_to_level: target level is above the plaintext's level");
  p.drop_to_level(level);
}

void Evaluator::align_inplace(Ciphertext& a, Ciphertext& b) const {
  check(a);
  check(b);
  const std::size_t level = std::min(a.level(), b.level());
  a.drop_to_level(level);
  b.drop_to_level(level);
  if (scales_match(a.scale(), b.scale())) return;
  Ciphertext& small = a.scale() < b.scale() ? a : b;
  Ciphertext& big = a.scale() < b.scale() ? b : a;
  if (level == 0) throw Error("align: scales differ and no level is left to adjust them");
  const double q = static_cast<double>(ctx_->modulus(level).value);
  const double factor = std::nearbyint(big.scale() / small.scale() * q);
  multiply_const_inplace(small, 1.0, factor);
  rescale_inplace(small);
  big.drop_to_level(level - 1);
  small.set_scale(big.scale());  // equal up to the rounding of factor (relative 2^-40 or better)
}

// ---- key switching ----

void Evaluator::mod_up(const u64* poly, std::size_t level, std::vector<u64>& digits) const {
  const std::size_t n = ctx_->n(), limbs = level + 1, K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t ext = limbs + K, alpha = ctx_->params().digit_size();
  const KeySwitchLevel& ks = ctx_->key_switch(level);
  thread_local std::vector<u64> coeff, scratch;
  coeff.assign(poly, poly + limbs * n);
  detail::ntt_inverse(*ctx_, coeff.data(), detail::chain_indices(level));
  digits.resize(ks.digit_count * ext * n);
  scratch.resize(alpha * n);
  for (std::size_t d = 0; d < ks.digit_count; ++d) {
    const std::size_t lo = d * alpha, hi = std::min(limbs, lo + alpha);
    u64* e = digits.data() + d * ext * n;
    std::memcpy(e + lo * n, poly + lo * n, (hi - lo) * n * sizeof(u64));
    std::vector<const u64*> in;
    for (std::size_t i = lo; i < hi; ++i) in.push_back(coeff.data() + i * n);
    const auto& targets = ks.mod_up_targets[d];
    std::vector<u64*> out;
    for (std::size_t t : targets) out.push_back(e + t * n);
    ks.mod_up[d].convert(in.data(), out.data(), n, scratch.data());
    const long count = static_cast<long>(targets.size());
#pragma omp parallel for schedule(static)
    for (long t = 0; t < count; ++t) {
      const std::size_t j = targets[static_cast<std::size_t>(t)];
      ctx_->ntt(ext_key_index(level, L, j)).forward(e + j * n);
    }
  }
}

void Evaluator::key_switch_from_digits(const std::vector<u64>& digits, std::size_t level, const KeySwitchKey& key,
                                       const std::uint32_t* perm, u64* out0, u64* out1) const {
  const std::size_t n = ctx_->n(), limbs = level + 1, K = ctx_->special_count(), L = ctx_->chain_size();
  const std::size_t ext = limbs + K;
  const KeySwitchLevel& ks = ctx_->key_switch(level);
  const std::size_t D = ks.digit_count;
  if (key.b.size() < D || key.a.size() < D) throw Error("key-switching key has too few digits for these parameters");
  thread_local std::vector<u64> acc0, acc1;
  acc0.resize(ext * n);
  acc1.resize(ext * n);
  // thread_local names resolve per OpenMP thread: take the caller's buffers by pointer.
  u64* const acc0_p = acc0.data();
  u64* const acc1_p = acc1.data();
  const long count = static_cast<long>(ext);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t j = static_cast<std::size_t>(t), ki = ext_key_index(level, L, j);
    const Modulus& m = ctx_->modulus(ki);
    u64* r0 = acc0_p + j * n;
    u64* r1 = acc1_p + j * n;
    for (std::size_t c = 0; c < n; ++c) {
      u128 s0 = 0, s1 = 0;
      for (std::size_t d = 0; d < D; ++d) {
        const u64* e = digits.data() + (d * ext + j) * n;
        const u64 x = perm ? e[perm[c]] : e[c];
        s0 += static_cast<u128>(x) * key.b[d][ki * n + c];
        s1 += static_cast<u128>(x) * key.a[d][ki * n + c];
      }
      r0[c] = m.reduce128(s0);
      r1[c] = m.reduce128(s1);
    }
  }
  detail::divide_round_by_p(*ctx_, acc0_p, level, out0, true);
  detail::divide_round_by_p(*ctx_, acc1_p, level, out1, true);
}

void Evaluator::relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const {
  check(a);
  if (a.size() == 2) return;
  if (rk.params_id != ctx_->params().id()) throw Error("relinearize: relinearization key was made for other parameters");
  std::vector<u64> digits;
  mod_up(a.poly(2), a.level(), digits);
  key_switch_from_digits(digits, a.level(), rk.key, nullptr, a.poly(0), a.poly(1));
  a.truncate_size(2);
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


void Evaluator::switch_galois(const Ciphertext& a, const std::vector<u64>& digits, std::uint32_t galois_elt,
                              const KeySwitchKey& key, Ciphertext& r) const {
  const std::size_t n = ctx_->n(), limbs = a.limbs(), level = a.level();
  const auto perm = permutation(galois_elt);
  r.reset(n, level, 2, a.slots(), a.scale());
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    const u64* x = a.limb(0, i);
    u64* y = r.limb(0, i);
    for (std::size_t c = 0; c < n; ++c) y[c] = x[(*perm)[c]];
    std::memset(r.limb(1, i), 0, n * sizeof(u64));
  }
  key_switch_from_digits(digits, level, key, perm->data(), r.poly(0), r.poly(1));
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                                  const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  // Resolve every key before the expensive decomposition, so a missing key fails fast.
  std::vector<std::uint32_t> elts(steps.size());
  std::vector<const KeySwitchKey*> keys(steps.size(), nullptr);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    elts[s] = ctx_->galois_element(steps[s]);
    if (elts[s] != 1) keys[s] = &galois_key(gk, elts[s], steps[s]);
  }
  std::vector<Ciphertext> out(steps.size());
  std::vector<u64> digits;
  bool decomposed = false;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    if (elts[s] == 1) {
      out[s] = a;
      continue;
    }
    if (!decomposed) {
      mod_up(a.poly(1), a.level(), digits);
      decomposed = true;
    }
    switch_galois(a, digits, elts[s], *keys[s], out[s]);
  }
  return out;
}

void Evaluator::apply_galois_inplace(Ciphertext& a, std::uint32_t galois_elt, const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  if (galois_elt == 1) return;
  const KeySwitchKey& key = galois_key(gk, galois_elt, 0);
  std::vector<u64> digits;
  mod_up(a.poly(1), a.level(), digits);
  Ciphertext r;
  switch_galois(a, digits, galois_elt, key, r);
  a = std::move(r);
}

void Evaluator::rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const {
  check(a);
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt != 1) galois_key(gk, elt, step);
  apply_galois_inplace(a, elt, gk);
}

void Evaluator::conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const {
  apply_galois_inplace(a, ctx_->conjugation_element(), gk);
}

}  // namespace hecnn::ckks
