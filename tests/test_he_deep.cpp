// Deep networks: bootstrap placement over a program's graph (against an exhaustive search), and a
// residual network with a stride-2 block run encrypted with bootstrapping at small, explicitly
// insecure parameters, against the compiled simulation and the plaintext model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"
#include "he/compile/program.h"
#include "he/keys.h"
#include "he/memory.h"
#include "he/packed/backend.h"
#include "he/runtime.h"
#include "he_test_util.h"
#include "nn/forward.h"

using namespace hecnn;
using namespace hecnn::he_test;

namespace {

// A program of stages with the given levels and sources (AddOp for several sources, else a
// placeholder activation): placement only reads levels, sources and kinds.
// Stages with `levels` >= 5 read a normalized input (a bootstrap may take it).
he::Program graph(const std::vector<std::pair<int, std::vector<int>>>& stages) {
  he::Program p;
  p.input = {1, 1, 1};
  for (std::size_t i = 0; i < stages.size(); ++i) {
    he::Stage s;
    s.name = "s" + std::to_string(i);
    s.in = s.out = p.input;
    s.levels = stages[i].first;
    s.inputs = stages[i].second;
    if (s.inputs.size() > 1) {
      s.op = he::AddOp{};
    } else {
      he::ActivationOp a;
      if (s.levels >= 5) {
        a.form = approx::InputForm::Normalized;
        a.input_bound = 1;
      }
      s.op = a;
    }
    p.stages.push_back(std::move(s));
  }
  p.plan_levels();
  return p;
}

// The fewest values whose refresh (every reader then reads them at depth 0) keeps every stage
// within `levels`: exhaustive over the subsets of the values a bootstrap may take (the inputs of
// normalized activations). -1: none works.
int fewest_bootstraps(const he::Program& p, int levels) {
  const std::size_t n = p.stages.size() + 1;
  std::uint32_t allowed = 0;
  for (const auto& s : p.stages) {
    if (s.kind() == he::StageKind::Activation && s.activation().input_bound > 0) allowed |= 1u << static_cast<unsigned>(s.inputs[0] + 1);
  }
  int best = -1;
  for (std::uint32_t mask = 0; mask < (1u << n); ++mask) {
    if (mask & ~allowed) continue;
    const int count = __builtin_popcount(mask);
    if (best >= 0 && count >= best) continue;
    std::vector<int> depth(p.stages.size());
    bool ok = true;
    for (std::size_t i = 0; i < p.stages.size() && ok; ++i) {
      int d = 0;
      for (int in : p.stages[i].inputs) {
        const std::size_t v = static_cast<std::size_t>(in + 1);
        d = std::max(d, (mask >> v) & 1u ? 0 : (in < 0 ? 0 : depth[static_cast<std::size_t>(in)]));
      }
      depth[i] = d + p.stages[i].levels;
      ok = depth[i] <= levels;
    }
    if (ok) best = count;
  }
  return best;
}

// Places bootstraps and checks: every stage within `levels`, each bootstrap reading a value no
// deeper than `levels`, the original stages in order with their sources, and the count minimal.
void check_placement(const he::Program& original, int levels, const std::string& what) {
  he::Program p = original;
  he::place_bootstraps(p, levels);
  EXPECT_LE(p.depth, levels) << what;
  std::size_t kept = 0;
  std::vector<int> index;  // new index -> original stage (-1: a bootstrap)
  for (const he::Stage& s : p.stages) {
    EXPECT_LE(s.depth_out, levels) << what << ": " << s.name;
    if (s.kind() == he::StageKind::Bootstrap) {
      EXPECT_EQ(s.depth_out, 0) << what;
      index.push_back(-1);
      continue;
    }
    ASSERT_LT(kept, original.stages.size());
    EXPECT_EQ(s.name, original.stages[kept].name) << what;
    // Its sources are the original's, possibly through a bootstrap.
    ASSERT_EQ(s.inputs.size(), original.stages[kept].inputs.size()) << what;
    for (std::size_t k = 0; k < s.inputs.size(); ++k) {
      int src = s.inputs[k];
      if (src >= 0 && index[static_cast<std::size_t>(src)] < 0) src = p.stages[static_cast<std::size_t>(src)].inputs[0];
      const int orig = src < 0 ? src : index[static_cast<std::size_t>(src)];
      EXPECT_EQ(orig, original.stages[kept].inputs[k]) << what << ": stage " << s.name;
    }
    index.push_back(static_cast<int>(kept++));
  }
  EXPECT_EQ(kept, original.stages.size()) << what;
  EXPECT_EQ(static_cast<int>(p.bootstraps()), fewest_bootstraps(original, levels)) << what << " with " << levels << " levels";
}

TEST(BootstrapPlacement, ResidualGraphIsMinimal) {
  // conv 1, relu 7, block (conv, relu, conv, add identity, relu), downsampling block (conv, relu,
  // conv | 1x1 conv, add, relu), pooling, dense: ResNet-20's pattern with its ReLU's depth.
  const he::Program p = graph({{1, {-1}},                 // 0 conv
                               {7, {0}},                  // 1 relu
                               {1, {1}}, {7, {2}}, {1, {3}}, {0, {4, 1}}, {7, {5}},      // 2-6
                               {1, {6}}, {7, {7}}, {1, {8}}, {1, {6}}, {0, {9, 10}}, {7, {11}},  // 7-12
                               {0, {12}}, {1, {13}}});    // 13 pool, 14 dense
  for (int levels : {8, 9, 10, 12, 16}) check_placement(p, levels, "residual graph");
  // 7 levels: a ReLU (7) and the convolution after it (1) do not fit between two bootstraps.
  EXPECT_EQ(fewest_bootstraps(p, 7), -1);
  he::Program r = p;
  expect_error_mentioning([&] { he::place_bootstraps(r, 7); }, "no value before it can be bootstrapped");
  he::Program q = p;
  he::place_bootstraps(q, 10);
  // One bootstrap before every ReLU but the first (whose input is fresh).
  EXPECT_EQ(q.bootstraps(), 4u);
  EXPECT_NE(he::describe_stages(q, 10, "values").find("4 bootstraps"), std::string::npos) << he::describe_stages(q, 10, "values");
}

TEST(BootstrapPlacement, RandomChainsAreMinimal) {
  // Chains of linear stages (0-2 levels) and normalized activations (5-7 levels).
  std::mt19937 rng(5);
  for (int t = 0; t < 60; ++t) {
    const int n = 4 + static_cast<int>(rng() % 12);
    std::vector<std::pair<int, std::vector<int>>> st;
    for (int i = 0; i < n; ++i) st.push_back({i % 2 ? 5 + static_cast<int>(rng() % 3) : static_cast<int>(rng() % 3), {i - 1}});
    const he::Program p = graph(st);
    for (int levels : {7, 8, 10, 13}) {
      if (fewest_bootstraps(p, levels) < 0) continue;  // some stretch without a candidate is too deep
      check_placement(p, levels, "chain " + std::to_string(t));
    }
  }
}

TEST(BootstrapPlacement, StageDeeperThanABootstrapLeaves) {
  he::Program p = graph({{1, {-1}}, {9, {0}}});
  expect_error_mentioning([&] { he::place_bootstraps(p, 8); }, "alone needs 9 levels");
  // Levels run out between candidates (three linear stages of 3 levels, nothing normalized).
  he::Program q = graph({{3, {-1}}, {3, {0}}, {3, {1}}});
  expect_error_mentioning([&] { he::place_bootstraps(q, 8); }, "no value before it can be bootstrapped");
}

// ResNet's shape at toy size (he_test_util's small_resnet) with a normalized high-degree ReLU.
nn::Model small_deep_resnet(const std::string& relu = "relu:deg15:range4:minimax") { return small_resnet(relu, 31); }

// Degree 15 (monic where convolutions alone read it: depth 4 either way, so not monic) and degree
// 31 (a degree-30 even part: dividing by its leading Chebyshev coefficient would cost precision).
class DeepEncrypted : public ::testing::TestWithParam<const char*> {};

TEST_P(DeepEncrypted, ResidualNetworkWithBootstrapping) {
  const nn::Model m = small_deep_resnet(GetParam());
  he::CompileOptions o;
  o.log_n = 11;
  o.allow_insecure = true;
  o.bootstrap = he::CompileOptions::Bootstrap::On;
  const he::HePlan plan = he::compile(m, o, he::Layout::Packed);
  ASSERT_TRUE(plan.bootstrap.has_value());
  const int levels = static_cast<int>(plan.bootstrap->output_level);
  EXPECT_GE(plan.program.bootstraps(), 2u) << plan.describe();
  EXPECT_LE(plan.program.depth, levels);
  // Every ReLU reads a normalized input (x / r), the residual sums included: no extra level.
  for (const auto& s : plan.program.stages) {
    if (s.kind() == he::StageKind::Activation) {
      EXPECT_EQ(s.activation().form, approx::InputForm::Normalized) << s.name;
    }
  }
  const std::string d = plan.describe();
  EXPECT_NE(d.find("bootstrap "), std::string::npos) << d;
  EXPECT_NE(d.find("bootstrapping keys"), std::string::npos) << d;
  EXPECT_GT(he::estimate_memory(plan, 1, 0, true).total(), 0u);

  const std::size_t count = std::min<std::size_t>(2, plan.batch_size());
  const std::vector<float> images = random_images(m.input, count, 9);
  he::RangeReport ranges;
  for (std::size_t b = 0; b < count; ++b) he::simulate(plan.program, images.data() + b * static_cast<std::size_t>(m.input.size()), &ranges);
  ASSERT_FALSE(ranges.any_outside()) << ranges.describe(plan.program);

  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  const he::EvaluationKeys keys = he::make_evaluation_keys(keygen, plan.keys);
  const auto client = he::make_client(plan.client_spec(), ctx, keygen.secret_key());
  const auto engine = he::make_engine(plan, ctx, keys, std::size_t{64} << 20);
  const auto out = client->decrypt(engine->run(client->encrypt(images.data(), count)), count);
  double worst = 0, scale = 0;
  for (std::size_t b = 0; b < count; ++b) {
    const float* img = images.data() + b * static_cast<std::size_t>(m.input.size());
    const auto plain = nn::forward(m, img);
    const auto sim = he::simulate(plan.program, img);
    ASSERT_EQ(out[b].size(), plain.size());
    for (std::size_t k = 0; k < plain.size(); ++k) {
      EXPECT_NEAR(sim[k], plain[k], 1e-6 * (1 + std::fabs(plain[k])));
      worst = std::max(worst, std::fabs(out[b][k] - plain[k]));
      scale = std::max(scale, std::fabs(plain[k]));
    }
  }
  EXPECT_LE(worst, 1e-3 * std::max(1.0, scale)) << "largest output " << scale;
  std::printf("  packed, %zu bootstraps, %zu image(s): max |encrypted - plaintext| %.2e (outputs up to %.2f)\n",
              plan.program.bootstraps(), count, worst, scale);

  // Without the bootstrapping keys the engine refuses to start.
  he::EvaluationKeys partial = keys;
  partial.to_sparse.reset();
  expect_error_mentioning([&] { he::make_engine(plan, ctx, partial, 0); }, "bootstrapping");
}

INSTANTIATE_TEST_SUITE_P(Relu, DeepEncrypted, ::testing::Values("relu:deg15:range4:minimax", "relu:deg31:range4:minimax"));

TEST(DeepPlans, BootstrappingKeysTravelAndTheServerReplans) {
  const nn::Model m = small_deep_resnet();
  he::CompileOptions o;
  o.log_n = 11;
  o.allow_insecure = true;
  o.bootstrap = he::CompileOptions::Bootstrap::On;
  const he::HePlan plan = he::compile(m, o, he::Layout::Packed);
  const he::KeyBundle keys = he::KeyBundle::generate(plan, "small deep resnet");
  const std::string bytes = keys.public_bytes();
  const he::KeyBundle server = he::KeyBundle::from_bytes(bytes.data(), bytes.size(), {he::SecretPart::Refuse});
  const he::EvaluationKeys& e = server.evaluation_keys();
  ASSERT_TRUE(e.to_sparse && e.from_sparse);
  EXPECT_EQ(e.to_sparse->b, keys.evaluation_keys().to_sparse->b);
  EXPECT_EQ(e.from_sparse->b, keys.evaluation_keys().from_sparse->b);
  // The server plans from the client's specification alone: the same bootstraps, the same spec.
  const he::HePlan again = he::compile_for(m, server.params(), server.info().spec.scale_bits, he::Layout::Packed, &server.info().spec);
  EXPECT_EQ(again.program.bootstraps(), plan.program.bootstraps());
  he::check_client_spec(again, server.info().spec);
  he::check_keys(e, again.keys, *server.context());
  // A bundle whose bootstrapping part is cut is refused.
  std::string cut = bytes.substr(0, bytes.size() - 100);
  expect_error_mentioning([&] { he::KeyBundle::from_bytes(cut.data(), cut.size(), {he::SecretPart::Refuse}); }, "");
}

TEST(DeepPlans, BootstrappingNeedsThePackedLayout) {
  he::CompileOptions o;
  o.log_n = 11;
  o.allow_insecure = true;
  o.bootstrap = he::CompileOptions::Bootstrap::On;
  expect_error_mentioning([&] { he::compile(small_deep_resnet(), o, he::Layout::Batch); }, "packed layout");
  o.allow_insecure = false;
  expect_error_mentioning([&] { he::compile(small_deep_resnet(), o, he::Layout::Packed); }, "insecure");
}

}  // namespace
