#include "cli/batches.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/progress.h"
#include "common/stopwatch.h"

namespace hecnn::cli {

std::vector<he::BatchInfo> split_batches(std::size_t first, std::size_t count, std::size_t batch_size) {
  if (batch_size == 0) throw Error("the batch size is zero");
  std::vector<he::BatchInfo> v;
  for (std::size_t s = 0; s < count; s += batch_size) v.push_back({first + s, std::min(batch_size, count - s)});
  return v;
}

std::vector<ckks::Ciphertext> encrypt_batch(const he::InferenceClient& client, const nn::Dataset& data,
                                            const he::BatchInfo& batch, StepTimes& times) {
  if (batch.first + batch.count > data.size()) throw Error("image index beyond the dataset");
  const Stopwatch t;
  auto q = client.encrypt(data.image(batch.first), batch.count);
  times.encrypt += t.seconds();
  return q;
}

namespace {

// The stage progress line: "stage 3/10 conv2 12/256 tiles  35 %  120.3 s  ~220 s left". Streamed
// batch runs give the share of the whole run done; the others the stage's units.
he::ProgressFn progress_printer(ProgressLine& line) {
  if (!line.enabled()) return nullptr;
  return [&line](const he::Progress& p) {
    char b[200];
    const bool last = p.stage + 1 == p.stages && p.done == p.total;
    if (p.fraction >= 0) {
      std::snprintf(b, sizeof b, "  stage %zu/%zu %-24.24s tile %zu/%zu  %5.1f %% of the run  %7.1f s  %s", p.stage + 1, p.stages,
                    p.name.c_str(), p.done, p.total, 100.0 * p.fraction, p.elapsed_s,
                    time_left(p.elapsed_s, p.fraction, 1.0).c_str());
      line.update(b, last);
      if (last) line.finish();
      return;
    }
    std::snprintf(b, sizeof b, "  stage %zu/%zu %-24.24s %6zu/%-6zu %7.1f s  %s", p.stage + 1, p.stages, p.name.c_str(), p.done,
                  p.total, p.elapsed_s, time_left(p.stage_elapsed_s, static_cast<double>(p.done), static_cast<double>(p.total)).c_str());
    line.update(b, p.done == p.total);
    if (p.done == p.total) line.finish();
  };
}

void add_stage_times(const he::InferenceEngine& engine, StepTimes& times) {
  const auto& s = engine.stage_seconds();
  if (times.stages.size() < s.size()) times.stages.resize(s.size(), 0.0);
  for (std::size_t k = 0; k < s.size(); ++k) times.stages[k] += s[k];
}

}  // namespace

std::vector<ckks::Ciphertext> infer_batch(const he::InferenceEngine& engine, std::vector<ckks::Ciphertext> query,
                                          bool quiet, StepTimes& times) {
  ProgressLine line(!quiet);
  const Stopwatch t;
  auto r = engine.run(std::move(query), progress_printer(line));
  times.infer += t.seconds();
  add_stage_times(engine, times);
  return r;
}

std::vector<ckks::Ciphertext> infer_local(const he::Backend& backend, const he::InferenceEngine& engine,
                                          const he::InferenceClient& client, const nn::Dataset& data,
                                          const he::BatchInfo& batch, bool quiet, StepTimes& times) {
  if (batch.first + batch.count > data.size()) throw Error("image index beyond the dataset");
  ProgressLine line(!quiet);
  const Stopwatch t;
  he::LocalRun r = backend.run_local(engine, client, data.image(batch.first), batch.count, progress_printer(line));
  const double total = t.seconds();
  times.encrypt += r.encrypt_seconds;
  times.infer += total - r.encrypt_seconds;
  add_stage_times(engine, times);
  return std::move(r.result);
}

std::vector<std::vector<double>> decrypt_batch(const he::InferenceClient& client, const std::vector<ckks::Ciphertext>& result,
                                               const he::BatchInfo& batch, StepTimes& times) {
  const Stopwatch t;
  auto logits = client.decrypt(result, batch.count);
  times.decrypt += t.seconds();
  return logits;
}

void Tally::add(const he::BatchInfo& batch, const std::vector<std::vector<double>>& logits, bool print) {
  for (std::size_t b = 0; b < batch.count; ++b) {
    const std::size_t i = batch.first + b;
    const int pred = nn::argmax(logits[b]);
    if (labels_) {
      if (i >= labels_->size()) throw Error("image index " + std::to_string(i) + " is beyond the label set");
      correct_ += pred == labels_->labels[i];
    }
    if (plain_) {
      if (i >= plain_->predictions.size()) throw Error("image index " + std::to_string(i) + " has no plaintext prediction");
      agree_ += pred == plain_->predictions[i];
      for (std::size_t k = 0; k < logits[b].size() && k < plain_->logits[i].size(); ++k) {
        max_diff_ = std::max(max_diff_, std::fabs(logits[b][k] - plain_->logits[i][k]));
      }
    }
    if (print) {
      std::printf("%zu: %d", i, pred);
      if (labels_) std::printf(" (label %d)", labels_->labels[i]);
      std::printf("\n");
    }
    ++count_;
  }
}

void Tally::print_summary() const {
  const double n = static_cast<double>(count_);
  if (labels_) std::printf("encrypted:             %.2f %% (%zu / %zu)\n", 100.0 * static_cast<double>(correct_) / n, correct_, count_);
  if (plain_) {
    std::printf("agreement with plaintext predictions: %.2f %% (%zu / %zu); largest logit difference %.3g\n",
                100.0 * static_cast<double>(agree_) / n, agree_, count_, max_diff_);
  }
}

double peak_memory_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

}  // namespace hecnn::cli
