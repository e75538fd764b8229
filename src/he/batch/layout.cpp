// The batch back end as a he::Backend (he/backend.h): the layout's lowering, predictions, engine
// and client behind the one interface.
#include <algorithm>

#include "common/error.h"
#include "common/threads.h"
#include "he/backend.h"
#include "he/batch/backend.h"
#include "he/batch/engine.h"
#include "he/batch/schedule.h"

namespace hecnn::he::batch {

namespace {

// Replays the batch schedule: the ciphertexts alive after every step, and at its peak.
void estimate_batch(const HePlan& plan, int threads, bool streamed_inputs, int tile, std::size_t resident_limit,
                    MemoryEstimate& m) {
  const ckks::CkksParameters& p = *plan.params;
  const Program& prog = plan.program;
  const auto matrices = lower_linear_stages(prog);
  const Schedule sched = make_schedule(prog, matrices, tile, threads);
  const std::size_t S = sched.values.size();
  const auto T = static_cast<std::size_t>(std::max(1, threads));
  // Per schedule stage: the bytes of one value, and the step's temporaries per value and per step.
  std::vector<std::size_t> value(S), made(S), temps(S), comps(S, 2);
  const std::size_t top = p.max_level();
  value[0] = made[0] = ciphertext_bytes(p, top, 2);
  // The client's encoding and encryption buffers, when it encrypts in the same process.
  temps[0] = streamed_inputs ? T * ciphertext_bytes(p, top, 2) : 0;
  for (std::size_t s = 0; s < prog.stages.size(); ++s) {
    const Stage& st = prog.stages[s];
    const std::size_t level = top - static_cast<std::size_t>(st.depth_in);
    const std::size_t out_level = top - static_cast<std::size_t>(st.depth_out);
    const std::size_t in_comps = comps[schedule_stage(st.inputs[0])];
    std::size_t out_comps = in_comps;
    switch (st.kind()) {
      case StageKind::Linear:
        out_comps = 2;
        // The products keep the inputs' level and size until relinearized and rescaled.
        made[s + 1] = ciphertext_bytes(p, level, in_comps);
        temps[s + 1] = T * 2 * ciphertext_bytes(p, level, 3);
        break;
      case StageKind::SumPool: made[s + 1] = ciphertext_bytes(p, out_level, out_comps); break;
      case StageKind::Activation:
        out_comps = st.activation().relinearize_output ? 2 : 3;
        made[s + 1] = ciphertext_bytes(p, out_level, out_comps);
        temps[s + 1] = T * 4 * ciphertext_bytes(p, level, 3);
        break;
      case StageKind::Add:
        out_comps = 2;
        made[s + 1] = ciphertext_bytes(p, out_level, 2);
        temps[s + 1] = T * ciphertext_bytes(p, level, 2);  // an input dropped to the level
        break;
      case StageKind::Bootstrap: throw Error("batch layout: bootstrapping runs in the packed layout only");
    }
    value[s + 1] = ciphertext_bytes(p, out_level, out_comps);
    made[s + 1] = std::max(made[s + 1], value[s + 1]);
    comps[s + 1] = out_comps;
  }
  std::size_t live = streamed_inputs ? 0 : sched.values[0] * value[0];
  std::size_t peak = 0, terms = 0, refs = 0;
  std::vector<std::size_t> by_stage(S, 0), held_at_peak(S, 0);
  if (!streamed_inputs) by_stage[0] = live;
  std::vector<std::pair<std::size_t, std::uint32_t>> deps;
  for (const auto& step : sched.steps) {
    refs += step.values.size() + step.release.size();
    // A query held whole is counted from the start: taking its ciphertexts moves them.
    const bool moved = step.stage == 0 && !streamed_inputs;
    const std::size_t out = moved ? 0 : step.values.size() * made[step.stage];
    std::size_t read = 0;
    if (step.stage > 0 && !step.values.empty()) {
      deps.clear();
      for (std::uint32_t v : step.values) {
        for_each_dependency(prog, matrices, step.stage - 1, v, [&](std::size_t from, std::size_t i) {
          deps.push_back({from, static_cast<std::uint32_t>(i)});
        });
      }
      std::sort(deps.begin(), deps.end());
      deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
      for (const auto& d : deps) read += value[d.first];
    }
    const std::size_t held = resident_limit == static_cast<std::size_t>(-1) ? live : std::min(live, resident_limit) + read;
    const std::size_t at_peak = held + out + (step.values.empty() ? 0 : temps[step.stage]);
    if (at_peak > peak) {
      peak = at_peak;
      held_at_peak = by_stage;
      held_at_peak[step.stage] += out;  // the step's products, at their size before rescaling
    }
    m.working = std::max(m.working, read + out + (step.values.empty() ? 0 : temps[step.stage]));
    if (!moved) {
      live += step.values.size() * value[step.stage];
      by_stage[step.stage] += step.values.size() * value[step.stage];
    }
    for (const auto& r : step.release) {
      live -= value[r.stage];
      by_stage[r.stage] -= value[r.stage];
    }
    if (live > resident_limit) m.spill = std::max(m.spill, live - resident_limit);
  }
  for (const auto& mat : matrices) terms += mat.col.size() + mat.rows();
  m.tables += terms * 12 + refs * 8;
  m.held_at_peak = true;
  m.stages.push_back({streamed_inputs ? "query (encrypted as taken)" : "query", held_at_peak[0]});
  for (std::size_t s = 0; s < prog.stages.size(); ++s) m.stages.push_back({prog.stages[s].name, held_at_peak[s + 1]});
  m.ciphertexts = peak + peak / 8;
}

}  // namespace

std::string BatchBackend::value_unit() const { return kValueUnit; }
std::string BatchBackend::query_unit() const { return "batch"; }

void BatchBackend::lower(HePlan& plan, std::size_t, const ClientSpec*) const { plan.keys = key_requirements(plan.program); }

std::size_t BatchBackend::batch_size(const HePlan& plan) const { return plan.params ? batch::batch_size(*plan.params) : 0; }

ClientSpec BatchBackend::client_spec(const HePlan& plan) const { return batch::client_spec(plan.program, *plan.params, plan.scale_bits); }

void BatchBackend::read_spec(const nlohmann::json&, ClientSpec& s) const {
  if (s.input_ciphertexts != static_cast<std::size_t>(s.input.size()) || s.output_ciphertexts != s.outputs) {
    throw Error("client specification: batch layout needs one ciphertext per input value and per output");
  }
}

void BatchBackend::estimate_ciphertexts(const HePlan& plan, int threads, std::size_t, bool with_client, int tile,
                                        std::size_t resident_limit, MemoryEstimate& m) const {
  estimate_batch(plan, threads, with_client, tile, resident_limit, m);
}

double BatchBackend::stage_seconds(const HePlan& plan, std::size_t i, const CostModel& c, const std::vector<bool>&) const {
  const Stage& s = plan.program.stages[i];
  const UnitCosts& u = c.unit;
  const std::size_t level = plan.params->max_level() - static_cast<std::size_t>(s.depth_in);
  // Products left unrelinearized by the activation before (deferred relinearization).
  const bool three = s.inputs[0] != kProgramInput &&
                     plan.program.stages[static_cast<std::size_t>(s.inputs[0])].kind() == StageKind::Activation &&
                     !plan.program.stages[static_cast<std::size_t>(s.inputs[0])].activation().relinearize_output;
  switch (s.kind()) {
    case StageKind::Linear: {
      std::size_t terms = 0;
      s.linear().for_each_term(s.in, s.out, [&](std::size_t, std::size_t, double) { ++terms; });
      const double outs = static_cast<double>(s.out.size());
      return static_cast<double>(terms) * u.sparse_term * c.r(level) * (three ? 1.5 : 1.0) +
             outs * (u.rescale * c.r(level) + (three ? u.key_switch * c.rks(level) : 0.0));
    }
    case StageKind::SumPool: return 0;
    case StageKind::Activation: return static_cast<double>(s.in.size()) * c.activation(s.activation(), level);
    case StageKind::Add:
      // Additions (and drops of the higher inputs) only: a small fraction of a rescale each.
      return static_cast<double>(s.out.size()) * static_cast<double>(s.inputs.size()) * 0.2 * u.rescale * c.r(level);
    case StageKind::Bootstrap: break;  // never planned in this layout
  }
  return 0;
}

std::shared_ptr<const EngineState> BatchBackend::engine_state(const HePlan& plan, const ckks::ContextPtr&,
                                                              const EngineOptions& options) const {
  return LoweredSchedule::make(plan, options.tile, hecnn::num_threads());
}

std::unique_ptr<InferenceEngine> BatchBackend::make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                                           const EngineOptions& options) const {
  auto lowered = std::dynamic_pointer_cast<const LoweredSchedule>(options.state);
  if (options.state && !lowered) throw Error("encrypted inference: the engine state was made by another layout");
  return std::make_unique<Engine>(plan, std::move(ctx), keys, options, std::move(lowered));
}

std::unique_ptr<InferenceClient> BatchBackend::make_client(const ClientSpec& spec, ckks::ContextPtr ctx,
                                                           const ckks::SecretKey& sk) const {
  return std::make_unique<Client>(spec, std::move(ctx), sk);
}

LocalRun BatchBackend::run_local(const InferenceEngine& engine, const InferenceClient& client, const float* images,
                                 std::size_t count, const ProgressFn& progress) const {
  // Encrypted as the streamed schedule takes the inputs: the whole query is never in memory. Both
  // were made by this back end (make_engine, make_client).
  const auto& e = static_cast<const Engine&>(engine);
  EncryptingSource source(static_cast<const Client&>(client), images, count);
  LocalRun r;
  r.result = e.run(source, progress);
  r.encrypt_seconds = e.source_seconds();
  return r;
}

}  // namespace hecnn::he::batch
