// Key bundles in memory (he/keys.h) and sessions (he/session.h) at small insecure parameters: the
// byte format round trip, what a public bundle holds, every malformed or oversized bundle refused
// with a clear message before anything is allocated, the key directory as one way to store a
// bundle, and a session built from a public bundle running a query.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <random>
#include <sstream>

#include "common/error.h"
#include "he/keys.h"
#include "he/runtime.h"
#include "he/session.h"
#include "nn/forward.h"
#include "test_util.h"

using namespace hecnn;
using test::expect_error_mentioning;

namespace {

// conv 2x3x3 valid, square, flatten, dense 3 on 6 x 6 inputs.
nn::Model tiny_model(int side = 6) {
  const nlohmann::json arch = {{"input", {1, side, side}},
                               {"layers",
                                {{{"type", "conv2d"}, {"filters", 2}, {"kernel", 3}, {"stride", 1}, {"padding", "valid"}},
                                 {{"type", "activation"}, {"fn", "square"}},
                                 {{"type", "flatten"}},
                                 {{"type", "dense"}, {"units", 3}}}}};
  nn::Model m = nn::Model::from_architecture(arch);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  nn::Shape in = m.input;
  const auto shapes = m.shapes(false);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [name, shape] : nn::Model::expected_params(m.layers[i], in)) {
      nn::Tensor t(shape);
      for (auto& v : t.data) v = d(rng);
      m.layers[i].params[name] = std::move(t);
    }
    in = shapes[i];
  }
  m.validate();
  return m;
}

he::HePlan plan_of(const nn::Model& m, he::Layout layout) {
  he::CompileOptions o;
  o.log_n = 11;
  o.scale_bits = 36;
  o.allow_insecure = true;
  return he::compile(m, o, layout);
}

std::string bytes_of(const SecretBuffer& b) { return std::string(b.data(), b.size()); }

he::KeyBundle parse(const std::string& b, he::SecretPart secret = he::SecretPart::Optional, std::uint64_t max = std::uint64_t{1} << 36) {
  he::KeyReadOptions o;
  o.secret = secret;
  o.max_bytes = max;
  return he::KeyBundle::from_bytes(b.data(), b.size(), o);
}

// The u64 length of part `index` in the table (after magic, version, json length, count).
std::size_t length_offset(std::size_t index) { return 4 + 2 + 4 + 1 + index * 9 + 1; }

}  // namespace

TEST(KeyBundle, BytesRoundTripAndThePublicFormHoldsNoSecret) {
  const nn::Model m = tiny_model();
  const he::HePlan plan = plan_of(m, he::Layout::Packed);
  const he::KeyBundle keys = he::KeyBundle::generate(plan, "tiny");
  ASSERT_TRUE(keys.has_secret());
  ASSERT_TRUE(keys.public_key().has_value());
  EXPECT_NE(keys.evaluation_keys().galois.params_id, 0u);  // packed: rotations

  const std::string full = bytes_of(*keys.to_bytes());
  const he::KeyBundle back = parse(full, he::SecretPart::Require);
  EXPECT_EQ(back.info().key_id, keys.info().key_id);
  EXPECT_EQ(back.info().spec.to_json(), keys.info().spec.to_json());
  EXPECT_EQ(back.params().id(), keys.params().id());
  EXPECT_EQ(back.secret_key().ntt, keys.secret_key().ntt);
  EXPECT_EQ(bytes_of(*back.to_bytes()), full);  // the same bytes again

  // Through a stream, and the stream is read to the bundle's end only.
  std::stringstream ss;
  keys.save(ss);
  ss << "after";
  const he::KeyBundle streamed = he::KeyBundle::load(ss, {});
  EXPECT_EQ(bytes_of(*streamed.to_bytes()), full);
  std::string rest;
  ss >> rest;
  EXPECT_EQ(rest, "after");

  // The public form: no secret key, and a reader that refuses secrets takes it.
  const std::string pub = keys.public_bytes();
  EXPECT_LT(pub.size(), full.size());
  EXPECT_EQ(bytes_of(*keys.public_bundle().to_bytes()), pub);
  const he::KeyBundle server = parse(pub, he::SecretPart::Refuse);
  EXPECT_FALSE(server.has_secret());
  expect_error_mentioning([&] { (void)server.secret_key(); }, "no secret key");
  // The secret key's bytes are nowhere in it.
  std::ostringstream sk;
  ckks::save(sk, *keys.context(), keys.secret_key());
  const std::string secret = sk.str();
  EXPECT_EQ(pub.find(secret.substr(secret.size() / 2, 32)), std::string::npos);
  expect_error_mentioning([&] { parse(full, he::SecretPart::Refuse); }, "secret.key): a secret key, which is never taken here");
  expect_error_mentioning([&] { parse(pub, he::SecretPart::Require); }, "secret.key): missing");
}

TEST(KeyBundle, MalformedBundlesAreRefusedBeforeAllocating) {
  const he::KeyBundle keys = he::KeyBundle::generate(plan_of(tiny_model(), he::Layout::Batch), "tiny");
  const std::string good = keys.public_bytes();
  ASSERT_NO_THROW(parse(good));
  expect_error_mentioning([&] { parse(""); }, "not a hecnn key bundle");
  expect_error_mentioning([&] { parse("HCNQ" + good.substr(4)); }, "not a hecnn key bundle");
  expect_error_mentioning([&] { parse(good.substr(0, 20)); }, "truncated");
  expect_error_mentioning([&] { parse(good.substr(0, good.size() - 1)); }, "truncated");
  expect_error_mentioning([&] { parse(good + "x"); }, "unexpected data after the key bundle");
  // A version from the future; an edited keys.json (the header checksum covers it).
  std::string v = good;
  v[4] = 9;
  expect_error_mentioning([&] { parse(v); }, "format version 9 is not supported");
  std::string edited = good;
  const auto at = edited.find("\"batch_size\"");
  ASSERT_NE(at, std::string::npos);
  edited[at + 1] = 'B';
  expect_error_mentioning([&] { parse(edited); }, "checksum mismatch");
  // A part declared at 2^60 bytes: refused from the table (no allocation; checked before the
  // checksum, so even a forger gains nothing).
  std::string huge = good;
  const std::uint64_t big = std::uint64_t{1} << 60;
  std::memcpy(huge.data() + length_offset(0), &big, 8);
  expect_error_mentioning([&] { parse(huge); }, "larger than the limit");
  expect_error_mentioning([&] { parse(good, he::SecretPart::Optional, good.size() / 2); }, "larger than the limit");
  // A corrupted key: the ckks loader's checksum, named by part.
  std::string corrupt = good;
  corrupt[corrupt.size() - 100] ^= 0x10;
  expect_error_mentioning([&] { parse(corrupt); }, "key bundle (relin.key)");
  // Parts of another key generation (same parameters): a mixture is refused.
  const he::KeyBundle other = he::KeyBundle::generate(plan_of(tiny_model(), he::Layout::Batch), "tiny");
  const std::string theirs = other.public_bytes();
  // keys.json and the table of `good`, the parts of `other`: same sizes, other key ids.
  const std::string mixed = good.substr(0, good.find("HCKS")) + theirs.substr(theirs.find("HCKS"));
  ASSERT_EQ(mixed.size(), good.size());
  expect_error_mentioning([&] { parse(mixed); }, "come from different key generations");
}

TEST(KeyBundle, KeyDirectoryStoresABundle) {
  test::TempDir t;
  const he::KeyBundle keys = he::KeyBundle::generate(plan_of(tiny_model(), he::Layout::Packed), "tiny");
  const he::KeyFiles f = keys.save_directory(t.file("k"));
  EXPECT_GT(f.public_bytes, 0u);
  EXPECT_GT(f.galois_bytes, 0u);
  struct stat st {};
  ASSERT_EQ(::stat(t.file("k/secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(t.file("k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  he::KeyReadOptions o;
  o.secret = he::SecretPart::Require;
  const he::KeyBundle back = he::KeyBundle::load_directory(t.file("k"), o);
  EXPECT_EQ(bytes_of(*back.to_bytes()), bytes_of(*keys.to_bytes()));
  // A server reading the directory never opens secret.key, even an unreadable one.
  ::chmod(t.file("k/secret.key").c_str(), 0);
  o.secret = he::SecretPart::Ignore;
  const he::KeyBundle pub = he::KeyBundle::load_directory(t.file("k"), o);
  EXPECT_FALSE(pub.has_secret());
  EXPECT_EQ(pub.public_bytes(), keys.public_bytes());
  o.max_bytes = 1000;
  expect_error_mentioning([&] { he::KeyBundle::load_directory(t.file("k"), o); }, "larger than the limit of 1000 bytes");
  expect_error_mentioning([&] { keys.save_directory(t.file("k")); }, "not empty");
}

TEST(Session, RunsAQueryFromAPublicBundleAndRefusesSecretsAndOtherModels) {
  const nn::Model m = tiny_model();
  const he::KeyBundle keys = he::KeyBundle::generate(plan_of(m, he::Layout::Batch), "tiny");
  expect_error_mentioning([&] { he::Session s(m, keys); }, "never a secret key");
  he::Session s(m, he::KeyBundle::from_bytes(keys.public_bytes().data(), keys.public_bytes().size()));
  EXPECT_GT(s.standing_bytes(), 0u);
  EXPECT_GT(s.query_bytes(), 0u);
  expect_error_mentioning([&] { s.engine(); }, "not built yet");
  s.start();
  const auto client = he::make_client(keys.info().spec, keys.context(), keys.secret_key());
  std::vector<float> images(2 * 36);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(i % 7) / 7.0f;
  const auto logits = client->decrypt(s.engine().run(client->encrypt(images.data(), 2)), 2);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto want = nn::forward(m, images.data() + i * 36);
    for (std::size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(logits[i][j], want[j], 1e-3);
  }
  // Keys made for another model (7 x 7 inputs) do not fit this one.
  const he::KeyBundle other = he::KeyBundle::generate(plan_of(tiny_model(7), he::Layout::Batch), "other");
  expect_error_mentioning([&] { he::Session x(m, other.public_bundle()); }, "made for another model");
}

namespace hecnn {
namespace {

TEST(Session, SessionsOfOneModelAndParametersShareTheEncodedWeights) {
  const nn::Model m = tiny_model();
  const he::HePlan plan = plan_of(m, he::Layout::Packed);
  const he::KeyBundle a = he::KeyBundle::generate(plan, "tiny"), b = he::KeyBundle::generate(plan, "tiny");
  he::WeightCache cache;
  he::SessionOptions so;
  so.weights = &cache;
  so.model_key = "tiny";
  he::Session s1(m, a.public_bundle(), so), s2(m, b.public_bundle(), so);
  ASSERT_GT(s1.weight_bytes(), 0u);
  EXPECT_EQ(s1.weights_key(), s2.weights_key());
  s1.start();
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_EQ(cache.bytes(), s1.weight_bytes());  // what the memory plan counts is what is held
  EXPECT_TRUE(cache.holds(s1.weights_key()));
  s2.start();
  ASSERT_NE(s1.engine_state(), nullptr);
  EXPECT_EQ(s1.engine_state().get(), s2.engine_state().get()) << "the second session encoded its own weights";
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_EQ(cache.bytes(), s1.weight_bytes());  // one copy for both
  // Both answer with their own keys.
  for (const he::KeyBundle* k : {&a, &b}) {
    he::Session& s = k == &a ? s1 : s2;
    const auto client = he::make_client(k->info().spec, k->context(), k->secret_key());
    std::vector<float> image(36);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 5) / 5.0f;
    const auto logits = client->decrypt(s.engine().run(client->encrypt(image.data(), 1)), 1);
    const auto want = nn::forward(m, image.data());
    for (std::size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(logits[0][j], want[j], 1e-3);
  }
  // Another model's sessions (other parameters or layout) get their own.
  he::SessionOptions other = so;
  other.model_key = "tiny-2";
  he::Session s3(m, a.public_bundle(), other);
  s3.start();
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_NE(s3.engine_state().get(), s1.engine_state().get());
  EXPECT_EQ(cache.bytes(), 2 * s1.weight_bytes());
  // The batch layout shares its sparse matrices and schedule the same way.
  const he::HePlan bplan = plan_of(m, he::Layout::Batch);
  const he::KeyBundle c = he::KeyBundle::generate(bplan, "tiny"), d = he::KeyBundle::generate(bplan, "tiny");
  he::Session b1(m, c.public_bundle(), so), b2(m, d.public_bundle(), so);
  b1.start();
  b2.start();
  ASSERT_NE(b1.engine_state(), nullptr);
  EXPECT_EQ(b1.engine_state().get(), b2.engine_state().get());
  EXPECT_EQ(cache.entries(), 3u);
  const auto client = he::make_client(d.info().spec, d.context(), d.secret_key());
  std::vector<float> image(36, 0.25f);
  const auto logits = client->decrypt(b2.engine().run(client->encrypt(image.data(), 1)), 1);
  const auto want = nn::forward(m, image.data());
  for (std::size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(logits[0][j], want[j], 1e-3);
}

}  // namespace
}  // namespace hecnn
