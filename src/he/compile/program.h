#pragma once
// The model-level half of compiling an nn::Model for encrypted inference, independent of how the
// values are laid out in ciphertexts (the back ends in he/batch and he/packed decide that).
//
// The result is a graph of stages (a DAG in topological order): a stage reads the outputs of earlier
// stages or the program's input, a value may feed several stages, and an Add stage joins branches
// (residual connections). Passes: batch normalization folds into the preceding convolution or dense
// layer when nothing else reads that layer, and otherwise (the input normalization) into the
// linear layers that read it, exactly (per-position biases where padding meets the shift); every
// activation polynomial whose outputs only linear layers read is evaluated in monic form and its
// leading coefficient folds into them; average pooling (and global average pooling, a window over
// the whole plane) becomes a plain sum whose 1/(window size) folds forward likewise (or into the
// output factor), padded average pooling a linear stage; consecutive dense layers (or a
// convolution followed by dense layers) merge into one linear map; an activation whose
// power-basis evaluation would be inaccurate gets its input divided by the polynomial's range,
// folded into the previous linear layer where there is one. Each linear stage costs one level,
// each activation its polynomial plan's depth; an Add costs none, and runs at the lower of its
// inputs' levels (the other input is dropped to it; scales are equal at stage boundaries).
// Bootstrap stages (raising a value back to the top level mid-graph) are placed by a pass over the
// graph (place_bootstraps) when the computation is deeper than the parameters' levels.
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
  // A convolution has one bias per output channel, or (an input shift folded through padding) one
  // per output.
  double bias_of(std::size_t o, const nn::Shape& out) const {
    return conv && bias.size() != static_cast<std::size_t>(out.size()) ? bias[o / (static_cast<std::size_t>(out.h) * out.w)]
                                                                     : bias[o];
  }
  // Multiplies the outputs (weights and biases) by f.
  void scale_outputs(double f);
  // Padded average pooling: output o's terms are multiplied by output_scale[o] (1 / the cells its
  // window reads); empty: none.
  std::vector<double> output_scale;
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
  // The largest |input| the polynomial is fitted for, in the units the stage reads (1 for a
  // normalized input); 0: none (x^2).
  double input_bound = 0;
  bool relinearize_output = true;  // false: the outputs stay 3-component until the next linear stage
};

// The element-wise sum of the stage's inputs (two or more, of one shape).
struct AddOp {};

// A refresh: the value comes back at the top level of the computation (depth 0), the same values
// up to the bootstrap's error. Its input must be small (|value| <= about 1, see circuits/bootstrap.h):
// the pass places bootstraps on the inputs of normalized activations, which calibration bounds.
struct BootstrapOp {};

enum class StageKind { Linear, SumPool, Activation, Add, Bootstrap };

// A stage's source: an earlier stage's index, or the program's input.
inline constexpr int kProgramInput = -1;

struct Stage {
  std::string name;  // the model layers it comes from
  nn::Shape in, out;  // in: the shape of its (first) input
  std::vector<int> inputs;  // earlier stages or kProgramInput; one, or two or more for Add
  int levels = 0;           // levels it consumes
  // Levels consumed before it runs (its inputs at the level of the deepest one) and after it.
  int depth_in = 0, depth_out = 0;
  std::variant<LinearOp, SumPoolOp, ActivationOp, AddOp, BootstrapOp> op;

  StageKind kind() const { return static_cast<StageKind>(op.index()); }
  const LinearOp& linear() const { return std::get<LinearOp>(op); }
  const SumPoolOp& pool() const { return std::get<SumPoolOp>(op); }
  const ActivationOp& activation() const { return std::get<ActivationOp>(op); }
};

// The compiled computation: stages in a topological order (the last one's output is the result),
// with what the client needs to read the result.
struct Program {
  nn::Shape input;
  std::vector<Stage> stages;
  int depth = 0;               // levels the computation consumes (on its deepest path between bootstraps)
  double output_factor = 1.0;  // decrypted outputs are multiplied by this (a trailing pool's 1/window)
  std::size_t outputs() const { return stages.empty() ? 0 : static_cast<std::size_t>(stages.back().out.size()); }
  // Per stage, the later stages reading its output.
  std::vector<std::vector<std::size_t>> consumers() const;
  // Whether every stage reads just the one before it (no branches).
  bool is_chain() const;
  // The shape of a source (kProgramInput or a stage).
  const nn::Shape& shape_of(int source) const {
    return source == kProgramInput ? input : stages[static_cast<std::size_t>(source)].out;
  }
  // Sets every stage's depth_in and depth_out from the levels and the graph (a bootstrap's output
  // is at depth 0), and `depth`.
  void plan_levels();
  std::size_t bootstraps() const;
};

// Bootstrap placement: inserts Bootstrap stages that keep every stage within `levels` levels (the
// levels a bootstrap's output has), and re-plans the levels. A bootstrap takes values of magnitude
// about 1 at most, so only the inputs of normalized activations (x / r, bounded by calibration)
// are candidates. Each candidate is refreshed, as late as possible, when the levels it has left do
// not reach the next candidates on its deepest path (or the end); one bootstrap per value, read by
// all its readers. On a chain, and on residual graphs whose shortcuts are shallower than their
// main branch (ResNets), this places the fewest bootstraps; on other graphs it is a heuristic.
// Throws hecnn::Error when a stage alone needs more than `levels`, or when the levels run out with
// no candidate before.
void place_bootstraps(Program& program, int levels);

// What simulate() reports about inputs outside the range their stage is planned for: a normalized
// activation's polynomial (|x| <= its range) and a bootstrap (|x| <= bootstrap_bound).
struct RangeReport {
  struct Entry {
    std::size_t stage = 0;
    std::uint64_t outside = 0, values = 0;
    double largest = 0;  // the largest |x| / bound seen
  };
  std::vector<Entry> stages;  // those with a bound, in stage order
  bool any_outside() const;
  // Adds another report of the same program (counts summed, largest kept).
  void merge(const RangeReport& other);
  // One line per stage with values outside; "none" otherwise.
  std::string describe(const Program& program) const;
};
inline constexpr double kBootstrapBound = 1.0;

// Runs the model-level passes. Throws hecnn::Error, naming the layer, for models encrypted
// inference cannot run (exact activations, batch normalization after a non-linear layer, ...).
Program compile_program(const nn::Model& model);

// The compiled computation on doubles: the same folded weights, the same stage order and the same
// polynomial evaluation order as the encrypted run. Returns the outputs for one image (CHW).
// With `ranges`, the values outside their stage's range are counted there (accumulated over calls).
std::vector<double> simulate(const Program& program, const float* image, RangeReport* ranges = nullptr);

// One line per stage ("level a -> b  kind name: ..."), starting from `top_level`; `unit` names what
// holds one value in the back end's layout (batch mode: "ciphertexts").
std::string describe_stages(const Program& program, int top_level, const std::string& unit);

template <typename F>
void LinearOp::for_each_term(const nn::Shape& in, const nn::Shape& out, F&& f) const {
  if (conv) {
    nn::for_each_conv_tap(geometry, in, out, [&](std::size_t o, std::size_t i, std::size_t k) {
      if (weight[k] != 0) f(o, i, output_scale.empty() ? weight[k] : weight[k] * output_scale[o]);
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
