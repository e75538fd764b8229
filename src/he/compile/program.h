#pragma once
// The model-level half of compiling an nn::Model for encrypted inference, independent of how the
// values are laid out in ciphertexts (the back ends in he/batch, and later he/packed, decide that).
//
// Passes: batch normalization folds into the preceding convolution or dense layer; every
// activation polynomial is evaluated in monic form and its leading coefficient folds into the next
// linear layer; average pooling (and global average pooling, a window over the whole plane)
// becomes a plain sum whose 1/(window size) folds forward likewise (or into the output factor); consecutive dense layers (or a convolution followed by dense layers) merge
// into one linear map; an activation whose power-basis evaluation would be inaccurate gets its
// input divided by the polynomial's range, folded into the previous linear layer where there is
// one. Each linear stage costs one level, each activation its polynomial plan's depth.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "approx/poly_eval.h"
#include "nn/conv.h"
#include "nn/model.h"

namespace hecnn::he {

// A convolution or dense layer with every folded factor applied. A convolution keeps its geometry
// (weight [out.c][in.c][kh][kw], one bias per output channel); a dense map is a matrix over the
// flattened CHW input (weight [outputs][inputs], one bias per output).
struct LinearOp {
  bool conv = false;
  nn::Layer geometry;  // conv only: kernel, stride and padding (no parameters)
  std::vector<double> weight, bias;

  // Calls f(output, input, weight) for every nonzero weight, output by output, in the order in
  // which every back end and the simulation form the sums.
  template <typename F>
  void for_each_term(const nn::Shape& in, const nn::Shape& out, F&& f) const;
  // The bias added to output o.
  double bias_of(std::size_t o, const nn::Shape& out) const {
    return conv ? bias[o / (static_cast<std::size_t>(out.h) * out.w)] : bias[o];
  }
  // Multiplies the outputs (weights and biases) by f.
  void scale_outputs(double f);
};

// Sum over pool_h x pool_w windows placed every stride_h rows and stride_w columns (the
// 1/(pool_h pool_w) is folded forward). Average pooling has square windows; global average pooling
// one window over the whole plane.
struct SumPoolOp {
  int pool_h = 2, pool_w = 2, stride_h = 2, stride_w = 2;
  bool global = false;  // from a global average pooling layer (for descriptions only)

  static SumPoolOp square(int pool, int stride) { return {pool, pool, stride, stride, false}; }
  static SumPoolOp whole(const nn::Shape& in) { return {in.h, in.w, in.h, in.w, true}; }
  int window() const { return pool_h * pool_w; }
  // Calls f(input) for every input (CHW index) of output o's window, in row-major order: the order
  // in which the back ends and the simulation add.
  template <typename F>
  void for_each_input(const nn::Shape& in, const nn::Shape& out, std::size_t o, F&& f) const;
};

struct ActivationOp {
  approx::PolyEvalPlan poly;
  approx::InputForm form = approx::InputForm::Raw;
  bool relinearize_output = true;  // false: the outputs stay 3-component until the next linear stage
};

enum class StageKind { Linear, SumPool, Activation };

struct Stage {
  std::string name;  // the model layers it comes from
  nn::Shape in, out;
  int levels = 0;
  std::variant<LinearOp, SumPoolOp, ActivationOp> op;

  StageKind kind() const { return static_cast<StageKind>(op.index()); }
  const LinearOp& linear() const { return std::get<LinearOp>(op); }
  const SumPoolOp& pool() const { return std::get<SumPoolOp>(op); }
  const ActivationOp& activation() const { return std::get<ActivationOp>(op); }
};

// The compiled computation: stages in order, with what the client needs to read the result.
struct Program {
  nn::Shape input;
  std::vector<Stage> stages;
  int depth = 0;               // levels the computation consumes
  double output_factor = 1.0;  // decrypted outputs are multiplied by this (a trailing pool's 1/window)
  std::size_t outputs() const { return stages.empty() ? 0 : static_cast<std::size_t>(stages.back().out.size()); }
};

// Runs the model-level passes. Throws hecnn::Error, naming the layer, for models encrypted
// inference cannot run (exact activations, batch normalization after a non-linear layer, ...).
Program compile_program(const nn::Model& model);

// The compiled computation on doubles: the same folded weights, the same stage order and the same
// polynomial evaluation order as the encrypted run. Returns the outputs for one image (CHW).
std::vector<double> simulate(const Program& program, const float* image);

// One line per stage ("level a -> b  kind name: ..."), starting from `top_level`; `unit` names what
// holds one value in the back end's layout (batch mode: "ciphertexts").
std::string describe_stages(const Program& program, int top_level, const std::string& unit);

template <typename F>
void LinearOp::for_each_term(const nn::Shape& in, const nn::Shape& out, F&& f) const {
  if (conv) {
    nn::for_each_conv_tap(geometry, in, out, [&](std::size_t o, std::size_t i, std::size_t k) {
      if (weight[k] != 0) f(o, i, weight[k]);
    });
    return;
  }
  const auto n_in = static_cast<std::size_t>(in.size()), n_out = static_cast<std::size_t>(out.size());
  for (std::size_t o = 0; o < n_out; ++o) {
    for (std::size_t i = 0; i < n_in; ++i) {
      const double w = weight[o * n_in + i];
      if (w != 0) f(o, i, w);
    }
  }
}

template <typename F>
void SumPoolOp::for_each_input(const nn::Shape& in, const nn::Shape& out, std::size_t o, F&& f) const {
  const std::size_t plane = static_cast<std::size_t>(out.h) * out.w;
  const auto c = o / plane, oy = o % plane / static_cast<std::size_t>(out.w), ox = o % static_cast<std::size_t>(out.w);
  const std::size_t top = (c * static_cast<std::size_t>(in.h) + oy * static_cast<std::size_t>(stride_h)) * in.w +
                          ox * static_cast<std::size_t>(stride_w);
  for (int ky = 0; ky < pool_h; ++ky)
    for (int kx = 0; kx < pool_w; ++kx) f(top + static_cast<std::size_t>(ky) * in.w + static_cast<std::size_t>(kx));
}

}  // namespace hecnn::he
