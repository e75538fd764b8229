// Encrypted inference at small, explicitly insecure parameters: every layer type and option
// against the plaintext model and the compiled simulation; the file-based client/server round
// trip; and the bad-input cases (wrong keys, other parameters, truncated query, shape mismatch).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "test_util.h"
#include "he/engine.h"
#include "he/files.h"
#include "ring/primes.h"
#include "nn/forward.h"

using namespace hecnn;
namespace fs = std::filesystem;

namespace {

nn::Tensor random_tensor(std::vector<std::int64_t> shape, std::mt19937_64& rng, float lo, float hi) {
  nn::Tensor t(std::move(shape));
  std::uniform_real_distribution<float> d(lo, hi);
  for (auto& v : t.data) v = d(rng);
  return t;
}

nn::Model with_random_params(nlohmann::json arch, unsigned seed) {
  nn::Model m = nn::Model::from_architecture(arch);
  std::mt19937_64 rng(seed);
  const auto shapes = m.shapes(false);
  nn::Shape in = m.input;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
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
    in = shapes[i];
  }
  m.validate();
  return m;
}

std::vector<float> random_images(const nn::Shape& s, std::size_t count, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(0, 1);
  std::vector<float> v(static_cast<std::size_t>(s.size()) * count);
  for (auto& x : v) x = d(rng);
  return v;
}

he::CompileOptions small_insecure() {
  he::CompileOptions o;
  o.log_n = 11;  // 1024 images per batch: fast, and far from secure
  o.scale_bits = 36;
  o.allow_insecure = true;
  return o;
}

// Encrypts `count` random images, runs the plan, and compares with the compiled simulation and
// the plaintext model.
void check_network(const nn::Model& m, std::size_t count, const std::string& what, double tol = 1e-3) {
  const he::HePlan plan = he::compile(m, small_insecure());
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  const ckks::RelinKeys rk = keygen.create_relin_keys();
  const he::Client client(plan, ctx, keygen.secret_key());
  const he::Engine engine(plan, ctx, rk);
  const std::vector<float> images = random_images(m.input, count, 7);
  const auto out = client.decrypt(engine.run(client.encrypt(images.data(), count)), count);
  double worst = 0, scale = 0;
  for (std::size_t b = 0; b < count; ++b) {
    const float* img = images.data() + b * static_cast<std::size_t>(m.input.size());
    const auto plain = nn::forward(m, img);
    const auto sim = he::simulate(plan, img);
    ASSERT_EQ(out[b].size(), plain.size()) << what;
    for (std::size_t k = 0; k < plain.size(); ++k) {
      EXPECT_NEAR(sim[k], plain[k], 1e-6 * (1 + std::fabs(plain[k]))) << what << ": simulation vs model";
      worst = std::max(worst, std::fabs(out[b][k] - plain[k]));
      scale = std::max(scale, std::fabs(plain[k]));
    }
  }
  EXPECT_LE(worst, tol * std::max(1.0, scale)) << what << ": encrypted vs plaintext (largest output " << scale << ")";
  std::printf("  %-46s depth %2d, max |encrypted - plaintext| %.2e (outputs up to %.2f)\n", what.c_str(), plan.depth, worst, scale);
}

nlohmann::json conv(int f, int k, int s, const char* pad) {
  return {{"type", "conv2d"}, {"filters", f}, {"kernel", k}, {"stride", s}, {"padding", pad}};
}
const nlohmann::json bn = {{"type", "batchnorm"}, {"eps", 1e-3}};
nlohmann::json act(const std::string& fn) { return {{"type", "activation"}, {"fn", fn}}; }
const nlohmann::json flat = {{"type", "flatten"}};
nlohmann::json dense(int u) { return {{"type", "dense"}, {"units", u}}; }
nlohmann::json pool(int p) { return {{"type", "avgpool2d"}, {"pool", p}}; }

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("hecnn-he-test-" + std::to_string(::getpid()))) { fs::create_directories(path_); }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& n) const { return (path_ / n).string(); }

 private:
  fs::path path_;
};

using hecnn::test::expect_error_mentioning;

}  // namespace

TEST(HeLayers, ConvValidStrideDense) {
  check_network(with_random_params({{"input", {1, 9, 9}}, {"layers", {conv(3, 3, 2, "valid"), bn, act("swish:deg4:range4"), flat, dense(4)}}}, 1),
                8, "conv valid s2, BN, swish deg 4, dense");
}

TEST(HeLayers, ConvSameAvgPool) {
  check_network(with_random_params({{"input", {2, 6, 6}},
                                    {"layers", {conv(3, 3, 1, "same"), bn, act("square"), pool(2), conv(2, 3, 2, "same"), flat, dense(3)}}},
                                   2),
                8, "conv same s1/s2, square, avgpool");
}

TEST(HeLayers, ActivationDegrees) {
  for (const std::string fn : {"relu:deg2:range4", "swish:deg4:range6", "gelu:deg8:range6:minimax"}) {
    check_network(with_random_params({{"input", {1, 5, 5}}, {"layers", {conv(2, 3, 1, "valid"), bn, act(fn), flat, dense(3)}}}, 3),
                  8, "activation " + fn);
  }
}

TEST(HeLayers, WholeNetwork) {
  // Two activation stages (the second relinearized after the dense layer), pooling, dense merging.
  check_network(with_random_params({{"input", {1, 12, 12}},
                                    {"layers",
                                     {conv(4, 3, 1, "valid"), bn, act("swish:deg4:range4"), pool(2), conv(6, 3, 2, "same"), bn,
                                      act("swish:deg4:range4"), flat, dense(8), dense(5)}}},
                                   4),
                16, "small whole network");
}

TEST(HeCompile, Plan) {
  const nn::Model m = with_random_params(
      {{"input", {1, 28, 28}}, {"layers", {conv(5, 5, 2, "valid"), bn, act("swish:deg4:range4"), conv(50, 5, 2, "valid"), bn,
                                           act("swish:deg4:range4"), flat, dense(10)}}},
      5);
  const he::HePlan plan = he::compile(m);  // default: secure parameters
  EXPECT_EQ(plan.depth, 7);  // conv 1 + activation 2 (monic) + conv 1 + activation 2 + dense 1
  EXPECT_FALSE(plan.params->insecure());
  EXPECT_LE(plan.params->total_bits(), 438);
  EXPECT_EQ(plan.params->poly_degree(), 16384u);
  EXPECT_TRUE(plan.stages[1].activation.relinearize_output);
  EXPECT_FALSE(plan.stages[3].activation.relinearize_output);  // 800 -> 10: relinearize the 10 sums
  he::CompileOptions o;
  o.log_n = 13;
  expect_error_mentioning([&] { he::compile(m, o); }, "compile: no secure parameters for 7 levels at the requested scale; tried N=8192");  // 7 levels do not fit N = 8192 securely
  nlohmann::json exact = {{"input", {1, 4, 4}}, {"layers", {flat, dense(3), act("relu"), dense(2)}}};
  expect_error_mentioning([&] { he::compile(with_random_params(exact, 1)); }, "layer 2 (activation2): activation 'relu' is not a polynomial");
}

TEST(HeFiles, ClientServerRoundTripAndBadInputs) {
  TempDir dir;
  const nn::Model m = with_random_params({{"input", {1, 6, 6}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("swish:deg4:range4"), flat, dense(3)}}}, 6);
  const he::HePlan plan = he::compile(m, small_insecure());
  he::generate_keys(plan, "test-model", dir / "keys");
  EXPECT_TRUE(fs::exists(dir / "keys/secret.key"));
  EXPECT_EQ(fs::status(dir / "keys/secret.key").permissions() & fs::perms::group_read, fs::perms::none);

  // Client: encrypt two batches into a query file.
  const he::ClientKeys ck = he::load_client_keys(dir / "keys");
  const std::size_t count = 20;
  const std::vector<float> images = random_images(m.input, count, 3);
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = ck.info.key_id;
  h.params_id = ck.info.params_id;
  h.shape = m.input;
  h.per_batch = static_cast<std::size_t>(m.input.size());
  h.batches = {{0, 12}, {12, 8}};
  {
    const he::Client client(plan, ck.ctx, ck.secret);
    he::StreamWriter w(dir / "q.bin", h, ck.ctx);
    w.write_batch(client.encrypt(images.data(), 12));
    w.write_batch(client.encrypt(images.data() + 12 * static_cast<std::size_t>(m.input.size()), 8));
    w.close();
  }
  // Server: evaluation keys only.
  const he::ServerKeys sk = he::load_server_keys(dir / "keys");
  {
    he::StreamReader r(dir / "q.bin", "query", sk.info, sk.ctx);
    he::StreamHeader rh = r.header();
    rh.kind = "result";
    rh.per_batch = plan.outputs();
    he::StreamWriter w(dir / "r.bin", rh, sk.ctx);
    const he::Engine engine(plan, sk.ctx, sk.relin);
    for (std::size_t b = 0; b < rh.batches.size(); ++b) w.write_batch(engine.run(r.read_batch()));
    r.finish();
    w.close();
  }
  // Client: decrypt and compare with the plaintext model.
  {
    he::StreamReader r(dir / "r.bin", "result", ck.info, ck.ctx);
    const he::Client client(plan, ck.ctx, ck.secret);
    for (const auto& b : r.header().batches) {
      const auto out = client.decrypt(r.read_batch(), b.count);
      for (std::size_t i = 0; i < b.count; ++i) {
        const auto plain = nn::forward(m, images.data() + (b.first + i) * static_cast<std::size_t>(m.input.size()));
        for (std::size_t k = 0; k < plain.size(); ++k) EXPECT_NEAR(out[i][k], plain[k], 1e-3 * (1 + std::fabs(plain[k])));
      }
    }
    r.finish();
  }

  // Wrong keys: another key generation for the same model and parameters.
  he::generate_keys(plan, "test-model", dir / "other");
  const he::ServerKeys other = he::load_server_keys(dir / "other");
  expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", other.info, other.ctx); }, "q.bin: made with other keys (key id");
  // A query made with other parameters.
  he::CompileOptions o2 = small_insecure();
  o2.scale_bits = 30;
  he::generate_keys(he::compile(m, o2), "test-model", dir / "params2");
  const he::ServerKeys p2 = he::load_server_keys(dir / "params2");
  expect_error_mentioning([&] { he::StreamReader(dir / "q.bin", "query", p2.info, p2.ctx); }, "q.bin: made with other encryption parameters than the keys in use");
  // Truncated query: the header reads, the batch does not.
  {
    std::ifstream in(dir / "q.bin", std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<std::pair<std::size_t, std::string>> cuts = {
        {3, "cut.bin: not a hecnn query file"},  // not even the magic
        {40, "cut.bin: truncated header"},
        {bytes.size() / 2, "cut.bin: batch 1, ciphertext 36: ciphertext is truncated"},
        {bytes.size() - 10, "cut.bin: batch 2, ciphertext 36: ciphertext is truncated"}};
    for (const auto& [cut, message] : cuts) {
      std::ofstream(dir / "cut.bin", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
      SCOPED_TRACE("cut at " + std::to_string(cut));
      expect_error_mentioning(
          [&] {
            he::StreamReader r(dir / "cut.bin", "query", sk.info, sk.ctx);
            r.read_batch();
            r.read_batch();
            r.finish();
          },
          message);
    }
  }
  // A result file where a query is expected.
  expect_error_mentioning([&] { he::StreamReader(dir / "r.bin", "query", sk.info, sk.ctx); }, "r.bin: not a hecnn query file (it is a result file)");
  // A model whose input shape does not match the query.
  const nn::Model wide = with_random_params({{"input", {1, 7, 7}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("swish:deg4:range4"), flat, dense(3)}}}, 6);
  const he::HePlan wide_plan = he::compile(wide, small_insecure());
  const he::Engine wide_engine(wide_plan, sk.ctx, sk.relin);
  he::StreamReader r(dir / "q.bin", "query", sk.info, sk.ctx);
  expect_error_mentioning([&] { wide_engine.run(r.read_batch()); }, "expects 49 input ciphertexts");
  // Keys for other parameters than the plan.
  expect_error_mentioning([&] { he::Engine(he::compile(m, o2), sk.ctx, sk.relin); }, "encrypted inference: the keys were made for other parameters than this model's plan");
  // Too many images for a batch.
  const he::Client client(plan, ck.ctx, ck.secret);
  std::vector<float> many(static_cast<std::size_t>(m.input.size()) * (plan.batch_size() + 1), 0.5f);
  expect_error_mentioning([&] { client.encrypt(many.data(), plan.batch_size() + 1); }, "client: a batch holds 1 to 1024 images; got 1025");
}
