#include "circuits/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"
#include "common/stopwatch.h"

namespace hecnn::circuits {

using ckks::Ciphertext;
using ckks::u64;

namespace {

bool power_of_two(std::size_t n) { return n != 0 && (n & (n - 1)) == 0; }

std::vector<double> chain_primes(const ckks::CkksContext& ctx) {
  std::vector<double> p;
  for (std::size_t i = 0; i < ctx.chain_size(); ++i) p.push_back(static_cast<double>(ctx.modulus(i).value));
  return p;
}

// Bytes of a key-switching key restricted to `level`.
std::size_t switch_key_bytes(const ckks::CkksContext& ctx, std::size_t level) {
  return ctx.key_switch(level).digit_count * 2 * (level + 1 + ctx.special_count()) * ctx.n() * sizeof(u64);
}

std::size_t ciphertext_bytes(const ckks::CkksContext& ctx, std::size_t level) { return 2 * (level + 1) * ctx.n() * sizeof(u64); }

}  // namespace

std::size_t BootstrapKeys::bytes() const {
  auto key = [](const ckks::KeySwitchKey& k) {
    std::size_t n = 0;
    for (const auto& v : k.b) n += v.size() * sizeof(u64);
    for (const auto& v : k.a) n += v.size() * sizeof(u64);
    return n;
  };
  std::size_t n = key(relin.key) + key(from_sparse) + to_sparse.bytes();
  for (const auto& [e, k] : galois.keys) n += key(k);
  return n;
}

Bootstrapper::Bootstrapper(ckks::ContextPtr ctx, const BootstrapParameters& params)
    : ctx_(std::move(ctx)), params_(params), ev_(ctx_), mod_(params.mod), times_i_(*ctx_) {
  const std::size_t N = ctx_->n();
  if (params_.slots == 0) params_.slots = N / 2;
  const std::size_t n = params_.slots;
  if (!power_of_two(n) || n < 2 || n > N / 2) throw Error("bootstrapping: the slot count must be a power of two between 2 and N/2 = " + std::to_string(N / 2));
  if (params_.ephemeral_weight == 0 || params_.ephemeral_weight > N) throw Error("bootstrapping: the ephemeral secret's Hamming weight must be between 1 and N");
  if (params_.mod.k < 0.5 * static_cast<double>(params_.ephemeral_weight + 1)) {
    throw Error("bootstrapping: EvalMod's interval K = " + std::to_string(params_.mod.k) + " does not cover |I| <= (h + 1) / 2 = " +
                std::to_string(0.5 * static_cast<double>(params_.ephemeral_weight + 1)) + " for the ephemeral secret");
  }
  const double q0 = static_cast<double>(ctx_->modulus(0).value);
  if (params_.scale == 0) params_.scale = q0 / 0x1p10;
  if (!(params_.scale >= 1) || params_.scale > q0 / 64) throw Error("bootstrapping: the message scale must be between 1 and q_0 / 64");
  const std::size_t top = ctx_->max_level();
  const std::size_t need = params_.cts_levels + static_cast<std::size_t>(mod_.depth()) + params_.stc_levels;
  if (need > top) {
    throw Error("bootstrapping needs " + std::to_string(need) + " levels (CoeffsToSlots " + std::to_string(params_.cts_levels) + ", EvalMod " +
                std::to_string(mod_.depth()) + ", SlotsToCoeffs " + std::to_string(params_.stc_levels) + ") above level 0; the chain has " +
                std::to_string(top));
  }
  const std::size_t lc = top - params_.cts_levels;
  const std::size_t lm = lc - static_cast<std::size_t>(mod_.depth());
  mod_in_scale_ = static_cast<double>(ctx_->modulus(lc).value);
  mod_out_scale_ = mod_.output_scale(mod_in_scale_, static_cast<int>(lc), chain_primes(*ctx_));
  const double g = static_cast<double>(N / 2 / n);
  HomomorphicDft::Options c;
  c.slots = n;
  c.direction = DftDirection::CoeffsToSlots;
  c.levels = params_.cts_levels;
  c.top_level = top;
  c.input_scale = q0;
  c.output_scale = mod_in_scale_;
  c.constant = 1.0 / (2.0 * g * params_.mod.k);
  c.plaintext_budget = params_.plaintext_budget;
  cts_ = std::make_unique<HomomorphicDft>(ctx_, c);
  HomomorphicDft::Options s = c;
  s.direction = DftDirection::SlotsToCoeffs;
  s.levels = params_.stc_levels;
  s.top_level = lm;
  s.input_scale = mod_out_scale_;
  s.output_scale = params_.scale;
  s.constant = q0 / (2.0 * std::numbers::pi * params_.scale);
  s.geometric_scales = true;
  s.plaintext_budget = params_.plaintext_budget > cts_->stored_bytes() ? params_.plaintext_budget - cts_->stored_bytes() : 0;
  stc_ = std::make_unique<HomomorphicDft>(ctx_, s);
  // For bootstrap_pair: the same transform to half the scale (the real and imaginary parts then
  // come out at the scale itself); its plaintexts stored only while the budget lasts.
  const std::size_t used = cts_->stored_bytes() + stc_->stored_bytes();
  stc_half_ = stc_->with_output_scale(params_.scale / 2, params_.plaintext_budget > used ? params_.plaintext_budget - used : 0);
  rotations_ = plan_rotations();
}

std::map<int, std::size_t> Bootstrapper::plan_rotations() const {
  std::map<int, std::size_t> r = cts_->rotation_levels();
  for (const auto& [s, l] : stc_->rotation_levels()) r[s] = std::max(r[s], l);
  for (std::size_t step = params_.slots; step < ctx_->n() / 2; step *= 2) r[static_cast<int>(step)] = top_level();
  r.erase(0);
  return r;
}

BootstrapKeys Bootstrapper::generate_keys(const ckks::KeyGenerator& keygen) const {
  const ckks::SecretKey& sk = keygen.secret_key();
  if (sk.params_id != ctx_->params().id()) throw Error("bootstrapping: the key generator was made for other parameters");
  const std::size_t lc = top_level() - params_.cts_levels;
  BootstrapKeys keys;
  keys.relin = keygen.create_relin_keys();
  ckks::restrict_to_level(keys.relin.key, *ctx_, lc);  // EvalMod's products run from level lc down
  std::vector<int> steps;
  std::vector<std::size_t> levels;
  for (const auto& [s, l] : rotation_levels()) {
    steps.push_back(s);
    levels.push_back(l);
  }
  keys.galois = keygen.create_galois_keys(steps, levels);
  ckks::GaloisKeys conj = keygen.create_galois_keys_for_elements({ctx_->conjugation_element()});
  for (auto& [e, k] : conj.keys) {
    ckks::restrict_to_level(k, *ctx_, lc);
    keys.galois.keys[e] = std::move(k);
  }
  // The ephemeral secret: used for the two encapsulation keys, then wiped (SecretKey's destructor).
  const ckks::SecretKey sparse = ckks::sample_sparse_secret(*ctx_, params_.ephemeral_weight);
  keys.from_sparse = keygen.create_switch_key(sparse);
  keys.to_sparse = ckks::make_level0_switch_key(*ctx_, sk, sparse);
  return keys;
}

Ciphertext Bootstrapper::encapsulate(const Ciphertext& ct, const EncapsulationKey& key) const { return ckks::level0_switch(*ctx_, ct, key); }

Ciphertext Bootstrapper::mod_raise(const Ciphertext& ct) const { return ckks::mod_raise(*ctx_, ct, top_level()); }

Ciphertext Bootstrapper::trace(Ciphertext ct, const ckks::GaloisKeys& gk) const {
  for (std::size_t step = params_.slots; step < ctx_->n() / 2; step *= 2) ev_.add_inplace(ct, ev_.rotate(ct, static_cast<int>(step), gk));
  return ct;
}

Ciphertext Bootstrapper::coeffs_to_slots(Ciphertext ct, const ckks::GaloisKeys& gk) const { return cts_->apply(ev_, gk, std::move(ct)); }

void Bootstrapper::multiply_by_i(Ciphertext& ct) const { times_i_.apply(ct); }

std::pair<Ciphertext, Ciphertext> Bootstrapper::split(Ciphertext ct, const ckks::GaloisKeys& gk) const {
  Ciphertext conj = ct;
  ev_.conjugate_inplace(conj, gk);
  Ciphertext im = ev_.sub(ct, conj);
  ev_.add_inplace(ct, conj);
  multiply_by_i(im);
  ev_.negate_inplace(im);
  return {std::move(ct), std::move(im)};
}

Ciphertext Bootstrapper::eval_mod(Ciphertext ct, const ckks::RelinKeys& rk) const {
  Ciphertext y = mod_.apply(ev_, rk, std::move(ct));
  if (std::fabs(y.scale() - mod_out_scale_) > 1e-6 * mod_out_scale_) throw Error("bootstrapping: EvalMod's output scale differs from the plan (internal error)");
  y.set_scale(mod_out_scale_);
  return y;
}

Ciphertext Bootstrapper::combine(Ciphertext re, Ciphertext im) const {
  multiply_by_i(im);
  ev_.add_inplace(re, im);
  return re;
}

Ciphertext Bootstrapper::slots_to_coeffs(Ciphertext ct, const ckks::GaloisKeys& gk) const { return stc_->apply(ev_, gk, std::move(ct)); }

std::size_t Bootstrapper::output_level(const ckks::CkksParameters& params, const BootstrapParameters& bp) {
  const EvalMod mod(bp.mod);
  const std::size_t top = params.max_level();
  const std::size_t need = bp.cts_levels + static_cast<std::size_t>(mod.depth()) + bp.stc_levels;
  if (need > top) {
    throw Error("bootstrapping needs " + std::to_string(need) + " levels above level 0; the chain has " + std::to_string(top));
  }
  return top - need;
}

void Bootstrapper::check_input(const Ciphertext& in, const BootstrapKeyView& keys) const {
  if (in.size() != 2) throw Error("bootstrapping: relinearize the ciphertext first");
  if (in.n() != ctx_->n() || in.level() > top_level()) throw Error("bootstrapping: the ciphertext was made for other parameters");
  if (in.slots() != params_.slots) {
    throw Error("bootstrapping: the ciphertext has " + std::to_string(in.slots()) + " slots, this bootstrapper " + std::to_string(params_.slots));
  }
  if (std::fabs(in.scale() - params_.scale) > 1e-6 * params_.scale) {
    throw Error("bootstrapping: the ciphertext's scale 2^" + std::to_string(std::log2(in.scale())) + " is not the configured 2^" +
                std::to_string(std::log2(params_.scale)));
  }
  if (!keys.relin || !keys.galois || !keys.to_sparse || !keys.from_sparse) throw Error("bootstrapping: the bootstrapping keys are missing");
  if (keys.relin->params_id != ctx_->params().id() || keys.galois->params_id != ctx_->params().id()) {
    throw Error("bootstrapping: the keys were made for other parameters");
  }
  for (const auto& [s, l] : rotation_levels()) {
    if (!keys.galois->has(ctx_->galois_element(s))) throw Error("bootstrapping: the Galois keys lack rotation step " + std::to_string(s));
  }
  if (!keys.galois->has(ctx_->conjugation_element())) throw Error("bootstrapping: the Galois keys lack conjugation");
}

Ciphertext Bootstrapper::run(Ciphertext ct, const BootstrapKeyView& keys, const HomomorphicDft& stc, Timings* timings) const {
  Timings t;
  Stopwatch watch;
  auto lap = [&watch](double& into) {
    into = watch.seconds();
    watch.restart();
  };
  if (ct.level() > 0) ev_.drop_to_level_inplace(ct, 0);
  ct = encapsulate(ct, *keys.to_sparse);
  ct = mod_raise(ct);
  ev_.switch_key_inplace(ct, *keys.from_sparse);
  if (params_.slots < ctx_->n() / 2) ct = trace(std::move(ct), *keys.galois);
  lap(t.raise);
  ct = coeffs_to_slots(std::move(ct), *keys.galois);
  lap(t.coeffs_to_slots);
  auto [re, im] = split(std::move(ct), *keys.galois);
  re = eval_mod(std::move(re), *keys.relin);
  im = eval_mod(std::move(im), *keys.relin);
  ct = combine(std::move(re), std::move(im));
  lap(t.eval_mod);
  ct = stc.apply(ev_, *keys.galois, std::move(ct));
  lap(t.slots_to_coeffs);
  if (timings) *timings = t;
  return ct;
}

Ciphertext Bootstrapper::bootstrap(const Ciphertext& in, const BootstrapKeyView& keys, Timings* timings) const {
  check_input(in, keys);
  Ciphertext ct = run(in, keys, *stc_, timings);
  ct.set_scale(params_.scale);
  return ct;
}

std::pair<Ciphertext, Ciphertext> Bootstrapper::bootstrap_pair(const Ciphertext& a, const Ciphertext& b, const BootstrapKeyView& keys,
                                                               Timings* timings) const {
  check_input(a, keys);
  check_input(b, keys);
  // a + i b at level 0.
  Ciphertext ca = a, cb = b;
  ev_.drop_to_level_inplace(ca, 0);
  ev_.drop_to_level_inplace(cb, 0);
  multiply_by_i(cb);
  ev_.add_inplace(ca, cb);
  cb = Ciphertext();
  // s holds (a + i b) at scale / 2: s + conj(s) is a at the scale, -i (s - conj(s)) is b.
  Ciphertext s = run(std::move(ca), keys, *stc_half_, timings);
  Ciphertext conj = s;
  ev_.conjugate_inplace(conj, *keys.galois);
  Ciphertext im = ev_.sub(s, conj);
  ev_.add_inplace(s, conj);
  multiply_by_i(im);
  ev_.negate_inplace(im);
  s.set_scale(params_.scale);
  im.set_scale(params_.scale);
  return {std::move(s), std::move(im)};
}

std::size_t Bootstrapper::key_bytes() const {
  const std::size_t lc = top_level() - params_.cts_levels;
  std::size_t bytes = switch_key_bytes(*ctx_, lc) * 2;  // relinearization, conjugation
  bytes += switch_key_bytes(*ctx_, top_level());         // s' -> s
  for (const auto& [s, l] : rotation_levels()) bytes += switch_key_bytes(*ctx_, l);
  bytes += 4 * ctx_->n() * sizeof(u64);  // the encapsulation key
  return bytes;
}

std::size_t Bootstrapper::plaintext_bytes() const { return cts_->stored_bytes() + stc_->stored_bytes() + stc_half_->stored_bytes(); }

std::size_t Bootstrapper::plaintext_bytes_for(std::size_t budget) const {
  // As the constructor: CoeffsToSlots, then SlotsToCoeffs, then its half-scale copy, while they fit.
  const std::size_t c = cts_->storable_bytes(budget);
  const std::size_t s = stc_->storable_bytes(budget - c);
  return c + s + stc_half_->storable_bytes(budget - c - s);
}

std::size_t Bootstrapper::all_plaintext_bytes() const { return cts_->all_plaintext_bytes() + stc_->all_plaintext_bytes(); }

std::size_t Bootstrapper::table_bytes() const {
  const std::size_t primes = ctx_->chain_size() + ctx_->special_count();
  // NTT tables (6 words per coefficient and prime), the key-switching conversions (about as much
  // again), the encoder's roots and the Galois permutations of the rotation keys.
  const std::size_t context = 12 * primes * ctx_->n() * sizeof(u64) + 4 * ctx_->n() * sizeof(double) +
                              (rotation_levels().size() + 1) * ctx_->n() * sizeof(std::uint32_t);
  return cts_->matrix_bytes() + stc_->matrix_bytes() + context;  // stc_half_ shares stc_'s matrices
}

std::size_t Bootstrapper::working_bytes() const {
  const std::size_t top = top_level(), lc = top - params_.cts_levels;
  // The input and the raised copy; then each DFT's peak; EvalMod holds re, im and the powers of one.
  const std::size_t raise = 3 * ciphertext_bytes(*ctx_, top);
  const std::size_t powers = static_cast<std::size_t>(std::max(mod_.plan().baby_steps, 1)) + 8;
  const std::size_t mod = (powers + 3) * ciphertext_bytes(*ctx_, lc) +
                          (ctx_->key_switch(lc).digit_count + 2) * (lc + 1 + ctx_->special_count()) * ctx_->n() * sizeof(u64) * 2;
  return std::max({raise + cts_->working_bytes(), mod, stc_->working_bytes() + ciphertext_bytes(*ctx_, lc)});
}

std::size_t Bootstrapper::key_switches() const {
  const auto ops = approx::count_operations(mod_.plan());
  std::size_t n = cts_->rotations() + stc_->rotations() + 3;  // + conjugation, s -> s', s' -> s
  for (std::size_t step = params_.slots; step < ctx_->n() / 2; step *= 2) ++n;
  n += 2 * (static_cast<std::size_t>(ops.products) + static_cast<std::size_t>(mod_.options().double_angles));
  return n;
}

}  // namespace hecnn::circuits
