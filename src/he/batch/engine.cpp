#include "he/batch/engine.h"

#include <omp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>

#include "common/error.h"
#include "common/parallel.h"
#include "common/threads.h"
#include "he/batch/backend.h"

namespace hecnn::he::batch {

using ckks::Ciphertext;

using hecnn::ParallelErrors;

namespace {

// A query held in memory, handed out (moved) as the schedule takes it.
class VectorSource : public QuerySource {
 public:
  explicit VectorSource(std::vector<Ciphertext>& v) : v_(v) {}
  std::size_t size() const override { return v_.size(); }
  void take(const std::vector<std::uint32_t>& indices, std::vector<Ciphertext>& out) override {
    for (std::size_t k = 0; k < indices.size(); ++k) out[k] = std::move(v_[indices[k]]);
  }

 private:
  std::vector<Ciphertext>& v_;
};

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// The ciphertexts of a running schedule, by schedule stage and value. With a spill directory,
// when the resident ones exceed the limit, those read again farthest in the future go to a file
// there (unlinked as soon as it is created, so that it disappears however the run ends) and come
// back when a step reads them.
class ValueStore {
 public:
  ValueStore(const Schedule& sched, const EngineOptions& o,
             const std::vector<std::vector<std::vector<std::uint32_t>>>* readers)
      : readers_(readers), limit_(o.resident_bytes) {
    values_.resize(sched.values.size());
    for (std::size_t k = 0; k < sched.values.size(); ++k) values_[k].resize(sched.values[k]);
    if (o.spill_dir.empty()) return;
    spilled_.resize(sched.values.size());
    for (std::size_t k = 0; k < sched.values.size(); ++k) spilled_[k].resize(sched.values[k]);
    std::string path = o.spill_dir + "/hecnn-spill-XXXXXX";
    fd_ = ::mkstemp(path.data());
    if (fd_ < 0) throw Error("--spill-dir: cannot create a file in '" + o.spill_dir + "': " + errno_text());
    ::unlink(path.c_str());
  }
  ~ValueStore() {
    if (fd_ >= 0) ::close(fd_);
  }
  ValueStore(const ValueStore&) = delete;
  ValueStore& operator=(const ValueStore&) = delete;

  Ciphertext& at(std::size_t k, std::size_t v) {
    Ciphertext& c = values_[k][v];
    if (c.n() == 0) throw Error("encrypted inference: a value was read before it was made or after it was released (internal error)");
    return c;
  }
  void put(std::size_t k, std::size_t v, Ciphertext&& c) {
    resident_ += bytes(c);
    values_[k][v] = std::move(c);
  }
  void release(std::size_t k, std::size_t v) {
    resident_ -= bytes(values_[k][v]);
    values_[k][v] = Ciphertext();
    if (fd_ >= 0 && spilled_[k][v].on_disk) {
      free_[spilled_[k][v].bytes].push_back(spilled_[k][v].offset);
      spilled_[k][v].on_disk = false;
    }
  }
  // Moves value (k, v) out (its last reader is taking it).
  Ciphertext take(std::size_t k, std::size_t v) {
    Ciphertext c = std::move(at(k, v));
    resident_ -= bytes(c);
    values_[k][v] = Ciphertext();
    return c;
  }
  std::vector<Ciphertext> take_all(std::size_t k) {
    std::vector<Ciphertext> out(values_[k].size());
    for (std::size_t v = 0; v < out.size(); ++v) {
      load(k, v);
      out[v] = std::move(values_[k][v]);
    }
    return out;
  }
  // Makes value (k, v) resident again if it was spilled.
  void load(std::size_t k, std::size_t v) {
    if (fd_ < 0 || !spilled_[k][v].on_disk) return;
    Spilled& s = spilled_[k][v];
    Ciphertext c(s.n, s.level, s.size, s.slots, s.scale);
    read_all(reinterpret_cast<char*>(c.poly(0)), s.bytes, s.offset);
    free_[s.bytes].push_back(s.offset);
    s.on_disk = false;
    put(k, v, std::move(c));
  }
  // With a spill file, writes out resident values (not read by step `keep_step`) until at most
  // the limit stays resident, farthest next reader first.
  void spill(std::size_t after_step, std::size_t keep_step) {
    if (fd_ < 0 || resident_ <= limit_) return;
    struct Candidate {
      std::size_t next, k, v;
    };
    std::vector<Candidate> c;
    for (std::size_t k = 0; k < values_.size(); ++k) {
      for (std::size_t v = 0; v < values_[k].size(); ++v) {
        if (values_[k][v].n() == 0) continue;
        const auto& r = (*readers_)[k][v];
        const auto it = std::upper_bound(r.begin(), r.end(), static_cast<std::uint32_t>(after_step));
        const std::size_t next = it == r.end() ? static_cast<std::size_t>(-1) : *it;
        if (next == keep_step) continue;
        c.push_back({next, k, v});
      }
    }
    std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) { return a.next > b.next; });
    for (const auto& x : c) {
      if (resident_ <= limit_) break;
      write_out(x.k, x.v);
    }
  }
  std::size_t file_bytes() const { return end_; }

 private:
  struct Spilled {
    bool on_disk = false;
    std::size_t n = 0, level = 0, size = 0, slots = 0, bytes = 0;
    double scale = 1;
    std::uint64_t offset = 0;
  };
  static std::size_t bytes(const Ciphertext& c) { return c.word_count() * sizeof(std::uint64_t); }

  void write_out(std::size_t k, std::size_t v) {
    Ciphertext& c = values_[k][v];
    Spilled& s = spilled_[k][v];
    s.n = c.n();
    s.level = c.level();
    s.size = c.size();
    s.slots = c.slots();
    s.scale = c.scale();
    s.bytes = bytes(c);
    auto& fl = free_[s.bytes];
    if (!fl.empty()) {
      s.offset = fl.back();
      fl.pop_back();
    } else {
      s.offset = end_;
      end_ += s.bytes;
    }
    const char* p = reinterpret_cast<const char*>(c.poly(0));
    for (std::size_t done = 0; done < s.bytes;) {
      const ssize_t w = ::pwrite(fd_, p + done, s.bytes - done, static_cast<off_t>(s.offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw Error("--spill-dir: writing spilled ciphertexts failed: " + (w < 0 ? errno_text() : std::string("no space")));
      done += static_cast<std::size_t>(w);
    }
    s.on_disk = true;
    resident_ -= s.bytes;
    c = Ciphertext();
  }
  void read_all(char* p, std::size_t n, std::uint64_t offset) {
    for (std::size_t done = 0; done < n;) {
      const ssize_t r = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw Error("--spill-dir: reading spilled ciphertexts back failed: " + (r < 0 ? errno_text() : std::string("short file")));
      done += static_cast<std::size_t>(r);
    }
  }

  std::vector<std::vector<Ciphertext>> values_;
  const std::vector<std::vector<std::vector<std::uint32_t>>>* readers_;
  std::size_t limit_, resident_ = 0;
  int fd_ = -1;
  std::vector<std::vector<Spilled>> spilled_;
  std::map<std::size_t, std::vector<std::uint64_t>> free_;
  std::uint64_t end_ = 0;
};

std::size_t LoweredSchedule::bytes() const {
  std::size_t n = 0;
  for (const auto& m : matrices) n += m.col.size() * 4 + m.weight.size() * 8 + m.row_start.size() * 4 + m.bias.size() * 8;
  for (const auto& st : schedule.steps) n += sizeof(ScheduleStep) + st.values.size() * 4 + st.release.size() * 8;
  return n;
}

std::shared_ptr<const LoweredSchedule> LoweredSchedule::make(const HePlan& plan, int tile, int threads) {
  auto l = std::make_shared<LoweredSchedule>();
  l->matrices = lower_linear_stages(plan.program);
  l->schedule = make_schedule(plan.program, l->matrices, tile, threads);
  l->tile = tile;
  l->threads = threads;
  return l;
}

Engine::Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, const EngineOptions& options)
    : Engine(plan, std::move(ctx), keys, options, nullptr) {}

Engine::Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, const EngineOptions& options,
               std::shared_ptr<const LoweredSchedule> lowered)
    : plan_(plan),
      ctx_(std::move(ctx)),
      keys_(keys),
      options_(options),
      ev_(ctx_),
      lowered_(lowered && lowered->tile == options.tile && lowered->threads == hecnn::num_threads()
                   ? std::move(lowered)
                   : LoweredSchedule::make(plan, options.tile, hecnn::num_threads())),
      matrices_(lowered_->matrices),
      schedule_(lowered_->schedule) {
  if (plan.layout != Layout::Batch) throw Error("encrypted inference: the plan is not in the batch layout");
  if (!plan.params || !(ctx_->params() == *plan.params)) {
    throw Error("encrypted inference: the keys were made for other parameters than this model's plan");
  }
  check_keys(keys, plan.keys, *ctx_);
  if (!options_.spill_dir.empty()) {
    struct stat st {};
    if (::stat(options_.spill_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      throw Error("--spill-dir: '" + options_.spill_dir + "' is not a directory");
    }
    if (::access(options_.spill_dir.c_str(), W_OK) != 0) throw Error("--spill-dir: '" + options_.spill_dir + "' is not writable");
    readers_.resize(schedule_.values.size());
    for (std::size_t k = 0; k < readers_.size(); ++k) readers_[k].resize(schedule_.values[k]);
    for (std::size_t n = 0; n < schedule_.steps.size(); ++n) {
      const ScheduleStep& st = schedule_.steps[n];
      if (st.stage == 0) continue;
      for (std::uint32_t v : st.values) {
        for_each_dependency(plan_.program, matrices_, st.stage - 1, v, [&](std::size_t from, std::size_t i) {
          auto& r = readers_[from][i];
          if (r.empty() || r.back() != n) r.push_back(static_cast<std::uint32_t>(n));
        });
      }
    }
  }
}

Engine::~Engine() = default;

void Engine::check_input(const Ciphertext& c, std::size_t& level, double& scale) const {
  if (scale == 0) {  // the first input fixes the level and scale of all
    level = c.level();
    scale = c.scale();
    if (static_cast<int>(level) < plan_.program.depth) {
      throw Error("encrypted inference: the inputs have " + std::to_string(level) + " levels, the model needs " +
                  std::to_string(plan_.program.depth));
    }
  }
  if (c.n() != ctx_->n() || c.size() != 2 || c.level() != level || std::fabs(c.scale() - scale) > 1e-9 * scale) {
    throw Error("encrypted inference: the input ciphertexts differ in level, size or scale");
  }
}

void Engine::take_inputs(const ScheduleStep& step, QuerySource& source, ValueStore& store, std::size_t& level,
                         double& scale) const {
  std::vector<Ciphertext> got(step.values.size());
  source.take(step.values, got);
  for (std::size_t k = 0; k < got.size(); ++k) {
    check_input(got[k], level, scale);
    store.put(0, step.values[k], std::move(got[k]));
  }
}

void Engine::make_linear(const ScheduleStep& step, ValueStore& store) const {
  const std::size_t s = step.stage - 1;
  const std::size_t from = schedule_stage(plan_.program.stages[s].inputs[0]);
  const ckks::SparseMatrix& m = matrices_[s];
  // The step's rows, with their columns renumbered over the inputs it reads.
  ckks::SparseMatrix sub;
  std::vector<std::uint32_t> cols;
  for (std::uint32_t v : step.values) cols.insert(cols.end(), m.col.begin() + m.row_start[v], m.col.begin() + m.row_start[v + 1]);
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  for (std::uint32_t v : step.values) {
    for (std::uint32_t t = m.row_start[v]; t < m.row_start[v + 1]; ++t) {
      sub.col.push_back(static_cast<std::uint32_t>(std::lower_bound(cols.begin(), cols.end(), m.col[t]) - cols.begin()));
      sub.weight.push_back(m.weight[t]);
    }
    sub.row_start.push_back(static_cast<std::uint32_t>(sub.col.size()));
    sub.bias.push_back(m.bias[v]);
  }
  std::vector<const Ciphertext*> in(cols.size());
  for (std::size_t i = 0; i < cols.size(); ++i) {
    store.load(from, cols[i]);
    in[i] = &store.at(from, cols[i]);
  }
  const Stage& st = plan_.program.stages[s];
  if (in.empty()) throw Error("encrypted inference: stage '" + st.name + "' has an output that reads nothing");
  const std::size_t level = in[0]->level();
  if (level == 0) throw Error("encrypted inference: no level left for stage '" + st.name + "'");
  // Weights are multiplied by C so that after dividing by q_top the output has the plan's scale.
  const double q_top = static_cast<double>(ctx_->modulus(level).value);
  const double c = plan_.scale() * q_top / in[0]->scale();
  std::vector<Ciphertext> out = ev_.multiply_sparse(in, sub, c);
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < out.size(); ++o) errors.run([&] {
    // Relinearized (a sum of unrelinearized products) in the same division as the rescale, so its
    // noise is divided by the prime like everything else; into storage of the result's size (held
    // until its last reader).
    Ciphertext r;
    ev_.relinearize_rescale(out[o], keys_.relin, r);
    r.set_scale(plan_.scale());
    out[o] = std::move(r);
  });
  errors.rethrow();
  for (std::size_t o = 0; o < out.size(); ++o) store.put(step.stage, step.values[o], std::move(out[o]));
}

void Engine::make_pool(const ScheduleStep& step, ValueStore& store) const {
  const Stage& st = plan_.program.stages[step.stage - 1];
  const SumPoolOp& pool = st.pool();
  const std::size_t from = schedule_stage(st.inputs[0]);
  for (std::uint32_t v : step.values) pool.for_each_input(st.in, st.out, v, [&](std::size_t i) { store.load(from, i); });
  std::vector<Ciphertext> out(step.values.size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < out.size(); ++o) errors.run([&] {
    bool first = true;
    pool.for_each_input(st.in, st.out, step.values[o], [&](std::size_t i) {
      const Ciphertext& x = store.at(from, i);
      if (first) {
        out[o] = x;
        first = false;
      } else {
        ev_.add_inplace(out[o], x);
      }
    });
  });
  errors.rethrow();
  for (std::size_t o = 0; o < out.size(); ++o) store.put(step.stage, step.values[o], std::move(out[o]));
}

void Engine::make_activation(const ScheduleStep& step, ValueStore& store) const {
  const Stage& st = plan_.program.stages[step.stage - 1];
  const ActivationOp& act = st.activation();
  const std::size_t from = schedule_stage(st.inputs[0]);
  approx::PolyEvalPlan poly = act.poly;
  poly.relinearize_last = act.relinearize_output;
  const approx::PolynomialEvaluator pe(ev_, keys_.relin);
  // An input this step reads last is moved into the evaluation; one read again later is copied.
  std::vector<Ciphertext> in(step.values.size());
  for (std::size_t o = 0; o < in.size(); ++o) {
    store.load(from, step.values[o]);
    in[o] = released_by(step, from, step.values[o]) ? store.take(from, step.values[o]) : store.at(from, step.values[o]);
  }
  std::vector<Ciphertext> out(step.values.size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < out.size(); ++o) errors.run([&] {
    out[o] = pe.evaluate(std::move(in[o]), poly);
    out[o].shrink_to_fit();
    in[o] = Ciphertext();
  });
  errors.rethrow();
  for (std::size_t o = 0; o < out.size(); ++o) store.put(step.stage, step.values[o], std::move(out[o]));
}

bool Engine::released_by(const ScheduleStep& step, std::size_t stage, std::size_t value) {
  for (const auto& r : step.release) {
    if (r.stage == stage && r.index == value) return true;
  }
  return false;
}

void Engine::make_add(const ScheduleStep& step, ValueStore& store) const {
  const Stage& st = plan_.program.stages[step.stage - 1];
  for (std::uint32_t v : step.values)
    for (int in : st.inputs) store.load(schedule_stage(in), v);
  std::vector<Ciphertext> out(step.values.size());
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t o = 0; o < out.size(); ++o) errors.run([&] {
    // At the lowest of the inputs' levels: the others are dropped to it (their scales are the plan's).
    std::size_t level = static_cast<std::size_t>(-1);
    for (int in : st.inputs) level = std::min(level, store.at(schedule_stage(in), step.values[o]).level());
    for (int in : st.inputs) {
      const Ciphertext& x = store.at(schedule_stage(in), step.values[o]);
      if (std::fabs(x.scale() - plan_.scale()) > 1e-9 * plan_.scale()) {
        throw Error("encrypted inference: stage '" + st.name + "' adds values at different scales (internal error)");
      }
      if (out[o].n() == 0) {
        out[o] = x;
        ev_.drop_to_level_inplace(out[o], level);
      } else if (x.level() == level) {
        ev_.add_inplace(out[o], x);
      } else {
        Ciphertext y = x;
        ev_.drop_to_level_inplace(y, level);
        ev_.add_inplace(out[o], y);
      }
    }
  });
  errors.rethrow();
  for (std::size_t o = 0; o < out.size(); ++o) store.put(step.stage, step.values[o], std::move(out[o]));
}

std::vector<Ciphertext> Engine::run(std::vector<Ciphertext> x, const ProgressFn& progress) const {
  // A query held whole is checked before anything runs (the count by the streamed run).
  std::size_t level = 0;
  double scale = 0;
  if (x.size() == static_cast<std::size_t>(plan_.program.input.size())) {
    for (const auto& c : x) check_input(c, level, scale);
  }
  VectorSource source(x);
  return run(source, progress);
}

std::vector<Ciphertext> Engine::run(QuerySource& source, const ProgressFn& progress) const {
  const Program& prog = plan_.program;
  if (source.size() != static_cast<std::size_t>(prog.input.size())) {
    throw Error("encrypted inference: the model expects " + std::to_string(prog.input.size()) + " input ciphertexts (" +
                prog.input.to_string() + "), the query has " + std::to_string(source.size()));
  }
  run_.restart();
  stage_seconds_.assign(prog.stages.size(), 0.0);
  source_seconds_ = 0;
  spilled_bytes_ = 0;
  ValueStore store(schedule_, options_, readers_.empty() ? nullptr : &readers_);
  const std::size_t S = schedule_.values.size();
  std::vector<std::size_t> tiles_done(S, 0);
  double work_done = 0;
  Stopwatch since_report;
  std::size_t in_level = 0;
  double in_scale = 0;
  for (std::size_t n = 0; n < schedule_.steps.size(); ++n) {
    const ScheduleStep& step = schedule_.steps[n];
    const Stopwatch t;
    if (!step.values.empty()) {
      if (step.stage == 0) {
        take_inputs(step, source, store, in_level, in_scale);
        source_seconds_ += t.seconds();
      } else {
        switch (prog.stages[step.stage - 1].kind()) {
          case StageKind::Linear: make_linear(step, store); break;
          case StageKind::SumPool: make_pool(step, store); break;
          case StageKind::Activation: make_activation(step, store); break;
          case StageKind::Add: make_add(step, store); break;
          case StageKind::Bootstrap: throw Error("batch layout: bootstrapping runs in the packed layout only");
        }
        stage_seconds_[step.stage - 1] += t.seconds();
      }
      ++tiles_done[step.stage];
      work_done += step.work;
    }
    for (const auto& r : step.release) store.release(r.stage, r.index);
    if (!options_.spill_dir.empty()) {
      std::size_t following = n + 1;
      while (following < schedule_.steps.size() && schedule_.steps[following].values.empty()) ++following;
      store.spill(n, following);
      spilled_bytes_ = store.file_bytes();
    }
    if (progress && step.stage > 0 && !step.values.empty() &&
        (since_report.seconds() >= 0.2 || tiles_done[step.stage] == schedule_.tiles[step.stage])) {
      since_report.restart();
      const std::size_t s = step.stage - 1;
      Progress p{s, prog.stages.size(), prog.stages[s].name, tiles_done[step.stage], schedule_.tiles[step.stage],
                 run_.seconds(), run_.seconds()};
      p.fraction = schedule_.work > 0 ? work_done / schedule_.work : -1;
      progress(p);
    }
  }
  return store.take_all(S - 1);
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
  std::vector<std::uint32_t> all(static_cast<std::size_t>(spec_.input.size()));
  for (std::size_t p = 0; p < all.size(); ++p) all[p] = static_cast<std::uint32_t>(p);
  std::vector<Ciphertext> out(all.size());
  encrypt_values(pixel_major(images, count), count, all, out);
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

std::vector<float> Client::pixel_major(const float* images, std::size_t count) const {
  if (count == 0 || count > spec_.batch_size) {
    throw Error("client: a batch holds 1 to " + std::to_string(spec_.batch_size) + " images; got " + std::to_string(count));
  }
  const auto pixels = static_cast<std::size_t>(spec_.input.size());
  std::vector<float> t(pixels * count);
  // In blocks, so that both sides stay in cache.
  constexpr std::size_t kBlock = 64;
  for (std::size_t b0 = 0; b0 < count; b0 += kBlock)
    for (std::size_t p0 = 0; p0 < pixels; p0 += kBlock)
      for (std::size_t b = b0; b < std::min(count, b0 + kBlock); ++b)
        for (std::size_t p = p0; p < std::min(pixels, p0 + kBlock); ++p) t[p * count + b] = images[b * pixels + p];
  return t;
}

void Client::encrypt_values(const std::vector<float>& pixel_major, std::size_t count, const std::vector<std::uint32_t>& indices,
                            std::vector<Ciphertext>& out) const {
  const auto pixels = static_cast<std::size_t>(spec_.input.size());
  if (count == 0 || count > spec_.batch_size || pixel_major.size() != pixels * count) {
    throw Error("client: a batch holds 1 to " + std::to_string(spec_.batch_size) + " images of " + std::to_string(pixels) + " values");
  }
  ParallelErrors errors;
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1)
    for (std::size_t k = 0; k < indices.size(); ++k) errors.run([&] {
      const std::size_t p = indices[k];
      if (p >= pixels) throw Error("client: input value " + std::to_string(p) + " is beyond the image");
      const float* row = pixel_major.data() + p * count;
      encryptor_.encrypt(encoder_, std::vector<double>(row, row + count), spec_.scale(), ctx_->max_level(), out[k]);
    });
  }
  errors.rethrow();
}

EncryptingSource::EncryptingSource(const Client& client, const float* images, std::size_t count)
    : client_(client), pixel_major_(client.pixel_major(images, count)), count_(count) {}

std::size_t EncryptingSource::size() const { return static_cast<std::size_t>(client_.spec().input.size()); }

void EncryptingSource::take(const std::vector<std::uint32_t>& indices, std::vector<Ciphertext>& out) {
  client_.encrypt_values(pixel_major_, count_, indices, out);
}

}  // namespace hecnn::he::batch

