#include "he/compile/program.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "nn/forward.h"
#include "nn/limits.h"

namespace hecnn::he {

namespace {

LinearOp conv_op(const nn::Layer& l, double in_factor) {
  LinearOp op;
  op.conv = true;
  op.geometry.type = nn::LayerType::Conv2d;
  op.geometry.filters = l.filters;
  op.geometry.kernel_h = l.kernel_h;
  op.geometry.kernel_w = l.kernel_w;
  op.geometry.stride_h = l.stride_h;
  op.geometry.stride_w = l.stride_w;
  op.geometry.padding = l.padding;
  for (float w : l.params.at("weight").data) op.weight.push_back(w == 0 ? 0.0 : w * in_factor);
  op.bias.assign(static_cast<std::size_t>(l.filters), 0.0);
  if (l.has_bias()) {
    for (std::size_t f = 0; f < op.bias.size(); ++f) op.bias[f] = l.params.at("bias").data[f];
  }
  return op;
}

LinearOp dense_op(const nn::Layer& l, double in_factor) {
  LinearOp op;
  for (float w : l.params.at("weight").data) op.weight.push_back(w == 0 ? 0.0 : w * in_factor);
  op.bias.assign(static_cast<std::size_t>(l.units), 0.0);
  if (l.has_bias()) {
    for (std::size_t u = 0; u < op.bias.size(); ++u) op.bias[u] = l.params.at("bias").data[u];
  }
  return op;
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

}  // namespace

void LinearOp::scale_outputs(double f) {
  for (auto& w : weight) w *= f;
  for (auto& b : bias) b *= f;
}

Program compile_program(const nn::Model& model) {
  const nn::Model m = nn::fold_batch_norm(model);
  const auto shapes = m.shapes();
  Program prog;
  prog.input = m.input;
  double pending = 1.0;  // factor on the inputs of the next linear stage
  nn::Shape cur = m.input;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const nn::Layer& l = m.layers[i];
    const nn::Shape out = shapes[i];
    const std::string name = l.name.empty() ? nn::to_string(l.type) + std::to_string(i) : l.name;
    const std::string where = "encrypted inference: layer " + std::to_string(i) + " (" + name + ")";
    switch (l.type) {
      case nn::LayerType::Conv2d:
      case nn::LayerType::Dense: {
        LinearOp op = l.type == nn::LayerType::Conv2d ? conv_op(l, pending) : dense_op(l, pending);
        pending = 1.0;
        // Two linear stages in a row are one linear map: one level instead of two, unless the merged
        // map would be larger than any single layer may be (it is dense: outputs x the first's inputs).
        if (l.type == nn::LayerType::Dense && !prog.stages.empty() && prog.stages.back().kind() == StageKind::Linear &&
            prog.stages.back().in.size() * out.size() <= nn::limits::kMaxConnections) {
          Stage& prev = prog.stages.back();
          prev.op = compose(prev.linear(), prev.in, prev.out, op, out);
          prev.out = out;
          prev.name += "+" + name;
        } else {
          prog.stages.push_back(Stage{name, cur, out, 1, std::move(op)});
        }
        break;
      }
      case nn::LayerType::BatchNorm:
        throw Error(where + ": batch normalization must follow a convolution or dense layer to be folded");
      case nn::LayerType::Activation: {
        if (!l.activation.is_polynomial()) {
          throw Error(where + ": activation '" + l.activation.spec +
                      "' is not a polynomial; encrypted inference needs polynomial activations (e.g. "
                      "swish:deg4:range4 or square)");
        }
        const approx::Polynomial& p = *l.activation.poly;
        if (p.degree() < 1) throw Error(where + ": the activation polynomial is constant");
        // Monic form whenever a linear stage follows to absorb the leading coefficient.
        bool followed = false;
        for (std::size_t j = i + 1; j < m.layers.size(); ++j) {
          const auto t = m.layers[j].type;
          if (t == nn::LayerType::Conv2d || t == nn::LayerType::Dense) {
            followed = true;
            break;
          }
          if (t == nn::LayerType::Activation) break;
        }
        ActivationOp act;
        if (!raw_is_accurate(p)) {
          const bool after_linear = !prog.stages.empty() && prog.stages.back().kind() == StageKind::Linear && pending == 1.0;
          if (after_linear) {
            std::get<LinearOp>(prog.stages.back().op).scale_outputs(1.0 / p.range());  // the previous layer computes x / r
            act.form = approx::InputForm::Normalized;
          } else {
            act.form = approx::InputForm::NormalizeFirst;
          }
        }
        if (pending != 1.0) throw Error(where + ": an activation after average pooling (or global average pooling) is not supported");
        act.poly = approx::plan_polynomial(p, act.form, followed);
        if (followed) pending = act.poly.factor;
        const int levels = act.poly.depth;
        prog.stages.push_back(Stage{name, cur, out, levels, std::move(act)});
        break;
      }
      case nn::LayerType::AvgPool2d:
      case nn::LayerType::GlobalAvgPool2d: {
        const SumPoolOp op = l.type == nn::LayerType::AvgPool2d ? SumPoolOp::square(l.pool, l.pool_stride) : SumPoolOp::whole(cur);
        pending /= static_cast<double>(op.window());
        prog.stages.push_back(Stage{name, cur, out, 0, op});
        break;
      }
      case nn::LayerType::Flatten:
        break;  // CHW order is already the flat order
    }
    cur = out;
  }
  if (prog.stages.empty()) throw Error("encrypted inference: the model has no layers");
  prog.output_factor = pending;
  // Deferred relinearization: an activation whose outputs feed a linear stage with at most half as
  // many outputs keeps its products 3-component; the linear stage relinearizes its fewer outputs.
  for (std::size_t i = 0; i + 1 < prog.stages.size(); ++i) {
    Stage& s = prog.stages[i];
    const Stage& next = prog.stages[i + 1];
    if (s.kind() == StageKind::Activation && next.kind() == StageKind::Linear && s.activation().poly.monic &&
        2 * next.out.size() <= next.in.size()) {
      std::get<ActivationOp>(s.op).relinearize_output = false;
    }
  }
  for (const auto& s : prog.stages) prog.depth += s.levels;
  return prog;
}

std::vector<double> simulate(const Program& prog, const float* image) {
  std::vector<double> x(static_cast<std::size_t>(prog.input.size()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = image[i];
  std::vector<double> y;
  for (const Stage& s : prog.stages) {
    const nn::Shape in = s.in, out = s.out;
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, LinearOp>) {
            y.assign(static_cast<std::size_t>(out.size()), 0.0);
            op.for_each_term(in, out, [&](std::size_t o, std::size_t i, double w) { y[o] += w * x[i]; });
            for (std::size_t o = 0; o < y.size(); ++o) y[o] += op.bias_of(o, out);
          } else if constexpr (std::is_same_v<T, SumPoolOp>) {
            y.assign(static_cast<std::size_t>(out.size()), 0.0);
            for (std::size_t o = 0; o < y.size(); ++o) {
              double acc = 0;
              op.for_each_input(in, out, o, [&](std::size_t i) { acc += x[i]; });
              y[o] = acc;
            }
          } else {
            y.resize(x.size());
            for (std::size_t i = 0; i < x.size(); ++i) y[i] = approx::simulate(op.poly, x[i]);
          }
        },
        s.op);
    std::swap(x, y);
  }
  for (auto& v : x) v *= prog.output_factor;
  return x;
}

std::string describe_stages(const Program& prog, int level, const std::string& unit) {
  std::ostringstream os;
  os << "encrypted computation: " << prog.stages.size() << " stages, " << prog.depth << " levels\n";
  for (const Stage& s : prog.stages) {
    os << "  level " << level << " -> " << level - s.levels << "  ";
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
    level -= s.levels;
  }
  return os.str();
}

}  // namespace hecnn::he
