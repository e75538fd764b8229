#pragma once
// Running a compiled plan on ciphertexts (the server side: no secret key anywhere here), and the
// client-side batch encryption and decryption.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ckks/ckks.h"
#include "he/plan.h"

namespace hecnn::he {

// Progress of a long run: stage index, units done / total in this stage.
struct Progress {
  std::size_t stage = 0, stages = 0;
  std::string name;
  std::size_t done = 0, total = 0;
  double elapsed_s = 0;        // since the start of the run
  double stage_elapsed_s = 0;  // since the start of this stage
};
using ProgressFn = std::function<void(const Progress&)>;

class Engine {
 public:
  // The relinearization key is the only key the batch-mode plan needs.
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const ckks::RelinKeys& rk);

  // One ciphertext per input pixel and channel (CHW order), all at the same level and scale; the
  // inputs are consumed (memory is released as soon as a stage no longer needs them). Returns
  // one ciphertext per output.
  std::vector<ckks::Ciphertext> run(std::vector<ckks::Ciphertext> inputs, const ProgressFn& progress = nullptr) const;

  // Seconds spent in each stage by the last run.
  const std::vector<double>& stage_seconds() const { return stage_seconds_; }

 private:
  std::vector<ckks::Ciphertext> linear(const Stage& s, std::size_t index, std::vector<ckks::Ciphertext>& in,
                                       const ProgressFn& progress) const;
  std::vector<ckks::Ciphertext> sum_pool(const Stage& s, std::vector<ckks::Ciphertext>& in) const;
  std::vector<ckks::Ciphertext> activation(const Stage& s, std::size_t index, std::vector<ckks::Ciphertext>& in,
                                           const ProgressFn& progress) const;
  void report(const ProgressFn& progress, std::size_t index, const Stage& s, std::size_t done, std::size_t total) const;

  const HePlan& plan_;
  ckks::ContextPtr ctx_;
  const ckks::RelinKeys& rk_;
  ckks::Evaluator ev_;
  mutable std::vector<double> stage_seconds_;
  mutable std::chrono::steady_clock::time_point start_, stage_start_;
};

// Client side. Images are packed one per slot: ciphertext p holds pixel p of every image.
class Client {
 public:
  Client(const HePlan& plan, ckks::ContextPtr ctx, const ckks::SecretKey& sk);
  // At most batch_size() images of plan.input's shape (CHW floats, consecutive).
  std::vector<ckks::Ciphertext> encrypt(const float* images, std::size_t count) const;
  // outputs[image][class], already multiplied by plan.output_factor.
  std::vector<std::vector<double>> decrypt(const std::vector<ckks::Ciphertext>& outputs, std::size_t count) const;

 private:
  const HePlan& plan_;
  ckks::ContextPtr ctx_;
  ckks::CkksEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
};

}  // namespace hecnn::he
