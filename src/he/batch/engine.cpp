#include "he/batch/engine.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "common/parallel.h"
#include "he/batch/backend.h"

namespace hecnn::he::batch {

using ckks::Ciphertext;

using hecnn::ParallelErrors;

Engine::Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys)
    : plan_(plan), ctx_(std::move(ctx)), keys_(keys), ev_(ctx_) {
  if (plan.layout != Layout::Batch) throw Error("encrypted inference: the plan is not in the batch layout");
  if (!plan.params || !(ctx_->params() == *plan.params)) {
    throw Error("encrypted inference: the keys were made for other parameters than this model's plan");
  }
  check_keys(keys, plan.keys, *ctx_);
  matrices_.resize(plan.program.stages.size());
  for (std::size_t i = 0; i < matrices_.size(); ++i) {
    if (plan.program.stages[i].kind() == StageKind::Linear) matrices_[i] = lower_linear(plan.program.stages[i]);
  }
}

void Engine::report(const ProgressFn& progress, std::size_t index, std::size_t done, std::size_t total) const {
  if (!progress) return;
  const auto& stages = plan_.program.stages;
  progress(Progress{index, stages.size(), stages[index].name, done, total, run_.seconds(), stage_.seconds()});
}

std::vector<Ciphertext> Engine::linear(std::size_t index, std::vector<Ciphertext>& in, const ProgressFn& progress) const {
  const Stage& s = plan_.program.stages[index];
  const ckks::SparseMatrix& matrix = matrices_[index];
  const std::size_t level = in[0].level(), outs = matrix.rows();
  if (level == 0) throw Error("encrypted inference: no level left for stage '" + s.name + "'");
  // Weights are multiplied by C so that after dividing by q_top the output has the plan's scale.
  const double q_top = static_cast<double>(ctx_->modulus(level).value);
  const double c = plan_.scale() * q_top / in[0].scale();
  // Progress: the products are the first half of the stage, relinearizing and rescaling the second.
  std::vector<Ciphertext> out = ev_.multiply_sparse(in, matrix, c, [&](std::size_t done, std::size_t total) {
    report(progress, index, done, 2 * total);
  });
  in.clear();  // the inputs are no longer needed: release them before rescaling
  in.shrink_to_fit();
  std::size_t done = 0;
  const auto progress_every = std::max<std::size_t>(1, outs / 50);
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < outs; ++o) errors.run([&] {
    // Relinearize first: its noise is then divided by the prime like everything else.
    if (out[o].size() == 3) ev_.relinearize_inplace(out[o], keys_.relin);
    ev_.rescale_inplace(out[o]);
    out[o].set_scale(plan_.scale());
#pragma omp atomic
    ++done;
    if (omp_get_thread_num() == 0 && done % progress_every == 0) report(progress, index, outs + done, 2 * outs);
  });
  errors.rethrow();
  report(progress, index, 1, 1);
  return out;
}

std::vector<Ciphertext> Engine::sum_pool(std::size_t index, std::vector<Ciphertext>& in) const {
  const Stage& st = plan_.program.stages[index];
  const SumPoolOp& pool = st.pool();
  const nn::Shape a = st.in, b = st.out;
  std::vector<Ciphertext> out(static_cast<std::size_t>(b.size()));
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::int64_t o = 0; o < b.size(); ++o) errors.run([&] {
    Ciphertext acc;
    bool first = true;
    pool.for_each_input(a, b, static_cast<std::size_t>(o), [&](std::size_t i) {
      if (first) {
        acc = in[i];
        first = false;
      } else {
        ev_.add_inplace(acc, in[i]);
      }
    });
    out[static_cast<std::size_t>(o)] = std::move(acc);
  });
  errors.rethrow();
  return out;
}

std::vector<Ciphertext> Engine::activation(std::size_t index, std::vector<Ciphertext>& in,
                                           const ProgressFn& progress) const {
  const ActivationOp& act = plan_.program.stages[index].activation();
  approx::PolyEvalPlan poly = act.poly;
  poly.relinearize_last = act.relinearize_output;
  const approx::PolynomialEvaluator pe(ev_, keys_.relin);
  std::vector<Ciphertext> out(in.size());
  std::size_t done = 0;
  const auto progress_every = std::max<std::size_t>(1, in.size() / 50);
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t i = 0; i < in.size(); ++i) errors.run([&] {
    out[i] = pe.evaluate(in[i], poly);
    in[i] = Ciphertext();  // release the input as soon as it is used
#pragma omp atomic
    ++done;
    if (omp_get_thread_num() == 0 && (done % progress_every == 0 || done == in.size())) report(progress, index, done, in.size());
  });
  errors.rethrow();
  report(progress, index, in.size(), in.size());
  return out;
}

std::vector<Ciphertext> Engine::run(std::vector<Ciphertext> x, const ProgressFn& progress) const {
  const Program& prog = plan_.program;
  if (x.size() != static_cast<std::size_t>(prog.input.size())) {
    throw Error("encrypted inference: the model expects " + std::to_string(prog.input.size()) + " input ciphertexts (" +
                prog.input.to_string() + "), the query has " + std::to_string(x.size()));
  }
  for (const auto& c : x) {
    if (c.level() != x[0].level() || c.size() != 2 || std::fabs(c.scale() - x[0].scale()) > 1e-9 * x[0].scale() ||
        c.n() != ctx_->n()) {
      throw Error("encrypted inference: the input ciphertexts differ in level, size or scale");
    }
  }
  if (static_cast<int>(x[0].level()) < prog.depth) {
    throw Error("encrypted inference: the inputs have " + std::to_string(x[0].level()) + " levels, the model needs " +
                std::to_string(prog.depth));
  }
  run_.restart();
  stage_seconds_.assign(prog.stages.size(), 0.0);
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    stage_.restart();
    std::vector<Ciphertext> y;
    switch (prog.stages[i].kind()) {
      case StageKind::Linear: y = linear(i, x, progress); break;
      case StageKind::SumPool: y = sum_pool(i, x); break;
      case StageKind::Activation: y = activation(i, x, progress); break;
    }
    x = std::move(y);  // frees the stage's inputs
    stage_seconds_[i] = stage_.seconds();
  }
  return x;
}

Client::Client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk)
    : spec_(spec), ctx_(ctx), encoder_(ctx), encryptor_(ctx, sk), decryptor_(ctx, sk) {
  if (spec.layout != Layout::Batch) throw Error("client: the specification is not for the batch layout");
  if (spec.params_id != ctx_->params().id()) {
    throw Error("client: the keys were made for other parameters than this model's plan");
  }
  if (spec.batch_size > ctx_->params().max_slots()) throw Error("client: the batch is larger than the slot count");
}

std::vector<Ciphertext> Client::encrypt(const float* images, std::size_t count) const {
  if (count == 0 || count > spec_.batch_size) {
    throw Error("client: a batch holds 1 to " + std::to_string(spec_.batch_size) + " images; got " + std::to_string(count));
  }
  const auto pixels = static_cast<std::size_t>(spec_.input.size());
  std::vector<Ciphertext> out(pixels);
  ParallelErrors errors;
#pragma omp parallel
  {
    std::vector<double> v(count);
    ckks::Plaintext pt;
#pragma omp for schedule(dynamic, 4)
    for (std::size_t p = 0; p < pixels; ++p) errors.run([&] {
      for (std::size_t b = 0; b < count; ++b) v[b] = images[b * pixels + p];
      encoder_.encode(v, spec_.scale(), ctx_->max_level(), pt);
      encryptor_.encrypt(pt, out[p]);
    });
  }
  errors.rethrow();
  return out;
}

std::vector<std::vector<double>> Client::decrypt(const std::vector<Ciphertext>& outputs, std::size_t count) const {
  if (outputs.size() != spec_.output_ciphertexts) {
    throw Error("client: the result holds " + std::to_string(outputs.size()) + " ciphertexts, the model has " +
                std::to_string(spec_.output_ciphertexts) + " outputs");
  }
  if (count > spec_.batch_size) throw Error("client: more images than a batch holds");
  std::vector<std::vector<double>> r(count, std::vector<double>(outputs.size()));
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < outputs.size(); ++o) errors.run([&] {
    const std::vector<double> v = encoder_.decode(decryptor_.decrypt(outputs[o]));
    if (v.size() < count) throw Error("client: the result holds fewer slots than images");
    for (std::size_t b = 0; b < count; ++b) r[b][o] = v[b] * spec_.output_factor;
  });
  errors.rethrow();
  return r;
}

}  // namespace hecnn::he::batch
