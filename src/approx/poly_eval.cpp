#include "approx/poly_eval.h"

#include <cmath>
#include <map>
#include <string>

#include "common/error.h"

namespace hecnn::approx {

namespace {

int ceil_log2(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

int degree_of(const std::vector<double>& p) {
  for (std::size_t i = p.size(); i-- > 1;) {
    if (p[i] != 0) return static_cast<int>(i);
  }
  return 0;
}

// Depth at which basis element T_i is produced: T_{2^j} by repeated squaring, other T_i as the
// product of the largest power of two below i and the remainder.
int element_depth(int i) { return i <= 1 ? 0 : ceil_log2(i); }

// p = q * T_g + r with deg r < g, for deg p < 2g.
void divide(Basis basis, const std::vector<double>& p, int g, std::vector<double>& q, std::vector<double>& r) {
  const int d = degree_of(p);
  q.assign(static_cast<std::size_t>(d - g + 1), 0.0);
  r.assign(static_cast<std::size_t>(g), 0.0);
  for (int i = 0; i < g; ++i) r[static_cast<std::size_t>(i)] = p[static_cast<std::size_t>(i)];
  if (basis == Basis::Power) {
    for (int i = g; i <= d; ++i) q[static_cast<std::size_t>(i - g)] = p[static_cast<std::size_t>(i)];
    return;
  }
  // T_g = T_0 T_g, and for g < i < 2g: T_i = 2 T_{i-g} T_g - T_{2g-i}.
  q[0] = p[static_cast<std::size_t>(g)];
  for (int i = g + 1; i <= d; ++i) {
    q[static_cast<std::size_t>(i - g)] = 2 * p[static_cast<std::size_t>(i)];
    r[static_cast<std::size_t>(2 * g - i)] -= p[static_cast<std::size_t>(i)];
  }
}

// The recursive evaluation, written once for any backend B (ciphertexts or doubles):
//   B::Value; level(v), scale(v), prime(level); product(a, b) (relinearized, not rescaled);
//   rescale(v); mul_int(v, k); add_const(v, c); add(a, b); sub(a, b);
//   scaled(v, c, level, const_scale) (copy dropped to level, times c at const_scale, no rescale);
//   set_scale(v, s).
template <class B>
class Engine {
 public:
  using Value = typename B::Value;

  Engine(const B& be, const PolyEvalPlan& plan, const Value& x) : be_(be), plan_(plan) {
    in_level_ = be_.level(x);
    powers_.emplace(1, x);
  }
  Engine(const B& be, const PolyEvalPlan& plan, Value&& x) : be_(be), plan_(plan) {
    in_level_ = be_.level(x);
    powers_.emplace(1, std::move(x));
  }

  Value run() {
    const double in_scale = be_.scale(powers_.at(1));
    if (plan_.prescale != 1.0) {
      Value& x = powers_.at(1);
      x = be_.scaled(x, plan_.prescale, in_level_, be_.prime(in_level_));
      be_.rescale(x);
      be_.set_scale(x, in_scale);
      --in_level_;
    }
    if (plan_.monic) return monic(plan_.coeffs, !plan_.relinearize_last);
    return eval(plan_.coeffs, in_level_ - minimal_depth(plan_.degree, false), in_scale);
  }

 private:
  bool chebyshev() const { return plan_.basis == Basis::Chebyshev; }

  const Value& power(int i) {
    if (auto it = powers_.find(i); it != powers_.end()) return it->second;
    Value r;
    if ((i & (i - 1)) == 0) {
      const Value& h = power(i / 2);
      r = be_.product(h, h, false);
      if (chebyshev()) {  // T_2h = 2 T_h^2 - 1
        be_.mul_int(r, 2);
        be_.add_const(r, -1.0);
      }
    } else {
      int a = 1;
      while (2 * a < i) a *= 2;
      const Value& ta = power(a);
      const Value& tb = power(i - a);
      r = be_.product(ta, tb, false);
      if (chebyshev()) {  // T_{a+b} = 2 T_a T_b - T_{a-b}, subtracted before the rescale
        be_.mul_int(r, 2);
        const Value& tc = power(a - (i - a));
        be_.sub(r, be_.scaled(tc, 1.0, be_.level(r), be_.scale(r) / be_.scale(tc)));
      }
    }
    be_.rescale_product(r, true);
    return powers_.emplace(i, std::move(r)).first->second;
  }

  // sum_i p_i T_i evaluated to exactly (level, scale).
  Value eval(const std::vector<double>& p, int level, double scale) {
    const int d = degree_of(p);
    const int budget = in_level_ - level;
    if (d < plan_.baby_steps && leafable(p, level + 1) && budget >= 1) return combine(p, level, scale);
    const int g = 1 << (ceil_log2(d) - 1);
    std::vector<double> q, r;
    divide(plan_.basis, p, g, q, r);
    const Value& tg = power(g);
    const double qp = be_.prime(level + 1);
    Value prod = be_.product(eval(q, level + 1, scale * qp / be_.scale(tg)), tg, false);
    be_.set_scale(prod, scale * qp);
    finish(prod, r, true);
    be_.set_scale(prod, scale);
    return prod;
  }

  // Whether sum_i p_i T_i can be formed at raw_level (before a rescale) from available elements.
  bool leafable(const std::vector<double>& p, int raw_level) const {
    const int d = degree_of(p);
    if (d >= plan_.baby_steps) return false;
    for (int i = 1; i <= d; ++i) {
      if (p[static_cast<std::size_t>(i)] != 0 && in_level_ - element_depth(i) < raw_level) return false;
    }
    return true;
  }

  // Baby step: a linear combination of available basis elements, one rescale.
  Value combine(const std::vector<double>& p, int level, double scale) {
    Value acc = combine_raw(p, level + 1, scale * be_.prime(level + 1));
    be_.rescale(acc);
    be_.set_scale(acc, scale);
    return acc;
  }

  // sum_i p_i T_i at raw_level and exactly raw_scale, not rescaled: each constant is encoded at the
  // scale that lands its term there.
  Value combine_raw(const std::vector<double>& p, int raw_level, double raw_scale) {
    const int d = degree_of(p);
    int first = 1;
    while (first <= d && p[static_cast<std::size_t>(first)] == 0) ++first;
    if (first > d) throw Error("polynomial evaluation: internal error (empty linear combination)");
    const Value& t = power(first);
    Value acc = be_.scaled(t, p[static_cast<std::size_t>(first)], raw_level, raw_scale / be_.scale(t));
    be_.set_scale(acc, raw_scale);
    add_terms(acc, p, first + 1);
    return acc;
  }

  // acc += sum_{i >= from} p_i T_i + p_0 (from >= 1), each term scaled to land at acc's scale: one
  // pass per term, no temporary.
  void add_terms(Value& acc, const std::vector<double>& p, int from) {
    for (int i = from; i <= degree_of(p); ++i) {
      const double c = p[static_cast<std::size_t>(i)];
      if (c == 0) continue;
      const Value& t = power(i);
      be_.add_scaled(acc, t, c, be_.scale(acc) / be_.scale(t));
    }
    if (p[0] != 0) be_.add_const(acc, p[0]);
  }

  // prod (a product, neither relinearized nor rescaled) + r, with one rescale (relinearizing in the
  // same step when `relin`): r's terms join the product before the rescale when they are available
  // at its level, else r is evaluated after it.
  void finish(Value& prod, const std::vector<double>& r, bool relin) {
    const int raw_level = be_.level(prod);
    if (degree_of(r) == 0) {
      if (r[0] != 0) be_.add_const(prod, r[0]);
      be_.rescale_product(prod, relin);
    } else if (leafable(r, raw_level)) {
      add_terms(prod, r, 1);  // r's terms straight into the product
      be_.rescale_product(prod, relin);
    } else {
      be_.rescale_product(prod, relin);
      be_.add(prod, eval(r, be_.level(prod), be_.scale(prod)));
    }
  }

  // p with an integer leading coefficient (1, or a power of two in the Chebyshev basis): no
  // constant multiplication on the critical path, depth ceil(log2(deg p)).
  Value monic(const std::vector<double>& p, bool lazy = false) {
    const int d = degree_of(p);
    const auto lead = static_cast<std::int64_t>(p[static_cast<std::size_t>(d)]);
    bool bare = true;  // p = lead * T_d + p_0
    for (int i = 1; i < d; ++i) bare = bare && p[static_cast<std::size_t>(i)] == 0;
    if (bare) {
      Value v = power(d);
      if (lead != 1) be_.mul_int(v, lead);
      if (p[0] != 0) be_.add_const(v, p[0]);
      return v;
    }
    if (!chebyshev() && d == 4 && lead == 1) {
      // x^4 + a x^3 + b x^2 + c x + d0 = (x^2 + a/2 x + e)^2 + (c - a e) x + (d0 - e^2) with
      // e = (b - a^2/4) / 2: two products (the quadratic, its square) where dividing by x^2 takes
      // three (x^2, the quotient, their product), at the same depth.
      const double a = p[3], b = p[2], c = p[1], d0 = p[0];
      const double e = (b - a * a / 4) / 2;
      const Value y = monic({e, a / 2, 1.0});
      Value prod = be_.product(y, y, false);
      finish(prod, {d0 - e * e, c - a * e}, !lazy);
      return prod;
    }
    const int g = 1 << (ceil_log2(d) - 1);
    std::vector<double> q, r;
    divide(plan_.basis, p, g, q, r);
    Value prod = be_.product(monic(q), power(g), false);
    finish(prod, r, !lazy);
    return prod;
  }

  const B& be_;
  const PolyEvalPlan& plan_;
  int in_level_ = 0;
  std::map<int, Value> powers_;  // node-based: references stay valid as elements are added
};

class CiphertextBackend {
 public:
  using Value = ckks::Ciphertext;
  CiphertextBackend(const ckks::Evaluator& ev, const ckks::RelinKeys& rk) : ev_(ev), rk_(rk) {}

  int level(const Value& v) const { return static_cast<int>(v.level()); }
  double scale(const Value& v) const { return v.scale(); }
  double prime(int level) const { return static_cast<double>(ev_.context().modulus(static_cast<std::size_t>(level)).value); }
  Value product(const Value& a, const Value& b, bool relinearize = true) const {
    Value r;
    if (&a == &b) {
      ev_.square(a, r);
    } else if (a.level() == b.level()) {
      ev_.multiply(a, b, r);
    } else if (a.level() < b.level()) {
      r = b;
      ev_.drop_to_level_inplace(r, a.level());
      ev_.multiply_inplace(r, a);
    } else {
      r = a;
      ev_.drop_to_level_inplace(r, b.level());
      ev_.multiply_inplace(r, b);
    }
    if (relinearize) ev_.relinearize_inplace(r, rk_);
    return r;
  }
  void rescale(Value& v) const { ev_.rescale_inplace(v); }
  // A product's rescale, relinearizing in the same step (one division by P q_l) when `relin`.
  void rescale_product(Value& v, bool relin) const {
    if (relin) {
      ev_.relinearize_rescale_inplace(v, rk_);
    } else {
      ev_.rescale_inplace(v);
    }
  }
  void mul_int(Value& v, std::int64_t k) const { ev_.multiply_integer_inplace(v, k); }
  void add_const(Value& v, double c) const { ev_.add_const_inplace(v, c); }
  void add(Value& a, const Value& b) const { ev_.add_inplace(a, b); }
  void sub(Value& a, const Value& b) const { ev_.sub_inplace(a, b); }
  void add_scaled(Value& acc, const Value& v, double c, double const_scale) const {
    ev_.multiply_const_add_inplace(acc, v, c, const_scale);
  }
  Value scaled(const Value& v, double c, int level, double const_scale) const {
    Value r;
    ev_.multiply_const(v, c, const_scale, static_cast<std::size_t>(level), r);
    return r;
  }
  void set_scale(Value& v, double s) const { v.set_scale(s); }

 private:
  const ckks::Evaluator& ev_;
  const ckks::RelinKeys& rk_;
};

// Doubles with the level and scale bookkeeping of the encrypted run (nominal 2^40 primes, or the
// chain's own).
struct Tracked {
  double v = 0;
  int level = 0;
  double scale = 1;
};

class DoubleBackend {
 public:
  using Value = Tracked;
  mutable PolyEvalStats stats;
  DoubleBackend() = default;
  explicit DoubleBackend(std::vector<double> primes) : primes_(std::move(primes)) {}

  int level(const Value& v) const { return v.level; }
  double scale(const Value& v) const { return v.scale; }
  double prime(int level) const {
    if (primes_.empty()) return 0x1p40;
    if (level < 0 || static_cast<std::size_t>(level) >= primes_.size()) throw Error("polynomial evaluation: internal error (no such prime)");
    return primes_[static_cast<std::size_t>(level)];
  }
  Value product(const Value& a, const Value& b, bool = true) const {
    ++stats.products;
    return {a.v * b.v, std::min(a.level, b.level), a.scale * b.scale};
  }
  void rescale(Value& v) const {
    if (v.level == 0) throw Error("polynomial evaluation: internal error (rescale at level 0)");
    ++stats.rescales;
    v.scale /= prime(v.level);
    --v.level;
  }
  void rescale_product(Value& v, bool) const { rescale(v); }
  void mul_int(Value& v, std::int64_t k) const { v.v *= static_cast<double>(k); }
  void add_const(Value& v, double c) const { v.v += c; }
  void add(Value& a, const Value& b) const {
    check(a, b);
    a.v += b.v;
  }
  void add_scaled(Value& acc, const Value& v, double c, double const_scale) const {
    add(acc, scaled(v, c, acc.level, const_scale));
  }
  void sub(Value& a, const Value& b) const {
    check(a, b);
    a.v -= b.v;
  }
  Value scaled(const Value& v, double c, int level, double const_scale) const {
    if (level > v.level) throw Error("polynomial evaluation: internal error (raising a level)");
    ++stats.constant_products;
    return {v.v * c, level, v.scale * const_scale};
  }
  void set_scale(Value& v, double s) const { v.scale = s; }

 private:
  static void check(const Value& a, const Value& b) {
    if (a.level != b.level || std::fabs(a.scale - b.scale) > 1e-9 * a.scale) {
      throw Error("polynomial evaluation: internal error (terms at different levels or scales)");
    }
  }
  std::vector<double> primes_;
};

}  // namespace

int minimal_depth(int degree, bool monic) {
  if (degree < 1) return 0;
  return monic ? ceil_log2(degree) : ceil_log2(degree + 1);
}

PolyEvalPlan plan_polynomial(const Polynomial& p, InputForm input, bool monic) {
  const int d = p.degree();
  if (d < 1) throw Error("polynomial evaluation: the polynomial is constant; nothing to evaluate");
  PolyEvalPlan plan;
  if (input == InputForm::Raw) {
    plan.basis = Basis::Power;
    plan.coeffs = p.to_power().coeffs();
  } else {
    plan.basis = Basis::Chebyshev;
    plan.coeffs = p.to_chebyshev().coeffs();
    if (input == InputForm::NormalizeFirst) plan.prescale = 1.0 / p.range();
  }
  plan.coeffs.resize(static_cast<std::size_t>(d + 1));
  plan.degree = degree_of(plan.coeffs);
  if (plan.degree != d) throw Error("polynomial evaluation: leading coefficient vanished in the change of basis");
  plan.monic = monic;
  if (monic) {
    plan.factor = plan.coeffs[static_cast<std::size_t>(d)];
    for (auto& c : plan.coeffs) c /= plan.factor;
    plan.coeffs[static_cast<std::size_t>(d)] = 1.0;
  }
  plan.depth = minimal_depth(d, monic) + (plan.prescale != 1.0 ? 1 : 0);
  const int total = minimal_depth(d, false);
  plan.baby_steps = 1 << ((total + 1) / 2);
  return plan;
}

ckks::Ciphertext PolynomialEvaluator::evaluate(const ckks::Ciphertext& x, const PolyEvalPlan& plan) const {
  return evaluate(ckks::Ciphertext(x), plan);
}

ckks::Ciphertext PolynomialEvaluator::evaluate(ckks::Ciphertext&& x, const PolyEvalPlan& plan) const {
  if (x.size() != 2) throw Error("polynomial evaluation: relinearize the input first (it has " + std::to_string(x.size()) + " components)");
  if (static_cast<int>(x.level()) < plan.depth) {
    throw Error("polynomial evaluation: degree " + std::to_string(plan.degree) + (plan.monic ? " (monic)" : "") +
                " needs " + std::to_string(plan.depth) + " levels, the ciphertext has " + std::to_string(x.level()));
  }
  CiphertextBackend be(ev_, rk_);
  return Engine<CiphertextBackend>(be, plan, std::move(x)).run();
}

double simulate(const PolyEvalPlan& plan, double x) {
  DoubleBackend be;
  return Engine<DoubleBackend>(be, plan, Tracked{x, plan.depth, 0x1p40}).run().v;
}

std::vector<double> simulate(const PolyEvalPlan& plan, const std::vector<double>& xs) {
  std::vector<double> out(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) out[i] = simulate(plan, xs[i]);
  return out;
}

double output_scale(const PolyEvalPlan& plan, double scale, int level, const std::vector<double>& primes) {
  DoubleBackend be(primes);
  return Engine<DoubleBackend>(be, plan, Tracked{0.5, level, scale}).run().scale;
}

PolyEvalStats count_operations(const PolyEvalPlan& plan) {
  DoubleBackend be;
  const Tracked out = Engine<DoubleBackend>(be, plan, Tracked{0.5, plan.depth, 0x1p40}).run();
  if (out.level != 0) throw Error("polynomial evaluation: internal error (depth mismatch)");
  return be.stats;
}

}  // namespace hecnn::approx
