// ONNX import (nn/onnx.h): reads and checks the file, runs ONNX's checker and shape inference, and
// walks the graph in order, mapping its nodes onto hecnn layers. Tensors and constants are read in
// onnx_tensors.cpp, groups of element-wise nodes recognized in onnx_activations.cpp; the importer
// class is declared in onnx_internal.h.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <fstream>

#include "common/error.h"
#include "nn/limits.h"
#include "nn/onnx.h"
#include "nn/onnx_internal.h"

namespace hecnn::nn {

namespace onnx_detail {

namespace {

const char* kSupported =
    "supported: Conv, BatchNormalization, Gemm, MatMul (+ Add), AveragePool, GlobalAveragePool, Flatten, Reshape to "
    "[N, C*H*W], Identity, Dropout, Pad (constant zeros), Add of two tensors (residual connections), a final "
    "Softmax/LogSoftmax, Sub/Mul/Div/Add by per-channel constants (normalization), and activations made of Relu, "
    "Sigmoid, Tanh, Softplus, Erf, Exp, Log, Sqrt, Abs, Mul, Add, Sub, Div, Pow, Neg, Reciprocal, Cast, Constant";

}  // namespace

Model OnnxImporter::run() {
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

void OnnxImporter::index_graph() {  // sizes checked by check_before_inference
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
void OnnxImporter::read_input() {
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

// Makes `t` the tensor the next layer reads.
void OnnxImporter::select(const std::string& t) {
  const Value& v = values_.at(t);
  cur_ = t;
  shape_ = v.shape;
  rank_ = v.rank;
}

const AttributeProto* OnnxImporter::attr(int node, const std::string& name) const {
  for (const auto& a : graph_.node(node).attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::int64_t OnnxImporter::attr_int(int node, const std::string& name, std::int64_t def) const {
  const AttributeProto* a = attr(node, name);
  return a ? a->i() : def;
}

std::vector<std::int64_t> OnnxImporter::attr_ints(int node, const std::string& name, std::vector<std::int64_t> def) const {
  const AttributeProto* a = attr(node, name);
  if (!a) return def;
  if (a->ints_size() > 8) throw Error(where(node) + ": attribute '" + name + "' has too many values");
  return {a->ints().begin(), a->ints().end()};
}

// Appends a layer reading cur_ (or `inputs`): its hyper-parameters and output size are checked
// against the limits before its parameters are attached, and the output shape is compared with
// the one ONNX inferred.
void OnnxImporter::add_layer(Layer l, int node, const std::string& out, std::vector<int> inputs) {
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
void OnnxImporter::advance(int node, const std::string& out) {
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

std::vector<int> OnnxImporter::pending_consumers(const std::string& t) const {
  std::vector<int> r;
  if (auto it = consumers_.find(t); it != consumers_.end()) {
    for (int i : it->second) {
      if (!done_.count(i)) r.push_back(i);
    }
  }
  return r;
}

void OnnxImporter::only_first_output_used(int node) {
  const NodeProto& n = graph_.node(node);
  for (int k = 1; k < n.output_size(); ++k) {
    if (!n.output(k).empty() && (consumers_.count(n.output(k)) || n.output(k) == output_)) {
      throw Error(where(node) + ": output " + std::to_string(k) + " ('" + n.output(k) + "') is used; hecnn supports inference only");
    }
  }
}

std::string OnnxImporter::layer_name(int node) const {
  const NodeProto& n = graph_.node(node);
  return n.name().empty() ? n.op_type() + "_" + std::to_string(node) : n.name();
}

// The nodes in graph order (topological: the checker makes sure). Element-wise nodes start an
// activation or a normalization grown from the tensor they read (activation()); an Add of two
// computed tensors joins branches; any other node is a layer reading its first input.
void OnnxImporter::walk() {
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
void OnnxImporter::join(int node, const std::string& a, const std::string& b) {
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

void OnnxImporter::layer(int node) {
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
void OnnxImporter::pad(int node, const std::string& out) {
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

void OnnxImporter::flatten(int node, const std::string& out) {
  if (rank_ == 2) return advance(node, out);
  Layer l;
  l.type = LayerType::Flatten;
  l.name = layer_name(node);
  rank_ = 2;
  add_layer(std::move(l), node, out);
}

void OnnxImporter::conv(int node, const std::string& out) {
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
void OnnxImporter::set_padding(int node, Layer& l, int kh, int kw, int sh, int sw) {
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

void OnnxImporter::batch_norm(int node, const std::string& out) {
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

void OnnxImporter::dense(int node, const std::string& out, const Constant& w_in_out, bool transposed, double alpha,
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

void OnnxImporter::gemm(int node, const std::string& out) {
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
void OnnxImporter::matmul(int node, const std::string& out) {
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

void OnnxImporter::avg_pool(int node, const std::string& out) {
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

}  // namespace onnx_detail

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
    if (t.data_location() == onnx::TensorProto::EXTERNAL) (void)onnx_detail::decode_tensor(t, path);
  }
  onnx_detail::check_before_inference(model, path);
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
  onnx_detail::OnnxImporter importer(path, model);
  importer.set_opset(opset);
  return importer.run();
}

}  // namespace hecnn::nn
