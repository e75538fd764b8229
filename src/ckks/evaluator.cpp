#include "ckks/evaluator.h"

#include <cmath>
#include <set>
#include <cstring>
#include <string>

#include "common/error.h"
#include "ring/kernels.h"
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

namespace {
constexpr double kScaleTolerance = 1e-9;

bool scales_match(double a, double b) { return std::fabs(a - b) <= kScaleTolerance * std::max(a, b); }

std::string scale_str(double s) { return "2^" + std::to_string(std::log2(s)); }

// A per-thread spare ciphertext: out-of-place results are built in it and swapped into the operand,
// whose old storage becomes the next spare. In steady state nothing is allocated.
Ciphertext& spare() {
  thread_local Ciphertext c;
  return c;
}

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
    Ciphertext& r = spare();
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
    Ciphertext& r = spare();
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
  Ciphertext& r = spare();
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

// ---- key switching ----

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
  Ciphertext& r = spare();
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
  Ciphertext& r = spare();
  rotate_one(a, galois_elt, key, r);
  std::swap(a, r);
}

void Evaluator::rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const {
  check(a);
  if (a.size() != 2) throw Error("rotate: relinearize the ciphertext first");
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt == 1) return;
  const KeySwitchKey& key = galois_key(gk, elt, step);
  Ciphertext& r = spare();
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

void Evaluator::conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const {
  apply_galois_inplace(a, ctx_->conjugation_element(), gk);
}

}  // namespace hecnn::ckks
