#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "approx/activation.h"
#include "approx/fit.h"
#include "common/error.h"
#include "nn/limits.h"
#include "nn/onnx.h"

namespace hecnn::nn {

namespace {

using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

std::string node_label(const NodeProto& n, int index) {
  std::string label = "node '";
  if (n.name().empty()) {
    label += '#';
    label += std::to_string(index);
  } else {
    label += n.name();
  }
  return label + "' (" + n.op_type() + ")";
}

std::string dims_string(const std::vector<std::int64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// A constant tensor as doubles, with its dimensions.
struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  std::int64_t numel() const { return static_cast<std::int64_t>(values.size()); }
};

// Decodes a TensorProto (float, double, int32 or int64; raw or typed fields) after checking its
// declared element count against the limit and against the bytes it holds.
Constant decode_tensor(const TensorProto& t, const std::string& where) {
  if (t.data_location() == TensorProto::EXTERNAL) {
    std::string location;
    for (const auto& e : t.external_data()) {
      if (e.key() == "location") location = e.value();
    }
    throw Error(where + ": tensor '" + t.name() + "' stores its data in an external file ('" + location +
                "'), which is not supported: save the model with every tensor inside the .onnx file "
                "(onnx.save_model(model, path, save_as_external_data=False))");
  }
  Constant c;
  std::int64_t count = 1;
  if (t.dims_size() > 8) throw Error(where + ": tensor '" + t.name() + "' has " + std::to_string(t.dims_size()) + " dimensions");
  for (auto d : t.dims()) {
    if (d < 0 || d > limits::kMaxOnnxTensorValues) {
      throw Error(where + ": tensor '" + t.name() + "' has a dimension of " + std::to_string(d));
    }
    count *= d;
    if (count > limits::kMaxOnnxTensorValues) {
      throw Error(where + ": tensor '" + t.name() + "' has more than the " + std::to_string(limits::kMaxOnnxTensorValues) +
                  " values a tensor may have");
    }
    c.dims.push_back(d);
  }
  const auto n = static_cast<std::size_t>(count);
  std::size_t elem = 0;
  switch (t.data_type()) {
    case TensorProto::FLOAT: elem = 4; break;
    case TensorProto::DOUBLE: elem = 8; break;
    case TensorProto::INT32: elem = 4; break;
    case TensorProto::INT64: elem = 8; break;
    default:
      throw Error(where + ": tensor '" + t.name() + "' has element type " + TensorProto::DataType_Name(t.data_type()) +
                  " (supported: FLOAT, DOUBLE, INT32, INT64)");
  }
  c.values.resize(n);
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() != n * elem) {
      throw Error(where + ": tensor '" + t.name() + "' declares " + std::to_string(n) + " values but holds " +
                  std::to_string(raw.size()) + " bytes (truncated or corrupted)");
    }
    for (std::size_t i = 0; i < n; ++i) {
      const char* p = raw.data() + i * elem;
      switch (t.data_type()) {
        case TensorProto::FLOAT: { float v; std::memcpy(&v, p, 4); c.values[i] = v; break; }
        case TensorProto::DOUBLE: { double v; std::memcpy(&v, p, 8); c.values[i] = v; break; }
        case TensorProto::INT32: { std::int32_t v; std::memcpy(&v, p, 4); c.values[i] = static_cast<double>(v); break; }
        default: { std::int64_t v; std::memcpy(&v, p, 8); c.values[i] = static_cast<double>(v); break; }
      }
    }
    return c;
  }
  auto take = [&](const auto& field) {
    if (static_cast<std::size_t>(field.size()) != n) {
      throw Error(where + ": tensor '" + t.name() + "' declares " + std::to_string(n) + " values but holds " +
                  std::to_string(field.size()) + " (truncated or corrupted)");
    }
    for (std::size_t i = 0; i < n; ++i) c.values[i] = static_cast<double>(field[static_cast<int>(i)]);
  };
  switch (t.data_type()) {
    case TensorProto::FLOAT: take(t.float_data()); break;
    case TensorProto::DOUBLE: take(t.double_data()); break;
    case TensorProto::INT32: take(t.int32_data()); break;
    default: take(t.int64_data()); break;
  }
  return c;
}

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

const std::set<std::string>& elementwise_ops() {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div", "Pow", "Neg", "Sigmoid", "Tanh", "Relu", "Erf",
                                            "Softplus", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Identity", "Cast"};
  return ops;
}

const char* kSupported =
    "supported: Conv, BatchNormalization, Gemm, MatMul (+ Add), AveragePool, GlobalAveragePool, Flatten, Reshape to "
    "[N, C*H*W], Identity, Dropout, Pad (constant zeros), Add of two tensors (residual connections), a final "
    "Softmax/LogSoftmax, Sub/Mul/Div/Add by per-channel constants (normalization), and activations made of Relu, "
    "Sigmoid, Tanh, Softplus, Erf, Exp, Log, Sqrt, Abs, Mul, Add, Sub, Div, Pow, Neg, Reciprocal, Cast, Constant";

class OnnxImporter {
 public:
  OnnxImporter(std::string path, onnx::ModelProto& model) : path_(std::move(path)), model_(model), graph_(model.graph()) {}

  Model run() {
    index_graph();
    read_input();
    walk();
    m_.info["source"] = "onnx";
    m_.info["onnx"] = {{"producer", model_.producer_name() + " " + model_.producer_version()},
                       {"ir_version", model_.ir_version()},
                       {"opset", opset_}};
    try {
      m_.validate();
      check_parameter_values(m_);
    } catch (const Error& e) {
      throw Error(path_ + ": " + e.what());
    }
    return std::move(m_);
  }

  void set_opset(std::int64_t v) { opset_ = v; }

 private:
  std::string where(int node) const { return path_ + ": " + node_label(graph_.node(node), node); }

  void index_graph() {  // sizes checked by check_before_inference
    for (const auto& t : graph_.initializer()) initializers_[t.name()] = &t;
    for (int i = 0; i < graph_.node_size(); ++i) {
      const NodeProto& n = graph_.node(i);
      if (!n.domain().empty() && n.domain() != "ai.onnx") {
        throw Error(where(i) + ": operator domain '" + n.domain() + "' is not supported (only the default ONNX domain)");
      }
      for (const auto& out : n.output()) producer_[out] = i;
      for (const auto& in : n.input()) {
        if (!in.empty()) consumers_[in].push_back(i);
      }
    }
    for (const auto& vi : graph_.value_info()) value_info_[vi.name()] = &vi;
    for (const auto& vi : graph_.output()) value_info_[vi.name()] = &vi;
    if (graph_.output_size() != 1) {
      throw Error(path_ + ": the graph has " + std::to_string(graph_.output_size()) + " outputs; hecnn needs exactly one (the logits)");
    }
    output_ = graph_.output(0).name();
  }

  // The graph input that is not an initializer (IR < 4 lists initializers as inputs too).
  void read_input() {
    const onnx::ValueInfoProto* input = nullptr;
    for (const auto& vi : graph_.input()) {
      if (initializers_.count(vi.name())) continue;
      if (input) throw Error(path_ + ": the graph has several inputs ('" + input->name() + "', '" + vi.name() + "'); hecnn needs one image input");
      input = &vi;
    }
    if (!input) throw Error(path_ + ": the graph has no input");
    const std::string what = path_ + ": input '" + input->name() + "'";
    if (!input->type().has_tensor_type()) throw Error(what + " is not a tensor");
    const auto& tt = input->type().tensor_type();
    if (tt.elem_type() != TensorProto::FLOAT) {
      throw Error(what + " has element type " + TensorProto::DataType_Name(static_cast<TensorProto::DataType>(tt.elem_type())) +
                  "; hecnn needs FLOAT");
    }
    if (!tt.has_shape() || tt.shape().dim_size() != 4) {
      throw Error(what + ": hecnn needs a 4-D N x C x H x W image input" +
                  (tt.has_shape() ? " (it has " + std::to_string(tt.shape().dim_size()) + " dimensions)" : std::string(" (no shape given)")));
    }
    static const char* names[] = {"N", "C", "H", "W"};
    int dims[4] = {0, 0, 0, 0};
    for (int k = 1; k < 4; ++k) {
      const auto& d = tt.shape().dim(k);
      if (!d.has_dim_value()) {
        throw Error(what + ": dimension " + names[k] + " is dynamic ('" + d.dim_param() +
                    "'); hecnn needs fixed C, H and W (only the batch dimension N may be dynamic)");
      }
      if (d.dim_value() <= 0 || d.dim_value() > limits::kMaxImageSide) {
        throw Error(what + ": dimension " + names[k] + " = " + std::to_string(d.dim_value()) + " is out of range");
      }
      dims[k] = static_cast<int>(d.dim_value());
    }
    m_.input = {dims[1], dims[2], dims[3]};
    check_input_shape(m_.input);
    skeleton_.input = m_.input;
    values_[input->name()] = Value{kModelInput, m_.input, 4};
    select(input->name());
  }

  // A tensor computed from the image: the layer whose output it is (or the model's input), its
  // shape, and its rank (4: N x C x H x W, 2: N x values).
  struct Value {
    int layer = kModelInput;
    Shape shape;
    int rank = 4;
  };

  // Makes `t` the tensor the next layer reads.
  void select(const std::string& t) {
    const Value& v = values_.at(t);
    cur_ = t;
    shape_ = v.shape;
    rank_ = v.rank;
  }

  std::optional<Constant> constant(const std::string& name, const std::string& where_) {
    if (auto it = initializers_.find(name); it != initializers_.end()) return decode_tensor(*it->second, where_);
    auto p = producer_.find(name);
    if (p == producer_.end()) return std::nullopt;
    const NodeProto& n = graph_.node(p->second);
    if (n.op_type() != "Constant") return std::nullopt;
    for (const auto& a : n.attribute()) {
      if (a.name() == "value") return decode_tensor(a.t(), where_);
      if (a.name() == "value_float") return Constant{{}, {a.f()}};
      if (a.name() == "value_int") return Constant{{}, {static_cast<double>(a.i())}};
      if (a.name() == "value_floats" || a.name() == "value_ints") {
        const int k = a.name() == "value_floats" ? a.floats_size() : a.ints_size();
        if (k > limits::kMaxOnnxTensorValues) throw Error(where_ + ": Constant '" + name + "' is too large");
        Constant c{{k}, {}};
        for (int i = 0; i < k; ++i) c.values.push_back(a.name() == "value_floats" ? a.floats(i) : static_cast<double>(a.ints(i)));
        return c;
      }
    }
    throw Error(path_ + ": " + node_label(n, p->second) + ": a Constant of a kind hecnn does not read");
  }

  // The number of values of a constant tensor, from its declaration (nothing decoded); -1 for a
  // tensor that is not a constant.
  std::int64_t constant_size(const std::string& name) const {
    auto count = [](const TensorProto& t) {
      std::int64_t n = 1;
      for (auto d : t.dims()) {
        if (d < 0 || d > limits::kMaxOnnxTensorValues) return std::int64_t{-1};
        n *= d;
        if (n > limits::kMaxOnnxTensorValues) return std::int64_t{-1};
      }
      return n;
    };
    if (auto it = initializers_.find(name); it != initializers_.end()) return count(*it->second);
    auto p = producer_.find(name);
    if (p == producer_.end() || graph_.node(p->second).op_type() != "Constant") return -1;
    for (const auto& a : graph_.node(p->second).attribute()) {
      if (a.name() == "value") return count(a.t());
      if (a.name() == "value_float" || a.name() == "value_int") return 1;
      if (a.name() == "value_floats") return a.floats_size();
      if (a.name() == "value_ints") return a.ints_size();
    }
    return -1;
  }

  Constant required_constant(int node, int input, const std::string& role) {
    const NodeProto& n = graph_.node(node);
    if (input >= n.input_size() || n.input(input).empty()) throw Error(where(node) + ": no " + role + " input");
    auto c = constant(n.input(input), where(node));
    if (!c) {
      throw Error(where(node) + ": the " + role + " ('" + n.input(input) +
                  "') is computed in the graph; hecnn needs it as an initializer or a Constant");
    }
    return std::move(*c);
  }

  const AttributeProto* attr(int node, const std::string& name) const {
    for (const auto& a : graph_.node(node).attribute()) {
      if (a.name() == name) return &a;
    }
    return nullptr;
  }
  std::int64_t attr_int(int node, const std::string& name, std::int64_t def) const {
    const AttributeProto* a = attr(node, name);
    return a ? a->i() : def;
  }
  std::vector<std::int64_t> attr_ints(int node, const std::string& name, std::vector<std::int64_t> def) const {
    const AttributeProto* a = attr(node, name);
    if (!a) return def;
    if (a->ints_size() > 8) throw Error(where(node) + ": attribute '" + name + "' has too many values");
    return {a->ints().begin(), a->ints().end()};
  }

  // Appends a layer reading cur_ (or `inputs`): its hyper-parameters and output size are checked
  // against the limits before its parameters are attached, and the output shape is compared with
  // the one ONNX inferred.
  void add_layer(Layer l, int node, const std::string& out, std::vector<int> inputs = {}) {
    if (inputs.empty()) inputs = {values_.at(cur_).layer};
    l.inputs = inputs;
    const Shape in = shape_;
    Layer bare = l;
    bare.params.clear();
    skeleton_.layers.push_back(std::move(bare));
    try {
      shape_ = skeleton_.shapes(false).back();
    } catch (const Error& e) {
      throw Error(where(node) + ": " + e.what());
    }
    if (!l.params.empty()) {
      const auto expected = Model::expected_params(l, in);
      for (const auto& [role, t] : l.params) {
        if (t.shape != expected.at(role)) {
          throw Error(where(node) + ": " + role + " has shape " + t.shape_string() + ", the layer needs " +
                      dims_string(expected.at(role)));
        }
      }
    }
    m_.layers.push_back(std::move(l));
    values_[cur_ = out] = Value{static_cast<int>(m_.layers.size()) - 1, shape_, rank_};
    advance(node, out);
  }

  // Moves to `out`, checking the shape ONNX inferred for it (when known) against hecnn's.
  void advance(int node, const std::string& out) {
    done_.insert(node);
    Value& v = values_[out];
    if (out != cur_) v = Value{values_.at(cur_).layer, shape_, rank_};  // the same values under another name
    v.rank = rank_;
    cur_ = out;
    auto it = value_info_.find(out);
    if (it == value_info_.end() || !it->second->type().has_tensor_type() || !it->second->type().tensor_type().has_shape()) return;
    const auto& shape = it->second->type().tensor_type().shape();
    std::vector<std::int64_t> ours = rank_ == 4 ? std::vector<std::int64_t>{shape_.c, shape_.h, shape_.w}
                                                 : std::vector<std::int64_t>{shape_.size()};
    if (shape.dim_size() != static_cast<int>(ours.size()) + 1) {
      throw Error(where(node) + ": ONNX infers " + std::to_string(shape.dim_size()) + " dimensions for '" + out + "', hecnn " +
                  std::to_string(ours.size() + 1));
    }
    for (int k = 1; k < shape.dim_size(); ++k) {
      const auto& d = shape.dim(k);
      if (d.has_dim_value() && d.dim_value() != ours[static_cast<std::size_t>(k - 1)]) {
        throw Error(where(node) + ": ONNX infers the shape of '" + out + "' differently from hecnn (" + shape_.to_string() + ")");
      }
    }
  }

  std::vector<int> pending_consumers(const std::string& t) const {
    std::vector<int> r;
    if (auto it = consumers_.find(t); it != consumers_.end()) {
      for (int i : it->second) {
        if (!done_.count(i)) r.push_back(i);
      }
    }
    return r;
  }

  void only_first_output_used(int node) {
    const NodeProto& n = graph_.node(node);
    for (int k = 1; k < n.output_size(); ++k) {
      if (!n.output(k).empty() && (consumers_.count(n.output(k)) || n.output(k) == output_)) {
        throw Error(where(node) + ": output " + std::to_string(k) + " ('" + n.output(k) + "') is used; hecnn supports inference only");
      }
    }
  }

  std::string layer_name(int node) const {
    const NodeProto& n = graph_.node(node);
    return n.name().empty() ? n.op_type() + "_" + std::to_string(node) : n.name();
  }

  // The nodes in graph order (topological: the checker makes sure). Element-wise nodes start an
  // activation or a normalization grown from the tensor they read (activation()); an Add of two
  // computed tensors joins branches; any other node is a layer reading its first input.
  void walk() {
    for (int i = 0; i < graph_.node_size(); ++i) {
      if (done_.count(i)) continue;
      const NodeProto& n = graph_.node(i);
      const std::string& op = n.op_type();
      if (op == "Constant") continue;  // read where used
      std::vector<std::string> data;  // inputs computed from the image
      for (const auto& in : n.input()) {
        if (in.empty()) continue;
        if (values_.count(in)) {
          data.push_back(in);
        } else if (constant_size(in) < 0) {
          throw Error(where(i) + ": reads '" + in + "', which is neither a constant nor a tensor hecnn computes (" + kSupported + ")");
        }
      }
      for (const auto& o : n.output()) {
        if (values_.count(o)) throw Error(where(i) + ": writes '" + o + "' a second time");
      }
      if (data.empty()) throw Error(where(i) + ": computes from constants only; hecnn needs such values as initializers");
      if (elementwise_ops().count(op)) {
        if (data.size() == 2 && data[0] != data[1]) {
          if (op != "Add") {
            throw Error(where(i) + ": " + op + " of two computed tensors is not supported (only Add joins branches)");
          }
          join(i, data[0], data[1]);
          continue;
        }
        select(data[0]);
        activation({i});
        continue;
      }
      if (n.input(0) != data[0]) {
        throw Error(where(i) + ": reads the computed tensor '" + data[0] + "' as an input other than its first");
      }
      if (data.size() > 1) throw Error(where(i) + ": reads " + std::to_string(data.size()) + " computed tensors; " + op + " takes one");
      select(data[0]);
      layer(i);
    }
    if (!values_.count(output_)) throw Error(path_ + ": the graph output '" + output_ + "' is computed by no supported node");
    if (auto it = consumers_.find(output_); it != consumers_.end() && !it->second.empty()) {
      throw Error(path_ + ": the graph output '" + output_ + "' is also used by further nodes");
    }
    if (m_.layers.empty() || values_.at(output_).layer != static_cast<int>(m_.layers.size()) - 1) {
      throw Error(path_ + ": the graph output '" + output_ + "' is not the result of the last layer");
    }
  }

  // An Add of two computed tensors: a residual connection.
  void join(int node, const std::string& a, const std::string& b) {
    const Value va = values_.at(a), vb = values_.at(b);
    if (!(va.shape == vb.shape) || va.rank != vb.rank) {
      throw Error(where(node) + ": adds tensors of different shapes (" + va.shape.to_string() + " and " + vb.shape.to_string() + ")");
    }
    if (va.layer == vb.layer) throw Error(where(node) + ": adds two names of one tensor");
    select(a);
    Layer l;
    l.type = LayerType::Add;
    l.name = layer_name(node);
    add_layer(std::move(l), node, graph_.node(node).output(0), {va.layer, vb.layer});
  }

  void layer(int node) {
    const NodeProto& n = graph_.node(node);
    const std::string& op = n.op_type();
    const std::string out = n.output_size() > 0 ? n.output(0) : "";
    if (op == "Conv") return conv(node, out);
    if (op == "BatchNormalization") return batch_norm(node, out);
    if (op == "Gemm") return gemm(node, out);
    if (op == "MatMul") return matmul(node, out);
    if (op == "AveragePool") return avg_pool(node, out);
    if (op == "GlobalAveragePool") {
      if (rank_ != 4) throw Error(where(node) + ": needs a 4-D input");
      Layer l;
      l.type = LayerType::GlobalAvgPool2d;
      l.name = layer_name(node);
      return add_layer(std::move(l), node, out);
    }
    if (op == "Flatten") {
      if (attr_int(node, "axis", 1) != 1) throw Error(where(node) + ": only axis 1 is supported (N x rest)");
      return flatten(node, out);
    }
    if (op == "Reshape") {
      const Constant target = required_constant(node, 1, "target shape");
      // The shape ONNX inferred for the output decides: [N, C*H*W] is a flatten, anything else is refused.
      auto it = value_info_.find(out);
      const bool flat = it != value_info_.end() && it->second->type().tensor_type().shape().dim_size() == 2 &&
                        it->second->type().tensor_type().shape().dim(1).dim_value() == shape_.size();
      if (!flat) {
        std::vector<std::int64_t> t;
        for (double v : target.values) t.push_back(static_cast<std::int64_t>(v));
        throw Error(where(node) + ": reshape to " + dims_string(t) + " is not supported (only to [N, C*H*W], a flatten)");
      }
      return flatten(node, out);
    }
    if (op == "Identity") return advance(node, out);
    if (op == "Pad") return pad(node, out);
    if (op == "Dropout") {
      only_first_output_used(node);
      if (n.input_size() >= 3 && !n.input(2).empty()) {
        const Constant training = required_constant(node, 2, "training_mode");
        if (training.numel() != 1 || training.values[0] != 0) throw Error(where(node) + ": training mode is not supported");
      }
      return advance(node, out);
    }
    if ((op == "Softmax" || op == "LogSoftmax") && out == output_) {
      m_.info["note"] = "final " + op + " dropped: predictions (argmax) are unchanged";
      return advance(node, out);
    }
    throw Error(where(node) + ": operator " + op + " is not supported (" + kSupported + ")");
  }

  // Pad with zeros: nothing for a zero width (torch.onnx.export writes one before every
  // AveragePool), otherwise a 1x1 identity convolution with that padding (exact; a convolution or
  // pooling after it reads the zeros as torch does).
  void pad(int node, const std::string& out) {
    const NodeProto& n = graph_.node(node);
    std::vector<std::int64_t> pads;
    if (const AttributeProto* a = attr(node, "pads")) {
      pads.assign(a->ints().begin(), a->ints().end());
    } else {
      for (double v : required_constant(node, 1, "pads").values) pads.push_back(static_cast<std::int64_t>(v));
    }
    if (std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; })) return advance(node, out);
    const AttributeProto* mode = attr(node, "mode");
    if (mode && mode->s() != "constant") throw Error(where(node) + ": mode '" + mode->s() + "' is not supported (only constant zeros)");
    double value = 0;
    if (const AttributeProto* v = attr(node, "value")) value = v->f();
    if (n.input_size() > 2 && !n.input(2).empty()) {
      const Constant c = required_constant(node, 2, "constant value");
      if (c.numel() != 1) throw Error(where(node) + ": the constant value must be a scalar");
      value = c.values[0];
    }
    if (value != 0) throw Error(where(node) + ": padding with " + std::to_string(value) + " is not supported (only zeros)");
    if (n.input_size() > 3 && !n.input(3).empty()) throw Error(where(node) + ": padding only some axes is not supported");
    if (rank_ != 4 || pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5]) {
      throw Error(where(node) + ": pads " + dims_string(pads) + ": hecnn pads the height and width of N x C x H x W tensors only");
    }
    for (auto p : pads) {
      if (p < 0 || p > limits::kMaxKernel) throw Error(where(node) + ": pads " + dims_string(pads) + " out of range (0 to " + std::to_string(limits::kMaxKernel) + ")");
    }
    // Read by one convolution or pooling alone (torch.onnx.export writes AvgPool2d(padding=p) so):
    // the zeros become that layer's padding.
    const auto readers = consumers_.find(out);
    if (out != output_ && readers != consumers_.end() && readers->second.size() == 1) {
      const int r = readers->second[0];
      const std::string& op = graph_.node(r).op_type();
      const AttributeProto* ap = attr(r, "auto_pad");
      if ((op == "Conv" || op == "AveragePool") && graph_.node(r).input(0) == out && (!ap || ap->s() == "NOTSET")) {
        pending_pads_[out] = {pads[2], pads[3], pads[6], pads[7]};
        done_.insert(node);
        values_[out] = values_.at(cur_);  // the unpadded values (ONNX's shape for `out` includes the zeros)
        cur_ = out;
        return;
      }
    }
    Layer l;
    l.type = LayerType::Conv2d;
    l.name = layer_name(node);
    l.filters = shape_.c;
    l.kernel_h = l.kernel_w = 1;
    l.padding = Padding::Explicit;
    l.pad_top = static_cast<int>(pads[2]);
    l.pad_left = static_cast<int>(pads[3]);
    l.pad_bottom = static_cast<int>(pads[6]);
    l.pad_right = static_cast<int>(pads[7]);
    Tensor w({shape_.c, shape_.c, 1, 1});
    for (int c = 0; c < shape_.c; ++c) w.data[static_cast<std::size_t>(c) * shape_.c + c] = 1.0f;
    l.params["weight"] = std::move(w);
    add_layer(std::move(l), node, out);
  }

  void flatten(int node, const std::string& out) {
    if (rank_ == 2) return advance(node, out);
    Layer l;
    l.type = LayerType::Flatten;
    l.name = layer_name(node);
    rank_ = 2;
    add_layer(std::move(l), node, out);
  }

  void conv(int node, const std::string& out) {
    if (rank_ != 4) throw Error(where(node) + ": needs a 4-D N x C x H x W input");
    const std::int64_t group = attr_int(node, "group", 1);
    if (group != 1) throw Error(where(node) + ": grouped convolution (group = " + std::to_string(group) + ") is not supported");
    const auto dil = attr_ints(node, "dilations", {1, 1});
    if (std::any_of(dil.begin(), dil.end(), [](std::int64_t d) { return d != 1; })) {
      throw Error(where(node) + ": dilations " + dims_string(dil) + " are not supported (only 1)");
    }
    Constant w = required_constant(node, 1, "weight");
    if (w.dims.size() != 4) throw Error(where(node) + ": weight of " + std::to_string(w.dims.size()) + " dimensions; only 2-D convolutions are supported");
    if (w.dims[1] != shape_.c) {
      throw Error(where(node) + ": weight " + dims_string(w.dims) + " does not take the " + std::to_string(shape_.c) + " input channels");
    }
    const auto ks = attr_ints(node, "kernel_shape", {w.dims[2], w.dims[3]});
    if (ks.size() != 2 || ks[0] != w.dims[2] || ks[1] != w.dims[3]) throw Error(where(node) + ": kernel_shape does not match the weight");
    const auto strides = attr_ints(node, "strides", {1, 1});
    if (strides.size() != 2) throw Error(where(node) + ": strides must have 2 values");
    for (std::int64_t v : {w.dims[0], w.dims[2], w.dims[3], strides[0], strides[1]}) {
      if (v <= 0 || v > limits::kMaxChannels) throw Error(where(node) + ": a size out of range");
    }
    Layer l;
    l.type = LayerType::Conv2d;
    l.name = layer_name(node);
    l.filters = static_cast<int>(w.dims[0]);
    l.kernel_h = static_cast<int>(w.dims[2]);
    l.kernel_w = static_cast<int>(w.dims[3]);
    l.stride_h = static_cast<int>(strides[0]);
    l.stride_w = static_cast<int>(strides[1]);
    set_padding(node, l, l.kernel_h, l.kernel_w, l.stride_h, l.stride_w);
    l.params["weight"] = to_tensor(w);
    if (graph_.node(node).input_size() > 2 && !graph_.node(node).input(2).empty()) {
      l.params["bias"] = to_tensor(required_constant(node, 2, "bias"));
    }
    add_layer(std::move(l), node, out);
  }

  // The node's padding (pads or auto_pad) as "valid", TensorFlow's "same" where it is that, or
  // explicit rows and columns.
  void set_padding(int node, Layer& l, int kh, int kw, int sh, int sw) {
    const AttributeProto* ap = attr(node, "auto_pad");
    const std::string auto_pad = ap ? ap->s() : "NOTSET";
    const int in[2] = {shape_.h, shape_.w}, k[2] = {kh, kw}, s[2] = {sh, sw};
    std::int64_t same_begin[2], same_end[2];
    for (int d = 0; d < 2; ++d) {
      const std::int64_t out = (in[d] + s[d] - 1) / s[d];
      const std::int64_t total = std::max<std::int64_t>((out - 1) * s[d] + k[d] - in[d], 0);
      same_begin[d] = total / 2;
      same_end[d] = total - total / 2;
    }
    l.padding = Padding::Valid;
    if (auto_pad == "VALID") return;
    std::vector<std::int64_t> pads;
    if (auto_pad == "SAME_UPPER") {
      pads = {same_begin[0], same_begin[1], same_end[0], same_end[1]};
    } else if (auto_pad == "SAME_LOWER") {
      pads = {same_end[0], same_end[1], same_begin[0], same_begin[1]};
    } else if (auto_pad == "NOTSET") {
      pads = attr_ints(node, "pads", {0, 0, 0, 0});
      if (pads.size() != 4) throw Error(where(node) + ": pads must have 4 values");
      // The zeros of a Pad node just before (they count in an average, as any value does).
      if (auto it = pending_pads_.find(cur_); it != pending_pads_.end()) {
        if (l.type == LayerType::AvgPool2d && !l.count_include_pad && std::any_of(pads.begin(), pads.end(), [](std::int64_t p) { return p != 0; })) {
          throw Error(where(node) + ": padded by a Pad node and by its own pads without counting them: not supported");
        }
        for (std::size_t k = 0; k < 4; ++k) pads[k] += it->second[k];
        if (l.type == LayerType::AvgPool2d) l.count_include_pad = true;
      }
    } else {
      throw Error(where(node) + ": auto_pad '" + auto_pad + "' is not supported");
    }
    for (auto p : pads) {
      if (p < 0 || p > limits::kMaxKernel) throw Error(where(node) + ": pads " + dims_string(pads) + " out of range");
    }
    if (std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; })) return;
    if (l.type == LayerType::Conv2d && pads == std::vector<std::int64_t>{same_begin[0], same_begin[1], same_end[0], same_end[1]}) {
      l.padding = Padding::Same;
      return;
    }
    l.padding = Padding::Explicit;
    l.pad_top = static_cast<int>(pads[0]);
    l.pad_left = static_cast<int>(pads[1]);
    l.pad_bottom = static_cast<int>(pads[2]);
    l.pad_right = static_cast<int>(pads[3]);
  }

  static Tensor to_tensor(const Constant& c) {
    Tensor t;
    t.shape = c.dims;
    if (t.shape.empty()) t.shape = {1};
    t.data.assign(c.values.begin(), c.values.end());
    return t;
  }

  Tensor channel_vector(int node, int input, const std::string& role, std::int64_t n) {
    const Constant c = required_constant(node, input, role);
    if (c.numel() != n) {
      throw Error(where(node) + ": " + role + " has " + std::to_string(c.numel()) + " values, the layer needs " + std::to_string(n));
    }
    Tensor t;
    t.shape = {n};
    t.data.assign(c.values.begin(), c.values.end());
    return t;
  }

  void batch_norm(int node, const std::string& out) {
    only_first_output_used(node);
    if (attr_int(node, "training_mode", 0) != 0) throw Error(where(node) + ": training mode is not supported");
    const std::int64_t c = rank_ == 4 ? shape_.c : shape_.size();
    Layer l;
    l.type = LayerType::BatchNorm;
    l.name = layer_name(node);
    const AttributeProto* eps = attr(node, "epsilon");
    l.eps = eps ? eps->f() : 1e-5;
    l.params["weight"] = channel_vector(node, 1, "scale", c);
    l.params["bias"] = channel_vector(node, 2, "bias", c);
    l.params["running_mean"] = channel_vector(node, 3, "mean", c);
    l.params["running_var"] = channel_vector(node, 4, "variance", c);
    add_layer(std::move(l), node, out);
  }

  void dense(int node, const std::string& out, const Constant& w_in_out, bool transposed, double alpha,
             std::optional<Tensor> bias) {
    if (rank_ != 2) throw Error(where(node) + ": needs a 2-D N x features input (flatten first)");
    if (w_in_out.dims.size() != 2) throw Error(where(node) + ": the weight must be a matrix, it is " + dims_string(w_in_out.dims));
    const std::int64_t n_in = transposed ? w_in_out.dims[1] : w_in_out.dims[0];
    const std::int64_t n_out = transposed ? w_in_out.dims[0] : w_in_out.dims[1];
    if (n_in != shape_.size()) {
      throw Error(where(node) + ": weight " + dims_string(w_in_out.dims) + " does not take the " + std::to_string(shape_.size()) + " inputs");
    }
    if (n_out <= 0 || n_out > limits::kMaxValues) throw Error(where(node) + ": " + std::to_string(n_out) + " outputs are out of range");
    Layer l;
    l.type = LayerType::Dense;
    l.name = layer_name(node);
    l.units = static_cast<int>(n_out);
    Tensor w({n_out, n_in});
    for (std::int64_t o = 0; o < n_out; ++o)
      for (std::int64_t i = 0; i < n_in; ++i) {
        const double v = transposed ? w_in_out.values[static_cast<std::size_t>(o * n_in + i)]
                                    : w_in_out.values[static_cast<std::size_t>(i * n_out + o)];
        w.data[static_cast<std::size_t>(o * n_in + i)] = static_cast<float>(alpha * v);
      }
    l.params["weight"] = std::move(w);
    if (bias) {
      if (bias->numel() == 1 && n_out > 1) bias = Tensor({n_out}, bias->data[0]);
      if (bias->numel() != n_out) throw Error(where(node) + ": bias has " + std::to_string(bias->numel()) + " values, not " + std::to_string(n_out));
      bias->shape = {n_out};
      l.params["bias"] = std::move(*bias);
    }
    add_layer(std::move(l), node, out);
  }

  void gemm(int node, const std::string& out) {
    if (attr_int(node, "transA", 0) != 0) throw Error(where(node) + ": transA = 1 is not supported");
    const double alpha = attr(node, "alpha") ? attr(node, "alpha")->f() : 1.0;
    const double beta = attr(node, "beta") ? attr(node, "beta")->f() : 1.0;
    const Constant b = required_constant(node, 1, "weight (B)");
    std::optional<Tensor> bias;
    if (graph_.node(node).input_size() > 2 && !graph_.node(node).input(2).empty()) {
      const Constant c = required_constant(node, 2, "bias (C)");
      if (c.dims.size() > 2 || (c.dims.size() == 2 && c.dims[0] != 1)) throw Error(where(node) + ": bias (C) of shape " + dims_string(c.dims) + " is not supported");
      Tensor t;
      t.shape = {c.numel()};
      for (double v : c.values) t.data.push_back(static_cast<float>(beta * v));
      bias = std::move(t);
    }
    dense(node, out, b, attr_int(node, "transB", 0) != 0, alpha, std::move(bias));
  }

  // MatMul by a constant [in, out] matrix, and the Add of a constant [out] vector that follows it.
  void matmul(int node, const std::string& out) {
    const Constant b = required_constant(node, 1, "weight");
    std::string result = out;
    std::optional<Tensor> bias;
    const std::vector<int> next = pending_consumers(out);
    if (next.size() == 1 && graph_.node(next[0]).op_type() == "Add" && out != output_) {
      const NodeProto& add = graph_.node(next[0]);
      const int other = add.input(0) == out ? 1 : 0;
      if (auto c = constant(add.input(other), where(next[0])); c && c->numel() == (b.dims.size() == 2 ? b.dims[1] : -1)) {
        Tensor t;
        t.shape = {c->numel()};
        t.data.assign(c->values.begin(), c->values.end());
        bias = std::move(t);
        done_.insert(next[0]);
        result = add.output(0);
      }
    }
    dense(node, result, b, false, 1.0, std::move(bias));
  }

  void avg_pool(int node, const std::string& out) {
    if (rank_ != 4) throw Error(where(node) + ": needs a 4-D input");
    const auto ks = attr_ints(node, "kernel_shape", {});
    if (ks.size() != 2 || ks[0] != ks[1]) throw Error(where(node) + ": only square 2-D pools are supported");
    const auto st = attr_ints(node, "strides", {1, 1});
    if (st.size() != 2 || st[0] != st[1]) throw Error(where(node) + ": only equal strides are supported");
    if (ks[0] <= 0 || ks[0] > limits::kMaxKernel || st[0] <= 0 || st[0] > limits::kMaxKernel) throw Error(where(node) + ": pool size or stride out of range");
    if (attr_int(node, "ceil_mode", 0) != 0) throw Error(where(node) + ": ceil_mode is not supported");
    Layer l;
    l.type = LayerType::AvgPool2d;
    l.name = layer_name(node);
    l.pool = static_cast<int>(ks[0]);
    l.pool_stride = static_cast<int>(st[0]);
    l.count_include_pad = attr_int(node, "count_include_pad", 0) != 0;
    set_padding(node, l, l.pool, l.pool, l.pool_stride, l.pool_stride);
    add_layer(std::move(l), node, out);  // ceil_mode: a different output size is caught by the shape check
  }

  // A connected group of element-wise nodes fed by cur_ alone (besides constants) with one tensor
  // leaving it: an activation.
  void activation(const std::vector<int>& first) {
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
  bool per_channel_constant(const std::string& t) {
    if (rank_ != 4 || constant_size(t) != shape_.c) return false;
    const std::optional<Constant> c = constant(t, path_);
    std::vector<std::int64_t> d = c->dims;
    if (d.size() == 4 && d[0] == 1) d.erase(d.begin());
    return d == std::vector<std::int64_t>{shape_.c, 1, 1};
  }

  // An element-wise group that is a x + b per channel (input normalization: Sub the mean, Div by
  // the standard deviation): a batch normalization layer with mean 0, variance 1 and epsilon 0.
  template <typename F>
  void affine(const std::vector<int>& order, const std::string& exit, const std::string& label, F&& function_on) {
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
  Activation recognize_exact(const std::vector<int>& order, const std::string& exit, const std::string& label) {
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
  Activation restore_spec(const Activation& found, std::size_t k) {
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

  std::string path_;
  onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  std::int64_t opset_ = 0;
  std::map<std::string, const TensorProto*> initializers_;
  std::map<std::string, int> producer_;
  std::map<std::string, std::vector<int>> consumers_;
  std::map<std::string, const onnx::ValueInfoProto*> value_info_;
  std::string output_, cur_;
  std::map<std::string, Value> values_;  // every tensor computed from the image so far
  std::map<std::string, std::array<std::int64_t, 4>> pending_pads_;  // a Pad's zeros, for the layer reading it
  Shape shape_;
  int rank_ = 4;
  std::set<int> done_;
  Model m_, skeleton_;
  std::vector<std::string> hints_;
  bool hints_loaded_ = false;
  std::size_t polynomial_count_ = 0;
};

// ONNX's shape inference trusts some attributes (a stride of 0 divides by zero in the library):
// every node's geometry attributes and every declared dimension are checked before it runs.
// Subgraphs (If, Loop, Scan) are refused here too: hecnn maps none of them.
void check_before_inference(const onnx::ModelProto& model, const std::string& path) {
  const onnx::GraphProto& g = model.graph();
  if (g.node_size() > limits::kMaxOnnxNodes) {
    throw Error(path + ": " + std::to_string(g.node_size()) + " nodes, more than the " + std::to_string(limits::kMaxOnnxNodes) +
                " accepted");
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const NodeProto& n = g.node(i);
    for (const auto& a : n.attribute()) {
      if (a.type() == AttributeProto::GRAPH || a.type() == AttributeProto::GRAPHS || a.has_g() || a.graphs_size() > 0) {
        throw Error(path + ": " + node_label(n, i) + ": attribute '" + a.name() + "' holds a subgraph; hecnn supports none");
      }
      const std::string& name = a.name();
      const bool positive = name == "strides" || name == "kernel_shape" || name == "dilations";
      if (!positive && name != "pads") continue;
      const std::int64_t lo = positive ? 1 : 0, hi = limits::kMaxKernel;
      if (a.ints_size() > 8) throw Error(path + ": " + node_label(n, i) + ": attribute '" + name + "' has too many values");
      for (auto v : a.ints()) {
        if (v < lo || v > hi) {
          throw Error(path + ": " + node_label(n, i) + ": attribute '" + name + "' holds " + std::to_string(v) + " (from " +
                      std::to_string(lo) + " to " + std::to_string(hi) + " accepted)");
        }
      }
    }
    if (n.op_type() == "Conv" || n.op_type() == "ConvTranspose") {
      for (const auto& a : n.attribute()) {
        if (a.name() == "group" && (a.i() < 1 || a.i() > limits::kMaxChannels)) {
          throw Error(path + ": " + node_label(n, i) + ": group " + std::to_string(a.i()) + " is out of range");
        }
      }
    }
  }
  auto check_dims = [&](const onnx::ValueInfoProto& vi) {
    if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return;
    const auto& shape = vi.type().tensor_type().shape();
    if (shape.dim_size() > 8) throw Error(path + ": tensor '" + vi.name() + "' declares " + std::to_string(shape.dim_size()) + " dimensions");
    for (const auto& d : shape.dim()) {
      if (d.has_dim_value() && (d.dim_value() < 0 || d.dim_value() > limits::kMaxOnnxTensorValues)) {
        throw Error(path + ": tensor '" + vi.name() + "' declares a dimension of " + std::to_string(d.dim_value()));
      }
    }
  };
  for (const auto& vi : g.input()) check_dims(vi);
  for (const auto& vi : g.output()) check_dims(vi);
  for (const auto& vi : g.value_info()) check_dims(vi);
  for (const auto& t : g.initializer()) {
    if (t.dims_size() > 8) throw Error(path + ": tensor '" + t.name() + "' has " + std::to_string(t.dims_size()) + " dimensions");
    for (auto d : t.dims()) {
      if (d < 0 || d > limits::kMaxOnnxTensorValues) throw Error(path + ": tensor '" + t.name() + "' has a dimension of " + std::to_string(d));
    }
  }
}

}  // namespace

Model import_onnx(const std::string& path) {
  const std::uint64_t size = regular_file_size(path, "ONNX model");
  if (size > limits::kMaxOnnxBytes) {
    throw Error(path + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(limits::kMaxOnnxBytes) +
                " an ONNX model may have");
  }
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(size))) throw Error("cannot read ONNX model " + path);
  onnx::ModelProto model;
  if (size == 0 || !model.ParseFromString(bytes)) {
    throw Error(path + ": not an ONNX model (the protobuf does not parse: truncated or corrupted file?)");
  }
  bytes = std::string();
  if (!model.has_graph()) throw Error(path + ": not an ONNX model (no graph)");
  std::int64_t opset = -1;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  if (opset < 9) {
    throw Error(path + ": " + (opset < 0 ? std::string("no default-domain opset") : "opset " + std::to_string(opset)) +
                "; hecnn reads opset 9 and later");
  }
  // External data first: the checker would otherwise look for the files.
  for (const auto& t : model.graph().initializer()) {
    if (t.data_location() == TensorProto::EXTERNAL) (void)decode_tensor(t, path);
  }
  check_before_inference(model, path);
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw Error(path + ": the ONNX checker refuses the model: " + e.what());
  }
  try {
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {
    throw Error(path + ": ONNX shape inference fails: " + e.what());
  }
  OnnxImporter importer(path, model);
  importer.set_opset(opset);
  return importer.run();
}

}  // namespace hecnn::nn
