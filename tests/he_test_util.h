#pragma once
// Helpers of the encrypted-inference tests (he_tests): models with random parameters from an
// architecture, random images, small insecure compile options, architecture JSON pieces, a
// temporary directory.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "he/plan.h"
#include "nn/model.h"
#include "test_util.h"

namespace hecnn::he_test {

namespace fs = std::filesystem;


inline nn::Tensor random_tensor(std::vector<std::int64_t> shape, std::mt19937_64& rng, float lo, float hi) {
  nn::Tensor t(std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& v : t.data) v = d(rng);
  return t;
}

inline nn::Model with_random_params(nlohmann::json arch, unsigned seed) {
  nn::Model m = nn::Model::from_architecture(arch);
  std::mt19937_64 rng(seed);
  const auto shapes = m.shapes(false);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const nn::Shape in = m.shape_of(m.sources(i)[0], shapes);
    for (const auto& [name, shape] : nn::Model::expected_params(m.layers[i], in)) {
      const float fan = static_cast<float>(in.size() > 0 ? std::max<std::int64_t>(1, shape.size() > 1 ? shape[1] * (shape.size() > 2 ? shape[2] * shape[3] : 1) : 1) : 1);
      if (name == "running_var") {
        m.layers[i].params[name] = random_tensor(shape, rng, 0.5f, 1.5f);
      } else if (name == "running_mean" || name == "bias") {
        m.layers[i].params[name] = random_tensor(shape, rng, -0.2f, 0.2f);
      } else if (m.layers[i].type == nn::LayerType::BatchNorm) {
        m.layers[i].params[name] = random_tensor(shape, rng, 0.5f, 1.0f);
      } else {
        const float a = 1.5f / std::sqrt(fan);
        m.layers[i].params[name] = random_tensor(shape, rng, -a, a);
      }
    }
  }
  m.validate();
  return m;
}

inline std::vector<float> random_images(const nn::Shape& s, std::size_t count, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(0, 1);
  std::vector<float> v(static_cast<std::size_t>(s.size()) * count);
  for (auto& x : v) x = d(rng);
  return v;
}

inline he::CompileOptions small_insecure() {
  he::CompileOptions o;
  o.log_n = 11;  // 1024 images per batch: fast, and far from secure
  o.scale_bits = 36;
  o.allow_insecure = true;
  return o;
}

inline nlohmann::json conv(int f, int k, int s, const char* pad) {
  return {{"type", "conv2d"}, {"filters", f}, {"kernel", k}, {"stride", s}, {"padding", pad}};
}
inline const nlohmann::json bn = {{"type", "batchnorm"}, {"eps", 1e-3}};
inline nlohmann::json act(const std::string& fn) { return {{"type", "activation"}, {"fn", fn}}; }
inline const nlohmann::json flat = {{"type", "flatten"}};
inline nlohmann::json dense(int u) { return {{"type", "dense"}, {"units", u}}; }
inline nlohmann::json pool(int p) { return {{"type", "avgpool2d"}, {"pool", p}}; }
inline const nlohmann::json gap = {{"type", "globalavgpool2d"}};

// A small ResNet: the input normalized by batch normalization (folded forward into the padded first
// convolution exactly), an identity block and a stride-2 block with a 1x1 convolution shortcut,
// global average pooling, dense.
inline nn::Model small_resnet(const std::string& activation, unsigned seed = 21) {
  auto from = [](nlohmann::json layer, std::vector<int> inputs) {
    layer["inputs"] = inputs;
    return layer;
  };
  const nlohmann::json pad1 = {{"type", "conv2d"}, {"kernel", 3}, {"padding", {1, 1, 1, 1}}};
  auto conv3 = [&](int f, int s) {
    nlohmann::json c = pad1;
    c["filters"] = f;
    c["stride"] = s;
    return c;
  };
  const nlohmann::json add = {{"type", "add"}};
  return with_random_params(
      {{"input", {2, 8, 8}},
       {"layers",
        {bn, conv3(4, 1), bn, act(activation),                      // 0-3
         conv3(4, 1), bn, act(activation), conv3(4, 1), bn,         // 4-8
         from(add, {8, 3}), act(activation),                        // 9-10
         conv3(6, 2), bn, act(activation), conv3(6, 1), bn,         // 11-15
         from(conv(6, 1, 2, "valid"), {10}), bn, from(add, {15, 17}), act(activation),  // 16-19
         gap, dense(3)}}},
      seed);
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("hecnn-he-test-" + std::to_string(::getpid()))) { fs::create_directories(path_); }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& n) const { return (path_ / n).string(); }

 private:
  fs::path path_;
};

using hecnn::test::expect_error_mentioning;

}  // namespace hecnn::he_test
