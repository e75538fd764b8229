#include "he/plan.h"

#include <cmath>
#include <map>
#include <sstream>

#include "ckks/bootstrap_ops.h"
#include "common/error.h"
#include "he/backend.h"

namespace hecnn::he {

double HePlan::scale() const { return std::ldexp(1.0, scale_bits); }

std::size_t HePlan::top_level() const {
  if (bootstrap) return bootstrap->output_level;
  return params ? params->max_level() : static_cast<std::size_t>(program.depth);
}

std::shared_ptr<const circuits::Bootstrapper> make_bootstrapper(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                                std::size_t plaintext_budget) {
  if (!plan.bootstrap) throw Error("the plan has no bootstrapping");
  circuits::BootstrapParameters bp = plan.bootstrap->params;
  bp.plaintext_budget = plaintext_budget;
  return std::make_shared<const circuits::Bootstrapper>(ctx, bp);
}

std::size_t BootstrapPlan::stored_bytes_for(std::size_t budget) const {
  return planner ? planner->plaintext_bytes_for(std::min(budget, params.plaintext_budget)) : 0;
}

void add_bootstrap_keys(HePlan& plan) {
  if (!plan.bootstrap) return;
  const auto boot = make_bootstrapper(plan, ckks::CkksContext::create(*plan.params), 0);
  KeyRequirements& k = plan.keys;
  k.relinearization = true;
  std::map<int, std::size_t> levels;
  for (std::size_t i = 0; i < k.rotations.size(); ++i) {
    levels[k.rotations[i]] = i < k.rotation_levels.size() ? k.rotation_levels[i] : plan.params->max_level();
  }
  for (const auto& [step, level] : boot->rotation_levels()) levels[step] = std::max(levels[step], level);
  k.rotations.clear();
  k.rotation_levels.clear();
  for (const auto& [step, level] : levels) {
    k.rotations.push_back(step);
    k.rotation_levels.push_back(level);
  }
  plan.bootstrap->planner = boot;
  plan.bootstrap->key_switches = boot->key_switches();
  plan.bootstrap->working_bytes = boot->working_bytes();
  plan.bootstrap->all_plaintext_bytes = boot->all_plaintext_bytes();
  plan.bootstrap->table_bytes = boot->table_bytes();
  plan.bootstrap->rotation_keys = boot->rotation_levels().size();
  k.conjugation = true;
  k.conjugation_level = boot->top_level() - boot->parameters().cts_levels;
  k.ephemeral_weight = boot->parameters().ephemeral_weight;
}

std::size_t HePlan::batch_size() const { return backend(layout).batch_size(*this); }

ClientSpec HePlan::client_spec() const {
  if (!params) throw Error("the plan has no parameters yet");
  return backend(layout).client_spec(*this);
}

std::string HePlan::describe() const {
  std::ostringstream os;
  const int top = static_cast<int>(top_level());
  const Backend& be = backend(layout);
  os << describe_stages(program, top, be.value_unit());
  os << be.describe_layout(*this);
  if (params) {
    const auto& p = *params;
    os << "parameters: N = " << p.poly_degree() << " (" << batch_size() << " images per " << be.query_unit()
       << "), scale 2^" << scale_bits
       << ", " << p.total_bits() << " bits of modulus" << (p.insecure() ? " (INSECURE: above the 128-bit bound)" : " (128-bit secure)")
       << "\n  chain:";
    for (auto q : p.q()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; special:";
    for (auto q : p.p()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; " << p.digits() << " key-switching digits\n";
    os << "  keys:";
    if (keys.relinearization) {
      os << " relinearization " << relin_key_bytes(p, true) / 1024 << " KiB stored (" << relin_key_bytes(p, false) / (1024 * 1024)
         << " MiB in memory);";
    }
    if (bootstrap) {
      os << " bootstrapping keys (encapsulation to a sparse secret of weight " << keys.ephemeral_weight << " and back, conjugation);";
    }
    if (keys.rotations.empty()) {
      os << " no rotation keys needed\n";
    } else {
      os << " " << keys.rotations.size() << " rotation keys, each kept up to the level it is used at: "
         << rotation_keys_bytes(p, keys, true) / (1024 * 1024) << " MiB stored, " << rotation_keys_bytes(p, keys, false) / (1024 * 1024)
         << " MiB in memory (" << keys.rotations.size() * relin_key_bytes(p, false) / (1024 * 1024) << " MiB at full level)\n";
    }
  }
  return os.str();
}

void check_keys(const EvaluationKeys& keys, const KeyRequirements& need, const ckks::CkksContext& ctx) {
  const std::uint64_t id = ctx.params().id();
  if (need.relinearization && keys.relin.params_id != id) {
    throw Error(keys.relin.params_id == 0 ? "encrypted inference: the relinearization key is missing"
                                          : "encrypted inference: the keys were made for other parameters than this model's plan");
  }
  if (!need.rotations.empty() && keys.galois.params_id != id) {
    throw Error("encrypted inference: the rotation keys are missing or were made for other parameters");
  }
  if (need.conjugation && !keys.galois.has(ctx.conjugation_element())) throw Error("encrypted inference: the conjugation key is missing");
  if (need.ephemeral_weight && (!keys.to_sparse || !keys.from_sparse)) {
    throw Error("encrypted inference: the plan bootstraps and the bootstrapping (encapsulation) keys are missing");
  }
  for (std::size_t i = 0; i < need.rotations.size(); ++i) {
    const int step = need.rotations[i];
    const auto it = keys.galois.keys.find(ctx.galois_element(step));
    if (it == keys.galois.keys.end()) throw Error("encrypted inference: no rotation key for step " + std::to_string(step));
    const std::size_t level = i < need.rotation_levels.size() ? need.rotation_levels[i] : ctx.max_level();
    if (ckks::key_chain(it->second, ctx) <= level) {
      throw Error("encrypted inference: the rotation key for step " + std::to_string(step) + " was kept up to level " +
                  std::to_string(ckks::key_chain(it->second, ctx) - 1) + ", the plan uses it at level " + std::to_string(level));
    }
  }
}

EvaluationKeys make_evaluation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need) {
  EvaluationKeys k;
  const ckks::CkksContext& ctx = keygen.context();
  if (need.relinearization) k.relin = keygen.create_relin_keys();
  if (!need.rotations.empty()) k.galois = make_rotation_keys(keygen, need);
  if (need.conjugation) {
    ckks::GaloisKeys conj = keygen.create_galois_keys_for_elements({ctx.conjugation_element()});
    for (auto& [e, key] : conj.keys) {
      ckks::restrict_to_level(key, ctx, need.conjugation_level);
      k.galois.keys[e] = std::move(key);
    }
    k.galois.params_id = conj.params_id;
    k.galois.key_set = conj.key_set;
  }
  if (need.ephemeral_weight) {
    const ckks::SecretKey sparse = ckks::sample_sparse_secret(ctx, need.ephemeral_weight);
    k.from_sparse = keygen.create_switch_key(sparse);
    k.to_sparse = ckks::make_level0_switch_key(ctx, keygen.secret_key(), sparse);
  }
  return k;
}

ckks::GaloisKeys make_rotation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need) {
  if (need.rotation_levels.size() == need.rotations.size()) return keygen.create_galois_keys(need.rotations, need.rotation_levels);
  return keygen.create_galois_keys(need.rotations, false);
}

std::size_t rotation_keys_bytes(const ckks::CkksParameters& p, const KeyRequirements& need, bool seeded) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < need.rotations.size(); ++i) {
    total += rotation_key_bytes(p, i < need.rotation_levels.size() ? need.rotation_levels[i] : p.max_level(), seeded);
  }
  return total;
}

namespace {
HePlan lower(Program program, Layout layout) {
  HePlan plan;
  plan.program = std::move(program);
  plan.layout = layout;
  backend(layout).prepare(plan.program);
  return plan;
}
// The back end's part, once the parameters (and so the slot count) are known.
void finish(HePlan& plan, std::size_t images, const ClientSpec* spec) { backend(plan.layout).lower(plan, images, spec); }
}  // namespace

namespace {
// The bootstrapping chain at the options' ring degree, its bootstrap's output level, and the
// bootstraps placed in the program.
void plan_bootstrapping(HePlan& plan, std::size_t n, bool allow_insecure) {
  if (!backend(plan.layout).bootstraps()) {
    throw Error("bootstrapping runs in the packed layout only (use --mode packed); in the batch layout every value is its own "
                "ciphertext and each would need a bootstrap");
  }
  ckks::ParameterOptions po;
  po.allow_insecure = allow_insecure;
  plan.params = ckks::CkksParameters::preset_at("boot-n65536", n, po);
  BootstrapPlan b;
  // The message scale: q_0 / 2^10 rounded to a power of two (EvalMod's range, see circuits/mod1.h).
  plan.scale_bits = static_cast<int>(std::lround(std::log2(static_cast<double>(plan.params->q()[0])))) - 10;
  b.params.scale = std::ldexp(1.0, plan.scale_bits);
  b.output_level = circuits::Bootstrapper::output_level(*plan.params, b.params);
  plan.bootstrap = b;
  place_bootstraps(plan.program, static_cast<int>(b.output_level));
}
}  // namespace

HePlan compile(const nn::Model& model, const CompileOptions& options, Layout layout) {
  check_compile_options(options);  // before the model is compiled
  HePlan plan = lower(compile_program(model), layout);
  using B = CompileOptions::Bootstrap;
  if (options.bootstrap == B::On) {
    plan_bootstrapping(plan, options.log_n ? std::size_t{1} << options.log_n : 0, options.allow_insecure);
  } else {
    try {
      plan.params = choose_parameters(plan.program.depth, options, &plan.scale_bits);
    } catch (const Error& e) {
      if (options.bootstrap == B::Off || !backend(layout).bootstraps()) throw;
      // Too deep for any parameters: bootstrapping.
      plan_bootstrapping(plan, options.log_n ? std::size_t{1} << options.log_n : 0, options.allow_insecure);
    }
  }
  finish(plan, options.packed_images, nullptr);
  add_bootstrap_keys(plan);
  return plan;
}

HePlan compile_for(const nn::Model& model, const ckks::CkksParameters& params, int scale_bits, Layout layout,
                   const ClientSpec* spec) {
  HePlan plan = lower(compile_program(model), layout);
  if (spec && spec->input_level) {
    // The client's keys are for a bootstrapping plan: the same chain, the same placement.
    plan_bootstrapping(plan, params.poly_degree(), params.insecure());
    if (plan.params->id() != params.id()) {
      throw Error("the keys' parameters are not the bootstrapping chain this build plans for this model: make keys with this build's hecnn keygen");
    }
  } else if (static_cast<int>(params.max_level()) < plan.program.depth) {
    // Said in terms of the keys: the server cannot choose parameters (no --log-n or --extra-levels
    // here), only the client's keygen can.
    throw Error("the keys' parameters hold " + std::to_string(params.max_level()) + " levels; this model needs " +
                std::to_string(plan.program.depth) + ": the keys were made for another, shallower model. Make keys for "
                "this model with hecnn keygen (it chooses parameters deep enough for it)");
  }
  if (scale_bits < kMinScaleBits || scale_bits > kMaxScaleBits) {
    throw Error("the keys' scale 2^" + std::to_string(scale_bits) + " is out of range (2^" + std::to_string(kMinScaleBits) +
                " to 2^" + std::to_string(kMaxScaleBits) + ")");
  }
  plan.params = params;
  plan.scale_bits = scale_bits;
  finish(plan, 1, spec);
  add_bootstrap_keys(plan);
  return plan;
}

void check_client_spec(const HePlan& plan, const ClientSpec& spec) {
  const ClientSpec mine = plan.client_spec();
  if (mine == spec) return;
  std::string what = "its layout, outputs or output factor differ";
  if (!(mine.input == spec.input)) {
    what = "the keys are for " + spec.input.to_string() + " inputs, this model takes " + mine.input.to_string();
  } else if (mine.outputs != spec.outputs) {
    what = "the keys are for " + std::to_string(spec.outputs) + " outputs, this model has " + std::to_string(mine.outputs);
  }
  throw Error("the evaluation keys were made for another model (" + what + "); run hecnn keygen with this model");
}

}  // namespace hecnn::he
