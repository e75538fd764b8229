// Models: dataset readers on generated and corrupted files, the model file round trip and its
// rejection of bad files, the plaintext forward pass, BN folding, global average pooling, the Keras
// import of small generated models, and of the PP-CNN MNIST model (when ../shared is present).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "test_util.h"
#include "nn/dataset.h"
#include "nn/forward.h"
#include "nn/keras.h"
#include "nn/safetensors.h"

using namespace hecnn::nn;
namespace fs = std::filesystem;

namespace {

using hecnn::test::TempDir;

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_gzip(const std::string& path, const std::vector<unsigned char>& b) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
  gzclose(f);
}

void put32(std::vector<unsigned char>& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<unsigned char>(x >> s));
}

std::vector<unsigned char> idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  std::vector<unsigned char> v;
  put32(v, 0x803);
  put32(v, n);
  put32(v, rows);
  put32(v, cols);
  for (std::uint32_t i = 0; i < n * rows * cols; ++i) v.push_back(static_cast<unsigned char>((i * 7) % 256));
  return v;
}

std::vector<unsigned char> idx_labels(std::uint32_t n) {
  std::vector<unsigned char> v;
  put32(v, 0x801);
  put32(v, n);
  for (std::uint32_t i = 0; i < n; ++i) v.push_back(static_cast<unsigned char>(i % 10));
  return v;
}

using hecnn::test::expect_error_mentioning;

Tensor random_tensor(std::vector<std::int64_t> shape, std::mt19937_64& rng, float lo = -0.5f, float hi = 0.5f) {
  Tensor t(std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& v : t.data) v = d(rng);
  return t;
}

// A small network with every layer type and random parameters.
Model small_model(unsigned seed = 1) {
  nlohmann::json arch = {{"input", {2, 9, 9}},
                         {"layers",
                          {{{"type", "conv2d"}, {"filters", 3}, {"kernel", 3}, {"stride", 1}, {"padding", "same"}},
                           {{"type", "batchnorm"}, {"eps", 1e-3}},
                           {{"type", "activation"}, {"fn", "swish:deg4:range4"}},
                           {{"type", "conv2d"}, {"filters", 4}, {"kernel", 3}, {"stride", 2}, {"padding", "same"}},
                           {{"type", "batchnorm"}},
                           {{"type", "activation"}, {"fn", "relu"}},
                           {{"type", "avgpool2d"}, {"pool", 2}},
                           {{"type", "flatten"}},
                           {{"type", "dense"}, {"units", 6}},
                           {{"type", "batchnorm"}},
                           {{"type", "activation"}, {"fn", "square"}},
                           {{"type", "dense"}, {"units", 3}}}}};
  Model m = Model::from_architecture(arch);
  std::mt19937_64 rng(seed);
  const auto shapes = m.shapes(false);
  Shape in = m.input;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [name, shape] : Model::expected_params(m.layers[i], in)) {
      if (name == "running_var") {
        m.layers[i].params[name] = random_tensor(shape, rng, 0.5f, 2.0f);
      } else {
        m.layers[i].params[name] = random_tensor(shape, rng);
      }
    }
    in = shapes[i];
  }
  m.validate();
  return m;
}

std::string shared_dir() { return std::string(HECNN_SOURCE_DIR) + "/../shared"; }

// A Keras weights file as model.save_weights writes it: a group per layer with weights, holding a
// `weight_names` string attribute and one float dataset per name.
void write_keras_weights(const std::string& path, const std::vector<std::pair<std::string, std::vector<Tensor>>>& layers) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (const auto& [layer, tensors] : layers) {
    const hid_t g = H5Gcreate2(file, layer.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    std::vector<std::string> names;
    for (std::size_t k = 0; k < tensors.size(); ++k) names.push_back(k == 0 ? "kernel:0" : "bias:0");
    const std::size_t len = 16;
    std::vector<char> buf(len * names.size(), 0);
    for (std::size_t k = 0; k < names.size(); ++k) std::copy(names[k].begin(), names[k].end(), buf.begin() + static_cast<std::ptrdiff_t>(k * len));
    const hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, len);
    const hsize_t n = names.size();
    const hid_t aspace = H5Screate_simple(1, &n, nullptr);
    const hid_t attr = H5Acreate2(g, "weight_names", str, aspace, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, str, buf.data());
    H5Aclose(attr);
    H5Sclose(aspace);
    H5Tclose(str);
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      const std::vector<hsize_t> dims(tensors[k].shape.begin(), tensors[k].shape.end());
      const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
      const hid_t ds = H5Dcreate2(g, names[k].c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensors[k].data.data());
      H5Dclose(ds);
      H5Sclose(space);
    }
    H5Gclose(g);
  }
  H5Fclose(file);
}

nlohmann::json keras_layer(const std::string& cls, nlohmann::json config) { return {{"class_name", cls}, {"config", config}}; }

}  // namespace

TEST(Dataset, IdxRawAndGzip) {
  TempDir t;
  write_bytes(t.file("train-images-idx3-ubyte"), idx_images(12, 5, 4));
  write_bytes(t.file("train-labels-idx1-ubyte"), idx_labels(12));
  write_gzip(t.file("t10k-images-idx3-ubyte.gz"), idx_images(7, 28, 28));
  write_gzip(t.file("t10k-labels-idx1-ubyte.gz"), idx_labels(7));
  const Dataset train = load_dataset("mnist", Split::Train, t.dir());
  EXPECT_EQ(train.size(), 12u);
  EXPECT_EQ(train.shape, (Shape{1, 5, 4}));
  EXPECT_FLOAT_EQ(train.images[3], 21.0f / 255.0f);
  EXPECT_EQ(train.labels[11], 1);
  const Dataset test = load_dataset("fashion-mnist", Split::Test, t.dir());
  EXPECT_EQ(test.size(), 7u);
  EXPECT_EQ(test.shape, (Shape{1, 28, 28}));
  for (float v : test.images) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

TEST(Dataset, IdxCorrupted) {
  TempDir t;
  auto img = idx_images(10, 6, 6);
  auto lab = idx_labels(10);
  // Truncated images.
  write_bytes(t.file("a-img"), std::vector<unsigned char>(img.begin(), img.end() - 5));
  write_bytes(t.file("a-lab"), lab);
  expect_error_mentioning([&] { read_idx(t.file("a-img"), t.file("a-lab")); }, "a-img: holds 371 bytes, its header (10 images of 6x6) needs 376 (truncated)");
  // Wrong magic.
  auto bad = img;
  bad[3] = 0x01;
  write_bytes(t.file("b-img"), bad);
  expect_error_mentioning([&] { read_idx(t.file("b-img"), t.file("a-lab")); }, "not an IDX image file");
  // Label count mismatch.
  write_bytes(t.file("c-img"), img);
  write_bytes(t.file("c-lab"), idx_labels(9));
  expect_error_mentioning([&] { read_idx(t.file("c-img"), t.file("c-lab")); }, "9 labels for 10 images");
  // Label out of range.
  auto lab2 = lab;
  lab2.back() = 42;
  write_bytes(t.file("d-lab"), lab2);
  expect_error_mentioning([&] { read_idx(t.file("c-img"), t.file("d-lab")); }, "label 42");
  // Corrupted gzip stream.
  write_gzip(t.file("e-img.gz"), img);
  {
    std::fstream f(t.file("e-img.gz"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    const char junk[8] = {'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'};
    f.write(junk, 8);
  }
  expect_error_mentioning([&] { read_idx(t.file("e-img.gz"), t.file("a-lab")); }, "e-img.gz: corrupted gzip data");
  // Missing files: the message names the files, the format and where to download.
  TempDir empty;
  try {
    load_dataset("mnist", Split::Test, empty.dir());
    FAIL();
  } catch (const hecnn::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("t10k-images-idx3-ubyte"), std::string::npos) << m;
    EXPECT_NE(m.find("IDX"), std::string::npos) << m;
    EXPECT_NE(m.find("Download"), std::string::npos) << m;
  }
  expect_error_mentioning([&] { load_dataset("imagenet", Split::Test, empty.dir()); }, "unknown dataset 'imagenet' (known: mnist, fashion-mnist, cifar10)");
}

namespace {
// n CIFAR-10 records: record r (from `first`) has label (r + 4) % 10 and pixel i (i + r) % 256.
std::vector<unsigned char> cifar_records(int n, int first = 0) {
  std::vector<unsigned char> batch;
  for (int r = first; r < first + n; ++r) {
    batch.push_back(static_cast<unsigned char>((r + 4) % 10));
    for (int i = 0; i < 3072; ++i) batch.push_back(static_cast<unsigned char>((i + r) % 256));
  }
  return batch;
}
}  // namespace

TEST(Dataset, Cifar10) {
  TempDir t;
  std::vector<unsigned char> batch = cifar_records(5);  // any whole number of records (a batch file holds 10,000)
  write_bytes(t.file("test_batch.bin"), batch);
  const Dataset d = load_dataset("cifar10", Split::Test, t.dir());
  EXPECT_EQ(d.size(), 5u);
  EXPECT_EQ(d.shape, (Shape{3, 32, 32}));
  EXPECT_EQ(d.labels[2], 6);
  EXPECT_FLOAT_EQ(d.image(1)[1024], static_cast<float>((1024 + 1) % 256) / 255.0f);  // first green pixel
  write_bytes(t.file("test_batch.bin"), std::vector<unsigned char>(batch.begin(), batch.end() - 1));
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Test, t.dir()); }, "4 records and 3072 bytes of a partial one");
  batch[0] = 10;
  write_bytes(t.file("test_batch.bin"), batch);
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Test, t.dir()); }, "label 10");
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Train, t.dir()); }, "data_batch_1.bin");
}

// The five training batch files may each hold any whole number of records; they are read in order.
TEST(Dataset, Cifar10PartialTrainingBatches) {
  TempDir t;
  const int counts[5] = {3, 1, 4, 2, 5};
  int first = 0;
  for (int b = 0; b < 5; ++b) {
    write_bytes(t.file("data_batch_" + std::to_string(b + 1) + ".bin"), cifar_records(counts[b], first));
    first += counts[b];
  }
  const Dataset d = load_dataset("cifar10", Split::Train, t.dir());
  ASSERT_EQ(d.size(), 15u);
  for (int r = 0; r < 15; ++r) {
    EXPECT_EQ(d.labels[r], (r + 4) % 10);
    EXPECT_FLOAT_EQ(d.image(r)[7], static_cast<float>((7 + r) % 256) / 255.0f);
  }
  write_bytes(t.file("data_batch_4.bin"), std::vector<unsigned char>{});
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Train, t.dir()); }, "data_batch_4.bin: empty");
}

TEST(Dataset, TakeRange) {
  TempDir t;
  write_bytes(t.file("test_batch.bin"), cifar_records(7));
  const Dataset all = load_dataset("cifar10", Split::Test, t.dir());
  const Dataset d = take_range(all, 2, 4);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d.images.size(), 4u * 3072);
  EXPECT_EQ(d.name, "cifar10");
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(d.labels[k], all.labels[k + 2]);
    EXPECT_TRUE(std::equal(d.image(k), d.image(k) + 3072, all.image(k + 2)));
  }
  EXPECT_EQ(take_range(all, 0, 7).size(), 7u);
  EXPECT_EQ(take_range(all, 7, 0).size(), 0u);
  expect_error_mentioning([&] { take_range(all, 5, 3); }, "3 images from index 5 are beyond the 7 images of cifar10");
  expect_error_mentioning([&] { take_range(all, 8, 0); }, "beyond the 7 images");
  expect_error_mentioning([&] { take_range(all, 1, static_cast<std::size_t>(-1)); }, "beyond the 7 images");
}

TEST(ModelFile, RoundTrip) {
  TempDir t;
  Model m = small_model();
  m.info["note"] = "round trip";
  save_model(m, t.file("m.safetensors"));
  const Model r = load_model(t.file("m.safetensors"));
  EXPECT_EQ(r.architecture(), m.architecture());
  EXPECT_EQ(r.info, m.info);
  ASSERT_EQ(r.layers.size(), m.layers.size());
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    ASSERT_EQ(r.layers[i].params.size(), m.layers[i].params.size());
    for (const auto& [k, v] : m.layers[i].params) {
      EXPECT_EQ(r.layers[i].params.at(k).shape, v.shape);
      EXPECT_EQ(r.layers[i].params.at(k).data, v.data);
    }
  }
  // Same outputs, and the polynomial comes back with identical coefficients.
  std::vector<float> img(static_cast<std::size_t>(m.input.size()), 0.3f);
  EXPECT_EQ(forward(r, img.data()), forward(m, img.data()));
  EXPECT_EQ(r.layers[2].activation.poly->coeffs(), m.layers[2].activation.poly->coeffs());
}

TEST(ModelFile, RejectsBadFiles) {
  TempDir t;
  const Model m = small_model();
  save_model(m, t.file("m.safetensors"));
  std::ifstream in(t.file("m.safetensors"), std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& name, const std::vector<char>& b) {
    std::ofstream(t.file(name), std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    return t.file(name);
  };
  // Truncation anywhere.
  const std::string short_header = "cut: not a valid safetensors file (shorter than its 8-byte header length)";
  const std::string cut_header = "cut: not a valid safetensors file (header length";  // ... does not fit the file
  const std::vector<std::pair<std::size_t, std::string>> cuts = {
      {0, short_header}, {4, short_header}, {8, cut_header}, {100, cut_header}, {bytes.size() / 2, cut_header},
      {bytes.size() - 1, "cut: not a valid safetensors file (tensor '9.weight' has data offsets outside the file"}};
  for (const auto& [cut, message] : cuts) {
    const std::string p = write("cut", std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
    SCOPED_TRACE("cut at " + std::to_string(cut));
    expect_error_mentioning([&] { load_model(p); }, message);
  }
  // Trailing bytes.
  auto longer = bytes;
  longer.push_back(0);
  expect_error_mentioning([&] { load_model(write("long", longer)); }, "long: not a valid safetensors file (1 bytes after the last tensor)");
  // Absurd header length.
  auto huge = bytes;
  huge[7] = 0x7f;
  expect_error_mentioning([&] { load_model(write("huge", huge)); }, "huge: not a valid safetensors file (header length 9151314442816850088 does not fit the file)");
  // Corrupted JSON header.
  auto json_bad = bytes;
  json_bad[9] = '#';
  expect_error_mentioning([&] { load_model(write("json", json_bad)); }, "json: not a valid safetensors file (header: not valid JSON");
  // Inconsistent model: a parameter with the wrong shape.
  SafetensorsFile f = read_safetensors(t.file("m.safetensors"));
  f.tensors["0.weight"].shape = {3, 2, 9};
  write_safetensors(t.file("shape.safetensors"), f);
  expect_error_mentioning([&] { load_model(t.file("shape.safetensors")); }, "layer 0 (conv2d): parameter 'weight' has shape [3, 2, 9], expected [3, 2, 3, 3]");
  // A missing parameter, an extra one, and a tensor for a layer that does not exist.
  f = read_safetensors(t.file("m.safetensors"));
  f.tensors.erase("1.running_var");
  write_safetensors(t.file("missing.safetensors"), f);
  expect_error_mentioning([&] { load_model(t.file("missing.safetensors")); }, "layer 1 (batchnorm): missing parameter 'running_var'");
  f = read_safetensors(t.file("m.safetensors"));
  f.tensors["99.weight"] = Tensor({2});
  write_safetensors(t.file("extra.safetensors"), f);
  expect_error_mentioning([&] { load_model(t.file("extra.safetensors")); }, "tensor '99.weight' does not belong to any layer");
  // No architecture.
  f = read_safetensors(t.file("m.safetensors"));
  f.metadata.erase("hecnn.architecture");
  write_safetensors(t.file("noarch.safetensors"), f);
  expect_error_mentioning([&] { load_model(t.file("noarch.safetensors")); }, "a safetensors file without a hecnn architecture (metadata 'hecnn.architecture')");
  expect_error_mentioning([&] { load_model(t.file("does-not-exist")); }, "cannot open model file");
}

TEST(Forward, LayersByHand) {
  // A 1-channel 4x4 image through a 2x2 stride-2 conv, BN, square, avgpool, dense.
  Model m = Model::from_architecture({{"input", {1, 4, 4}},
                                      {"layers",
                                       {{{"type", "conv2d"}, {"filters", 1}, {"kernel", 2}, {"stride", 2}},
                                        {{"type", "batchnorm"}, {"eps", 0.0001}},
                                        {{"type", "activation"}, {"fn", "square"}},
                                        {{"type", "avgpool2d"}, {"pool", 2}},
                                        {{"type", "flatten"}},
                                        {{"type", "dense"}, {"units", 2}}}}});
  m.layers[0].params["weight"] = Tensor({1, 1, 2, 2}, 1.0f);
  m.layers[0].params["bias"] = Tensor({1}, 1.0f);
  m.layers[1].params["weight"] = Tensor({1}, 2.0f);
  m.layers[1].params["bias"] = Tensor({1}, 0.5f);
  m.layers[1].params["running_mean"] = Tensor({1}, 3.0f);
  m.layers[1].params["running_var"] = Tensor({1}, 4.0f);
  m.layers[5].params["weight"] = Tensor({2, 1}, 1.0f);
  m.layers[5].params["weight"].data[1] = -2.0f;
  m.layers[5].params["bias"] = Tensor({2}, 0.0f);
  std::vector<float> img(16);
  for (int i = 0; i < 16; ++i) img[static_cast<std::size_t>(i)] = static_cast<float>(i % 4) * 0.25f;  // columns 0, .25, .5, .75
  // conv: each 2x2 block sums two columns: left blocks 2*(0+.25)=0.5+1, right 2*(.5+.75)=2.5+1.
  const double a = 2 / std::sqrt(4.0001);
  const double left = (1.5 - 3) * a + 0.5, right = (3.5 - 3) * a + 0.5;
  const double pooled = (2 * left * left + 2 * right * right) / 4;
  const auto out = forward(m, img.data());
  EXPECT_NEAR(out[0], pooled, 1e-9);
  EXPECT_NEAR(out[1], -2 * pooled, 1e-9);
}

TEST(Forward, BatchNormFolding) {
  const Model m = small_model(3);
  const Model f = fold_batch_norm(m);
  std::size_t bn = 0;
  for (const auto& l : f.layers) bn += l.type == LayerType::BatchNorm;
  EXPECT_EQ(bn, 0u);
  EXPECT_EQ(f.layers.size(), m.layers.size() - 3);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> d(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> img(static_cast<std::size_t>(m.input.size()));
    for (auto& v : img) v = d(rng);
    const auto a = forward(m, img.data()), b = forward(f, img.data());
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(a[i])));
    EXPECT_EQ(argmax(a), argmax(b));
  }
}

TEST(Forward, ShapeErrors) {
  nlohmann::json arch = {{"input", {1, 4, 4}}, {"layers", {{{"type", "conv2d"}, {"filters", 2}, {"kernel", 5}}}}};
  expect_error_mentioning([&] { Model::from_architecture(arch).shapes(false); }, "layer 0 (conv2d): input 1x4x4 is too small");
  arch = {{"input", {1, 4, 4}}, {"layers", {{{"type", "dense"}, {"units", 2}}}}};
  expect_error_mentioning([&] { Model::from_architecture(arch).shapes(false); }, "layer 0 (dense): input 1x4x4 is not flat (add a flatten layer)");
  arch = {{"input", {1, 4, 4}}, {"layers", {{{"type", "lstm"}}}}};
  expect_error_mentioning([&] { Model::from_architecture(arch); }, "unknown layer type 'lstm'");
  arch = {{"input", {1, 4, 4}}, {"layers", {{{"type", "activation"}, {"fn", "swishy"}}}}};
  expect_error_mentioning([&] { Model::from_architecture(arch); }, "unknown activation function 'swishy'");
  expect_error_mentioning([&] { preset_architecture("resnet", "relu"); }, "unknown architecture preset 'resnet' (known: mnist-paper, cifar-paper");
  EXPECT_EQ(preset_architecture("mnist-paper", "swish:deg4:range4").output(), (Shape{10, 1, 1}));
  EXPECT_EQ(preset_architecture("cifar-paper", "relu").output(), (Shape{10, 1, 1}));
}

TEST(GlobalAvgPool, ShapesJsonAndPresets) {
  const nlohmann::json arch = {{"input", {3, 5, 7}},
                               {"layers",
                                {{{"type", "conv2d"}, {"filters", 4}, {"kernel", 3}, {"padding", "same"}},
                                 {{"type", "globalavgpool2d"}, {"name", "gap"}},
                                 {{"type", "dense"}, {"units", 2}}}}};
  const Model m = Model::from_architecture(arch);
  ASSERT_EQ(m.layers[1].type, LayerType::GlobalAvgPool2d);
  EXPECT_EQ(to_string(LayerType::GlobalAvgPool2d), "globalavgpool2d");
  const auto shapes = m.shapes(false);
  EXPECT_EQ(shapes[1], (Shape{4, 1, 1}));  // no flatten needed before the dense layer
  EXPECT_TRUE(Model::expected_params(m.layers[1], shapes[0]).empty());
  EXPECT_EQ(Model::expected_params(m.layers[2], shapes[1]).at("weight"), (std::vector<std::int64_t>{2, 4}));
  // JSON round trip: no hyper-parameters, the name kept.
  const nlohmann::json back = m.architecture();
  EXPECT_EQ(back["layers"][1], (nlohmann::json{{"type", "globalavgpool2d"}, {"name", "gap"}}));
  EXPECT_EQ(Model::from_architecture(back).architecture(), back);
  EXPECT_NE(m.summary().find("1: globalavgpool2d 5x7 -> 4x1x1"), std::string::npos) << m.summary();
  // Parameters on a global average pooling layer are refused.
  Model bad = Model::from_architecture({{"input", {4, 2, 2}}, {"layers", {{{"type", "globalavgpool2d"}}}}});
  bad.layers[0].params["weight"] = Tensor({4});
  expect_error_mentioning([&] { bad.shapes(); }, "unexpected parameter");
  // PP-CNN's --gap variants: global average pooling in place of the flatten.
  const Model mg = preset_architecture("mnist-paper-gap", "swish:deg4:range4");
  EXPECT_EQ(mg.layers[6].type, LayerType::GlobalAvgPool2d);
  EXPECT_EQ(mg.shapes(false)[6], (Shape{50, 1, 1}));
  EXPECT_EQ(mg.output(), (Shape{10, 1, 1}));
  const Model cg = preset_architecture("cifar-paper-gap", "relu");
  EXPECT_EQ(cg.layers[12].type, LayerType::GlobalAvgPool2d);
  EXPECT_EQ(cg.shapes(false)[12], (Shape{128, 1, 1}));
  EXPECT_EQ(Model::expected_params(cg.layers[13], cg.shapes(false)[12]).at("weight"), (std::vector<std::int64_t>{256, 128}));
  EXPECT_EQ(cg.output(), (Shape{10, 1, 1}));
  const auto names = preset_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "cifar-paper-gap"), names.end());
}

TEST(GlobalAvgPool, ForwardByHandAndModelFile) {
  // Two channels of a 2x3 plane -> their means -> dense 2 -> 1.
  Model m = Model::from_architecture(
      {{"input", {2, 2, 3}}, {"layers", {{{"type", "globalavgpool2d"}}, {{"type", "dense"}, {"units", 1}}}}});
  m.layers[1].params["weight"] = Tensor({1, 2});
  m.layers[1].params["weight"].data = {1.0f, -2.0f};
  m.layers[1].params["bias"] = Tensor({1}, 0.5f);
  const std::vector<float> img = {0, 1, 2, 3, 4, 5, 1, 1, 1, 1, 1, 7};  // means 2.5 and 2
  std::vector<double> y;
  forward_layer(m.layers[0], m.input, std::vector<double>(img.begin(), img.end()), y);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_DOUBLE_EQ(y[0], 2.5);
  EXPECT_DOUBLE_EQ(y[1], 2.0);
  const auto out = forward(m, img.data());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_DOUBLE_EQ(out[0], 0.5 + 2.5 - 2 * 2.0);
  // The model file keeps the layer; batch-norm folding around it keeps the outputs.
  TempDir t;
  save_model(m, t.file("gap.safetensors"));
  const Model r = load_model(t.file("gap.safetensors"));
  EXPECT_EQ(r.architecture(), m.architecture());
  EXPECT_EQ(forward(r, img.data()), out);
  Model bn = Model::from_architecture({{"input", {2, 4, 3}},
                                       {"layers",
                                        {{{"type", "conv2d"}, {"filters", 3}, {"kernel", 3}, {"padding", "same"}},
                                         {{"type", "batchnorm"}},
                                         {{"type", "activation"}, {"fn", "square"}},
                                         {{"type", "globalavgpool2d"}},
                                         {{"type", "dense"}, {"units", 4}},
                                         {{"type", "batchnorm"}},
                                         {{"type", "dense"}, {"units", 2}}}}});
  std::mt19937_64 rng(9);
  Shape in = bn.input;
  const auto shapes = bn.shapes(false);
  for (std::size_t i = 0; i < bn.layers.size(); ++i) {
    for (const auto& [name, shape] : Model::expected_params(bn.layers[i], in)) {
      bn.layers[i].params[name] = name == "running_var" ? random_tensor(shape, rng, 0.5f, 2.0f) : random_tensor(shape, rng);
    }
    in = shapes[i];
  }
  const Model folded = fold_batch_norm(bn);
  EXPECT_EQ(folded.layers.size(), 5u);
  std::vector<float> x(24);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 5) * 0.2f;
  const auto a = forward(bn, x.data()), b = forward(folded, x.data());
  ASSERT_EQ(a.size(), 2u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * (1 + std::fabs(a[i])));
}

// Small Keras models written here (structure JSON and HDF5 weights), against a channels-last
// computation of what Keras computes: the kernel transpositions, the Flatten row permutation of
// the dense kernel, and none after GlobalAveragePooling2D (which yields C values).
TEST(Keras, GeneratedModelsWithGlobalAveragePooling) {
  TempDir t;
  const int H = 5, W = 4, C = 3, F = 4, U = 3, K = 3, OH = H - K + 1, OW = W - K + 1;
  std::mt19937_64 rng(21);
  const Tensor kernel = random_tensor({K, K, C, F}, rng), bias = random_tensor({F}, rng);
  Tensor img_hwc = random_tensor({H, W, C}, rng, 0.0f, 1.0f);
  std::vector<float> img_chw(static_cast<std::size_t>(H * W * C));
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < C; ++c) img_chw[static_cast<std::size_t>((c * H + y) * W + x)] = img_hwc.data[static_cast<std::size_t>((y * W + x) * C + c)];
  // Keras: conv (valid), then swish_rg4_deg4, channels last.
  const std::vector<double> poly = {0.03347, 0.5, 0.19566, 0.0, -0.005075};
  std::vector<double> act(static_cast<std::size_t>(OH * OW * F));  // [y][x][f]
  for (int y = 0; y < OH; ++y)
    for (int x = 0; x < OW; ++x)
      for (int f = 0; f < F; ++f) {
        double v = bias.data[static_cast<std::size_t>(f)];
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx)
            for (int c = 0; c < C; ++c)
              v += static_cast<double>(img_hwc.data[static_cast<std::size_t>(((y + ky) * W + x + kx) * C + c)]) *
                   kernel.data[static_cast<std::size_t>(((ky * K + kx) * C + c) * F + f)];
        double p = 0;
        for (std::size_t d = poly.size(); d-- > 0;) p = p * v + poly[d];
        act[static_cast<std::size_t>((y * OW + x) * F + f)] = p;
      }
  auto dense = [&](const std::vector<double>& in, const Tensor& k, const Tensor& b) {
    std::vector<double> out(static_cast<std::size_t>(U));
    for (int u = 0; u < U; ++u) {
      out[static_cast<std::size_t>(u)] = b.data[static_cast<std::size_t>(u)];
      for (std::size_t i = 0; i < in.size(); ++i) out[static_cast<std::size_t>(u)] += in[i] * k.data[i * U + static_cast<std::size_t>(u)];
    }
    return out;
  };
  const nlohmann::json conv = keras_layer("Conv2D", {{"name", "conv2d_1"},
                                                     {"batch_input_shape", {nullptr, H, W, C}},
                                                     {"filters", F},
                                                     {"kernel_size", {K, K}},
                                                     {"strides", {1, 1}},
                                                     {"padding", "valid"},
                                                     {"data_format", "channels_last"},
                                                     {"dilation_rate", {1, 1}},
                                                     {"activation", "linear"},
                                                     {"use_bias", true}});
  const nlohmann::json swish = keras_layer("Activation", {{"name", "activation_1"}, {"activation", "swish_rg4_deg4"}});
  const nlohmann::json out_layer = keras_layer("Dense", {{"name", "dense_1"}, {"units", U}, {"activation", "softmax"}, {"use_bias", true}});
  auto check = [&](const std::string& what, const nlohmann::json& pool_layer, std::int64_t n_in, const std::vector<double>& dense_in) {
    SCOPED_TRACE(what);
    const Tensor dk = random_tensor({n_in, U}, rng), db = random_tensor({U}, rng);
    const nlohmann::json structure = {{"class_name", "Sequential"},
                                      {"config", {conv, swish, pool_layer, out_layer}},
                                      {"keras_version", "2.0.8"},
                                      {"backend", "tensorflow"}};
    std::ofstream(t.file(what + ".json")) << structure.dump();
    write_keras_weights(t.file(what + ".h5"), {{"conv2d_1", {kernel, bias}}, {"dense_1", {dk, db}}});
    const Model m = import_keras(t.file(what + ".json"), t.file(what + ".h5"));
    const auto want = dense(dense_in, dk, db);
    const auto got = forward(m, img_chw.data());
    EXPECT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < std::min(want.size(), got.size()); ++i) EXPECT_NEAR(got[i], want[i], 1e-9 * (1 + std::fabs(want[i])));
    return m;
  };
  // GlobalAveragePooling2D: the mean of each channel, in channel order.
  std::vector<double> gap(static_cast<std::size_t>(F), 0.0);
  for (std::size_t i = 0; i < act.size(); ++i) gap[i % F] += act[i] / (OH * OW);
  const Model m = check("gap", keras_layer("GlobalAveragePooling2D", {{"name", "global_average_pooling2d_1"}, {"data_format", "channels_last"}}), F, gap);
  ASSERT_EQ(m.layers.size(), 4u);
  EXPECT_EQ(m.layers[2].type, LayerType::GlobalAvgPool2d);
  EXPECT_EQ(m.layers[2].name, "global_average_pooling2d_1");
  EXPECT_EQ(m.layers[3].params.at("weight").shape, (std::vector<std::int64_t>{U, F}));
  // Flatten: the dense kernel's rows are in H, W, C order.
  check("flatten", keras_layer("Flatten", {{"name", "flatten_1"}}), OH * OW * F, act);
  // Channels-first pooling is refused.
  const nlohmann::json cf = keras_layer("GlobalAveragePooling2D", {{"name", "gap"}, {"data_format", "channels_first"}});
  const nlohmann::json structure = {{"class_name", "Sequential"}, {"config", {conv, swish, cf, out_layer}}};
  std::ofstream(t.file("cf.json")) << structure.dump();
  expect_error_mentioning([&] { import_keras(t.file("cf.json"), t.file("gap.h5")); }, "channels_last");
}

TEST(Keras, PpcnnMnistModel) {
  const std::string dir = shared_dir() + "/models/ppcnn-mnist";
  const std::string data = shared_dir() + "/datasets/mnist";
  if (!fs::exists(dir) || !fs::exists(data)) GTEST_SKIP() << "../shared (PP-CNN model, MNIST test set) not present";
  const Model m = import_keras(dir + "/CKKS-swish_rg4_deg4-BN-DA_structure.json", dir + "/CKKS-swish_rg4_deg4-BN-DA_weights.h5");
  ASSERT_EQ(m.layers.size(), 8u);
  EXPECT_EQ(m.layers[2].activation.poly->coeffs(), (std::vector<double>{0.03347, 0.5, 0.19566, 0.0, -0.005075}));
  const Dataset test = load_dataset("mnist", Split::Test, data);
  const Evaluation e = evaluate(m, test);
  EXPECT_EQ(e.count, 10000u);
  EXPECT_EQ(e.correct, 9916u) << "PP-CNN's model classifies the MNIST test set with 99.16 % accuracy";
  EXPECT_EQ(evaluate(fold_batch_norm(m), test).correct, 9916u);
  // Structure/weights mismatches and unsupported layers are errors naming the problem.
  TempDir t;
  std::ifstream in(dir + "/CKKS-swish_rg4_deg4-BN-DA_structure.json");
  nlohmann::json s = nlohmann::json::parse(in);
  s["config"][3]["class_name"] = "LSTM";
  std::ofstream(t.file("s.json")) << s.dump();
  expect_error_mentioning([&] { import_keras(t.file("s.json"), dir + "/CKKS-swish_rg4_deg4-BN-DA_weights.h5"); }, "Keras layer 'conv2d_2' (LSTM): layer type 'LSTM' is not supported");
  write_bytes(t.file("w.h5"), {'n', 'o', 't', ' ', 'h', 'd', 'f'});
  expect_error_mentioning([&] { import_keras(dir + "/CKKS-swish_rg4_deg4-BN-DA_structure.json", t.file("w.h5")); }, "not an HDF5 file");
}
