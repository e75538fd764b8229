// Encrypted inference at small, explicitly insecure parameters: every layer type and option
// against the plaintext model and the compiled simulation; the file-based client/server round
// trip; and the bad-input cases (wrong keys, other parameters, truncated query, shape mismatch).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "he_test_util.h"
#include "test_util.h"
#include "he/batch/engine.h"
#include "he/packed/engine.h"
#include "he/memory.h"
#include "he/runtime.h"
#include "he/files.h"
#include "ring/aligned.h"
#include "ring/primes.h"
#include "common/threads.h"
#include "nn/forward.h"

using namespace hecnn;
namespace fs = std::filesystem;

using namespace hecnn::he_test;

namespace {

// Encrypts `count` random images (at most a query's worth), runs the plan, and compares with the
// compiled simulation and the plaintext model.
void check_plan(const nn::Model& m, const he::HePlan& plan, std::size_t count, const std::string& what, double tol,
                std::size_t plaintext_budget = static_cast<std::size_t>(-1)) {
  count = std::min(count, plan.batch_size());
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  he::EvaluationKeys keys;
  keys.relin = keygen.create_relin_keys();
  if (!plan.keys.rotations.empty()) keys.galois = he::make_rotation_keys(keygen, plan.keys);
  const auto client = he::make_client(plan.client_spec(), ctx, keygen.secret_key());
  const auto engine = he::make_engine(plan, ctx, keys, plaintext_budget);
  const std::vector<float> images = random_images(m.input, count, 7);
  const auto out = client->decrypt(engine->run(client->encrypt(images.data(), count)), count);
  double worst = 0, scale = 0;
  for (std::size_t b = 0; b < count; ++b) {
    const float* img = images.data() + b * static_cast<std::size_t>(m.input.size());
    const auto plain = nn::forward(m, img);
    const auto sim = he::simulate(plan.program, img);
    ASSERT_EQ(out[b].size(), plain.size()) << what;
    for (std::size_t k = 0; k < plain.size(); ++k) {
      EXPECT_NEAR(sim[k], plain[k], 1e-6 * (1 + std::fabs(plain[k]))) << what << ": simulation vs model";
      worst = std::max(worst, std::fabs(out[b][k] - plain[k]));
      scale = std::max(scale, std::fabs(plain[k]));
    }
  }
  EXPECT_LE(worst, tol * std::max(1.0, scale)) << what << ": encrypted vs plaintext (largest output " << scale << ")";
  std::printf("  %-7s %-46s depth %2d, %4zu image(s), max |encrypted - plaintext| %.2e (outputs up to %.2f)\n",
              he::to_string(plan.layout).c_str(), what.c_str(), plan.program.depth, count, worst, scale);
}

// Both layouts.
void check_network(const nn::Model& m, std::size_t count, const std::string& what, double tol = 1e-3) {
  check_plan(m, he::compile(m, small_insecure(), he::Layout::Batch), count, what, tol);
  check_plan(m, he::compile(m, small_insecure(), he::Layout::Packed), count, what, tol);
}

// The packed layout with a fixed block and number of input copies.
void check_packed(const nn::Model& m, std::size_t block, std::size_t copies, std::size_t count, const std::string& what,
                  double tol = 1e-3) {
  he::HePlan plan = he::compile(m, small_insecure(), he::Layout::Packed);
  auto pp = std::make_shared<he::packed::PackedProgram>(he::packed::lower(plan.program, plan.params->max_slots(), block, copies));
  plan.keys = he::packed::key_requirements(plan.program, *pp, plan.params->max_level());
  plan.lowered = pp;
  ASSERT_EQ(pp->block, block);
  ASSERT_EQ(pp->input().copies, copies);
  check_plan(m, plan, count, what + " (block " + std::to_string(block) + ", " + std::to_string(copies) + " copies)", tol);
}


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

TEST(HeLayers, GlobalAvgPool) {
  // PP-CNN's --gap ending on a non-square plane (pool 2x2, then the whole 3x4 plane): the 1/4 and
  // the 1/12 fold into the dense layer.
  check_network(with_random_params({{"input", {2, 6, 8}},
                                    {"layers", {conv(3, 3, 1, "same"), bn, act("square"), pool(2), gap, dense(4)}}},
                                   8),
                8, "conv same, square, avgpool, GAP 3x4, dense");
  // Directly after an activation (the MNIST --gap ending), non-square 4x3.
  check_network(with_random_params({{"input", {1, 9, 7}},
                                    {"layers", {conv(4, 3, 2, "valid"), bn, act("swish:deg4:range4"), gap, dense(3)}}},
                                   9),
                8, "conv valid s2, swish, GAP 4x3, dense");
  // Last: the 1/25 becomes the output factor.
  check_network(with_random_params({{"input", {1, 7, 7}},
                                    {"layers", {conv(3, 3, 1, "valid"), bn, act("swish:deg4:range4"), conv(2, 1, 1, "valid"), gap}}},
                                   10),
                8, "conv, swish, conv 1x1, GAP 5x5 last");
}

TEST(HeGraph, ResidualNetworkInBothLayouts) {
  const nn::Model m = small_resnet("square");
  const he::Program prog = he::compile_program(m);
  EXPECT_FALSE(prog.is_chain());
  std::size_t adds = 0;
  for (const auto& st : prog.stages) adds += st.kind() == he::StageKind::Add;
  EXPECT_EQ(adds, 2u);
  // conv 1, square 2 (not monic: an Add reads it), (conv 1, square 1 (monic), conv 1 | identity), add,
  // square 1 (monic: two convolutions read it), (conv 1, square 1, conv 1 | 1x1 conv 1), add, square 1,
  // dense 1: the shortcut branches run at a higher level and are dropped to the sum's.
  EXPECT_EQ(prog.depth, 12) << he::describe_stages(prog, prog.depth, "ciphertexts");
  const std::string d = he::describe_stages(prog, prog.depth, "ciphertexts");
  EXPECT_NE(d.find("a graph: each stage lists the stages it reads"), std::string::npos) << d;
  EXPECT_NE(d.find("add "), std::string::npos) << d;
  check_network(m, 4, "small ResNet (identity and 1x1 shortcuts)");
}

TEST(HeGraph, ValuesReadTwiceAndInputNormalizationWithPadding) {
  // An activation's input also read by an Add (copied, not consumed), and a swish polynomial.
  const nn::Model m = with_random_params(
      {{"input", {1, 6, 6}},
       {"layers",
        {bn, {{"type", "conv2d"}, {"filters", 2}, {"kernel", 3}, {"stride", 1}, {"padding", {1, 1, 1, 1}}},
         act("swish:deg4:range4"), {{"type", "add"}, {"inputs", {1, 2}}}, flat, dense(3)}}},
      22);
  check_network(m, 4, "conv, swish, add of both (value read twice)");
}

TEST(HePacked, CopiesAndBlocks) {
  // One network under several forced layouts: plain, replicated input with partitioned outputs,
  // more copies, and several images per ciphertext.
  const nn::Model m = with_random_params({{"input", {1, 12, 12}},
                                          {"layers",
                                           {conv(4, 5, 2, "valid"), bn, act("swish:deg4:range4"), conv(6, 3, 1, "same"), bn,
                                            act("swish:deg4:range4"), flat, dense(5)}}},
                                         11);
  check_packed(m, 256, 1, 4, "conv s2, conv same, dense");
  check_packed(m, 512, 2, 2, "conv s2, conv same, dense");
  check_packed(m, 1024, 4, 1, "conv s2, conv same, dense");
  // Replicated through two convolutions (the first's output feeds another convolution).
  const nn::Model three = with_random_params({{"input", {1, 8, 8}},
                                              {"layers",
                                               {conv(3, 3, 1, "same"), bn, act("square"), conv(3, 3, 1, "same"), bn, act("square"),
                                                conv(5, 3, 2, "valid"), flat, dense(2)}}},
                                             12);
  check_packed(three, 256, 2, 4, "three convolutions");
  check_packed(three, 1024, 8, 1, "three convolutions");
}

TEST(HePacked, ChannelsAcrossCiphertextsAndKernels) {
  // 12 x 10 x 10 = 1200 values: more than the 1024 slots; 7 and 3 channels divide nothing.
  const nn::Model wide = with_random_params({{"input", {3, 10, 10}},
                                             {"layers",
                                              {conv(12, 3, 1, "same"), bn, act("swish:deg4:range4"), pool(2), conv(7, 3, 1, "valid"),
                                               bn, act("square"), flat, dense(4)}}},
                                            13);
  const he::HePlan plan = he::compile(wide, small_insecure(), he::Layout::Packed);
  EXPECT_GE(he::packed::program_of(plan).stages[0].out.cts, 2u);
  check_network(wide, 2, "12 channels over 2 ciphertexts, pool, conv 7");
  // Kernels 1x1, 2x2 and 4x4, stride 2 with even kernels.
  check_network(with_random_params({{"input", {2, 9, 9}},
                                    {"layers",
                                     {conv(3, 1, 1, "valid"), bn, act("square"), conv(4, 2, 2, "valid"), bn, act("square"),
                                      conv(2, 4, 1, "same"), flat, dense(3)}}},
                                   14),
                4, "kernels 1x1, 2x2 s2, 4x4 same");
}

TEST(HePacked, DenseNetworks) {
  // Dense -> activation -> dense: the folded partial sums of the first feed the polynomial.
  check_network(with_random_params({{"input", {1, 4, 4}}, {"layers", {flat, dense(6), bn, act("swish:deg4:range4"), dense(3)}}}, 15),
                16, "dense, swish, dense (folded outputs)");
  // 40 outputs of 64 slots: no fold.
  check_network(with_random_params({{"input", {1, 8, 8}}, {"layers", {flat, dense(40), bn, act("square"), dense(3)}}}, 16), 8,
                "dense 64 -> 40 (no fold), square, dense");
}

TEST(HePacked, BadInputs) {
  const nn::Model m = with_random_params({{"input", {1, 6, 6}}, {"layers", {conv(2, 3, 1, "valid"), bn, act("square"), flat, dense(3)}}}, 17);
  const he::HePlan plan = he::compile(m, small_insecure(), he::Layout::Packed);
  ASSERT_FALSE(plan.keys.rotations.empty());
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  he::EvaluationKeys keys;
  keys.relin = keygen.create_relin_keys();
  // Rotation keys missing, then one step short.
  expect_error_mentioning([&] { he::make_engine(plan, ctx, keys); }, "rotation keys are missing");
  std::vector<int> fewer(plan.keys.rotations.begin() + 1, plan.keys.rotations.end());
  keys.galois = keygen.create_galois_keys(fewer, false);
  expect_error_mentioning([&] { he::make_engine(plan, ctx, keys); }, "no rotation key for step " + std::to_string(plan.keys.rotations[0]));
  // Keys kept below the level a step is used at.
  std::vector<std::size_t> lower(plan.keys.rotations.size(), 0);
  keys.galois = keygen.create_galois_keys(plan.keys.rotations, lower);
  expect_error_mentioning([&] { he::make_engine(plan, ctx, keys); }, "was kept up to level 0, the plan uses it at level");
  keys.galois = he::make_rotation_keys(keygen, plan.keys);
  const auto engine = he::make_engine(plan, ctx, keys);
  const he::ClientSpec spec = plan.client_spec();
  const auto client = he::make_client(spec, ctx, keygen.secret_key());
  std::vector<float> images(static_cast<std::size_t>(m.input.size()) * (spec.batch_size + 1), 0.5f);
  expect_error_mentioning([&] { client->encrypt(images.data(), spec.batch_size + 1); },
                          "a packed query holds 1 to " + std::to_string(spec.batch_size) + " images");
  expect_error_mentioning([&] { client->encrypt(images.data(), 0); }, "a packed query holds 1 to");
  // Too many ciphertexts, mixed levels.
  auto q = client->encrypt(images.data(), 1);
  auto two = q;
  two.push_back(q[0]);
  expect_error_mentioning([&] { engine->run(two); }, "takes 1 input ciphertext(s) per image group, the query has 2");
  auto low = q;
  ckks::Evaluator(ctx).drop_to_level_inplace(low[0], low[0].level() - 1);
  expect_error_mentioning([&] { engine->run(low); }, "the plan starts at");
  expect_error_mentioning([&] { client->decrypt(two, 1); }, "the result holds 2 ciphertexts, the packed layout has 1");
  // A batch client cannot take a packed specification, and the reverse.
  expect_error_mentioning([&] { he::batch::Client(spec, ctx, keygen.secret_key()); }, "not for the batch layout");
  // Specifications with a block that is not a power of two, or output slots outside the block.
  nlohmann::json j = spec.to_json();
  j["block"] = 96;
  expect_error_mentioning([&] { he::ClientSpec::from_json(j); }, "'block' must be a power of two");
  j = spec.to_json();
  j["output_slots"][0][1] = spec.block;
  expect_error_mentioning([&] { he::ClientSpec::from_json(j); }, "'output_slots'");
  j = spec.to_json();
  j["output_slots"].erase(0);
  expect_error_mentioning([&] { he::ClientSpec::from_json(j); }, "one [ciphertext, slot] per output");
  EXPECT_EQ(he::ClientSpec::from_json(spec.to_json()), spec);
}

TEST(HeMemory, SizesAndEstimates) {
  EXPECT_EQ(he::parse_memory_size("8G", "x"), std::size_t{8} << 30);
  EXPECT_EQ(he::parse_memory_size("512m", "x"), std::size_t{512} << 20);
  EXPECT_EQ(he::parse_memory_size("1.5GiB", "x"), std::size_t{3} << 29);
  EXPECT_EQ(he::parse_memory_size("67108864", "x"), std::size_t{64} << 20);
  for (const std::string bad : {"", "G", "-1G", "1X", "1K", "2P", "nanG", "1e400G", " 8G"}) {
    expect_error_mentioning([&] { he::parse_memory_size(bad, "--memory-limit"); }, "--memory-limit: '" + bad + "' is not a memory size");
  }
  const nn::Model m = with_random_params({{"input", {1, 12, 12}},
                                          {"layers", {conv(4, 5, 2, "valid"), bn, act("square"), conv(6, 3, 1, "same"), flat, dense(5)}}},
                                         18);
  const he::HePlan batch = he::compile(m, small_insecure(), he::Layout::Batch);
  const he::HePlan packed = he::compile(m, small_insecure(), he::Layout::Packed);
  const auto b = he::estimate_memory(batch, 2, 0, false);
  ASSERT_EQ(b.stages.size(), batch.program.stages.size() + 1);  // the query, then every stage's values held at the peak
  EXPECT_TRUE(b.held_at_peak);
  // A server holds the whole query (144 ciphertexts at the top level) until the schedule reads it.
  EXPECT_GE(b.ciphertexts, 144 * he::ciphertext_bytes(*batch.params, batch.params->max_level()));
  // Encrypted as taken, in tiles of one position, it holds less; whole planes (the unstreamed
  // order) hold more.
  EXPECT_LT(he::estimate_memory(batch, 2, 0, true, 1).ciphertexts, he::estimate_memory(batch, 2, 0, false, 1).ciphertexts);
  EXPECT_GT(he::estimate_memory(batch, 2, 0, false, he::batch::kMaxTile).ciphertexts, b.ciphertexts);
  EXPECT_EQ(b.total(), b.keys + b.plaintexts + b.ciphertexts + b.tables + b.process);
  // Packed: the diagonals are encoded once only within the budget.
  const auto all = he::estimate_memory(packed, 2, static_cast<std::size_t>(-1), false);
  const auto none = he::estimate_memory(packed, 2, 0, false);
  EXPECT_GT(all.plaintexts, 0u);
  EXPECT_EQ(none.plaintexts, 0u);
  EXPECT_EQ(std::count(all.preencoded.begin(), all.preencoded.end(), true), 2);  // conv; conv + dense merged
  EXPECT_EQ(std::count(none.preencoded.begin(), none.preencoded.end(), true), 0);
  EXPECT_GE(all.keys, he::rotation_keys_bytes(*packed.params, packed.keys, false));
  EXPECT_LT(he::rotation_keys_bytes(*packed.params, packed.keys, false),
            packed.keys.rotations.size() * he::relin_key_bytes(*packed.params, false));  // kept below the top level
  // The engine with no budget encodes at every run and gives the same results.
  check_plan(m, packed, 2, "diagonals encoded at every run", 1e-3, 0);
}

namespace {

// The CIFAR-10 shape in small: same-padded 3x3 convolutions, activations and 2x2 poolings.
nn::Model small_streaming_network() {
  return with_random_params({{"input", {2, 12, 12}},
                             {"layers",
                              {conv(4, 3, 1, "same"), bn, act("swish:deg4:range4"), pool(2), conv(6, 3, 1, "same"), bn,
                               act("swish:deg4:range4"), pool(2), flat, dense(5)}}},
                            21);
}

struct Encrypted {
  he::HePlan plan;
  ckks::ContextPtr ctx;
  std::unique_ptr<ckks::KeyGenerator> keygen;
  he::EvaluationKeys keys;
  std::unique_ptr<he::InferenceClient> client;
  std::vector<ckks::Ciphertext> query;
};

std::unique_ptr<Encrypted> encrypt_random(const nn::Model& m, std::size_t count) {
  auto e = std::make_unique<Encrypted>();
  e->plan = he::compile(m, small_insecure(), he::Layout::Batch);
  e->ctx = ckks::CkksContext::create(*e->plan.params);
  e->keygen = std::make_unique<ckks::KeyGenerator>(e->ctx);
  e->keys.relin = e->keygen->create_relin_keys();
  e->client = he::make_client(e->plan.client_spec(), e->ctx, e->keygen->secret_key());
  const std::vector<float> images = random_images(m.input, count, 5);
  e->query = e->client->encrypt(images.data(), count);
  return e;
}

bool same_words(const std::vector<ckks::Ciphertext>& a, const std::vector<ckks::Ciphertext>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].level() != b[i].level() || a[i].size() != b[i].size() || a[i].scale() != b[i].scale()) return false;
    if (std::memcmp(a[i].poly(0), b[i].poly(0), a[i].word_count() * sizeof(std::uint64_t)) != 0) return false;
  }
  return true;
}

// Hands out a query, then fails after `fail_after` requests.
class FailingSource : public he::QuerySource {
 public:
  FailingSource(std::vector<ckks::Ciphertext> v, std::size_t fail_after) : v_(std::move(v)), left_(fail_after) {}
  std::size_t size() const override { return v_.size(); }
  void take(const std::vector<std::uint32_t>& idx, std::vector<ckks::Ciphertext>& out) override {
    if (left_-- == 0) throw Error("the test's source fails here");
    for (std::size_t k = 0; k < idx.size(); ++k) out[k] = v_[idx[k]];
  }

 private:
  std::vector<ckks::Ciphertext> v_;
  std::size_t left_;
};

}  // namespace

TEST(HeStream, TilesGiveTheSameCiphertextsAsWholeStages) {
  const nn::Model m = small_streaming_network();
  const auto e = encrypt_random(m, 16);
  he::EngineOptions whole;
  whole.tile = he::batch::kMaxTile;
  const he::batch::Engine reference(e->plan, e->ctx, e->keys, whole);
  EXPECT_EQ(reference.schedule().steps.size(), e->plan.program.stages.size() + 1);  // one step per stage and the query
  const auto expected = reference.run(e->query);
  // The decrypted outputs are those of the plaintext model.
  const std::vector<float> images = random_images(m.input, 16, 5);
  const auto got = e->client->decrypt(expected, 16);
  for (std::size_t b = 0; b < 16; ++b) {
    const auto plain = nn::forward(m, images.data() + b * static_cast<std::size_t>(m.input.size()));
    for (std::size_t k = 0; k < plain.size(); ++k) EXPECT_NEAR(got[b][k], plain[k], 1e-3 * (1 + std::fabs(plain[k])));
  }
  for (int tile : {1, 2, 3, 5, he::batch::kAutoTile}) {
    he::EngineOptions o;
    o.tile = tile;
    const he::batch::Engine engine(e->plan, e->ctx, e->keys, o);
    EXPECT_GT(engine.schedule().steps.size(), e->plan.program.stages.size() + 1) << "tile " << tile;
    EXPECT_TRUE(same_words(engine.run(e->query), expected)) << "tile " << tile << ": the ciphertexts differ";
  }
}

TEST(HeStream, MemoryPredictionWithin20PercentOfTheMeasuredPeak) {
  const nn::Model m = small_streaming_network();
  const auto e = encrypt_random(m, 8);
  for (int tile : {1, 2, he::batch::kMaxTile}) {
    he::EngineOptions o;
    o.tile = tile;
    const he::batch::Engine engine(e->plan, e->ctx, e->keys, o);
    auto query = e->query;
    // Measured: polynomial storage above what was allocated before the run, the query included.
    const std::size_t before = ring::aligned_bytes_in_use() - [&] {
      std::size_t q = 0;
      for (const auto& c : query) q += c.word_count() * sizeof(std::uint64_t);
      return q;
    }();
    ring::reset_aligned_peak();
    const auto out = engine.run(std::move(query));
    const double measured = static_cast<double>(ring::aligned_bytes_peak() - before);
    const he::MemoryEstimate est = he::estimate_memory(e->plan, hecnn::num_threads(), 0, false, tile);
    // The estimate adds 1/8 for the allocator's fragmentation, which polynomial storage does not see.
    const double predicted = static_cast<double>(est.ciphertexts) / 1.125;
    std::printf("  tile %4d: predicted %.2f MiB of ciphertexts, measured %.2f MiB\n", tile, predicted / (1 << 20), measured / (1 << 20));
    EXPECT_LE(std::fabs(predicted - measured), 0.2 * measured) << "tile " << tile;
  }
}

TEST(HeStream, SpillFilesAreRemovedAfterSuccessAndAfterAnError) {
  const nn::Model m = small_streaming_network();
  const auto e = encrypt_random(m, 8);
  const TempDir dir;
  const std::string spill = dir / "spill";
  fs::create_directories(spill);
  he::EngineOptions plain;
  plain.tile = 1;
  const auto expected = he::batch::Engine(e->plan, e->ctx, e->keys, plain).run(e->query);
  he::EngineOptions o = plain;
  o.spill_dir = spill;
  o.resident_bytes = 4 * he::ciphertext_bytes(*e->plan.params, e->plan.params->max_level());
  const he::batch::Engine engine(e->plan, e->ctx, e->keys, o);
  EXPECT_TRUE(same_words(engine.run(e->query), expected));
  EXPECT_GT(engine.spilled_bytes(), 0u);
  EXPECT_TRUE(fs::is_empty(spill));
  FailingSource failing(e->query, 10);
  expect_error_mentioning([&] { engine.run(failing); }, "the test's source fails here");
  EXPECT_TRUE(fs::is_empty(spill));
  // A spill directory that is not one.
  o.spill_dir = dir / "missing";
  expect_error_mentioning([&] { he::batch::Engine(e->plan, e->ctx, e->keys, o); }, "is not a directory");
}

TEST(HeCompile, GlobalAvgPoolStages) {
  const nn::Model m = with_random_params(
      {{"input", {2, 6, 8}}, {"layers", {conv(3, 3, 1, "same"), bn, act("square"), pool(2), gap, dense(4)}}}, 8);
  const he::Program prog = he::compile_program(m);
  ASSERT_EQ(prog.stages.size(), 5u);
  EXPECT_EQ(prog.depth, 1 + 1 + 1);  // conv, square (monic: one level), dense
  const he::SumPoolOp& p = prog.stages[2].pool();
  EXPECT_EQ(p.pool_h, 2);
  EXPECT_EQ(p.stride_w, 2);
  EXPECT_FALSE(p.global);
  const he::SumPoolOp& g = prog.stages[3].pool();
  EXPECT_EQ(prog.stages[3].in, (nn::Shape{3, 3, 4}));
  EXPECT_EQ(prog.stages[3].out, (nn::Shape{3, 1, 1}));
  EXPECT_EQ(g.pool_h, 3);
  EXPECT_EQ(g.pool_w, 4);
  EXPECT_EQ(g.window(), 12);
  EXPECT_TRUE(g.global);
  EXPECT_EQ(prog.output_factor, 1.0);
  const std::string d = he::describe_stages(prog, prog.depth, "ciphertexts");  // names after BN folding
  EXPECT_NE(d.find("sum-pool   avgpool2d2: 2x2 (1/4 folded forward)"), std::string::npos) << d;
  EXPECT_NE(d.find("sum-pool   globalavgpool2d3: 3x4 global (1/12 folded forward)"), std::string::npos) << d;
  // A trailing global pooling leaves its factor to the client.
  const nn::Model last = with_random_params({{"input", {1, 7, 5}}, {"layers", {conv(2, 3, 1, "valid"), gap}}}, 1);
  EXPECT_DOUBLE_EQ(he::compile_program(last).output_factor, 1.0 / 15);
  // An activation cannot take the pooled sums.
  nlohmann::json bad = {{"input", {1, 6, 6}}, {"layers", {conv(2, 3, 1, "valid"), gap, act("square"), dense(2)}}};
  expect_error_mentioning([&] { he::compile_program(with_random_params(bad, 1)); },
                          "reads a normalized or scaled value (batch normalization, a monic activation or an average pooling");
}

TEST(HeCompile, Plan) {
  const nn::Model m = with_random_params(
      {{"input", {1, 28, 28}}, {"layers", {conv(5, 5, 2, "valid"), bn, act("swish:deg4:range4"), conv(50, 5, 2, "valid"), bn,
                                           act("swish:deg4:range4"), flat, dense(10)}}},
      5);
  const he::HePlan plan = he::compile(m);  // default: secure parameters
  EXPECT_EQ(plan.program.depth, 7);  // conv 1 + activation 2 (monic) + conv 1 + activation 2 + dense 1
  EXPECT_FALSE(plan.params->insecure());
  EXPECT_LE(plan.params->total_bits(), 438);
  EXPECT_EQ(plan.params->poly_degree(), 16384u);
  EXPECT_TRUE(plan.program.stages[1].activation().relinearize_output);
  EXPECT_FALSE(plan.program.stages[3].activation().relinearize_output);  // 800 -> 10: relinearize the 10 sums
  he::CompileOptions o;
  o.log_n = 13;
  expect_error_mentioning([&] { he::compile(m, o); }, "compile: no secure parameters for 7 levels at the requested scale; tried N=8192");  // 7 levels do not fit N = 8192 securely
  nlohmann::json exact = {{"input", {1, 4, 4}}, {"layers", {flat, dense(3), act("relu"), dense(2)}}};
  expect_error_mentioning([&] { he::compile(with_random_params(exact, 1)); }, "layer 2 (activation2): activation 'relu' is not a polynomial");
}

