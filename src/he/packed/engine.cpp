#include "he/packed/engine.h"

#include <algorithm>
#include <cmath>

#include "circuits/linear_transform.h"
#include "common/error.h"
#include "common/parallel.h"
#include "he/memory.h"

namespace hecnn::he::packed {

using ckks::Ciphertext;
using ckks::Plaintext;

namespace {
// A block-periodic vector of all the slots: entries (slot in the block, value) repeated in every block.
std::vector<double> replicate(const std::vector<std::pair<std::uint32_t, double>>& entries, std::size_t block,
                              std::size_t slots) {
  std::vector<double> v(slots, 0.0);
  for (std::size_t b = 0; b < slots; b += block)
    for (const auto& [s, w] : entries) v[b + s] = w;
  return v;
}
}  // namespace

std::size_t EncodedWeights::bytes() const {
  std::size_t n = 0;
  for (const auto& stage : diagonals)
    for (const auto& giant : stage)
      for (const auto& pt : giant) n += pt.n() * pt.limbs() * sizeof(std::uint64_t);
  return n;
}

std::shared_ptr<const EncodedWeights> EncodedWeights::make(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                           std::size_t plaintext_budget) {
  const PackedProgram& packed = program_of(plan);
  if (!plan.params || !(ctx->params() == *plan.params)) {
    throw Error("encrypted inference: the keys were made for other parameters than this model's plan");
  }
  const auto& stages = plan.program.stages;
  auto w = std::make_shared<EncodedWeights>();
  if (plan.bootstrap) {
    // The bootstrap's DFT plaintexts first (every bootstrap reads them), within the budget.
    // (estimate_memory below leaves the weights what it does not take).
    w->bootstrapper = make_bootstrapper(plan, ctx, std::min(plaintext_budget, plan.bootstrap->params.plaintext_budget));
  }
  const std::vector<bool> pre = estimate_memory(plan, 1, plaintext_budget, false).preencoded;
  const std::size_t top = plan.top_level();
  w->level.resize(stages.size());
  w->in_scale.resize(stages.size());
  w->diagonals.resize(stages.size());
  // The scale of every stage's input: the plan's at the input, after a linear stage (its weights
  // are encoded for that) and after an Add; a polynomial's monic chain of squarings gives its own.
  std::vector<double> primes;
  for (std::size_t l = 0; l <= top; ++l) primes.push_back(static_cast<double>(ctx->modulus(l).value));
  std::vector<double> out_scale(stages.size());
  const ckks::CkksEncoder encoder(ctx);
  for (std::size_t i = 0; i < stages.size(); ++i) {
    if (static_cast<std::size_t>(stages[i].depth_out) > top) throw Error("encrypted inference: no level left for stage '" + stages[i].name + "'");
    w->level[i] = top - static_cast<std::size_t>(stages[i].depth_in);
    w->in_scale[i] = stages[i].inputs[0] == kProgramInput ? plan.scale() : out_scale[static_cast<std::size_t>(stages[i].inputs[0])];
    switch (stages[i].kind()) {
      case StageKind::Activation:
        out_scale[i] = approx::output_scale(stages[i].activation().poly, w->in_scale[i], static_cast<int>(w->level[i]), primes);
        break;
      case StageKind::SumPool: out_scale[i] = w->in_scale[i]; break;
      default: out_scale[i] = plan.scale(); break;
    }
    if (stages[i].kind() == StageKind::Linear && pre[i]) {
      w->diagonals[i] = Engine::encode_giants(packed, encoder, *ctx, w->level[i], plan.scale() / w->in_scale[i], i, 0,
                                              packed.stages[i].linear.giants.size());
    }
  }
  return w;
}

Engine::Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, std::size_t plaintext_budget)
    : Engine(plan, ctx, keys, EncodedWeights::make(plan, ctx, plaintext_budget)) {}

Engine::Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, std::shared_ptr<const EncodedWeights> weights)
    : plan_(plan),
      packed_(program_of(plan)),
      ctx_(std::move(ctx)),
      keys_(keys),
      ev_(ctx_),
      encoder_(ctx_),
      weights_(std::move(weights)) {
  if (!plan.params || !(ctx_->params() == *plan.params)) {
    throw Error("encrypted inference: the keys were made for other parameters than this model's plan");
  }
  if (packed_.slots != ctx_->params().max_slots()) throw Error("encrypted inference: the layout was made for another ring degree");
  if (!weights_ || weights_->level.size() != plan.program.stages.size()) throw Error("encrypted inference: weights made for another plan");
  check_keys(keys, plan.keys, *ctx_);
}

std::vector<std::vector<Plaintext>> Engine::encode_giants(std::size_t stage, std::size_t g0, std::size_t g1) const {
  return encode_giants(packed_, encoder_, *ctx_, weights_->level[stage], plan_.scale() / weights_->in_scale[stage], stage, g0, g1);
}

std::vector<std::vector<Plaintext>> Engine::encode_giants(const PackedProgram& packed, const ckks::CkksEncoder& encoder,
                                                          const ckks::CkksContext& ctx, std::size_t level, double q_scale,
                                                          std::size_t stage, std::size_t g0, std::size_t g1) {
  // Weights at scale q_top * plan scale / input scale (q_scale: the last two): after the rescale the
  // output has the plan's scale, whatever its input's (so that the values an Add joins have one scale).
  const double q_top = static_cast<double>(ctx.modulus(level).value) * q_scale;
  const auto& giants = packed.stages[stage].linear.giants;
  std::vector<std::vector<Plaintext>> enc(g1 - g0);
  std::vector<std::pair<std::size_t, std::size_t>> all;
  for (std::size_t g = g0; g < g1; ++g) {
    enc[g - g0].resize(giants[g].diagonals.size());
    for (std::size_t d = 0; d < giants[g].diagonals.size(); ++d) all.push_back({g, d});
  }
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 4)
  for (std::size_t k = 0; k < all.size(); ++k) errors.run([&] {
    const auto [g, d] = all[k];
    encoder.encode(replicate(giants[g].diagonals[d].entries, packed.block, packed.slots), q_top, level, enc[g - g0][d]);
  });
  errors.rethrow();
  return enc;
}

std::vector<Ciphertext> Engine::linear(std::size_t index, std::vector<Ciphertext>& in) const {
  const LinearPlan& lp = packed_.stages[index].linear;
  for (const auto& c : in) {
    if (std::fabs(c.scale() - weights_->in_scale[index]) > 1e-9 * weights_->in_scale[index] || c.level() != weights_->level[index]) {
      throw Error("encrypted inference: stage '" + plan_.program.stages[index].name +
                  "' gets its input at another level or scale than planned (internal error)");
    }
  }
  const std::size_t out_cts = packed_.stages[index].out.cts;
  // The products and rotations as a circuits::LtShape (the same giant steps and terms, in order);
  // diagonals not encoded beforehand are encoded a batch of giant steps at a time.
  circuits::LtShape shape;
  shape.inputs = in.size();
  shape.outputs = out_cts;
  shape.giants.reserve(lp.giants.size());
  for (const auto& g : lp.giants) {
    circuits::LtGiant cg{g.out_ct, g.step, {}};
    cg.terms.reserve(g.diagonals.size());
    for (const auto& d : g.diagonals) cg.terms.push_back({d.in_ct, d.baby});
    shape.giants.push_back(std::move(cg));
  }
  shape.finalize();
  circuits::LtPlaintexts pts;
  if (!weights_->diagonals[index].empty()) {
    pts.stored = &weights_->diagonals[index];
  } else {
    pts.encode = [&](std::size_t g0, std::size_t g1) { return encode_giants(index, g0, g1); };
    pts.batch_bytes = kOnTheFlyPlaintextBytes;
    pts.plaintext_bytes = (weights_->level[index] + 1) * ctx_->n() * sizeof(std::uint64_t);
  }
  std::vector<Ciphertext> out;
  try {
    out = circuits::apply(ev_, keys_.galois, in, shape, pts);
  } catch (const Error& e) {
    throw Error("encrypted inference: stage '" + plan_.program.stages[index].name + "': " + e.what());
  }
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t b = 0; b < out_cts; ++b) errors.run([&] {
    if (!lp.bias[b].empty()) {
      Plaintext pt;
      encoder_.encode(replicate(lp.bias[b], packed_.block, packed_.slots), out[b].scale(), out[b].level(), pt);
      ev_.add_plain_inplace(out[b], pt);
    }
    ev_.rescale_inplace(out[b]);
    out[b].set_scale(plan_.scale());  // exactly (the weights' scale made it so, up to rounding)
    for (int step : lp.fold) ev_.add_inplace(out[b], ev_.rotate(out[b], step, keys_.galois));
  });
  errors.rethrow();
  return out;
}

std::vector<Ciphertext> Engine::sum_pool(std::size_t index, std::vector<Ciphertext>& in) const {
  const PoolPlan& pp = packed_.stages[index].pool;
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t a = 0; a < in.size(); ++a) errors.run([&] {
    if (pp.col_steps.size() > 1) in[a] = ev_.rotate_sum_hoisted(in[a], pp.col_steps, keys_.galois);
    if (pp.row_steps.size() > 1) in[a] = ev_.rotate_sum_hoisted(in[a], pp.row_steps, keys_.galois);
  });
  errors.rethrow();
  return std::move(in);
}

std::vector<Ciphertext> Engine::activation(std::size_t index, std::vector<Ciphertext>& in) const {
  approx::PolyEvalPlan poly = plan_.program.stages[index].activation().poly;
  poly.relinearize_last = true;  // rotations follow
  const approx::PolynomialEvaluator pe(ev_, keys_.relin);
  std::vector<Ciphertext> out(in.size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) if (in.size() > 1)
  for (std::size_t a = 0; a < in.size(); ++a) errors.run([&] {
    out[a] = pe.evaluate(in[a], poly);
    in[a] = Ciphertext();
  });
  errors.rethrow();
  return out;
}

std::vector<Ciphertext> Engine::add(std::size_t index, const std::vector<const std::vector<Ciphertext>*>& in) const {
  const std::size_t level = weights_->level[index];
  std::vector<Ciphertext> out(in[0]->size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) if (out.size() > 1)
  for (std::size_t a = 0; a < out.size(); ++a) errors.run([&] {
    for (const auto* x : in) {
      if (x->size() != out.size()) throw Error("encrypted inference: stage '" + plan_.program.stages[index].name + "' adds values of different layouts (internal error)");
      Ciphertext c = (*x)[a];
      if (c.level() > level) ev_.drop_to_level_inplace(c, level);
      if (out[a].word_count() == 0) {
        out[a] = std::move(c);
      } else {
        ev_.add_inplace(out[a], c);
      }
    }
  });
  errors.rethrow();
  return out;
}

std::vector<Ciphertext> Engine::bootstrap(std::size_t, std::vector<Ciphertext>& in) const {
  if (!weights_->bootstrapper) throw Error("encrypted inference: the plan bootstraps and the engine has no bootstrapper (internal error)");
  const circuits::Bootstrapper& boot = *weights_->bootstrapper;
  const circuits::BootstrapKeyView keys = keys_.bootstrap_view();
  std::vector<Ciphertext> out(in.size());
  for (std::size_t a = 0; a + 1 < in.size(); a += 2) {
    auto [x, y] = boot.bootstrap_pair(in[a], in[a + 1], keys);
    out[a] = std::move(x);
    out[a + 1] = std::move(y);
  }
  if (in.size() % 2) out.back() = boot.bootstrap(in.back(), keys);
  in.clear();
  return out;
}

std::vector<Ciphertext> Engine::run(std::vector<Ciphertext> x, const ProgressFn& progress) const {
  const Program& prog = plan_.program;
  const std::size_t top = plan_.top_level();
  if (x.size() != packed_.input().cts) {
    throw Error("encrypted inference: the packed layout takes " + std::to_string(packed_.input().cts) +
                " input ciphertext(s) per image group, the query has " + std::to_string(x.size()));
  }
  for (auto& c : x) {
    if (c.size() != 2 || c.n() != ctx_->n() || c.slots() != packed_.slots ||
        std::fabs(c.scale() - x[0].scale()) > 1e-9 * x[0].scale() || c.level() != x[0].level()) {
      throw Error("encrypted inference: the input ciphertexts differ in level, size, slots or scale");
    }
    if (std::fabs(c.scale() - plan_.scale()) > 1e-9 * plan_.scale()) {
      throw Error("encrypted inference: the inputs are encoded at scale 2^" + std::to_string(std::log2(c.scale())) +
                  ", the plan's is 2^" + std::to_string(std::log2(plan_.scale())));
    }
    if (c.level() < top) {
      throw Error("encrypted inference: the inputs have " + std::to_string(c.level()) + " levels, the plan starts at " +
                  std::to_string(top));
    }
    if (c.level() > top) ev_.drop_to_level_inplace(c, top);
  }
  run_.restart();
  stage_seconds_.assign(prog.stages.size(), 0.0);
  // Every stage's output until its last reader has run (the program's input: index 0).
  std::vector<std::size_t> last(prog.stages.size() + 1, 0);
  for (std::size_t i = 0; i < prog.stages.size(); ++i)
    for (int in : prog.stages[i].inputs) last[static_cast<std::size_t>(in + 1)] = std::max(last[static_cast<std::size_t>(in + 1)], i);
  std::vector<std::vector<Ciphertext>> values(prog.stages.size() + 1);
  values[0] = std::move(x);
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    stage_.restart();
    const Stage& st = prog.stages[i];
    if (progress) progress(Progress{i, prog.stages.size(), st.name, 0, 1, run_.seconds(), 0.0});
    // A stage that reads a value last consumes it; one read again later works on a copy.
    const auto input = [&](int source) {
      const auto k = static_cast<std::size_t>(source + 1);
      if (last[k] == i) return std::move(values[k]);
      return std::vector<Ciphertext>(values[k]);
    };
    std::vector<Ciphertext> y;
    if (st.kind() == StageKind::Add) {
      std::vector<const std::vector<Ciphertext>*> in;
      for (int source : st.inputs) in.push_back(&values[static_cast<std::size_t>(source + 1)]);
      y = add(i, in);
    } else {
      std::vector<Ciphertext> in = input(st.inputs[0]);
      switch (st.kind()) {
        case StageKind::Linear: y = linear(i, in); break;
        case StageKind::SumPool: y = sum_pool(i, in); break;
        case StageKind::Activation: y = activation(i, in); break;
        case StageKind::Bootstrap: y = bootstrap(i, in); break;
        case StageKind::Add: break;
      }
    }
    for (int source : st.inputs) {
      const auto k = static_cast<std::size_t>(source + 1);
      if (last[k] == i) std::vector<Ciphertext>().swap(values[k]);
    }
    values[i + 1] = std::move(y);
    stage_seconds_[i] = stage_.seconds();
    if (progress) progress(Progress{i, prog.stages.size(), st.name, 1, 1, run_.seconds(), stage_seconds_[i]});
  }
  return std::move(values.back());
}

Client::Client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk)
    : spec_(spec), ctx_(ctx), encoder_(ctx), encryptor_(ctx, sk), decryptor_(ctx, sk) {
  if (spec.layout != Layout::Packed) throw Error("client: the specification is not for the packed layout");
  if (spec.params_id != ctx_->params().id()) throw Error("client: the keys were made for other parameters than this model's plan");
  const std::size_t slots = ctx_->params().max_slots();
  if (spec.block == 0 || spec.block > slots || slots % spec.block != 0 || spec.batch_size != slots / spec.block) {
    throw Error("client: the specification's block and batch size do not match the parameters' " + std::to_string(slots) + " slots");
  }
  input_ = input_placement(spec.input, spec.block, spec.input_copies);
  if (input_.cts != spec.input_ciphertexts) throw Error("client: the specification's input ciphertext count does not match its layout");
  if (spec.output_slots.size() != spec.outputs) throw Error("client: the specification lists no slot for some outputs");
}

std::vector<Ciphertext> Client::encrypt(const float* images, std::size_t count) const {
  if (count == 0 || count > spec_.batch_size) {
    throw Error("client: a packed query holds 1 to " + std::to_string(spec_.batch_size) + " images; got " + std::to_string(count));
  }
  const std::size_t slots = ctx_->params().max_slots(), values = input_.at.size();
  std::vector<std::vector<double>> v(input_.cts, std::vector<double>(slots, 0.0));
  for (std::size_t b = 0; b < count; ++b)
    for (std::size_t r = 0; r < input_.copies; ++r)
      for (std::size_t i = 0; i < values; ++i)
        v[input_.at[i].ct][b * spec_.block + r * input_.copy_stride + input_.at[i].slot] = images[b * values + i];
  std::vector<Ciphertext> out(input_.cts);
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) if (input_.cts > 1)
  for (std::size_t a = 0; a < input_.cts; ++a) errors.run([&] {
    Plaintext pt;
    encoder_.encode(v[a], spec_.scale(), spec_.input_level ? spec_.input_level : ctx_->max_level(), pt);
    encryptor_.encrypt(pt, out[a]);
  });
  errors.rethrow();
  return out;
}

std::vector<std::vector<double>> Client::decrypt(const std::vector<Ciphertext>& outputs, std::size_t count) const {
  if (outputs.size() != spec_.output_ciphertexts) {
    throw Error("client: the result holds " + std::to_string(outputs.size()) + " ciphertexts, the packed layout has " +
                std::to_string(spec_.output_ciphertexts));
  }
  if (count == 0 || count > spec_.batch_size) throw Error("client: more images than a packed query holds");
  std::vector<std::vector<double>> decoded(outputs.size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1) if (outputs.size() > 1)
  for (std::size_t a = 0; a < outputs.size(); ++a) errors.run([&] {
    decoded[a] = encoder_.decode(decryptor_.decrypt(outputs[a]));
    if (decoded[a].size() < spec_.batch_size * spec_.block) throw Error("client: the result holds fewer slots than the layout");
  });
  errors.rethrow();
  std::vector<std::vector<double>> r(count, std::vector<double>(spec_.outputs));
  for (std::size_t b = 0; b < count; ++b)
    for (std::size_t o = 0; o < spec_.outputs; ++o) {
      const auto [ct, slot] = spec_.output_slots[o];
      r[b][o] = decoded[ct][b * spec_.block + slot] * spec_.output_factor;
    }
  return r;
}

}  // namespace hecnn::he::packed
