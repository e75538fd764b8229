// Models: dataset readers on generated and corrupted files, the model file round trip and its
// rejection of bad files, the plaintext forward pass, BN folding, and the Keras import of the
// PP-CNN MNIST model (when ../shared is present).
#include <gtest/gtest.h>
#include <zlib.h>

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

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("hecnn-nn-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string dir() const { return path_.string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

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
  expect_error_mentioning([&] { load_dataset("imagenet", Split::Test, empty.dir()); }, "imagenet test set not found");
}

TEST(Dataset, Cifar10) {
  TempDir t;
  std::vector<unsigned char> batch;
  for (int r = 0; r < 3; ++r) {
    batch.push_back(static_cast<unsigned char>(r + 4));
    for (int i = 0; i < 3072; ++i) batch.push_back(static_cast<unsigned char>((i + r) % 256));
  }
  write_bytes(t.file("test_batch.bin"), batch);
  const Dataset d = load_dataset("cifar10", Split::Test, t.dir());
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.shape, (Shape{3, 32, 32}));
  EXPECT_EQ(d.labels[2], 6);
  EXPECT_FLOAT_EQ(d.image(1)[1024], static_cast<float>((1024 + 1) % 256) / 255.0f);  // first green pixel
  write_bytes(t.file("test_batch.bin"), std::vector<unsigned char>(batch.begin(), batch.end() - 1));
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Test, t.dir()); }, "CIFAR-10 records");
  batch[0] = 10;
  write_bytes(t.file("test_batch.bin"), batch);
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Test, t.dir()); }, "label 10");
  expect_error_mentioning([&] { load_dataset("cifar10", Split::Train, t.dir()); }, "data_batch_1.bin");
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
  expect_error_mentioning([&] { load_model(write("json", json_bad)); }, "json: not a valid safetensors file (header is not JSON");
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
