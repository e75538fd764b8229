// The ONNX importer's tensors: decoding a TensorProto (bounded before anything is allocated),
// constants from initializers and Constant nodes, and the checks that run before ONNX's shape
// inference. Shared declarations in onnx_internal.h.
#include <cstring>

#include "common/error.h"
#include "nn/limits.h"
#include "nn/onnx_internal.h"

namespace hecnn::nn::onnx_detail {

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

std::optional<Constant> OnnxImporter::constant(const std::string& name, const std::string& where_) {
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
std::int64_t OnnxImporter::constant_size(const std::string& name) const {
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

Constant OnnxImporter::required_constant(int node, int input, const std::string& role) {
  const NodeProto& n = graph_.node(node);
  if (input >= n.input_size() || n.input(input).empty()) throw Error(where(node) + ": no " + role + " input");
  auto c = constant(n.input(input), where(node));
  if (!c) {
    throw Error(where(node) + ": the " + role + " ('" + n.input(input) +
                "') is computed in the graph; hecnn needs it as an initializer or a Constant");
  }
  return std::move(*c);
}

Tensor OnnxImporter::to_tensor(const Constant& c) {
  Tensor t;
  t.shape = c.dims;
  if (t.shape.empty()) t.shape = {1};
  t.data.assign(c.values.begin(), c.values.end());
  return t;
}

Tensor OnnxImporter::channel_vector(int node, int input, const std::string& role, std::int64_t n) {
  const Constant c = required_constant(node, input, role);
  if (c.numel() != n) {
    throw Error(where(node) + ": " + role + " has " + std::to_string(c.numel()) + " values, the layer needs " + std::to_string(n));
  }
  Tensor t;
  t.shape = {n};
  t.data.assign(c.values.begin(), c.values.end());
  return t;
}

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

}  // namespace hecnn::nn::onnx_detail
