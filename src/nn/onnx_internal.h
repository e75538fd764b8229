#pragma once
// Internal to the ONNX importer (onnx_import.cpp, onnx_tensors.cpp, onnx_activations.cpp), in the
// hecnn_onnx library; not installed. The importer walks the graph and maps its layers in
// onnx_import.cpp, reads constants and checks the graph before ONNX's shape inference in
// onnx_tensors.cpp, and recognizes groups of element-wise nodes (activation polynomials, exact
// activations, affine normalizations) in onnx_activations.cpp.
#include <onnx/onnx_pb.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "nn/model.h"

namespace hecnn::nn::onnx_detail {

using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

// "node 'name' (Op)", or "node '#index' (Op)" for a node without a name.
std::string node_label(const NodeProto& n, int index);
// "[d0, d1, ...]".
std::string dims_string(const std::vector<std::int64_t>& d);

// A constant tensor as doubles, with its dimensions.
struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  std::int64_t numel() const { return static_cast<std::int64_t>(values.size()); }
};

// Decodes a TensorProto (float, double, int32 or int64; raw or typed fields) after checking its
// declared element count against the limit and against the bytes it holds.
Constant decode_tensor(const TensorProto& t, const std::string& where);

// The operators an activation or a normalization may be made of.
const std::set<std::string>& elementwise_ops();

// ONNX's shape inference trusts some attributes: checks them, and every declared dimension, first.
void check_before_inference(const onnx::ModelProto& model, const std::string& path);

// Maps an ONNX graph (checked, shapes inferred) onto a hecnn Model: run() once.
class OnnxImporter {
 public:
  OnnxImporter(std::string path, onnx::ModelProto& model) : path_(std::move(path)), model_(model), graph_(model.graph()) {}

  Model run();
  void set_opset(std::int64_t v) { opset_ = v; }

 private:
  std::string where(int node) const { return path_ + ": " + node_label(graph_.node(node), node); }

  // The graph and its layers (onnx_import.cpp).
  void index_graph();
  void read_input();

  // A tensor computed from the image: the layer whose output it is (or the model's input), its
  // shape, and its rank (4: N x C x H x W, 2: N x values).
  struct Value {
    int layer = kModelInput;
    Shape shape;
    int rank = 4;
  };

  void select(const std::string& t);
  const AttributeProto* attr(int node, const std::string& name) const;
  std::int64_t attr_int(int node, const std::string& name, std::int64_t def) const;
  std::vector<std::int64_t> attr_ints(int node, const std::string& name, std::vector<std::int64_t> def) const;
  void add_layer(Layer l, int node, const std::string& out, std::vector<int> inputs = {});
  void advance(int node, const std::string& out);
  std::vector<int> pending_consumers(const std::string& t) const;
  void only_first_output_used(int node);
  std::string layer_name(int node) const;
  void walk();
  void join(int node, const std::string& a, const std::string& b);
  void layer(int node);
  void pad(int node, const std::string& out);
  void flatten(int node, const std::string& out);
  void conv(int node, const std::string& out);
  void set_padding(int node, Layer& l, int kh, int kw, int sh, int sw);
  void batch_norm(int node, const std::string& out);
  void dense(int node, const std::string& out, const Constant& w_in_out, bool transposed, double alpha,
             std::optional<Tensor> bias);
  void gemm(int node, const std::string& out);
  void matmul(int node, const std::string& out);
  void avg_pool(int node, const std::string& out);

  // Constants (onnx_tensors.cpp).
  std::optional<Constant> constant(const std::string& name, const std::string& where_);
  std::int64_t constant_size(const std::string& name) const;
  Constant required_constant(int node, int input, const std::string& role);
  static Tensor to_tensor(const Constant& c);
  Tensor channel_vector(int node, int input, const std::string& role, std::int64_t n);

  // Groups of element-wise nodes (onnx_activations.cpp).
  void activation(const std::vector<int>& first);
  bool per_channel_constant(const std::string& t);
  template <typename F>
  void affine(const std::vector<int>& order, const std::string& exit, const std::string& label, F&& function_on);
  Activation recognize_exact(const std::vector<int>& order, const std::string& exit, const std::string& label);
  Activation restore_spec(const Activation& found, std::size_t k);

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

}  // namespace hecnn::nn::onnx_detail
