// ONNX import and export (nn/onnx.h) and conversion to polynomial activations (nn/convert.h): the
// PyTorch-made fixtures of tests/fixtures/onnx/ (made by make_fixtures.py, committed), round trips
// through export, and graphs built here through the ONNX protobuf API for every refusal.
#include <onnx/onnx_pb.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "nn/convert.h"
#include "nn/forward.h"
#include "nn/onnx.h"
#include "nn/safetensors.h"
#include "test_util.h"

namespace hecnn::nn {
namespace {

using test::expect_error_mentioning;
using test::TempDir;

const std::string kFixtures = std::string(HECNN_SOURCE_DIR) + "/tests/fixtures/onnx/";

// ---- PyTorch fixtures ----------------------------------------------------------------------

struct Fixture {
  std::vector<float> input;
  std::vector<double> output;
  std::string activation;
};

Fixture read_fixture(const std::string& name) {
  std::ifstream f(kFixtures + name + ".json");
  const auto j = nlohmann::json::parse(f);
  return {j.at("input").get<std::vector<float>>(), j.at("output").get<std::vector<double>>(), j.at("activation").get<std::string>()};
}

const Layer& only_activation(const Model& m) {
  const Layer* found = nullptr;
  for (const auto& l : m.layers) {
    if (l.type == LayerType::Activation) {
      EXPECT_EQ(found, nullptr) << "more than one activation";
      found = &l;
    }
  }
  EXPECT_NE(found, nullptr);
  return *found;
}

TEST(OnnxImport, PyTorchFixturesComputeWhatPyTorchComputed) {
  for (const std::string name : {"tiny-relu", "tiny-sigmoid", "tiny-tanh", "tiny-silu", "tiny-gelu", "tiny-mish",
                                 "tiny-square", "tiny-poly4", "tiny-bn-gap", "tiny-matmul"}) {
    SCOPED_TRACE(name);
    const Fixture fx = read_fixture(name);
    const Model m = import_onnx(kFixtures + name + ".onnx");
    EXPECT_EQ(m.input, (Shape{1, 8, 8}));
    EXPECT_EQ(only_activation(m).activation.spec, fx.activation);
    const std::vector<double> y = forward(m, fx.input.data());
    ASSERT_EQ(y.size(), fx.output.size());
    for (std::size_t k = 0; k < y.size(); ++k) EXPECT_NEAR(y[k], fx.output[k], 2e-5 * (1 + std::fabs(fx.output[k])));
  }
}

TEST(OnnxImport, ResidualNetworkComputesWhatPyTorchComputed) {
  // Sub/Div normalization, conv-BN-ReLU, an identity block and a stride-2 block with a 1x1 shortcut.
  const Fixture fx = read_fixture("tiny-resnet");
  const Model m = import_onnx(kFixtures + "tiny-resnet.onnx");
  EXPECT_EQ(m.input, (Shape{3, 8, 8}));
  EXPECT_FALSE(m.is_chain());
  std::size_t adds = 0;
  for (const auto& l : m.layers) adds += l.type == LayerType::Add;
  EXPECT_EQ(adds, 2u);
  EXPECT_EQ(m.layers.at(0).type, LayerType::BatchNorm);  // (x - mean) / std
  const std::vector<double> y = forward(m, fx.input.data());
  ASSERT_EQ(y.size(), fx.output.size());
  for (std::size_t k = 0; k < y.size(); ++k) EXPECT_NEAR(y[k], fx.output[k], 2e-5 * (1 + std::fabs(fx.output[k])));
  // Stored as a graph, loaded back the same, exported and imported back the same.
  const TempDir dir;
  save_model(m, dir.file("r.safetensors"));
  const Model back = load_model(dir.file("r.safetensors"));
  EXPECT_EQ(back.architecture(), m.architecture());
  export_onnx(m, dir.file("r.onnx"));
  const std::vector<double> z = forward(import_onnx(dir.file("r.onnx")), fx.input.data());
  for (std::size_t k = 0; k < y.size(); ++k) EXPECT_NEAR(z[k], y[k], 1e-5 * (1 + std::fabs(y[k])));
}

TEST(OnnxImport, PolynomialsWrittenAsArithmeticKeepTheirCoefficients) {
  const Model poly4 = import_onnx(kFixtures + "tiny-poly4.onnx");
  const Layer& a = only_activation(poly4);
  ASSERT_TRUE(a.activation.is_polynomial());
  const std::vector<double> want = {0.25, 0.0, 0.5, 0.0, -0.01};
  ASSERT_EQ(a.activation.poly->coeffs().size(), want.size());
  for (std::size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(a.activation.poly->coeffs()[k], want[k], 1e-8);
  const Model square = import_onnx(kFixtures + "tiny-square.onnx");
  const Layer& sq = only_activation(square);
  EXPECT_EQ(sq.activation.poly->coeffs(), (std::vector<double>{0.0, 0.0, 1.0}));
}

TEST(OnnxImport, BatchNormalizationAndMatMulAddBecomeLayers) {
  const Model bn = import_onnx(kFixtures + "tiny-bn-gap.onnx");
  std::vector<LayerType> types;
  for (const auto& l : bn.layers) types.push_back(l.type);
  EXPECT_EQ(types, (std::vector<LayerType>{LayerType::Conv2d, LayerType::BatchNorm, LayerType::Activation,
                                           LayerType::GlobalAvgPool2d, LayerType::Flatten, LayerType::Dense}));
  const Model mm = import_onnx(kFixtures + "tiny-matmul.onnx");
  EXPECT_EQ(mm.layers.back().type, LayerType::Dense);
  EXPECT_TRUE(mm.layers.back().has_bias());  // the Add after the MatMul
  EXPECT_EQ(mm.layers.front().stride_h, 2);
}

// ---- Export and import back ----------------------------------------------------------------

Model small_model() {
  Model m;
  m.input = {2, 9, 9};
  auto add = [&](Layer l) { m.layers.push_back(std::move(l)); };
  Layer conv;
  conv.type = LayerType::Conv2d;
  conv.filters = 3;
  conv.kernel_h = conv.kernel_w = 3;
  conv.stride_h = conv.stride_w = 2;
  conv.padding = Padding::Same;  // 9 -> 5 with TensorFlow's split (0 before, 1 after... per side)
  add(conv);
  Layer bn;
  bn.type = LayerType::BatchNorm;
  bn.eps = 1e-3;
  add(bn);
  Layer act;
  act.type = LayerType::Activation;
  act.activation = Activation::parse("swish:deg4:range4");
  add(act);
  Layer conv2 = conv;
  conv2.filters = 4;
  conv2.stride_h = conv2.stride_w = 1;
  conv2.padding = Padding::Valid;
  add(conv2);  // 5 -> 3
  act.activation = Activation::parse("gelu");
  add(act);
  Layer pool;
  pool.type = LayerType::GlobalAvgPool2d;
  add(pool);
  Layer dense;
  dense.type = LayerType::Dense;
  dense.units = 6;
  add(dense);  // directly after the global pooling: the export flattens first
  act.activation = Activation::parse("mish:deg4:range6");
  add(act);
  dense.units = 3;
  add(dense);
  // Random parameters of the right shapes.
  const auto shapes = m.shapes(false);
  unsigned seed = 1;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [role, dims] : Model::expected_params(m.layers[i], i ? shapes[i - 1] : m.input)) {
      Tensor t(dims);
      const auto v = test::random_vector(static_cast<std::size_t>(t.numel()), role == "running_var" ? 0.5 : -0.6, 0.6, seed++);
      t.data.assign(v.begin(), v.end());
      m.layers[i].params[role] = std::move(t);
    }
  }
  m.validate();
  return m;
}

TEST(OnnxExport, ExportedGraphsImportToTheSameModel) {
  const TempDir dir;
  const Model m = small_model();
  export_onnx(m, dir.file("m.onnx"));
  const Model back = import_onnx(dir.file("m.onnx"));
  ASSERT_EQ(back.input, m.input);
  std::vector<std::string> specs, back_specs;
  for (const auto& l : m.layers) if (l.type == LayerType::Activation) specs.push_back(l.activation.spec);
  for (const auto& l : back.layers) if (l.type == LayerType::Activation) back_specs.push_back(l.activation.spec);
  EXPECT_EQ(back_specs, specs);  // the fitted polynomials keep their specifications, gelu is recognized
  const auto image = test::random_vector(static_cast<std::size_t>(m.input.size()), 0, 1, 99);
  const std::vector<float> x(image.begin(), image.end());
  const auto want = forward(m, x.data()), got = forward(back, x.data());
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-6 * (1 + std::fabs(want[k])));
}

TEST(OnnxExport, AMetadataSpecificationThatDoesNotMatchTheGraphIsIgnored) {
  const TempDir dir;
  export_onnx(small_model(), dir.file("m.onnx"));
  onnx::ModelProto p;
  {
    std::ifstream in(dir.file("m.onnx"), std::ios::binary);
    ASSERT_TRUE(p.ParseFromIstream(&in));
  }
  ASSERT_EQ(p.metadata_props(0).key(), "hecnn.activations");
  p.mutable_metadata_props(0)->set_value(R"(["swish:deg4:range5", "mish:deg4:range6"])");
  {
    std::ofstream out(dir.file("hint.onnx"), std::ios::binary);
    ASSERT_TRUE(p.SerializeToOstream(&out));
  }
  const Model back = import_onnx(dir.file("hint.onnx"));
  std::vector<std::string> specs;
  for (const auto& l : back.layers) if (l.type == LayerType::Activation) specs.push_back(l.activation.spec);
  EXPECT_EQ(specs, (std::vector<std::string>{"poly", "gelu", "mish:deg4:range6"}));
}

// ---- Refusals, on graphs built through the protobuf API ----------------------------------------

// input [1, 2, 8, 8] -> Conv 2@3x3 -> Relu -> Flatten -> Gemm 4 -> output
struct GraphBuilder {
  onnx::ModelProto model;
  onnx::GraphProto* g;
  GraphBuilder(std::int64_t opset = 13) {
    model.set_ir_version(7);
    auto* o = model.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = model.mutable_graph();
    g->set_name("test");
    value("input", {1, 2, 8, 8}, g->add_input());
  }
  static void value(const std::string& name, const std::vector<std::int64_t>& dims, onnx::ValueInfoProto* vi) {
    vi->set_name(name);
    auto* t = vi->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::TensorProto* weight(const std::string& name, const std::vector<std::int64_t>& dims) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    std::int64_t n = 1;
    for (auto d : dims) {
      t->add_dims(d);
      n *= d;
    }
    for (std::int64_t i = 0; i < n; ++i) t->add_float_data(0.01f * static_cast<float>(i % 7));
    return t;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(out + "_node");
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<std::int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  // The standard chain; `activation` names the op after the convolution.
  onnx::NodeProto* standard(const std::string& activation = "Relu", std::int64_t conv_in = 2) {
    weight("w", {2, conv_in, 3, 3});
    onnx::NodeProto* conv = node("Conv", {"input", "w"}, "conv");
    ints(conv, "kernel_shape", {3, 3});
    node(activation, {"conv"}, "act");
    node("Flatten", {"act"}, "flat");
    weight("fc", {4, 72});
    integer(node("Gemm", {"flat", "fc"}, "logits"), "transB", 1);
    value("logits", {1, 4}, g->add_output());
    return conv;
  }
  std::string write(const TempDir& dir, const std::string& name = "g.onnx") const {
    std::ofstream out(dir.file(name), std::ios::binary);
    model.SerializeToOstream(&out);
    return dir.file(name);
  }
};

TEST(OnnxImport, TheBuiltGraphImports) {
  const TempDir dir;
  GraphBuilder b;
  b.standard();
  const Model m = import_onnx(b.write(dir));
  EXPECT_EQ(m.layers.size(), 4u);
  EXPECT_EQ(m.output(), (Shape{4, 1, 1}));
}

TEST(OnnxImport, UnsupportedOperatorsAreNamed) {
  const TempDir dir;
  GraphBuilder b;
  b.standard("LeakyRelu");
  expect_error_mentioning([&] { import_onnx(b.write(dir)); }, "node 'act_node' (LeakyRelu): operator LeakyRelu is not supported");
  GraphBuilder mp;
  mp.weight("w", {2, 2, 3, 3});
  GraphBuilder::ints(mp.node("Conv", {"input", "w"}, "conv"), "kernel_shape", {3, 3});
  auto* pool = mp.node("MaxPool", {"conv"}, "pool");
  GraphBuilder::ints(pool, "kernel_shape", {2, 2});
  GraphBuilder::ints(pool, "strides", {2, 2});
  mp.node("Flatten", {"pool"}, "logits");
  GraphBuilder::value("logits", {1, 18}, mp.g->add_output());
  expect_error_mentioning([&] { import_onnx(mp.write(dir)); }, "node 'pool_node' (MaxPool): operator MaxPool is not supported (supported: Conv");
}

TEST(OnnxImport, GroupedConvolutionsAndDilationsAreRefused) {
  const TempDir dir;
  GraphBuilder grouped;
  GraphBuilder::integer(grouped.standard("Relu", 1), "group", 2);
  expect_error_mentioning([&] { import_onnx(grouped.write(dir)); }, "node 'conv_node' (Conv): grouped convolution (group = 2)");
  GraphBuilder dilated;
  onnx::NodeProto* conv = dilated.standard();
  GraphBuilder::ints(conv, "dilations", {2, 2});
  dilated.g->mutable_initializer(1)->clear_dims();  // the dilated output is 4x4: 32 inputs to the dense layer
  dilated.g->mutable_initializer(1)->clear_float_data();
  dilated.g->mutable_initializer(1)->add_dims(4);
  dilated.g->mutable_initializer(1)->add_dims(32);
  for (int i = 0; i < 128; ++i) dilated.g->mutable_initializer(1)->add_float_data(0.1f);
  expect_error_mentioning([&] { import_onnx(dilated.write(dir)); }, "node 'conv_node' (Conv): dilations [2, 2] are not supported");
}

TEST(OnnxImport, ExplicitPaddingIsKeptAsGiven) {
  const TempDir dir;
  GraphBuilder b;
  onnx::NodeProto* conv = b.standard();
  GraphBuilder::ints(conv, "pads", {1, 0, 1, 0});  // neither valid nor "same": 8x6 output, 2 * 8 * 6 = 96 inputs
  b.g->mutable_initializer(1)->set_dims(1, 96);
  b.g->mutable_initializer(1)->clear_float_data();
  for (int i = 0; i < 4 * 96; ++i) b.g->mutable_initializer(1)->add_float_data(0.1f);
  const Model m = import_onnx(b.write(dir));
  const Layer& c = m.layers.at(0);
  EXPECT_EQ(c.padding, Padding::Explicit);
  EXPECT_EQ((std::vector<int>{c.pad_top, c.pad_left, c.pad_bottom, c.pad_right}), (std::vector<int>{1, 0, 1, 0}));
  EXPECT_EQ(m.shapes().at(0), (Shape{2, 8, 6}));
  // The first output row reads the zero row above the image: only the kernel's two lower rows count.
  std::vector<float> x(128);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
  std::vector<double> y;
  forward_layer(c, m.input, std::vector<double>(x.begin(), x.end()), y);
  const auto& w = c.params.at("weight").data;
  double want = 0;
  for (int ch = 0; ch < 2; ++ch)
    for (int ky = 1; ky < 3; ++ky)
      for (int kx = 0; kx < 3; ++kx) want += static_cast<double>(w[(ch * 3 + ky) * 3 + kx]) * x[(ch * 8 + ky - 1) * 8 + kx];
  EXPECT_NEAR(y.at(0), want, 1e-12);
  GraphBuilder neg;  // a negative pad (a crop) is refused before shape inference
  GraphBuilder::ints(neg.standard(), "pads", {-1, 0, 0, 0});
  expect_error_mentioning([&] { import_onnx(neg.write(dir)); }, "attribute 'pads' holds -1");
}

TEST(OnnxImport, DynamicShapesAreRefused) {
  const TempDir dir;
  GraphBuilder b;
  b.standard();
  auto* h = b.g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2);
  h->set_dim_param("height");
  expect_error_mentioning([&] { import_onnx(b.write(dir)); }, "input 'input': dimension H is dynamic ('height')");
  // A dynamic batch is fine.
  GraphBuilder n;
  n.standard();
  n.g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("N");
  EXPECT_NO_THROW(import_onnx(n.write(dir)));
}

TEST(OnnxImport, BranchesJoinAndComputedShapesAreRefused) {
  const TempDir dir;
  GraphBuilder res;  // y = conv(x) + x: a residual connection
  res.weight("w", {2, 2, 3, 3});
  auto* conv = res.node("Conv", {"input", "w"}, "conv");
  GraphBuilder::ints(conv, "kernel_shape", {3, 3});
  GraphBuilder::ints(conv, "pads", {1, 1, 1, 1});
  res.node("Add", {"conv", "input"}, "sum");
  res.node("Flatten", {"sum"}, "logits");
  GraphBuilder::value("logits", {1, 128}, res.g->add_output());
  const Model m = import_onnx(res.write(dir));
  ASSERT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.layers[1].type, LayerType::Add);
  EXPECT_EQ(m.sources(1), (std::vector<int>{0, kModelInput}));
  std::vector<float> x(128);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * static_cast<float>(i % 9) - 0.2f;
  std::vector<double> c;
  forward_layer(m.layers[0], m.input, std::vector<double>(x.begin(), x.end()), c);
  const std::vector<double> y = forward(m, x.data());
  ASSERT_EQ(y.size(), x.size());
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], c[i] + x[i], 1e-12);
  GraphBuilder product;  // the product of two computed tensors: not a join hecnn knows
  product.weight("w", {2, 2, 3, 3});
  GraphBuilder::ints(product.node("Conv", {"input", "w"}, "conv"), "pads", {1, 1, 1, 1});
  product.node("Mul", {"conv", "input"}, "sum");
  product.node("Flatten", {"sum"}, "logits");
  GraphBuilder::value("logits", {1, 128}, product.g->add_output());
  expect_error_mentioning([&] { import_onnx(product.write(dir)); }, "(Mul): Mul of two computed tensors is not supported");
  GraphBuilder reshape;
  reshape.weight("w", {2, 2, 3, 3});
  GraphBuilder::ints(reshape.node("Conv", {"input", "w"}, "conv"), "kernel_shape", {3, 3});
  auto* target = reshape.g->add_initializer();
  target->set_name("target");
  target->set_data_type(onnx::TensorProto::INT64);
  for (std::int64_t d : {1, 12, 6}) target->add_int64_data(d);
  target->add_dims(3);
  reshape.node("Reshape", {"conv", "target"}, "logits");
  GraphBuilder::value("logits", {1, 12, 6}, reshape.g->add_output());
  expect_error_mentioning([&] { import_onnx(reshape.write(dir)); }, "reshape to [1, 12, 6] is not supported");
  expect_error_mentioning([&] { import_onnx(reshape.write(dir)); }, "(Reshape): reshape to [1, 12, 6] is not supported");
}

TEST(OnnxImport, BrokenTruncatedAndForeignFilesAreRefused) {
  const TempDir dir;
  GraphBuilder b;
  b.standard();
  std::string bytes;
  ASSERT_TRUE(b.model.SerializeToString(&bytes));
  auto write = [&](const std::string& content) {
    std::ofstream(dir.file("x.onnx"), std::ios::binary) << content;
    return dir.file("x.onnx");
  };
  expect_error_mentioning([&] { import_onnx(write("")); }, "not an ONNX model");
  expect_error_mentioning([&] { import_onnx(write("this is not a protobuf at all\n")); }, "x.onnx");
  // Every cut through the file is refused (most by the parser, the rest by the checker or the import).
  for (std::size_t cut = 1; cut < bytes.size(); cut += 7) {
    SCOPED_TRACE(cut);
    expect_error_mentioning([&] { import_onnx(write(bytes.substr(0, cut))); }, "x.onnx");
  }
  expect_error_mentioning([&] { import_onnx(write(bytes.substr(0, bytes.size() / 2))); }, "truncated or corrupted");
  expect_error_mentioning([&] { import_onnx(dir.file("missing.onnx")); }, "missing.onnx");
  expect_error_mentioning([&] { import_onnx(dir.dir()); }, "directory");
}

TEST(OnnxImport, ExternalDataOldOpsetsAndForeignDomainsAreRefused) {
  const TempDir dir;
  GraphBuilder ext;
  ext.standard();
  auto* w = ext.g->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value("weights.bin");
  expect_error_mentioning([&] { import_onnx(ext.write(dir)); }, "tensor 'w' stores its data in an external file ('weights.bin')");
  GraphBuilder old(8);
  old.standard();
  expect_error_mentioning([&] { import_onnx(old.write(dir)); }, "opset 8; hecnn reads opset 9 and later");
  GraphBuilder custom;
  custom.standard();
  custom.g->mutable_node(1)->set_domain("com.example");
  auto* o = custom.model.add_opset_import();
  o->set_domain("com.example");
  o->set_version(1);
  expect_error_mentioning([&] { import_onnx(custom.write(dir)); }, "node 'act_node' (Relu): operator domain 'com.example'");
}

TEST(OnnxImport, SizesAreBoundedBeforeAllocation) {
  const TempDir dir;
  GraphBuilder huge;  // declares 2^40 weights and holds a few
  huge.standard();
  auto* w = huge.g->mutable_initializer(0);
  w->set_dims(0, std::int64_t{1} << 38);
  expect_error_mentioning([&] { import_onnx(huge.write(dir)); }, dir.file("g.onnx"));
  GraphBuilder zero;  // a stride of 0 would divide by zero in ONNX's shape inference (found by fuzz_onnx)
  GraphBuilder::ints(zero.standard(), "strides", {0, 1});
  expect_error_mentioning([&] { import_onnx(zero.write(dir)); }, "node 'conv_node' (Conv): attribute 'strides' holds 0 (from 1 to 64");
  GraphBuilder negative;  // a negative declared dimension
  negative.standard();
  negative.g->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(-4);
  expect_error_mentioning([&] { import_onnx(negative.write(dir)); }, "tensor 'logits' declares a dimension of -4");
  GraphBuilder nan;  // a weight that is not a number
  nan.standard();
  nan.g->mutable_initializer(0)->set_float_data(3, std::nanf(""));
  expect_error_mentioning([&] { import_onnx(nan.write(dir)); }, "g.onnx: model: layer 0 (conv2d 'conv_node'): tensor '0.weight' holds a non-finite value (nan)");
  GraphBuilder many;  // 5000 Identity nodes
  std::string prev = "input";
  for (int i = 0; i < 5000; ++i) {
    const std::string next = i == 4999 ? "logits" : "id" + std::to_string(i);
    many.node("Identity", {prev}, next);
    prev = next;
  }
  GraphBuilder::value("logits", {1, 2, 8, 8}, many.g->add_output());
  expect_error_mentioning([&] { import_onnx(many.write(dir)); }, "5000 nodes, more than the 4096 accepted");
}

TEST(OnnxImport, ActivationsOfSeveralTensorsOrUnknownFunctionsAreRefused) {
  const TempDir dir;
  GraphBuilder b;  // Exp alone: element-wise, but not a function hecnn knows
  b.standard("Exp");
  expect_error_mentioning([&] { import_onnx(b.write(dir)); },
                          "(Exp): the element-wise nodes from 'conv' (Exp) compute neither a polynomial nor a known activation");
  GraphBuilder cast;  // a Cast to an integer type rounds: not an activation
  cast.standard("Cast");
  GraphBuilder::integer(cast.g->mutable_node(1), "to", onnx::TensorProto::INT64);
  cast.g->mutable_node(2)->set_input(0, "back");  // Flatten(Cast(Cast(conv, INT64), FLOAT))
  GraphBuilder::integer(cast.node("Cast", {"act"}, "back"), "to", onnx::TensorProto::FLOAT);
  cast.g->mutable_node()->SwapElements(4, 2);  // conv, act, back, logits, flat
  cast.g->mutable_node()->SwapElements(3, 4);  // conv, act, back, flat, logits
  expect_error_mentioning([&] { import_onnx(cast.write(dir)); }, "node 'act_node' (Cast): is not an element-wise function of 'conv' alone");
  GraphBuilder bias;  // Add of a per-channel vector: a normalization (batch normalization layer)
  bias.standard("Identity");
  bias.weight("b", {2, 1, 1});
  bias.g->mutable_node(1)->set_op_type("Add");
  bias.g->mutable_node(1)->add_input("b");
  const Model bn = import_onnx(bias.write(dir));
  ASSERT_EQ(bn.layers.at(1).type, LayerType::BatchNorm);
  EXPECT_EQ(bn.layers[1].params.at("bias").data, (std::vector<float>{0.0f, 0.01f}));
  EXPECT_EQ(bn.layers[1].params.at("weight").data, (std::vector<float>{1.0f, 1.0f}));
  GraphBuilder square;  // (conv + b)^2 with a per-channel b: not a normalization, refused
  square.standard("Identity");
  square.weight("b", {2, 1, 1});
  square.g->mutable_node(1)->set_op_type("Add");
  square.g->mutable_node(1)->add_input("b");
  square.g->mutable_node(1)->set_output(0, "shifted");
  square.node("Mul", {"shifted", "shifted"}, "act");
  square.g->mutable_node()->SwapElements(4, 2);  // conv, shifted, act, logits, flat
  square.g->mutable_node()->SwapElements(3, 4);  // conv, shifted, act, flat, logits
  expect_error_mentioning([&] { import_onnx(square.write(dir)); }, "use per-channel constants but are not a x + b per channel");
}

// ---- Conversion ---------------------------------------------------------------------------

TEST(Convert, ExactActivationsBecomePolynomialsWithCalibratedBatchNormalization) {
  Model m = import_onnx(kFixtures + "tiny-relu.onnx");
  Dataset d;
  d.name = "random";
  d.shape = m.input;
  const std::size_t n = 64;
  const auto pixels = test::random_vector(n * 64, -8, 8, 5);
  d.images.assign(pixels.begin(), pixels.end());
  d.labels.assign(n, 0);
  ConvertOptions o;
  o.activation = "swish:deg4:range4";
  const Conversion c = convert_to_polynomials(m, d, 0, o);
  ASSERT_EQ(c.activations.size(), 1u);
  const auto& a = c.activations[0];
  EXPECT_EQ(a.before, "relu");
  EXPECT_EQ(a.after, "swish:deg4:range4");
  EXPECT_TRUE(a.inserted_batch_norm);
  EXPECT_EQ(c.model.layers.at(1).type, LayerType::BatchNorm);
  EXPECT_EQ(a.layer_after, 2u);
  // Every calibration input now lies in [-4, 4] and reaches its edge in some channel.
  EXPECT_GE(a.input_after.min, -4.0 - 1e-4);
  EXPECT_LE(a.input_after.max, 4.0 + 1e-4);
  EXPECT_GT(std::max(-a.input_after.min, a.input_after.max), 4.0 - 1e-3);
  EXPECT_EQ(a.input_after.outside, 0.0);
  EXPECT_GT(std::max(-a.input_before.min, a.input_before.max), 4.0);  // the inputs of the fixture's ReLU were wider
  EXPECT_NE(format_conversion(c).find("batch normalization inserted"), std::string::npos);
  // Folded: the batch normalization disappears into the convolution, same function.
  o.fold = true;
  const Conversion folded = convert_to_polynomials(m, d, 0, o);
  EXPECT_EQ(folded.model.layers.size(), m.layers.size());
  const auto y1 = forward(c.model, d.image(3)), y2 = forward(folded.model, d.image(3));
  for (std::size_t k = 0; k < y1.size(); ++k) EXPECT_NEAR(y1[k], y2[k], 1e-4 * (1 + std::fabs(y1[k])));
  // Errors: an exact function as the replacement, a layer that is no activation.
  o.activation = "relu";
  expect_error_mentioning([&] { convert_to_polynomials(m, d, 0, o); }, "is not a polynomial");
  o.activation = "swish:deg4:range4";
  o.per_layer[0] = "square";
  expect_error_mentioning([&] { convert_to_polynomials(m, d, 0, o); }, "layer 0 is not an activation layer");
}

}  // namespace
}  // namespace hecnn::nn
