// The ONNX importer's element-wise groups: a connected group of element-wise nodes read from one
// tensor becomes an activation polynomial (arithmetic nodes, with the specification restored from
// hecnn's metadata where it matches), an exact activation (recognized on a grid), or an affine
// normalization per channel (a batch normalization layer). Shared declarations in onnx_internal.h.
#include <algorithm>
#include <cmath>
#include <map>

#include "approx/activation.h"
#include "approx/fit.h"
#include "common/error.h"
#include "nn/limits.h"
#include "nn/onnx_internal.h"

namespace hecnn::nn::onnx_detail {

namespace {

// Candidates for a group of element-wise nodes that is not arithmetic, compared with it on a grid.
const std::vector<std::string>& exact_candidates() {
  static const std::vector<std::string> names = {"relu", "sigmoid", "tanh", "swish", "gelu", "mish", "softplus"};
  return names;
}

// Polynomials in one variable, for the arithmetic of an activation subgraph.
using Poly = std::vector<double>;
Poly poly_mul(const Poly& a, const Poly& b) {
  Poly r(a.size() + b.size() - 1, 0.0);
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) r[i + j] += a[i] * b[j];
  return r;
}
Poly poly_add(const Poly& a, const Poly& b, double sign) {
  Poly r(std::max(a.size(), b.size()), 0.0);
  for (std::size_t i = 0; i < a.size(); ++i) r[i] += a[i];
  for (std::size_t i = 0; i < b.size(); ++i) r[i] += sign * b[i];
  return r;
}
void poly_trim(Poly& p) {
  while (p.size() > 1 && p.back() == 0.0) p.pop_back();
}

}  // namespace

const std::set<std::string>& elementwise_ops() {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div", "Pow", "Neg", "Sigmoid", "Tanh", "Relu", "Erf",
                                            "Softplus", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Identity", "Cast"};
  return ops;
}

// A connected group of element-wise nodes fed by cur_ alone (besides constants) with one tensor
// leaving it: an activation.
void OnnxImporter::activation(const std::vector<int>& first) {
  std::set<std::string> inside = {cur_};
  std::set<int> region;
  std::vector<int> order;
  // Grow to a fixed point: a node joins when it is element-wise and every input is inside or a
  // scalar constant.
  bool grew = true;
  while (grew) {
    grew = false;
    for (const std::string& t : std::vector<std::string>(inside.begin(), inside.end())) {
      if (t == output_) continue;
      for (int i : pending_consumers(t)) {
        if (region.count(i) || !elementwise_ops().count(graph_.node(i).op_type())) continue;
        // Cast only between floating-point types (a cast to an integer would round).
        bool ok = graph_.node(i).op_type() != "Cast" || attr_int(i, "to", 0) == TensorProto::FLOAT ||
                  attr_int(i, "to", 0) == TensorProto::DOUBLE;
        for (const auto& in : graph_.node(i).input()) {
          if (in.empty()) ok = false;
          if (!ok || inside.count(in)) continue;
          if (constant_size(in) != 1 && !per_channel_constant(in)) ok = false;
        }
        if (!ok) continue;
        if (static_cast<int>(region.size()) >= limits::kMaxOnnxNodes) throw Error(where(i) + ": activation too large");
        region.insert(i);
        for (const auto& o : graph_.node(i).output()) inside.insert(o);
        grew = true;
      }
    }
  }
  for (int i : first) {
    if (!region.count(i)) {
      throw Error(where(i) + ": is not an element-wise function of '" + cur_ + "' alone (an activation's nodes take '" + cur_ +
                  "', values computed from it, or scalar constants; Cast only to FLOAT or DOUBLE)");
    }
  }
  // The tensors leaving the group: used outside it, or the graph output.
  std::set<std::string> exits;
  for (int i : region) {
    order.push_back(i);
    for (const auto& o : graph_.node(i).output()) {
      if (o == output_) exits.insert(o);
      if (auto it = consumers_.find(o); it != consumers_.end()) {
        for (int c : it->second) {
          if (!region.count(c)) exits.insert(o);
        }
      }
    }
  }
  std::sort(order.begin(), order.end());  // graph order is topological (the checker makes sure)
  const std::string label = where(order.front());
  if (exits.size() != 1) {
    throw Error(label + ": the element-wise nodes from '" + cur_ + "' have " + std::to_string(exits.size()) +
                " results used elsewhere; an activation must have exactly one");
  }
  const std::string exit = *exits.begin();
  // The group's function: as a polynomial while every node is arithmetic (on channel c: constants
  // of one value per channel read at c), and numerically on a grid otherwise.
  bool per_channel = false;
  const auto function_on = [&](std::size_t c) {
    std::map<std::string, std::optional<Poly>> poly = {{cur_, Poly{0.0, 1.0}}};
    auto poly_of = [&](int node, const std::string& t) -> std::optional<Poly> {
      if (auto it = poly.find(t); it != poly.end()) return it->second;
      const Constant k = *constant(t, where(node));
      if (k.numel() > 1) per_channel = true;
      return Poly{k.values[k.numel() > 1 ? c : 0]};
    };
    for (int i : order) {
      const NodeProto& n = graph_.node(i);
      const std::string& op = n.op_type();
      std::optional<Poly> r;
      const auto a = poly_of(i, n.input(0));
      const auto b = n.input_size() > 1 ? poly_of(i, n.input(1)) : std::nullopt;
      if (a && (op == "Identity" || op == "Cast")) r = a;
      else if (a && op == "Neg") r = poly_add(Poly{0.0}, *a, -1.0);
      else if (a && b && (op == "Add" || op == "Sub")) r = poly_add(*a, *b, op == "Add" ? 1.0 : -1.0);
      else if (a && b && op == "Mul") r = poly_mul(*a, *b);
      else if (a && b && op == "Div" && b->size() == 1 && (*b)[0] != 0.0) r = poly_add(Poly{0.0}, *a, 1.0 / (*b)[0]);
      else if (a && b && op == "Pow" && b->size() == 1 && (*b)[0] >= 0 && (*b)[0] <= approx::kMaxDegree &&
               (*b)[0] == std::floor((*b)[0])) {
        Poly p{1.0};
        for (int k = 0; k < static_cast<int>((*b)[0]); ++k) p = poly_mul(p, *a);
        r = p;
      }
      if (r) {
        poly_trim(*r);
        if (r->size() > static_cast<std::size_t>(approx::kMaxDegree) + 1) r.reset();
      }
      for (const auto& o : n.output()) poly[o] = r;
    }
    return poly.at(exit);
  };
  const std::optional<Poly> p = function_on(0);
  if (per_channel || (p && p->size() <= 2)) return affine(order, exit, label, function_on);
  Activation act;
  if (p) {
    act = Activation::polynomial(*p, 1.0, "poly");
    act = restore_spec(act, polynomial_count_++);
  } else {
    act = recognize_exact(order, exit, label);
  }
  for (int i : order) done_.insert(i);
  Layer l;
  l.type = LayerType::Activation;
  l.name = layer_name(order.front());
  l.activation = std::move(act);
  add_layer(std::move(l), order.front(), exit);
}

// Whether constant `t` holds one value per channel of cur_, broadcast over N, H and W ([C, 1, 1] or
// [1, C, 1, 1]).
bool OnnxImporter::per_channel_constant(const std::string& t) {
  if (rank_ != 4 || constant_size(t) != shape_.c) return false;
  const std::optional<Constant> c = constant(t, path_);
  std::vector<std::int64_t> d = c->dims;
  if (d.size() == 4 && d[0] == 1) d.erase(d.begin());
  return d == std::vector<std::int64_t>{shape_.c, 1, 1};
}

// An element-wise group that is a x + b per channel (input normalization: Sub the mean, Div by
// the standard deviation): a batch normalization layer with mean 0, variance 1 and epsilon 0.
template <typename F>
void OnnxImporter::affine(const std::vector<int>& order, const std::string& exit, const std::string& label, F&& function_on) {
  const std::int64_t channels = rank_ == 4 ? shape_.c : shape_.size();
  Tensor a({channels}), b({channels}), mean({channels}, 0.0f), var({channels}, 1.0f);
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::optional<Poly> p = function_on(static_cast<std::size_t>(c));
    if (!p || p->size() > 2) {
      throw Error(label + ": the element-wise nodes from '" + cur_ +
                  "' use per-channel constants but are not a x + b per channel (a normalization); hecnn reads "
                  "per-channel constants only there");
    }
    b.data[static_cast<std::size_t>(c)] = static_cast<float>((*p)[0]);
    a.data[static_cast<std::size_t>(c)] = static_cast<float>(p->size() > 1 ? (*p)[1] : 0.0);
  }
  bool constant_result = true;
  for (float v : a.data) constant_result = constant_result && v == 0.0f;
  if (constant_result) throw Error(label + ": the element-wise nodes from '" + cur_ + "' compute a constant");
  for (int i : order) done_.insert(i);
  Layer l;
  l.type = LayerType::BatchNorm;
  l.name = layer_name(order.front());
  l.eps = 0;
  l.params["weight"] = std::move(a);
  l.params["bias"] = std::move(b);
  l.params["running_mean"] = std::move(mean);
  l.params["running_var"] = std::move(var);
  add_layer(std::move(l), order.front(), exit);
}

// The function of the group evaluated on a grid, compared with the exact activations hecnn knows.
Activation OnnxImporter::recognize_exact(const std::vector<int>& order, const std::string& exit, const std::string& label) {
  std::vector<double> xs, ys;
  for (int k = -120; k <= 120; ++k) xs.push_back(k / 20.0);
  for (double x : xs) {
    std::map<std::string, double> v = {{cur_, x}};
    auto val = [&](int node, const std::string& t) {
      if (auto it = v.find(t); it != v.end()) return it->second;
      return constant(t, where(node))->values[0];
    };
    for (int i : order) {
      const NodeProto& n = graph_.node(i);
      const std::string& op = n.op_type();
      const double a = val(i, n.input(0));
      const double b = n.input_size() > 1 ? val(i, n.input(1)) : 0.0;
      double r = 0;
      if (op == "Add") r = a + b;
      else if (op == "Sub") r = a - b;
      else if (op == "Mul") r = a * b;
      else if (op == "Div") r = a / b;
      else if (op == "Pow") r = std::pow(a, b);
      else if (op == "Neg") r = -a;
      else if (op == "Sigmoid") r = 1.0 / (1.0 + std::exp(-a));
      else if (op == "Tanh") r = std::tanh(a);
      else if (op == "Relu") r = std::max(a, 0.0);
      else if (op == "Erf") r = std::erf(a);
      else if (op == "Softplus") r = std::log1p(std::exp(-std::fabs(a))) + std::max(a, 0.0);
      else if (op == "Exp") r = std::exp(a);
      else if (op == "Log") r = std::log(a);
      else if (op == "Sqrt") r = std::sqrt(a);
      else if (op == "Reciprocal") r = 1.0 / a;
      else if (op == "Abs") r = std::fabs(a);
      else r = a;  // Identity, Cast
      for (const auto& o : n.output()) v[o] = r;
    }
    ys.push_back(v.at(exit));
  }
  for (const std::string& name : exact_candidates()) {
    const auto& f = approx::find_activation(name);
    bool same = true;
    for (std::size_t k = 0; k < xs.size() && same; ++k) {
      const double want = f.eval(xs[k]);
      same = std::isfinite(ys[k]) && std::fabs(ys[k] - want) <= 1e-5 * (1.0 + std::fabs(want));
    }
    if (same) return Activation::parse(name);
  }
  std::string ops;
  for (int i : order) ops += (ops.empty() ? "" : ", ") + graph_.node(i).op_type();
  throw Error(label + ": the element-wise nodes from '" + cur_ + "' (" + ops +
              ") compute neither a polynomial nor a known activation (relu, sigmoid, tanh, swish/SiLU, gelu, mish, softplus)");
}

// hecnn's exporter names each polynomial's specification in the metadata; when it gives the very
// coefficients of the graph (to float precision), the model keeps the specification and its
// double-precision coefficients.
Activation OnnxImporter::restore_spec(const Activation& found, std::size_t k) {
  if (!hints_loaded_) {
    hints_loaded_ = true;
    for (const auto& p : model_.metadata_props()) {
      if (p.key() != "hecnn.activations") continue;
      try {
        const nlohmann::json j = parse_json_bounded(p.value(), path_ + ": metadata 'hecnn.activations'");
        if (j.is_array() && j.size() <= static_cast<std::size_t>(limits::kMaxLayers)) {
          for (const auto& s : j) hints_.push_back(s.is_string() ? s.get<std::string>() : "");
        }
      } catch (const Error&) {
        hints_.clear();  // a hint only: the graph decides
      }
    }
  }
  if (k >= hints_.size() || hints_[k].empty()) return found;
  Activation hinted;
  try {
    hinted = Activation::parse(hints_[k]);
  } catch (const Error&) {
    return found;
  }
  if (!hinted.poly) return found;
  const std::vector<double> want = hinted.poly->to_power().coeffs();
  const auto& got = found.poly->coeffs();
  double scale = 0;
  for (double c : want) scale = std::max(scale, std::fabs(c));
  for (std::size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    const double a = i < want.size() ? want[i] : 0.0, b = i < got.size() ? got[i] : 0.0;
    if (std::fabs(a - b) > 1e-6 * scale) return found;
  }
  return hinted;
}

}  // namespace hecnn::nn::onnx_detail
