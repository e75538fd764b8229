#include "he/compile/program.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/error.h"
#include "nn/conv.h"
#include "nn/forward.h"
#include "nn/limits.h"

namespace hecnn::he {

namespace {

// The map from what a stage holds to the model's value: real = scale[c] enc + shift[c], c = the
// value's index / plane (one entry per channel; a flat value has plane 1 after a global pooling).
// Batch normalization that cannot fold backwards, monic activations and sum pooling leave one on a
// value; the linear stages that read it absorb it.
struct Affine {
  std::vector<double> scale, shift;
  std::size_t plane = 1;

  static Affine identity(const nn::Shape& s) {
    return {std::vector<double>(static_cast<std::size_t>(s.c), 1.0), std::vector<double>(static_cast<std::size_t>(s.c), 0.0),
            static_cast<std::size_t>(s.h) * static_cast<std::size_t>(s.w)};
  }
  std::size_t channel(std::size_t i) const { return std::min(i / plane, scale.size() - 1); }
  bool shifted() const {
    for (double v : shift)
      if (v != 0) return true;
    return false;
  }
  // One factor for every value (no shift): the form an output factor or a monic activation takes.
  bool uniform() const {
    if (shifted()) return false;
    for (double v : scale)
      if (v != scale[0]) return false;
    return true;
  }
  bool is_identity() const { return uniform() && scale[0] == 1.0; }
  bool operator==(const Affine& o) const { return scale == o.scale && shift == o.shift && plane == o.plane; }
};

LinearOp conv_op(const nn::Layer& l) {
  LinearOp op;
  op.conv = true;
  op.geometry = l;
  op.geometry.params.clear();
  op.geometry.inputs.clear();
  for (float w : l.params.at("weight").data) op.weight.push_back(w);
  op.bias.assign(static_cast<std::size_t>(l.filters), 0.0);
  if (l.has_bias()) {
    for (std::size_t f = 0; f < op.bias.size(); ++f) op.bias[f] = l.params.at("bias").data[f];
  }
  return op;
}

LinearOp dense_op(const nn::Layer& l) {
  LinearOp op;
  for (float w : l.params.at("weight").data) op.weight.push_back(w);
  op.bias.assign(static_cast<std::size_t>(l.units), 0.0);
  if (l.has_bias()) {
    for (std::size_t u = 0; u < op.bias.size(); ++u) op.bias[u] = l.params.at("bias").data[u];
  }
  return op;
}

// Padded average pooling as a linear map: the window's cells with weight 1, times 1 / its divisor.
LinearOp padded_pool_op(const nn::Layer& l, const nn::Shape& in, const nn::Shape& out) {
  LinearOp op;
  op.conv = true;
  op.geometry.type = nn::LayerType::Conv2d;
  op.geometry.filters = in.c;
  op.geometry.kernel_h = op.geometry.kernel_w = l.pool;
  op.geometry.stride_h = op.geometry.stride_w = l.pool_stride;
  op.geometry.padding = l.padding;
  op.geometry.pad_top = l.pad_top;
  op.geometry.pad_left = l.pad_left;
  op.geometry.pad_bottom = l.pad_bottom;
  op.geometry.pad_right = l.pad_right;
  const auto k2 = static_cast<std::size_t>(l.pool) * static_cast<std::size_t>(l.pool);
  op.weight.assign(static_cast<std::size_t>(in.c) * static_cast<std::size_t>(in.c) * k2, 0.0);
  for (std::size_t c = 0; c < static_cast<std::size_t>(in.c); ++c)
    for (std::size_t k = 0; k < k2; ++k) op.weight[(c * static_cast<std::size_t>(in.c) + c) * k2 + k] = 1.0;
  op.bias.assign(static_cast<std::size_t>(in.c), 0.0);
  op.output_scale.assign(static_cast<std::size_t>(out.size()), 0.0);
  nn::for_each_pool_tap(
      l, in, out, [](std::size_t, std::size_t) {}, [&](std::size_t o, int cells) { op.output_scale[o] = 1.0 / cells; });
  return op;
}

// The linear map reading enc where its input is t(enc): the shift goes into the biases (per output
// where padding meets it), the scale into the weights of each input channel.
void absorb_input(LinearOp& op, const Affine& t, const nn::Shape& in, const nn::Shape& out) {
  if (t.is_identity()) return;
  if (t.shifted()) {
    std::vector<double> bias(static_cast<std::size_t>(out.size()));
    for (std::size_t o = 0; o < bias.size(); ++o) bias[o] = op.bias_of(o, out);
    op.for_each_term(in, out, [&](std::size_t o, std::size_t i, double w) { bias[o] += w * t.shift[t.channel(i)]; });
    op.bias = std::move(bias);
  }
  if (op.conv) {
    const std::size_t taps = static_cast<std::size_t>(op.geometry.kernel_h) * static_cast<std::size_t>(op.geometry.kernel_w);
    for (std::size_t k = 0; k < op.weight.size(); ++k) op.weight[k] *= t.scale[k / taps % static_cast<std::size_t>(in.c)];
  } else {
    const auto n_in = static_cast<std::size_t>(in.size());
    for (std::size_t k = 0; k < op.weight.size(); ++k) op.weight[k] *= t.scale[t.channel(k % n_in)];
  }
  for (auto& w : op.weight)
    if (w == 0) w = 0.0;  // no negative zeros: a term is kept or dropped by its weight alone
}

// a2 o a1 as one dense map (a1: in -> mid, a2: mid -> out, a2 dense).
LinearOp compose(const LinearOp& a1, const nn::Shape& in, const nn::Shape& mid, const LinearOp& a2,
                 const nn::Shape& out) {
  const auto n_in = static_cast<std::size_t>(in.size()), n_mid = static_cast<std::size_t>(mid.size()),
             n_out = static_cast<std::size_t>(out.size());
  std::vector<std::vector<std::pair<std::uint32_t, double>>> rows1(n_mid);
  a1.for_each_term(in, mid, [&](std::size_t o, std::size_t i, double w) { rows1[o].push_back({static_cast<std::uint32_t>(i), w}); });
  LinearOp r;
  r.weight.assign(n_out * n_in, 0.0);
  r.bias.assign(n_out, 0.0);
  std::vector<double> row(n_in);
  for (std::size_t o = 0; o < n_out; ++o) {
    std::fill(row.begin(), row.end(), 0.0);
    double b = a2.bias[o];
    for (std::size_t m = 0; m < n_mid; ++m) {
      const double w2 = a2.weight[o * n_mid + m];
      if (w2 == 0) continue;
      b += w2 * a1.bias_of(m, mid);
      for (const auto& [i, w1] : rows1[m]) row[i] += w2 * w1;
    }
    std::copy(row.begin(), row.end(), r.weight.begin() + static_cast<std::ptrdiff_t>(o * n_in));
    r.bias[o] = b;
  }
  return r;
}

// Raw x is accurate while r^d stays well below the scale (see approx::InputForm).
bool raw_is_accurate(const approx::Polynomial& p) { return std::pow(p.range(), p.degree()) <= 65536.0; }

// The model's values as the compiler builds stages: the stage holding each layer's output (or the
// program's input) and the map from what it holds to the model's value.
class GraphCompiler {
 public:
  explicit GraphCompiler(const nn::Model& m) : m_(m), shapes_(m.shapes()), readers_(m.consumers()) {
    prog_.input = m.input;
    input_ = {kProgramInput, Affine::identity(m.input)};
    values_.resize(m.layers.size());
  }

  Program run() {
    for (std::size_t i = 0; i < m_.layers.size(); ++i) layer(i);
    if (prog_.stages.empty()) throw Error("encrypted inference: the model has no layers");
    Value& out = values_.back();
    if (!out.t.uniform()) materialize(out, "the model's output", m_.layers.size() - 1);
    if (out.stage != static_cast<int>(prog_.stages.size()) - 1) {
      throw Error("encrypted inference: the model's output is not its last computation");
    }
    prog_.output_factor = out.t.scale[0];
    relinearize_late();
    prog_.plan_levels();
    return std::move(prog_);
  }

 private:
  struct Value {
    int stage = kProgramInput;
    Affine t;
  };

  std::string name_of(std::size_t i) const {
    const nn::Layer& l = m_.layers[i];
    return l.name.empty() ? nn::to_string(l.type) + std::to_string(i) : l.name;
  }
  std::string where(std::size_t i) const { return "encrypted inference: layer " + std::to_string(i) + " (" + name_of(i) + ")"; }
  Value& value(int src) { return src == nn::kModelInput ? input_ : values_[static_cast<std::size_t>(src)]; }

  // The layers reading layer i's values, looking through flattens (which change nothing).
  std::vector<std::size_t> readers(std::size_t i) const {
    std::vector<std::size_t> r;
    for (std::size_t k : readers_[i]) {
      if (m_.layers[k].type == nn::LayerType::Flatten) {
        for (std::size_t j : readers(k)) r.push_back(j);
      } else {
        r.push_back(k);
      }
    }
    return r;
  }
  // Whether `stage` is a linear stage whose values model layer `layer` alone reads (so its outputs
  // may be rescaled or merged for that reader).
  bool only_reader(int stage, std::size_t layer) const {
    if (stage < 0 || prog_.stages[static_cast<std::size_t>(stage)].kind() != StageKind::Linear) return false;
    for (std::size_t k = 0; k < values_.size(); ++k) {
      if (values_[k].stage != stage || m_.layers[k].type == nn::LayerType::Flatten) continue;
      // Every model value the stage holds is read by `layer` alone.
      for (std::size_t r : readers(k)) {
        if (r != layer) return false;
      }
    }
    for (const Stage& s : prog_.stages) {
      for (int in : s.inputs)
        if (in == stage) return false;  // already read by another stage
    }
    return true;
  }
  // Whether every reader of layer i's output is a linear layer, or a pooling or normalization whose
  // readers are: a monic activation's factor then folds into them.
  bool absorbed(std::size_t i) const {
    if (i + 1 == m_.layers.size()) return false;
    for (std::size_t r : readers(i)) {
      const auto t = m_.layers[r].type;
      if (t == nn::LayerType::Conv2d || t == nn::LayerType::Dense) continue;
      if ((t == nn::LayerType::AvgPool2d && m_.layers[r].padding != nn::Padding::Explicit) ||
          t == nn::LayerType::GlobalAvgPool2d || t == nn::LayerType::BatchNorm) {
        if (absorbed(r)) continue;
      }
      return false;
    }
    return true;
  }

  // Folds v's map into the linear stage that makes it, when model layer `layer` (named `consumer`)
  // is the only reader of what that stage holds.
  void materialize(Value& v, const std::string& consumer, std::size_t layer) {
    if (v.t.is_identity()) return;
    if (!only_reader(v.stage, layer)) {
      throw Error("encrypted inference: " + consumer +
                  " reads a normalized or scaled value (batch normalization, a monic activation or an average pooling "
                  "before it) that no linear layer can absorb; put a convolution or dense layer before the batch "
                  "normalization");
    }
    Stage& s = prog_.stages[static_cast<std::size_t>(v.stage)];
    LinearOp& op = std::get<LinearOp>(s.op);
    const auto n = static_cast<std::size_t>(s.out.size());
    std::vector<double> bias(n);
    for (std::size_t o = 0; o < n; ++o) bias[o] = op.bias_of(o, s.out) * v.t.scale[v.t.channel(o)] + v.t.shift[v.t.channel(o)];
    if (op.output_scale.empty()) op.output_scale.assign(n, 1.0);
    for (std::size_t o = 0; o < n; ++o) op.output_scale[o] *= v.t.scale[v.t.channel(o)];
    op.bias = std::move(bias);
    v.t = Affine::identity(s.out);
  }

  // Folds v's map into the linear stage that makes it so that the stage holds real / s (v's map
  // becomes the uniform scale s): the form in which a normalized activation reads a residual sum.
  void materialize_to(Value& v, double s, const std::string& consumer, std::size_t layer) {
    if (s == 1.0) return materialize(v, consumer, layer);
    if (v.t.uniform() && v.t.scale[0] == s) return;
    if (!only_reader(v.stage, layer)) {
      throw Error("encrypted inference: " + consumer + " joins values of different scales that no linear layer can bring together");
    }
    Stage& st = prog_.stages[static_cast<std::size_t>(v.stage)];
    LinearOp& op = std::get<LinearOp>(st.op);
    const auto n = static_cast<std::size_t>(st.out.size());
    std::vector<double> bias(n);
    for (std::size_t o = 0; o < n; ++o) bias[o] = (op.bias_of(o, st.out) * v.t.scale[v.t.channel(o)] + v.t.shift[v.t.channel(o)]) / s;
    if (op.output_scale.empty()) op.output_scale.assign(n, 1.0);
    for (std::size_t o = 0; o < n; ++o) op.output_scale[o] *= v.t.scale[v.t.channel(o)] / s;
    op.bias = std::move(bias);
    v.t = Affine::identity(st.out);
    std::fill(v.t.scale.begin(), v.t.scale.end(), s);
  }

  // The polynomial of activation layer i when it reads a normalized input (x / range); nullptr when
  // it is evaluated on x itself (a low degree on a narrow range: the power basis is accurate).
  const approx::Polynomial* normalized_polynomial(std::size_t i) const {
    const nn::Layer& l = m_.layers[i];
    if (l.type != nn::LayerType::Activation || !l.activation.is_polynomial() || raw_is_accurate(*l.activation.poly)) return nullptr;
    return &*l.activation.poly;
  }
  // The scale an Add (layer `add`) should hold its sum at: the range of the normalized activation
  // that alone reads it (so that it reads x / r at no level), else 1.
  double join_scale(std::size_t add) const {
    const auto r = readers(add);
    if (r.size() != 1) return 1.0;
    const approx::Polynomial* p = normalized_polynomial(r[0]);
    return p ? p->range() : 1.0;
  }

  int add_stage(std::size_t i, std::vector<int> inputs, const nn::Shape& in, int levels,
                std::variant<LinearOp, SumPoolOp, ActivationOp, AddOp, BootstrapOp> op) {
    Stage s;
    s.name = name_of(i);
    s.in = in;
    s.out = shapes_[i];
    s.inputs = std::move(inputs);
    s.levels = levels;
    s.op = std::move(op);
    prog_.stages.push_back(std::move(s));
    return static_cast<int>(prog_.stages.size()) - 1;
  }

  void layer(std::size_t i) {
    const nn::Layer& l = m_.layers[i];
    const auto src = m_.sources(i);
    const nn::Shape in = m_.shape_of(src[0], shapes_), out = shapes_[i];
    Value& x = value(src[0]);
    Value& y = values_[i];
    switch (l.type) {
      case nn::LayerType::Conv2d:
      case nn::LayerType::Dense: {
        LinearOp op = l.type == nn::LayerType::Conv2d ? conv_op(l) : dense_op(l);
        absorb_input(op, x.t, in, out);
        // Two linear stages in a row are one linear map: one level instead of two, unless the merged
        // map would be larger than any single layer may be (it is dense: outputs x the first's inputs).
        if (l.type == nn::LayerType::Dense && only_reader(x.stage, i) &&
            prog_.stages[static_cast<std::size_t>(x.stage)].in.size() * out.size() <= nn::limits::kMaxConnections) {
          Stage& prev = prog_.stages[static_cast<std::size_t>(x.stage)];
          prev.op = compose(prev.linear(), prev.in, prev.out, op, out);
          prev.out = out;
          prev.name += "+" + name_of(i);
          y = {x.stage, Affine::identity(out)};
        } else {
          y = {add_stage(i, {x.stage}, in, 1, std::move(op)), Affine::identity(out)};
        }
        return;
      }
      case nn::LayerType::BatchNorm: {
        // What is left after folding into a preceding convolution: a map on the value, absorbed by
        // the linear layers that read it.
        y = x;
        const auto& g = l.params.at("weight").data;
        const auto& beta = l.params.at("bias").data;
        const auto& mean = l.params.at("running_mean").data;
        const auto& var = l.params.at("running_var").data;
        for (std::size_t c = 0; c < y.t.scale.size(); ++c) {
          const double a = g[c] / std::sqrt(static_cast<double>(var[c]) + l.eps);
          y.t.scale[c] *= a;
          y.t.shift[c] = (y.t.shift[c] - mean[c]) * a + beta[c];
        }
        return;
      }
      case nn::LayerType::Activation: {
        if (!l.activation.is_polynomial()) {
          throw Error(where(i) + ": activation '" + l.activation.spec +
                      "' is not a polynomial; encrypted inference needs polynomial activations (convert the model: "
                      "hecnn convert --activation swish:deg4:range4, or square)");
        }
        const approx::Polynomial& p = *l.activation.poly;
        if (p.degree() < 1) throw Error(where(i) + ": the activation polynomial is constant");
        ActivationOp act;
        const bool normalized = !raw_is_accurate(p);
        if (normalized && x.t.uniform() && x.t.scale[0] == p.range()) {
          act.form = approx::InputForm::Normalized;  // a residual sum held at x / r (join_scale)
        } else {
          if (!x.t.is_identity()) materialize(x, "activation '" + name_of(i) + "'", i);
          if (normalized) {
            if (only_reader(x.stage, i)) {
              std::get<LinearOp>(prog_.stages[static_cast<std::size_t>(x.stage)].op).scale_outputs(1.0 / p.range());
              act.form = approx::InputForm::Normalized;  // the previous layer computes x / r
            } else {
              act.form = approx::InputForm::NormalizeFirst;
            }
          }
        }
        if (l.activation.spec != "square") act.input_bound = act.form == approx::InputForm::Normalized ? 1.0 : p.range();
        // Monic form only where linear layers absorb the leading coefficient: a monic chain of
        // squarings leaves its own scale, which only a linear stage brings back to the plan's (the
        // values an Add joins must be at the plan's scale exactly).
        // ... and only where it saves a level (a degree that is a power of two): dividing by the
        // leading coefficient of a high-degree Chebyshev fit (c_d 2^(d-1)) leaves tiny values that the
        // scale resolves poorly, for nothing.
        const bool monic = absorbed(i) && approx::minimal_depth(p.degree(), true) < approx::minimal_depth(p.degree(), false);
        // An output that a residual Add reads is held at the scale that Add's sum wants (the range of
        // the activation after it): the coefficients divided by it, at no level.
        double out_scale = 1.0;
        if (!monic) {
          for (std::size_t r : readers(i)) {
            if (m_.layers[r].type == nn::LayerType::Add) out_scale = join_scale(r);
          }
        }
        if (out_scale == 1.0) {
          act.poly = approx::plan_polynomial(p, act.form, monic);
        } else {
          std::vector<double> c = p.coeffs();
          for (double& v : c) v /= out_scale;
          act.poly = approx::plan_polynomial(approx::Polynomial(p.basis(), std::move(c), p.range()), act.form, false);
        }
        Affine t = Affine::identity(out);
        if (monic) std::fill(t.scale.begin(), t.scale.end(), act.poly.factor);
        if (out_scale != 1.0) std::fill(t.scale.begin(), t.scale.end(), out_scale);
        const int levels = act.poly.depth;
        y = {add_stage(i, {x.stage}, in, levels, std::move(act)), std::move(t)};
        return;
      }
      case nn::LayerType::AvgPool2d:
      case nn::LayerType::GlobalAvgPool2d: {
        if (l.type == nn::LayerType::AvgPool2d && l.padding == nn::Padding::Explicit) {
          LinearOp op = padded_pool_op(l, in, out);
          absorb_input(op, x.t, in, out);
          y = {add_stage(i, {x.stage}, in, 1, std::move(op)), Affine::identity(out)};
          return;
        }
        const SumPoolOp op = l.type == nn::LayerType::AvgPool2d ? SumPoolOp::square(l.pool, l.pool_stride) : SumPoolOp::whole(in);
        Affine t = x.t;
        for (double& v : t.scale) v /= static_cast<double>(op.window());
        t.plane = static_cast<std::size_t>(out.h) * static_cast<std::size_t>(out.w);
        y = {add_stage(i, {x.stage}, in, 0, op), std::move(t)};
        return;
      }
      case nn::LayerType::Flatten:
        y = x;  // CHW order is already the flat order
        return;
      case nn::LayerType::Add: {
        // The inputs must hold their values under one map: where they differ, each folds its map
        // into the linear stage that makes it. A sum that a normalized activation reads is held at
        // x / r: the inputs that are not linear stages (an activation's output) are already there.
        const double js = join_scale(i);
        bool same = true;
        for (int s : src) same = same && value(s).t == x.t;
        if (js != 1.0) {
          for (int s : src) materialize_to(value(s), js, "add '" + name_of(i) + "'", i);
        } else if (!same) {
          for (int s : src) materialize(value(s), "add '" + name_of(i) + "'", i);
        }
        std::vector<int> stages;
        for (int s : src) {
          const Value& v = value(s);
          for (int k : stages)
            if (k == v.stage) throw Error(where(i) + ": adds a value to itself (through batch normalizations)");
          stages.push_back(v.stage);
        }
        Affine t = x.t;
        for (std::size_t k = 1; k < src.size(); ++k)
          for (std::size_t c = 0; c < t.shift.size(); ++c) t.shift[c] += x.t.shift[c];
        y = {add_stage(i, std::move(stages), in, 0, AddOp{}), std::move(t)};
        return;
      }
    }
  }

  // Deferred relinearization: an activation whose outputs feed only a linear stage with at most half
  // as many outputs keeps its products 3-component; the linear stage relinearizes its fewer outputs.
  void relinearize_late() {
    const auto cons = prog_.consumers();
    for (std::size_t i = 0; i < prog_.stages.size(); ++i) {
      Stage& s = prog_.stages[i];
      if (s.kind() != StageKind::Activation || !s.activation().poly.monic || cons[i].size() != 1) continue;
      const Stage& next = prog_.stages[cons[i][0]];
      if (next.kind() == StageKind::Linear && 2 * next.out.size() <= next.in.size()) {
        std::get<ActivationOp>(s.op).relinearize_output = false;
      }
    }
  }

  const nn::Model& m_;
  std::vector<nn::Shape> shapes_;
  std::vector<std::vector<std::size_t>> readers_;
  Program prog_;
  Value input_;
  std::vector<Value> values_;
};

}  // namespace

void LinearOp::scale_outputs(double f) {
  for (auto& w : weight) w *= f;
  for (auto& b : bias) b *= f;
}

std::vector<std::vector<std::size_t>> Program::consumers() const {
  std::vector<std::vector<std::size_t>> c(stages.size());
  for (std::size_t i = 0; i < stages.size(); ++i)
    for (int s : stages[i].inputs)
      if (s >= 0) c[static_cast<std::size_t>(s)].push_back(i);
  return c;
}

bool Program::is_chain() const {
  for (std::size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].inputs.size() != 1 || stages[i].inputs[0] != static_cast<int>(i) - 1) return false;
  }
  return true;
}

void Program::plan_levels() {
  depth = 0;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    Stage& s = stages[i];
    if (s.inputs.empty()) throw Error("encrypted inference: stage '" + s.name + "' reads nothing (internal error)");
    s.depth_in = 0;
    for (int in : s.inputs) {
      if (in < kProgramInput || in >= static_cast<int>(i)) throw Error("encrypted inference: stage '" + s.name + "' reads a later stage (internal error)");
      if (in >= 0) s.depth_in = std::max(s.depth_in, stages[static_cast<std::size_t>(in)].depth_out);
    }
    s.depth_out = s.kind() == StageKind::Bootstrap ? 0 : s.depth_in + s.levels;
    depth = std::max({depth, s.depth_in, s.depth_out});
  }
}

std::size_t Program::bootstraps() const {
  std::size_t n = 0;
  for (const Stage& s : stages) n += s.kind() == StageKind::Bootstrap;
  return n;
}

void place_bootstraps(Program& prog, int levels) {
  if (levels < 1) throw Error("bootstrap placement: no levels between bootstraps");
  prog.plan_levels();
  if (prog.depth <= levels) return;
  const std::size_t n = prog.stages.size();
  for (const Stage& s : prog.stages) {
    if (s.kind() == StageKind::Bootstrap) throw Error("bootstrap placement: the program already has bootstraps (internal error)");
    if (s.levels > levels) {
      throw Error("encrypted inference: stage '" + s.name + "' alone needs " + std::to_string(s.levels) +
                  " levels; a bootstrap leaves " + std::to_string(levels) +
                  " (use a lower-degree activation or parameters with more levels after bootstrapping)");
    }
  }
  // Values (index + 1; 0: the input) a bootstrap may take: the inputs of normalized activations,
  // which calibration keeps within [-1, 1].
  const auto readers = prog.consumers();
  std::vector<bool> safe(n + 1, false);
  for (const Stage& s : prog.stages) {
    if (s.kind() == StageKind::Activation && s.activation().form == approx::InputForm::Normalized && s.activation().input_bound > 0) {
      safe[static_cast<std::size_t>(s.inputs[0] + 1)] = true;
    }
  }
  // reach[v]: the levels from value v to the next values a bootstrap may take (or the end), on the
  // deepest path.
  std::vector<int> reach(n + 1, 0);
  for (std::size_t i = n; i-- > 0;) {
    int r = 0;
    for (std::size_t k : readers[i]) r = std::max(r, prog.stages[k].levels + (safe[k + 1] ? 0 : reach[k + 1]));
    reach[i + 1] = r;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (prog.stages[i].inputs[0] == kProgramInput) {
      int r = 0;
      for (std::size_t k = 0; k < n; ++k)
        for (int in : prog.stages[k].inputs)
          if (in == kProgramInput) r = std::max(r, prog.stages[k].levels + (safe[k + 1] ? 0 : reach[k + 1]));
      reach[0] = r;
      break;
    }
  }
  // In order: a value a bootstrap may take is refreshed when the levels it has left do not reach
  // the next such values (as late as possible; one bootstrap per value, read by all its readers).
  std::vector<Stage> out;
  std::vector<int> moved(n + 1, kProgramInput);  // value -> the new stage holding it (refreshed when it is)
  std::vector<int> depth;                        // per new stage: its output's depth
  const auto depth_of = [&](int v) { return v == kProgramInput ? 0 : depth[static_cast<std::size_t>(v)]; };
  const auto refresh = [&](std::size_t value) {
    const int in = moved[value];
    if (!safe[value] || depth_of(in) + reach[value] <= levels || depth_of(in) == 0) return;
    Stage boot;
    boot.name = "bootstrap " + (in == kProgramInput ? std::string("input") : out[static_cast<std::size_t>(in)].name);
    boot.in = boot.out = in == kProgramInput ? prog.input : out[static_cast<std::size_t>(in)].out;
    boot.inputs = {in};
    boot.op = BootstrapOp{};
    out.push_back(std::move(boot));
    depth.push_back(0);
    moved[value] = static_cast<int>(out.size()) - 1;
  };
  refresh(0);
  for (std::size_t i = 0; i < n; ++i) {
    Stage s = std::move(prog.stages[i]);
    int d = 0;
    for (int& in : s.inputs) {
      in = moved[static_cast<std::size_t>(in + 1)];
      d = std::max(d, depth_of(in));
    }
    if (d + s.levels > levels) {
      throw Error("bootstrap placement: stage '" + s.name + "' would run below level 0 and no value before it can be bootstrapped " +
                  "(bootstraps go on the inputs of normalized activations, whose range calibration bounds)");
    }
    out.push_back(std::move(s));
    depth.push_back(d + out.back().levels);
    moved[i + 1] = static_cast<int>(out.size()) - 1;
    refresh(i + 1);
  }
  prog.stages = std::move(out);
  prog.plan_levels();
}

void RangeReport::merge(const RangeReport& o) {
  if (stages.empty()) {
    stages = o.stages;
    return;
  }
  for (std::size_t k = 0; k < stages.size() && k < o.stages.size(); ++k) {
    stages[k].outside += o.stages[k].outside;
    stages[k].values += o.stages[k].values;
    stages[k].largest = std::max(stages[k].largest, o.stages[k].largest);
  }
}

bool RangeReport::any_outside() const {
  for (const auto& s : stages)
    if (s.outside) return true;
  return false;
}

std::string RangeReport::describe(const Program& prog) const {
  std::ostringstream os;
  for (const auto& s : stages) {
    if (!s.outside) continue;
    const Stage& st = prog.stages[s.stage];
    char line[256];
    std::snprintf(line, sizeof line, "  stage %zu (%s %s): %llu of %llu inputs outside its range, largest |x| = %.3g x the bound\n",
                  s.stage, st.kind() == StageKind::Bootstrap ? "bootstrap" : "activation", st.name.c_str(),
                  static_cast<unsigned long long>(s.outside), static_cast<unsigned long long>(s.values), s.largest);
    os << line;
  }
  return os.str().empty() ? std::string("  none: every activation and bootstrap input within its range\n") : os.str();
}

Program compile_program(const nn::Model& model) {
  const nn::Model m = nn::fold_batch_norm(model);
  return GraphCompiler(m).run();
}

std::vector<double> simulate(const Program& prog, const float* image, RangeReport* ranges) {
  if (ranges && ranges->stages.empty()) {
    for (std::size_t k = 0; k < prog.stages.size(); ++k) {
      const Stage& s = prog.stages[k];
      if (s.kind() == StageKind::Bootstrap || (s.kind() == StageKind::Activation && s.activation().input_bound > 0)) {
        ranges->stages.push_back({k, 0, 0, 0});
      }
    }
  }
  std::size_t next_range = 0;
  const auto check = [&](std::size_t k, const std::vector<double>& x, double bound) {
    if (!ranges) return;
    while (next_range < ranges->stages.size() && ranges->stages[next_range].stage < k) ++next_range;
    if (next_range == ranges->stages.size() || ranges->stages[next_range].stage != k) return;
    auto& r = ranges->stages[next_range];
    r.values += x.size();
    for (double v : x) {
      const double a = std::fabs(v) / bound;
      if (a > 1) ++r.outside;
      r.largest = std::max(r.largest, a);
    }
  };
  std::vector<double> input(static_cast<std::size_t>(prog.input.size()));
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = image[i];
  std::vector<std::vector<double>> out(prog.stages.size());
  for (std::size_t k = 0; k < prog.stages.size(); ++k) {
    const Stage& s = prog.stages[k];
    const auto value = [&](int src) -> const std::vector<double>& {
      return src == kProgramInput ? input : out[static_cast<std::size_t>(src)];
    };
    const std::vector<double>& x = value(s.inputs[0]);
    std::vector<double>& y = out[k];
    const nn::Shape in = s.in, o_shape = s.out;
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, LinearOp>) {
            y.assign(static_cast<std::size_t>(o_shape.size()), 0.0);
            op.for_each_term(in, o_shape, [&](std::size_t o, std::size_t i, double w) { y[o] += w * x[i]; });
            for (std::size_t o = 0; o < y.size(); ++o) y[o] += op.bias_of(o, o_shape);
          } else if constexpr (std::is_same_v<T, SumPoolOp>) {
            y.assign(static_cast<std::size_t>(o_shape.size()), 0.0);
            for (std::size_t o = 0; o < y.size(); ++o) {
              double acc = 0;
              op.for_each_input(in, o_shape, o, [&](std::size_t i) { acc += x[i]; });
              y[o] = acc;
            }
          } else if constexpr (std::is_same_v<T, BootstrapOp>) {
            check(k, x, kBootstrapBound);
            y = x;
          } else if constexpr (std::is_same_v<T, ActivationOp>) {
            if (op.input_bound > 0) check(k, x, op.input_bound);
            y.resize(x.size());
            for (std::size_t i = 0; i < x.size(); ++i) y[i] = approx::simulate(op.poly, x[i]);
          } else {
            y = x;
            for (std::size_t j = 1; j < s.inputs.size(); ++j) {
              const auto& b = value(s.inputs[j]);
              for (std::size_t i = 0; i < y.size(); ++i) y[i] += b[i];
            }
          }
        },
        s.op);
  }
  std::vector<double> r = out.empty() ? input : std::move(out.back());
  for (auto& v : r) v *= prog.output_factor;
  return r;
}

std::string describe_stages(const Program& prog, int top, const std::string& unit) {
  std::ostringstream os;
  const bool chain = prog.is_chain();
  os << "encrypted computation: " << prog.stages.size() << " stages, " << prog.depth << " levels"
     << (prog.bootstraps() ? " between bootstraps, " + std::to_string(prog.bootstraps()) + " bootstraps" : std::string())
     << (chain ? "" : " (a graph: each stage lists the stages it reads)") << "\n";
  for (std::size_t k = 0; k < prog.stages.size(); ++k) {
    const Stage& s = prog.stages[k];
    if (!chain) {
      std::string from;
      for (int in : s.inputs) from += (from.empty() ? "" : ",") + (in == kProgramInput ? std::string("in") : std::to_string(in));
      char head[64];
      std::snprintf(head, sizeof head, "  %3zu <- %-7s", k, from.c_str());
      os << head;
    }
    os << "  level " << top - s.depth_in << " -> " << top - s.depth_out << "  ";
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, LinearOp>) {
            std::size_t terms = 0;
            op.for_each_term(s.in, s.out, [&](std::size_t, std::size_t, double) { ++terms; });
            os << "linear     " << s.name << ": " << s.in.size() << " -> " << s.out.size() << " " << unit << ", " << terms
               << " products";
          } else if constexpr (std::is_same_v<T, SumPoolOp>) {
            os << "sum-pool   " << s.name << ": " << op.pool_h << "x" << op.pool_w << (op.global ? " global" : "")
               << " (1/" << op.window() << " folded forward)";
          } else if constexpr (std::is_same_v<T, BootstrapOp>) {
            os << "bootstrap  " << s.out.size() << " " << unit << " back to level " << top;
          } else if constexpr (std::is_same_v<T, AddOp>) {
            os << "add        " << s.name << ": " << s.inputs.size() << " x " << s.out.size() << " " << unit
               << " (inputs above the lowest level are dropped to it)";
          } else {
            os << "activation " << s.name << ": degree " << op.poly.degree
               << (op.poly.monic ? " monic (leading coefficient folded forward)" : "") << ", "
               << (op.form == approx::InputForm::Raw ? "power basis" : "Chebyshev basis")
               << (op.relinearize_output ? "" : ", outputs relinearized after the next stage") << ", " << s.out.size()
               << " " << unit;
          }
        },
        s.op);
    os << "\n";
  }
  return os.str();
}

}  // namespace hecnn::he
