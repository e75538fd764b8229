#pragma once
// Compiling an nn::Model into an encrypted computation (batch mode: one ciphertext per pixel and
// channel, one image per slot), and the plaintext simulation of exactly that computation.
//
// Passes: batch normalization folds into the preceding convolution or dense layer; every
// activation is evaluated in monic form and its leading coefficient folds into the next linear
// layer; average pooling becomes a plain sum whose 1/k^2 folds forward likewise; consecutive dense
// layers merge into one. Each linear stage costs one level, each activation ceil(log2 d) levels.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "approx/poly_eval.h"
#include "ckks/evaluator.h"
#include "ckks/params.h"
#include "nn/model.h"

namespace hecnn::he {

enum class StageKind { Linear, SumPool, Activation };

// out[o] = sum over k in [row_start[o], row_start[o+1]) of weight[k] * in[col[k]] + bias[o].
using LinearStage = ckks::SparseMatrix;

struct SumPoolStage {
  int pool = 2, stride = 2;
};

struct ActivationStage {
  approx::PolyEvalPlan poly;
  approx::InputForm form = approx::InputForm::Raw;
  bool relinearize_output = true;  // false: the outputs stay 3-component until the next linear stage
};

struct Stage {
  StageKind kind = StageKind::Linear;
  std::string name;   // the model layers it comes from
  nn::Shape in, out;
  int levels = 0;
  LinearStage linear;
  SumPoolStage pool;
  ActivationStage activation;
};

struct CompileOptions {
  int log_n = 0;           // 0: the smallest secure ring degree
  int scale_bits = 0;      // 0: the largest scale (up to 40 bits) the security bound allows
  int extra_levels = 0;    // levels beyond those the computation needs
  bool allow_insecure = false;  // tests only: parameters above the 128-bit bound
};

struct HePlan {
  nn::Shape input;
  std::vector<Stage> stages;
  int depth = 0;               // levels the computation consumes
  double output_factor = 1.0;  // decrypted outputs are multiplied by this (a trailing pool's 1/k^2)
  std::optional<ckks::CkksParameters> params;
  int scale_bits = 0;
  double scale() const { return static_cast<double>(1ull << scale_bits); }
  std::size_t batch_size() const { return params ? params->max_slots() : 0; }
  std::size_t outputs() const { return stages.empty() ? 0 : static_cast<std::size_t>(stages.back().out.size()); }
  // Levels per stage, ring degree, bits of each prime, key sizes.
  std::string describe() const;
};

// Throws hecnn::Error for models encrypted inference cannot run (exact activations, batch
// normalization after a non-linear layer, ...), naming the layer.
HePlan compile(const nn::Model& model, const CompileOptions& options = {});

// Chooses ring degree, chain and special primes for `depth` levels (see CompileOptions); never
// above the 128-bit bound unless allow_insecure.
ckks::CkksParameters choose_parameters(int depth, const CompileOptions& options, int* scale_bits_out);

// The compiled computation on doubles: the same folded weights, the same stage order and the same
// polynomial evaluation order as the encrypted run. Returns the outputs for one image (CHW).
std::vector<double> simulate(const HePlan& plan, const float* image);

// Bytes of a relinearization key in its seeded (stored) form and expanded in memory.
std::size_t relin_key_bytes(const ckks::CkksParameters& p, bool seeded);

}  // namespace hecnn::he
