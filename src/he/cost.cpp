#include "he/cost.h"

#include "he/backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "ckks/ckks.h"
#include "common/error.h"
#include "common/threads.h"

namespace hecnn::he {

namespace {

template <typename F>
double best_of(int runs, F&& f) {
  double best = 1e300;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Restores the thread count on the way out.
class OneThread {
 public:
  OneThread() : saved_(hecnn::num_threads()) { hecnn::set_num_threads(1); }
  ~OneThread() { hecnn::set_num_threads(saved_); }

 private:
  int saved_;
};

}  // namespace

UnitCosts measure_unit_costs(const ckks::CkksParameters& params) {
  const OneThread one;
  const auto ctx = ckks::CkksContext::create(params);
  ckks::KeyGenerator keygen(ctx);
  const ckks::GaloisKeys gk = keygen.create_galois_keys({1, 2, 3}, false);
  const ckks::CkksEncoder encoder(ctx);
  const ckks::Encryptor encryptor(ctx, keygen.secret_key());
  const ckks::Evaluator ev(ctx);
  const std::size_t slots = params.max_slots(), top = params.max_level();
  std::vector<double> v(slots);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> d(-1, 1);
  for (auto& x : v) x = d(rng);
  const double scale = std::ldexp(1.0, 30);
  ckks::Plaintext pt;
  encoder.encode(v, scale, top, pt);
  const ckks::Ciphertext ct = encryptor.encrypt(pt);
  UnitCosts u;
  ckks::Ciphertext r;
  u.key_switch = best_of(3, [&] { ev.rotate(ct, 1, gk, r); });
  std::vector<ckks::Ciphertext> three;
  const double h3 = best_of(3, [&] { ev.rotate_hoisted(ct, {1, 2, 3}, gk, three); });
  u.hoisted = std::max(0.2 * u.key_switch, (h3 - u.key_switch) / 2);
  // Distinct plaintexts (more than the caches hold), as a linear stage streams its diagonals.
  std::vector<ckks::Plaintext> ws(48);
  for (auto& w : ws) encoder.encode(v, static_cast<double>(ctx->modulus(top).value), top, w);
  std::vector<std::vector<ckks::Evaluator::PlainProduct>> terms(4);
  for (std::size_t k = 0; k < ws.size(); ++k) terms[k % 4].push_back({&ct, &ws[k]});
  std::vector<ckks::Ciphertext> sums;
  u.plain_product = best_of(2, [&] { ev.multiply_plain_sums(terms, sums); }) / static_cast<double>(ws.size());
  ckks::Plaintext w;
  u.encode = best_of(3, [&] { encoder.encode(v, scale, top, w); });
  const std::vector<ckks::Ciphertext> in(32, ct);
  ckks::SparseMatrix m;
  for (std::uint32_t o = 0; o < 16; ++o) {
    for (std::uint32_t i = 0; i < 32; ++i) {
      m.col.push_back(i);
      m.weight.push_back(0.25 + 0.01 * i);
    }
    m.row_start.push_back(static_cast<std::uint32_t>(m.col.size()));
    m.bias.push_back(0.0);
  }
  u.sparse_term = best_of(2, [&] { (void)ev.multiply_sparse(in, m, 1024.0); }) / 512;
  ckks::Ciphertext c = ct;
  u.rescale = best_of(3, [&] {
    c = ct;
    ev.rescale_inplace(c);
  });
  u.multiply = best_of(3, [&] { ev.multiply(ct, ct, c); });
  return u;
}

CostModel::CostModel(const UnitCosts& u, const ckks::CkksParameters& p)
    : unit(u),
      top_limbs(static_cast<double>(p.max_level() + 1)),
      special(static_cast<double>(p.p().size())),
      digits(static_cast<double>(p.digits())),
      alpha(std::ceil(top_limbs / digits)) {}

double CostModel::rks(std::size_t level) const {
  const double limbs = static_cast<double>(level + 1);
  return std::ceil(limbs / alpha) * (limbs + special) / (digits * (top_limbs + special));
}

double CostModel::activation(const ActivationOp& a, std::size_t level) const {
  const int mults = a.poly.depth + std::max(0, a.poly.baby_steps - 2);
  double one = 0;
  for (int k = 0; k < mults; ++k) {
    const std::size_t l = level - std::min<std::size_t>(level, static_cast<std::size_t>(k));
    one += unit.multiply * r(l) + unit.key_switch * rks(l) + unit.rescale * r(l);
  }
  return one;
}

TimeEstimate estimate_time(const HePlan& plan, const UnitCosts& u, int threads, const std::vector<bool>& preencoded) {
  if (!plan.params) throw Error("time estimate: the plan has no parameters");
  const CostModel cost(u, *plan.params);
  const Backend& be = backend(plan.layout);
  const double speedup = threads > 1 ? 0.85 * threads : 1.0;
  TimeEstimate t;
  t.images = plan.batch_size();
  for (std::size_t i = 0; i < plan.program.stages.size(); ++i) {
    const double sec = be.stage_seconds(plan, i, cost, preencoded) / speedup;
    t.stage_seconds.push_back(sec);
    t.seconds += sec;
  }
  return t;
}

std::string TimeEstimate::describe() const {
  char b[160];
  std::snprintf(b, sizeof b, "~%.3g s per query of up to %zu image(s) (~%.3g images/s when full)", seconds, images,
                seconds > 0 ? static_cast<double>(images) / seconds : 0.0);
  return b;
}

std::size_t query_bytes(const HePlan& plan) {
  if (!plan.params) return 0;
  const ClientSpec spec = plan.client_spec();
  const std::size_t limbs = plan.params->max_level() + 1, n = plan.params->poly_degree();
  return spec.input_ciphertexts * (limbs * n * 8 + 32 + 64);  // seeded: c0 and the seed of c1
}

std::size_t result_bytes(const HePlan& plan) {
  if (!plan.params) return 0;
  const ClientSpec spec = plan.client_spec();
  const std::size_t limbs = plan.params->max_level() - static_cast<std::size_t>(plan.program.depth) + 1;
  return spec.output_ciphertexts * (2 * limbs * plan.params->poly_degree() * 8 + 64);
}

}  // namespace hecnn::he
