// The packed back end as a he::Backend (he/backend.h).
#include <algorithm>

#include "common/error.h"
#include "he/backend.h"
#include "he/packed/backend.h"
#include "he/packed/engine.h"

namespace hecnn::he::packed {

const PackedProgram& program_of(const HePlan& plan) {
  if (plan.layout != Layout::Packed || !plan.lowered) throw Error("the plan is not lowered to the packed layout");
  return static_cast<const PackedProgram&>(*plan.lowered);  // PackedBackend::lower made it
}

std::string PackedBackend::value_unit() const { return kValueUnit; }
std::string PackedBackend::query_unit() const { return "ciphertext group"; }

void PackedBackend::prepare(Program& program) const {
  // Rotations need 2-component ciphertexts: no deferred relinearization.
  for (auto& st : program.stages) {
    if (st.kind() == StageKind::Activation) std::get<ActivationOp>(st.op).relinearize_output = true;
  }
}

void PackedBackend::lower(HePlan& plan, std::size_t images, const ClientSpec* spec) const {
  auto pp = std::make_shared<PackedProgram>(
      packed::lower(plan.program, plan.params->max_slots(), spec ? spec->block : 0, spec ? spec->input_copies : 0, images));
  plan.keys = key_requirements(plan.program, *pp, plan.top_level());
  plan.lowered = std::move(pp);
}

std::size_t PackedBackend::batch_size(const HePlan& plan) const {
  return plan.lowered ? program_of(plan).images_per_ciphertext() : 0;
}

ClientSpec PackedBackend::client_spec(const HePlan& plan) const {
  ClientSpec s = packed::client_spec(plan.program, program_of(plan), *plan.params, plan.scale_bits);
  if (plan.bootstrap) s.input_level = plan.bootstrap->output_level;
  return s;
}

void PackedBackend::write_spec(const ClientSpec& s, nlohmann::json& j) const {
  j["block"] = s.block;
  j["input_copies"] = s.input_copies;
  nlohmann::json slots = nlohmann::json::array();
  for (const auto& [ct, slot] : s.output_slots) slots.push_back({ct, slot});
  j["output_slots"] = std::move(slots);
}

void PackedBackend::read_spec(const nlohmann::json& j, ClientSpec& s) const {
  s.block = spec_count(j, "block", std::size_t{1} << 16);
  if ((s.block & (s.block - 1)) != 0) throw Error("client specification: 'block' must be a power of two");
  if (s.batch_size * s.block > (std::size_t{1} << 16)) throw Error("client specification: 'batch_size' x 'block' exceeds 2^16 slots");
  s.input_copies = spec_count(j, "input_copies", 64);
  if (s.block % s.input_copies != 0) throw Error("client specification: 'input_copies' must divide 'block'");
  if (s.input_ciphertexts > 4096 || s.output_ciphertexts > 4096) {
    throw Error("client specification: at most 4096 ciphertexts per image group in the packed layout");
  }
  const nlohmann::json& slots = spec_field(j, "output_slots");
  if (!slots.is_array() || slots.size() != s.outputs) throw Error("client specification: 'output_slots' must list one [ciphertext, slot] per output");
  for (const nlohmann::json& e : slots) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer() || e[0].get<std::int64_t>() < 0 ||
        e[1].get<std::int64_t>() < 0 || e[0].get<std::uint64_t>() >= s.output_ciphertexts || e[1].get<std::uint64_t>() >= s.block) {
      throw Error("client specification: each 'output_slots' entry must be [ciphertext < output_ciphertexts, slot < block]");
    }
    s.output_slots.push_back({static_cast<std::uint32_t>(e[0].get<std::uint64_t>()), static_cast<std::uint32_t>(e[1].get<std::uint64_t>())});
  }
}

std::string PackedBackend::describe_layout(const HePlan& plan) const {
  return plan.lowered ? packed::describe_layout(plan.program, program_of(plan)) : "";
}

void PackedBackend::estimate_ciphertexts(const HePlan& plan, int threads, std::size_t plaintext_budget, bool, int, std::size_t,
                                         MemoryEstimate& m) const {
  const ckks::CkksParameters& p = *plan.params;
  const Program& prog = plan.program;
  const PackedProgram& pp = program_of(plan);
  const std::size_t temps = static_cast<std::size_t>(std::max(1, threads)) * 4;
  std::size_t encoded = 0;
  const auto readers = prog.consumers();
  const std::size_t top = p.max_level();
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    const Stage& s = prog.stages[i];
    const std::size_t level = top - static_cast<std::size_t>(s.depth_in);
    const std::size_t ct = ciphertext_bytes(p, level, 2);
    // The outputs of earlier stages that a later stage still reads (a residual branch's input).
    std::size_t bytes = 0;
    for (std::size_t j = 0; j < i; ++j) {
      if (!readers[j].empty() && readers[j].back() > i) {
        bytes += pp.stages[j].out.cts * ciphertext_bytes(p, top - static_cast<std::size_t>(prog.stages[j].depth_out), 2);
      }
    }
    {
      const packed::PackedStage& ps = pp.stages[i];
      switch (s.kind()) {
        case StageKind::Linear: {
          const auto& lp = ps.linear;
          std::size_t baby = 0, entries = 0;
          for (const auto& b : lp.baby) baby += b.size();
          for (const auto& g : lp.giants)
            for (const auto& d : g.diagonals) entries += d.entries.size();
          m.tables += entries * 12;
          const std::size_t diag_bytes = lp.diagonal_count() * plaintext_bytes(p, level);
          std::size_t on_the_fly = 0;
          if (encoded + diag_bytes <= plaintext_budget) {
            encoded += diag_bytes;
            m.preencoded[i] = true;
          } else {
            on_the_fly = std::min(diag_bytes, kOnTheFlyPlaintextBytes);
          }
          bytes += (ps.in.cts + baby + lp.giants.size() + ps.out.cts + 2) * ct + on_the_fly;
          break;
        }
        case StageKind::SumPool: bytes += (ps.in.cts + 2 * std::min<std::size_t>(ps.in.cts, static_cast<std::size_t>(std::max(1, threads)))) * ct; break;
        case StageKind::Activation: bytes += (2 * ps.in.cts + temps) * ct; break;
        case StageKind::Add: bytes += (s.inputs.size() + 1) * ps.in.cts * ct; break;
        case StageKind::Bootstrap: bytes += 2 * ps.in.cts * ct + plan.bootstrap->working_bytes; break;
      }
    }
    bytes += bytes / 8;  // the allocator's fragmentation: measured peaks run up to ~10 % above the live bytes
    m.stages.push_back({s.name, bytes});
    m.ciphertexts = std::max(m.ciphertexts, bytes);
  }
  m.plaintexts = encoded;
}

double PackedBackend::stage_seconds(const HePlan& plan, std::size_t i, const CostModel& c, const std::vector<bool>& preencoded) const {
  const Stage& s = plan.program.stages[i];
  const PackedStage& ps = program_of(plan).stages[i];
  const UnitCosts& u = c.unit;
  const std::size_t level = plan.params->max_level() - static_cast<std::size_t>(s.depth_in);
  switch (s.kind()) {
    case StageKind::Linear: {
      std::size_t baby = 0, giants = 0;
      for (const auto& b : ps.linear.baby) baby += b.size();
      for (const auto& g : ps.linear.giants) giants += g.step != 0;
      const double diags = static_cast<double>(ps.linear.diagonal_count());
      const bool pre = preencoded.empty() || (i < preencoded.size() && preencoded[i]);
      return (static_cast<double>(ps.in.cts) * u.key_switch * 0.4 + static_cast<double>(baby) * u.hoisted +
              static_cast<double>(giants + ps.linear.fold.size() * ps.out.cts) * u.key_switch) *
                 c.rks(level) +
             diags * (u.plain_product + (pre ? 0.0 : u.encode)) * c.r(level) + static_cast<double>(ps.out.cts) * u.rescale * c.r(level);
    }
    case StageKind::SumPool:
      return static_cast<double>(ps.in.cts) *
             (2 * u.key_switch * 0.4 + static_cast<double>(ps.pool.col_steps.size() + ps.pool.row_steps.size()) * u.hoisted) *
             c.rks(level);
    case StageKind::Activation: return static_cast<double>(ps.in.cts) * c.activation(s.activation(), level);
    case StageKind::Bootstrap:
      // Pairs of ciphertexts go through one bootstrap; its key switches run at the chain's upper
      // levels (CoeffsToSlots, EvalMod) and the lower ones (SlotsToCoeffs): about 0.8 of the top's.
      return static_cast<double>((ps.in.cts + 1) / 2) * static_cast<double>(plan.bootstrap->key_switches) * u.key_switch * 0.8;
    case StageKind::Add:
      return static_cast<double>(ps.out.cts) * static_cast<double>(s.inputs.size()) * 0.2 * u.rescale * c.r(level);
  }
  return 0;
}

std::shared_ptr<const EngineState> PackedBackend::engine_state(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                               const EngineOptions& options) const {
  return EncodedWeights::make(plan, ctx, options.plaintext_budget);
}

std::unique_ptr<InferenceEngine> PackedBackend::make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                                            const EngineOptions& options) const {
  if (!options.state) return std::make_unique<Engine>(plan, std::move(ctx), keys, options.plaintext_budget);
  auto weights = std::dynamic_pointer_cast<const EncodedWeights>(options.state);
  if (!weights) throw Error("encrypted inference: the engine state was made by another layout");
  return std::make_unique<Engine>(plan, std::move(ctx), keys, std::move(weights));
}

std::unique_ptr<InferenceClient> PackedBackend::make_client(const ClientSpec& spec, ckks::ContextPtr ctx,
                                                            const ckks::SecretKey& sk) const {
  return std::make_unique<Client>(spec, std::move(ctx), sk);
}

}  // namespace hecnn::he::packed
