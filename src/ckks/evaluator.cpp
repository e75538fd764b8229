// ckks::Evaluator, part one: operand checks, addition, plaintext and constant products, the
// plaintext sums behind sparse products, rescaling and levels. Key switching (relinearization,
// rotations, hoisting) is in evaluator_keyswitch.cpp.
#include "ckks/evaluator.h"

#include <cmath>
#include <set>
#include <cstring>
#include <string>

#include "common/error.h"
#include "ring/kernels.h"
#include "ckks/evaluator_internal.h"
#include "ckks/polyops.h"
#include "ring/scratch.h"
#include "common/threads.h"

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

// One per thread, shared by evaluator.cpp and evaluator_keyswitch.cpp (declared in
// ckks/evaluator_internal.h).
Ciphertext& detail::spare() {
  thread_local Ciphertext c;
  return c;
}

namespace {
constexpr double kScaleTolerance = 1e-9;

bool scales_match(double a, double b) { return std::fabs(a - b) <= kScaleTolerance * std::max(a, b); }

std::string scale_str(double s) { return "2^" + std::to_string(std::log2(s)); }
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
      ring::kernels::sub_mod(x, y, x, n, m.value);
    } else {
      ring::kernels::add_mod(x, y, x, n, m.value);
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
    ring::kernels::neg_mod(x, x, n, m.value);
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
      ring::kernels::sub_mod(x, y, x, n, m.value);
    } else {
      ring::kernels::add_mod(x, y, x, n, m.value);
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
    ring::kernels::add_scalar_mod(x, ri, x, n, m.value);
  }
}

void Evaluator::multiply(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const {
  check_pair(a, b, "multiply");
  if (a.size() != 2 || b.size() != 2) throw Error("multiply: relinearize 3-component operands first");
  check_scale_room(*ctx_, a.level(), a.scale() * b.scale(), "multiply");
  if (&out == &a || &out == &b) {
    Ciphertext& r = detail::spare();
    multiply(a, b, r);
    std::swap(out, r);
    return;
  }
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  out.reset(n, a.level(), 3, a.slots(), a.scale() * b.scale());
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    ring::kernels::tensor_mod(a.limb(0, i), a.limb(1, i), b.limb(0, i), b.limb(1, i), out.limb(0, i), out.limb(1, i),
                        out.limb(2, i), n, ctx_->modulus(i));
  }
}

void Evaluator::multiply_inplace(Ciphertext& a, const Ciphertext& b) const { multiply(a, b, a); }

void Evaluator::square_inplace(Ciphertext& a) const { square(a, a); }

void Evaluator::square(const Ciphertext& a, Ciphertext& out) const {
  check(a);
  if (a.size() != 2) throw Error("square: relinearize a 3-component operand first");
  check_scale_room(*ctx_, a.level(), a.scale() * a.scale(), "square");
  if (&out == &a) {
    Ciphertext& r = detail::spare();
    square(a, r);
    std::swap(out, r);
    return;
  }
  const std::size_t n = ctx_->n(), limbs = a.limbs();
  out.reset(n, a.level(), 3, a.slots(), a.scale() * a.scale());
  const long count = static_cast<long>(limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t i = static_cast<std::size_t>(t);
    ring::kernels::square_mod(a.limb(0, i), a.limb(1, i), out.limb(0, i), out.limb(1, i), out.limb(2, i), n,
                              ctx_->modulus(i));
  }
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
    ring::kernels::mul_mod(x, p.limb(i), x, n, m);
  }
  a.set_scale(a.scale() * p.scale());
}

void Evaluator::multiply_plain_sums(const std::vector<std::vector<PlainProduct>>& terms, std::vector<Ciphertext>& out) const {
  const Ciphertext* first = nullptr;
  double scale = 0;
  std::set<const Ciphertext*> sources;
  for (const auto& group : terms) {
    if (group.empty()) throw Error("multiply_plain_sums: an empty sum");
    for (const auto& [a, p] : group) {
      check(*a);
      check_plain(*ctx_, *a, *p, "multiply_plain");
      if (!first) {
        first = a;
        scale = a->scale() * p->scale();
      }
      if (a->level() != first->level() || a->size() != first->size() || a->slots() != first->slots() ||
          !scales_match(a->scale() * p->scale(), scale)) {
        throw Error("multiply_plain_sums: the products differ in level, size, slots or scale");
      }
      sources.insert(a);
    }
  }
  out.resize(terms.size());
  if (!first) return;
  check_scale_room(*ctx_, first->level(), scale, "multiply_plain");
  const std::size_t n = ctx_->n(), limbs = first->limbs(), comps = first->size();
  for (auto& o : out) o.reset(n, first->level(), comps, first->slots(), scale);
  // Chunk: the chunks of every source and every sum within about 1 MiB (L2).
  const std::size_t per_coeff = (sources.size() + terms.size()) * comps * sizeof(u64);
  std::size_t chunk = 64;
  while (chunk < n && chunk * 2 * per_coeff <= (std::size_t{1} << 20)) chunk *= 2;
  chunk = std::min(chunk, n);
  const std::size_t chunks = n / chunk;
  const long tasks = static_cast<long>(limbs * chunks);
  if (comps == 2) {
    // Two components: the key-switching inner product kernel, which sums up to 64 products per
    // coefficient before one reduction.
    constexpr std::size_t kTerms = 64;
#pragma omp parallel
    {
      std::vector<u64> tmp(2 * chunk);
      const u64* dd[kTerms];
      const u64* bb[kTerms];
      const u64* aa[kTerms];
#pragma omp for schedule(static)
      for (long t = 0; t < tasks; ++t) {
        const std::size_t i = static_cast<std::size_t>(t) / chunks, c = static_cast<std::size_t>(t) % chunks * chunk;
        const Modulus& m = ctx_->modulus(i);
        for (std::size_t g = 0; g < terms.size(); ++g) {
          const auto& group = terms[g];
          u64* o0 = out[g].limb(0, i) + c;
          u64* o1 = out[g].limb(1, i) + c;
          for (std::size_t j0 = 0; j0 < group.size(); j0 += kTerms) {
            const std::size_t d = std::min(kTerms, group.size() - j0);
            for (std::size_t j = 0; j < d; ++j) {
              dd[j] = group[j0 + j].second->limb(i) + c;
              bb[j] = group[j0 + j].first->limb(0, i) + c;
              aa[j] = group[j0 + j].first->limb(1, i) + c;
            }
            if (j0 == 0) {
              ring::kernels::ks_inner_product(dd, bb, aa, d, nullptr, o0, o1, chunk, m);
            } else {
              ring::kernels::ks_inner_product(dd, bb, aa, d, nullptr, tmp.data(), tmp.data() + chunk, chunk, m);
              ring::kernels::add_mod(o0, tmp.data(), o0, chunk, m.value);
              ring::kernels::add_mod(o1, tmp.data() + chunk, o1, chunk, m.value);
            }
          }
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tasks; ++t) {
    const std::size_t i = static_cast<std::size_t>(t) / chunks, c = static_cast<std::size_t>(t) % chunks * chunk;
    const Modulus& m = ctx_->modulus(i);
    for (std::size_t g = 0; g < terms.size(); ++g) {
      const auto& group = terms[g];
      for (std::size_t k = 0; k < comps; ++k) {
        ring::kernels::mul_mod(group[0].first->limb(k, i) + c, group[0].second->limb(i) + c, out[g].limb(k, i) + c, chunk, m);
      }
      for (std::size_t j = 1; j < group.size(); ++j) {
        const u64* pj = group[j].second->limb(i) + c;
        for (std::size_t k = 0; k < comps; ++k) {
          u64* o = out[g].limb(k, i) + c;
          ring::kernels::mul_add_mod(group[j].first->limb(k, i) + c, pj, o, o, chunk, m);
        }
      }
    }
  }
}

void Evaluator::multiply_const_inplace(Ciphertext& a, double c, double const_scale) const {
  multiply_const(a, c, const_scale, a.level(), a);
}

std::vector<MulConst> Evaluator::const_multipliers(double c, double const_scale, std::size_t level) const {
  if (!(const_scale >= 1.0) || !std::isfinite(const_scale)) throw Error("multiply_const: scale must be >= 1");
  if (!std::isfinite(c)) throw Error("multiply_const: constant is not finite");
  const double v = c * const_scale;
  std::vector<MulConst> w(level + 1);
  for (std::size_t i = 0; i <= level; ++i) {
    w[i] = MulConst(detail::double_to_residue(v, ctx_->modulus(i)), ctx_->modulus(i).value);
  }
  return w;
}

void Evaluator::multiply_const(const Ciphertext& a, double c, double const_scale, std::size_t level,
                               Ciphertext& out) const {
  check(a);
  if (level > a.level()) {
    throw Error("multiply_const: target level " + std::to_string(level) + " is above the ciphertext's level " +
                std::to_string(a.level()));
  }
  if (const_scale == 0) const_scale = static_cast<double>(ctx_->modulus(level).value);
  const std::vector<MulConst> w = const_multipliers(c, const_scale, level);
  check_scale_room(*ctx_, level, a.scale() * const_scale, "multiply_const");
  const std::size_t limbs = level + 1, n = ctx_->n(), size = a.size();
  if (&out == &a) {
    out.drop_to_level(level);
    multiply_residues(out, w);
    out.set_scale(out.scale() * const_scale);
    return;
  }
  out.reset(n, level, size, a.slots(), a.scale() * const_scale);
  const long count = static_cast<long>(size * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    ring::kernels::mul_scalar_mod(a.limb(k, i), w[i], out.limb(k, i), n, ctx_->modulus(i).value);
  }
}

void Evaluator::multiply_const_add_inplace(Ciphertext& acc, const Ciphertext& a, double c, double const_scale) const {
  check(acc);
  check(a);
  const std::size_t level = acc.level();
  if (a.level() < level) throw Error("multiply_const_add: the term is below the accumulator's level");
  if (a.size() > acc.size() || a.slots() != acc.slots()) throw Error("multiply_const_add: the operands differ in size or slots");
  const std::vector<MulConst> w = const_multipliers(c, const_scale, level);
  if (!scales_match(acc.scale(), a.scale() * const_scale)) {
    throw Error("multiply_const_add: scales differ (" + scale_str(acc.scale()) + " vs " + scale_str(a.scale() * const_scale) + ")");
  }
  const std::size_t limbs = level + 1, n = ctx_->n();
  const long count = static_cast<long>(a.size() * limbs);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / limbs, i = static_cast<std::size_t>(t) % limbs;
    ring::kernels::mul_scalar_add_mod(a.limb(k, i), w[i], acc.limb(k, i), acc.limb(k, i), n, ctx_->modulus(i).value);
  }
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
    u64* x = base + static_cast<std::size_t>(t) * n;
    ring::kernels::mul_scalar_mod(x, w[i], x, n, ctx_->modulus(i).value);
  }
}

void Evaluator::rescale_inplace(Ciphertext& a) const {
  Ciphertext& r = detail::spare();
  rescale(a, r);
  std::swap(a, r);
}

void Evaluator::rescale(const Ciphertext& a, Ciphertext& r) const {
  if (&a == &r) throw Error("rescale: the output must not be the input (use rescale_inplace)");
  check(a);
  const std::size_t l = a.level(), n = ctx_->n(), size = a.size();
  if (l == 0) throw Error("rescale: the ciphertext is at level 0, no prime left to divide by");
  const Modulus& ql = ctx_->modulus(l);
  const u64 half = ql.value >> 1;
  const auto& inv = ctx_->rescale_inv(l);
  // Top limb of each component in coefficient form, + floor(q_l / 2) so the division rounds.
  u64* const last = ring::scratch(ring::Scratch::coeff, size * n);
  {
    const long count = static_cast<long>(size);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < count; ++k) {
      u64* x = last + static_cast<std::size_t>(k) * n;
      ctx_->ntt(l).inverse(a.limb(static_cast<std::size_t>(k), l), x);
      ring::kernels::add_scalar_mod(x, half, x, n, ql.value);
    }
  }
  // Every other limb: x' = (x - NTT(last - floor(q_l/2) mod q_i)) * q_l^-1, the subtraction done as
  // the forward transform's offset. Written straight into the new layout (a spare ciphertext).
  r.reset(n, l - 1, size, a.slots(), a.scale() / static_cast<double>(ql.value));
  const long count = static_cast<long>(size * l);
  const ring::TeamScratch team(n);
#pragma omp parallel for schedule(static)
  for (long t = 0; t < count; ++t) {
    const std::size_t k = static_cast<std::size_t>(t) / l, i = static_cast<std::size_t>(t) % l;
    const Modulus& m = ctx_->modulus(i);
    u64* tmp = team.mine();
    const u64* src = last + k * n;
    if (ql.value >= 3 * m.value) {  // else values below q_l, plus the offset below q_i, stay below 4 q_i
      ring::kernels::reduce_mod(src, tmp, n, m);
      src = tmp;
    }
    ctx_->ntt(i).forward(src, tmp, m.value - m.reduce(half));
    ring::kernels::sub_mul_scalar_mod(a.limb(k, i), tmp, 0, inv[i], r.limb(k, i), n, m.value, false);
  }
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

}  // namespace hecnn::ckks
