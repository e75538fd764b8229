#pragma once
// The batch loop of encrypted classification, shared by `hecnn eval --encrypted` (all in one
// process) and the client/server commands (`encrypt`, `infer`, `decrypt`, through files): the
// images are split into batches, and each batch goes through the same three steps, timed the same
// way, with the same progress line; the predictions are tallied the same way.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "he/backend.h"
#include "he/runtime.h"
#include "he/files.h"
#include "nn/dataset.h"
#include "nn/forward.h"

namespace hecnn::cli {

// Images [first, first + count) in batches of at most batch_size.
std::vector<he::BatchInfo> split_batches(std::size_t first, std::size_t count, std::size_t batch_size);

// Seconds spent in each step, summed over batches.
struct StepTimes {
  double encrypt = 0, infer = 0, decrypt = 0;
  std::vector<double> stages;  // inference, per stage
};

// Client: encrypts the batch's images of `data`.
std::vector<ckks::Ciphertext> encrypt_batch(const he::InferenceClient& client, const nn::Dataset& data,
                                            const he::BatchInfo& batch, StepTimes& times);
// Server: runs the plan on one batch, with the stage progress line unless quiet.
std::vector<ckks::Ciphertext> infer_batch(const he::InferenceEngine& engine, std::vector<ckks::Ciphertext> query,
                                          bool quiet, StepTimes& times);
// Client and server in one process: the back end runs the batch's images of `data` (encrypting them
// its way, Backend::run_local); their encryption counts as the encrypt step.
std::vector<ckks::Ciphertext> infer_local(const he::Backend& backend, const he::InferenceEngine& engine,
                                          const he::InferenceClient& client, const nn::Dataset& data,
                                          const he::BatchInfo& batch, bool quiet, StepTimes& times);
// Client: logits[image][class].
std::vector<std::vector<double>> decrypt_batch(const he::InferenceClient& client, const std::vector<ckks::Ciphertext>& result,
                                               const he::BatchInfo& batch, StepTimes& times);

// Predictions tallied against labels and, when given, the plaintext model's predictions and logits.
class Tally {
 public:
  Tally(const nn::Dataset* labels, const nn::Evaluation* plain) : labels_(labels), plain_(plain) {}
  // Throws hecnn::Error when an image index is beyond the labels.
  void add(const he::BatchInfo& batch, const std::vector<std::vector<double>>& logits, bool print);
  std::size_t count() const { return count_; }
  std::size_t correct() const { return correct_; }
  // "encrypted: a % (c / n)", agreement and the largest logit difference where known.
  void print_summary() const;

 private:
  const nn::Dataset* labels_;
  const nn::Evaluation* plain_;
  std::size_t count_ = 0, correct_ = 0, agree_ = 0;
  double max_diff_ = 0;
};

// Peak resident memory of this process so far.
double peak_memory_gib();

}  // namespace hecnn::cli
