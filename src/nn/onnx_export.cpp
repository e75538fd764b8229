#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cmath>

#include "common/error.h"
#include "common/files.h"
#include "hecnn/version.h"
#include "nn/conv.h"
#include "nn/onnx.h"

namespace hecnn::nn {

namespace {

constexpr int kExportOpset = 13;

class OnnxWriter {
 public:
  explicit OnnxWriter(onnx::GraphProto& g) : g_(g) {}

  std::string name(const std::string& stem) { return stem + "_" + std::to_string(count_++); }

  std::string initializer(const std::string& stem, const std::vector<std::int64_t>& dims, const std::vector<float>& values) {
    onnx::TensorProto* t = g_.add_initializer();
    t->set_name(name(stem));
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return t->name();
  }
  std::string scalar(double v) { return initializer("c", {}, {static_cast<float>(v)}); }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& layer) {
    onnx::NodeProto* n = g_.add_node();
    n->set_op_type(op);
    n->set_name(layer + "/" + op + "_" + std::to_string(count_++));
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name(layer + "_" + op));
    return n;
  }
  std::string apply(const std::string& op, const std::vector<std::string>& inputs, const std::string& layer) {
    return node(op, inputs, layer)->output(0);
  }

  static void ints(onnx::NodeProto* n, const std::string& attr, const std::vector<std::int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& attr, std::int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const std::string& attr, double v) {
    auto* a = n->add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(static_cast<float>(v));
  }

 private:
  onnx::GraphProto& g_;
  int count_ = 0;
};

// A polynomial in Horner form, a_d x^d + ... + a_0 = ((a_d x + a_{d-1}) x + ...) x + a_0.
std::string export_polynomial(OnnxWriter& w, const approx::Polynomial& p, const std::string& x, const std::string& layer) {
  const std::vector<double> a = p.to_power().coeffs();
  const int d = p.degree();
  std::string y = w.apply("Mul", {x, w.scalar(a[static_cast<std::size_t>(d)])}, layer);
  for (int k = d - 1; k >= 0; --k) {
    if (a[static_cast<std::size_t>(k)] != 0.0) y = w.apply("Add", {y, w.scalar(a[static_cast<std::size_t>(k)])}, layer);
    if (k > 0) y = w.apply("Mul", {y, x}, layer);
  }
  return y;
}

std::string export_exact(OnnxWriter& w, const std::string& fn, const std::string& x, const std::string& layer) {
  if (fn == "relu") return w.apply("Relu", {x}, layer);
  if (fn == "sigmoid") return w.apply("Sigmoid", {x}, layer);
  if (fn == "tanh") return w.apply("Tanh", {x}, layer);
  if (fn == "softplus") return w.apply("Softplus", {x}, layer);
  if (fn == "swish") return w.apply("Mul", {x, w.apply("Sigmoid", {x}, layer)}, layer);
  if (fn == "mish") return w.apply("Mul", {x, w.apply("Tanh", {w.apply("Softplus", {x}, layer)}, layer)}, layer);
  if (fn == "gelu") {  // x/2 (1 + erf(x / sqrt 2)), as torch.onnx.export writes it
    const std::string e = w.apply("Erf", {w.apply("Div", {x, w.scalar(std::sqrt(2.0))}, layer)}, layer);
    return w.apply("Mul", {w.apply("Mul", {x, w.apply("Add", {e, w.scalar(1.0)}, layer)}, layer), w.scalar(0.5)}, layer);
  }
  throw Error("export-onnx: layer '" + layer + "': activation '" + fn + "' has no ONNX form");
}

}  // namespace

void export_onnx(const Model& m, const std::string& path) {
  const std::vector<Shape> shapes = m.shapes();
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("hecnn");
  model.set_producer_version(HECNN_VERSION);
  model.set_doc_string(m.summary());
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kExportOpset);
  onnx::GraphProto& g = *model.mutable_graph();
  g.set_name(m.info.value("name", std::string("hecnn")));
  OnnxWriter w(g);

  auto* input = g.add_input();
  input->set_name("input");
  auto* it = input->mutable_type()->mutable_tensor_type();
  it->set_elem_type(onnx::TensorProto::FLOAT);
  it->mutable_shape()->add_dim()->set_dim_param("N");
  for (int d : {m.input.c, m.input.h, m.input.w}) it->mutable_shape()->add_dim()->set_dim_value(d);

  nlohmann::json specs = nlohmann::json::array();
  // Per layer, its output tensor and whether it is already [N, values].
  std::vector<std::string> tensor(m.layers.size());
  std::vector<bool> flat_out(m.layers.size(), false);
  std::string x;
  bool flat = false;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const auto src = m.sources(i);
    const Shape& in = m.shape_of(src[0], shapes);
    x = src[0] == kModelInput ? std::string("input") : tensor[static_cast<std::size_t>(src[0])];
    flat = src[0] != kModelInput && flat_out[static_cast<std::size_t>(src[0])];
    const std::string layer = l.name.empty() ? to_string(l.type) + "_" + std::to_string(i) : l.name;
    auto param = [&](const std::string& role) {
      const Tensor& t = l.params.at(role);
      return w.initializer(std::to_string(i) + "." + role, t.shape, t.data);
    };
    switch (l.type) {
      case LayerType::Conv2d: {
        std::vector<std::string> inputs = {x, param("weight")};
        if (l.has_bias()) inputs.push_back(param("bias"));
        onnx::NodeProto* n = w.node("Conv", inputs, layer);
        OnnxWriter::ints(n, "kernel_shape", {l.kernel_h, l.kernel_w});
        OnnxWriter::ints(n, "strides", {l.stride_h, l.stride_w});
        const int out_h = shapes[i].h, out_w = shapes[i].w;
        if (l.padding == Padding::Explicit) {
          OnnxWriter::ints(n, "pads", {l.pad_top, l.pad_left, l.pad_bottom, l.pad_right});
        } else {
          const int top = conv_pad_before(in.h, out_h, l.kernel_h, l.stride_h, l.padding);
          const int left = conv_pad_before(in.w, out_w, l.kernel_w, l.stride_w, l.padding);
          const int total_h = l.padding == Padding::Same ? std::max((out_h - 1) * l.stride_h + l.kernel_h - in.h, 0) : 0;
          const int total_w = l.padding == Padding::Same ? std::max((out_w - 1) * l.stride_w + l.kernel_w - in.w, 0) : 0;
          OnnxWriter::ints(n, "pads", {top, left, total_h - top, total_w - left});
        }
        x = n->output(0);
        break;
      }
      case LayerType::BatchNorm: {
        onnx::NodeProto* n =
            w.node("BatchNormalization", {x, param("weight"), param("bias"), param("running_mean"), param("running_var")}, layer);
        OnnxWriter::real(n, "epsilon", l.eps);
        x = n->output(0);
        break;
      }
      case LayerType::Activation:
        if (l.activation.poly) {
          specs.push_back(l.activation.spec);
          x = export_polynomial(w, *l.activation.poly, x, layer);
        } else {
          x = export_exact(w, l.activation.spec, x, layer);
        }
        break;
      case LayerType::AvgPool2d: {
        onnx::NodeProto* n = w.node("AveragePool", {x}, layer);
        OnnxWriter::ints(n, "kernel_shape", {l.pool, l.pool});
        OnnxWriter::ints(n, "strides", {l.pool_stride, l.pool_stride});
        if (l.padding == Padding::Explicit) {
          OnnxWriter::ints(n, "pads", {l.pad_top, l.pad_left, l.pad_bottom, l.pad_right});
          OnnxWriter::integer(n, "count_include_pad", l.count_include_pad ? 1 : 0);
        }
        x = n->output(0);
        break;
      }
      case LayerType::Add:
        for (std::size_t k = 1; k < src.size(); ++k) {
          const std::size_t b = static_cast<std::size_t>(src[k]);
          const std::string y = src[k] == kModelInput ? std::string("input") : tensor[b];
          if (src[k] != kModelInput && flat_out[b] != flat) throw Error("export-onnx: layer " + std::to_string(i) + " adds a flat and an image tensor");
          x = w.apply("Add", {x, y}, layer + (k > 1 ? "_" + std::to_string(k) : ""));
        }
        break;
      case LayerType::GlobalAvgPool2d:
        x = w.apply("GlobalAveragePool", {x}, layer);
        break;
      case LayerType::Flatten:
        if (!flat) x = w.apply("Flatten", {x}, layer);
        flat = true;
        break;
      case LayerType::Dense: {
        if (!flat) x = w.apply("Flatten", {x}, layer);  // hecnn's dense layer reads any shape in C, H, W order
        flat = true;
        std::vector<std::string> inputs = {x, param("weight")};
        if (l.has_bias()) inputs.push_back(param("bias"));
        onnx::NodeProto* n = w.node("Gemm", inputs, layer);
        OnnxWriter::integer(n, "transB", 1);
        x = n->output(0);
        break;
      }
    }
    tensor[i] = x;
    flat_out[i] = flat;
  }
  if (m.layers.empty()) x = "input";
  auto* output = g.add_output();
  output->set_name(x);
  auto* ot = output->mutable_type()->mutable_tensor_type();
  ot->set_elem_type(onnx::TensorProto::FLOAT);
  ot->mutable_shape()->add_dim()->set_dim_param("N");
  const Shape out = m.output();
  if (flat) {
    ot->mutable_shape()->add_dim()->set_dim_value(out.size());
  } else {
    for (int d : {out.c, out.h, out.w}) ot->mutable_shape()->add_dim()->set_dim_value(d);
  }
  auto* meta = model.add_metadata_props();
  meta->set_key("hecnn.activations");
  meta->set_value(specs.dump());
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {
    throw Error("export-onnx: the graph made for the model does not pass ONNX's checks: " + std::string(e.what()));
  }
  write_file_atomic(path, [&](std::ostream& os) {
    if (!model.SerializeToOstream(&os)) throw Error("export-onnx: cannot serialize the model to " + path);
  });
}

}  // namespace hecnn::nn
