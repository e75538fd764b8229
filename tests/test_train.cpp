// libtorch training (label "train"): the libtorch network computes what the plaintext reference
// computes, export/import round trips, and a tiny training run learns.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "common/error.h"
#include "nn/forward.h"
#include "nn/safetensors.h"
#include "train/trainer.h"

namespace {

using namespace hecnn;
namespace fs = std::filesystem;

// Every layer type: same padding with strides 1 and 2 (asymmetric: 13 -> 7 pads 1 then 2), valid
// padding with stride 2, average pooling, batch normalization on images and on vectors, fitted
// polynomial, exact and "square" activations, dense layers.
nn::Model every_layer_model() {
  const nlohmann::json arch = {
      {"input", {2, 13, 13}},
      {"layers",
       {{{"type", "conv2d"}, {"filters", 4}, {"kernel", 3}, {"stride", 1}, {"padding", "same"}},
        {{"type", "batchnorm"}, {"eps", 1e-3}},
        {{"type", "activation"}, {"fn", "swish:deg4:range4"}},
        {{"type", "conv2d"}, {"filters", 6}, {"kernel", {4, 3}}, {"stride", 2}, {"padding", "same"}},
        {{"type", "batchnorm"}, {"eps", 1e-5}},
        {{"type", "activation"}, {"fn", "gelu"}},
        {{"type", "conv2d"}, {"filters", 8}, {"kernel", 3}, {"stride", 2}, {"padding", "valid"}},
        {{"type", "batchnorm"}, {"eps", 1e-3}},
        {{"type", "activation"}, {"fn", "square"}},
        {{"type", "avgpool2d"}, {"pool", 2}, {"stride", 1}},
        {{"type", "flatten"}},
        {{"type", "dense"}, {"units", 12}},
        {{"type", "batchnorm"}, {"eps", 1e-3}},
        {{"type", "activation"}, {"fn", "mish:deg4:range6"}},
        {{"type", "dense"}, {"units", 5}},
        {{"type", "activation"}, {"fn", "swish"}},
        {{"type", "dense"}, {"units", 3}}}}};
  return nn::Model::from_architecture(arch);
}

// Batch-norm statistics far from the identity, as after training.
void randomize_batch_norm(train::Network& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) {
    if (p.key().find("running") == std::string::npos && p.value().dim() == 1 && p.key().find("weight") != std::string::npos &&
        net->architecture().layers[std::stoul(p.key())].type == nn::LayerType::BatchNorm) {
      p.value().uniform_(0.5, 1.5);
    }
  }
  for (auto& b : net->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().uniform_(-0.3, 0.3);
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.2, 2.0);
  }
  for (auto& p : net->named_parameters()) {
    if (p.key().find(".bias") != std::string::npos) p.value().uniform_(-0.2, 0.2);
  }
}

TEST(Train, ForwardMatchesPlaintextReference) {
  torch::manual_seed(7);
  train::Network net(every_layer_model());
  randomize_batch_norm(net);
  net->eval();
  const nn::Model m = net->to_model();
  ASSERT_NO_THROW(m.validate());
  EXPECT_EQ(m.output().size(), 3);

  const torch::Tensor x = torch::rand({6, 2, 13, 13});
  const torch::Tensor y = net->forward(x).detach();
  ASSERT_EQ(y.size(0), 6);
  ASSERT_EQ(y.size(1), 3);
  double worst = 0, scale = 0;
  for (int i = 0; i < 6; ++i) {
    const torch::Tensor xi = x[i].contiguous();
    const std::vector<double> ref = nn::forward(m, xi.data_ptr<float>());
    ASSERT_EQ(ref.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      worst = std::max(worst, std::abs(ref[static_cast<std::size_t>(j)] - y[i][j].item<double>()));
      scale = std::max(scale, std::abs(ref[static_cast<std::size_t>(j)]));
    }
  }
  EXPECT_LT(worst, 1e-4) << "largest output " << scale;
  EXPECT_GT(scale, 1e-2);  // the outputs are not trivially zero
}

TEST(Train, ActivationInputsMatchObserver) {
  torch::manual_seed(3);
  train::Network net(every_layer_model());
  randomize_batch_norm(net);
  net->eval();
  const nn::Model m = net->to_model();
  const torch::Tensor x = torch::rand({1, 2, 13, 13});
  std::vector<torch::Tensor> inputs;
  net->forward(x, &inputs);
  std::vector<std::vector<double>> seen;
  nn::forward(m, x.contiguous().data_ptr<float>(),
              [&](std::size_t, const double* v, std::size_t n) { seen.emplace_back(v, v + n); });
  ASSERT_EQ(inputs.size(), seen.size());
  for (std::size_t k = 0; k < seen.size(); ++k) {
    const torch::Tensor t = inputs[k].flatten().contiguous();
    ASSERT_EQ(static_cast<std::size_t>(t.numel()), seen[k].size());
    for (std::size_t i = 0; i < seen[k].size(); ++i) EXPECT_NEAR(t[static_cast<std::int64_t>(i)].item<double>(), seen[k][i], 1e-4);
  }
}

TEST(Train, ExportImportRoundTrip) {
  torch::manual_seed(11);
  train::Network net(every_layer_model(), std::set<std::size_t>{3, 14});  // two layers without bias
  randomize_batch_norm(net);
  net->eval();
  nn::Model m = net->to_model();
  EXPECT_FALSE(m.layers[3].has_bias());
  EXPECT_FALSE(m.layers[14].has_bias());
  EXPECT_TRUE(m.layers[0].has_bias());
  EXPECT_EQ(m.layers[0].params.at("weight").shape, (std::vector<std::int64_t>{4, 2, 3, 3}));
  EXPECT_EQ(m.layers[11].params.at("weight").shape, (std::vector<std::int64_t>{12, 32}));
  m.info["note"] = "round trip";
  const std::string path = (fs::temp_directory_path() / ("hecnn_train_rt_" + std::to_string(getpid()) + ".safetensors")).string();
  nn::save_model(m, path);
  const nn::Model back = nn::load_model(path);
  fs::remove(path);
  EXPECT_EQ(back.architecture(), m.architecture());
  EXPECT_EQ(back.info["note"], "round trip");
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    ASSERT_EQ(back.layers[i].params.size(), m.layers[i].params.size()) << "layer " << i;
    for (const auto& [k, t] : m.layers[i].params) EXPECT_EQ(back.layers[i].params.at(k).data, t.data) << i << "." << k;
  }
  // A network built from the loaded model computes exactly what the original does.
  train::Network again(back);
  again->eval();
  const torch::Tensor x = torch::rand({4, 2, 13, 13});
  EXPECT_TRUE(torch::equal(net->forward(x), again->forward(x)));
}

TEST(Train, SameAndValidPaddingShapes) {
  // 28 -> 14 with stride 2 "same" (total padding 3 for k = 5: 1 before, 2 after), as TensorFlow.
  const nlohmann::json arch = {{"input", {1, 28, 28}},
                               {"layers", {{{"type", "conv2d"}, {"filters", 2}, {"kernel", 5}, {"stride", 2}, {"padding", "same"}}}}};
  torch::manual_seed(1);
  train::Network net(nn::Model::from_architecture(arch));
  const nn::Model m = net->to_model();
  const torch::Tensor x = torch::rand({1, 1, 28, 28});
  const torch::Tensor y = net->forward(x).detach();
  const std::vector<double> ref = nn::forward(m, x.contiguous().data_ptr<float>());
  ASSERT_EQ(static_cast<std::size_t>(y.numel()), ref.size());
  EXPECT_EQ(ref.size(), 2u * 14 * 14);
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(y[0][static_cast<std::int64_t>(i)].item<double>(), ref[i], 1e-5);
}

TEST(Train, AugmentIdentityAndShape) {
  train::TrainOptions o;
  o.rotate_deg = 0;
  o.zoom = 0;
  o.shift = 0;
  const torch::Tensor x = torch::rand({3, 1, 28, 28});
  EXPECT_TRUE(torch::allclose(train::augment_batch(x, o), x, 1e-5, 1e-5));
  // Whole-pixel shifts without rotation or zoom: every output is the input moved by (dx, dy).
  o.shift = 0.1;
  const torch::Tensor img = torch::rand({1, 1, 10, 10}).repeat({8, 1, 1, 1});
  const torch::Tensor shifted = train::augment_batch(img, o);
  for (int i = 0; i < 8; ++i) {
    bool found = false;
    for (int dy = -1; dy <= 1 && !found; ++dy) {
      for (int dx = -1; dx <= 1 && !found; ++dx) {
        const torch::Tensor moved = torch::zeros({10, 10});
        moved.slice(0, std::max(0, dy), 10 + std::min(0, dy)).slice(1, std::max(0, dx), 10 + std::min(0, dx))
            .copy_(img[0][0].slice(0, std::max(0, -dy), 10 - std::max(0, dy)).slice(1, std::max(0, -dx), 10 - std::max(0, dx)));
        found = torch::allclose(shifted[i][0], moved, 1e-5, 1e-5);
      }
    }
    EXPECT_TRUE(found) << "image " << i;
  }
  o = {};
  o.flip = true;
  const torch::Tensor y = train::augment_batch(x, o);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_FALSE(torch::allclose(y, x, 1e-3, 1e-3));
}

TEST(Train, RecalibrateBatchNorm) {
  const nlohmann::json arch = {{"input", {1, 8, 8}},
                               {"layers",
                                {{{"type", "conv2d"}, {"filters", 3}, {"kernel", 3}},
                                 {{"type", "batchnorm"}, {"eps", 1e-3}},
                                 {{"type", "flatten"}},
                                 {{"type", "dense"}, {"units", 2}}}}};
  torch::manual_seed(2);
  train::Network net(nn::Model::from_architecture(arch));
  const torch::Tensor x = torch::rand({50, 1, 8, 8}) * 3;
  net->recalibrate_batch_norm(x, 10);  // five batches of ten: the average of the batch statistics
  const nn::Model m = net->to_model();
  const nn::Model conv_only = [&] {
    nn::Model c = m;
    c.layers.resize(1);
    return c;
  }();
  torch::Tensor mean = torch::zeros({3}, torch::kFloat64), var = torch::zeros({3}, torch::kFloat64);
  for (int b = 0; b < 5; ++b) {
    std::vector<double> acts;  // [image][channel][6x6]
    for (int i = b * 10; i < b * 10 + 10; ++i) {
      const auto y = nn::forward(conv_only, x[i].contiguous().data_ptr<float>());
      acts.insert(acts.end(), y.begin(), y.end());
    }
    const torch::Tensor t = torch::tensor(acts, torch::kFloat64).view({10, 3, 36}).transpose(0, 1).reshape({3, 360});
    mean += t.mean(1) / 5;
    var += t.var(1, /*unbiased=*/true) / 5;
  }
  const auto& bn = m.layers[1].params;
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(bn.at("running_mean").data[static_cast<std::size_t>(c)], mean[c].item<double>(), 1e-4);
    EXPECT_NEAR(bn.at("running_var").data[static_cast<std::size_t>(c)], var[c].item<double>(), 1e-4);
  }
  EXPECT_TRUE(net->is_training());
}

// Ten classes of synthetic 28x28 digits: a bright 6x6 block at a class-dependent place, plus noise.
nn::Dataset synthetic(std::size_t n, std::uint64_t seed) {
  nn::Dataset d;
  d.name = "synthetic";
  d.shape = {1, 28, 28};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> noise(0.0f, 0.3f);
  for (std::size_t i = 0; i < n; ++i) {
    const int k = static_cast<int>(i % 10);
    const int y0 = 2 + (k / 5) * 12, x0 = 1 + (k % 5) * 5;
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        const bool on = y >= y0 && y < y0 + 6 && x >= x0 && x < x0 + 6;
        d.images.push_back(on ? 1.0f - noise(rng) : noise(rng));
      }
    }
    d.labels.push_back(static_cast<std::uint8_t>(k));
  }
  return d;
}

// A dataset as libtorch tensors: images [N, C, H, W] and int64 labels [N].
std::pair<torch::Tensor, torch::Tensor> tensors(const nn::Dataset& d) {
  torch::Tensor y = torch::empty({static_cast<std::int64_t>(d.size())}, torch::kInt64);
  for (std::size_t i = 0; i < d.size(); ++i) y[static_cast<std::int64_t>(i)] = d.labels[i];
  return {train::images_tensor(d.images.data(), d.size(), d.shape), y};
}

// Silent, short training: batch 32, lr 1e-2.
train::TrainOptions quick_options(int epochs) {
  train::TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.lr = 1e-2;
  o.log = nullptr;
  o.progress = false;
  return o;
}

// Global average pooling: the mean over each channel's (non-square) plane, in libtorch as in the
// plaintext reference; a short run of PP-CNN's MNIST --gap variant exports a model that classifies
// as the network does.
TEST(Train, GlobalAvgPool) {
  const nlohmann::json arch = {{"input", {2, 9, 7}},
                               {"layers",
                                {{{"type", "conv2d"}, {"filters", 5}, {"kernel", 3}, {"stride", 1}, {"padding", "same"}},
                                 {{"type", "batchnorm"}, {"eps", 1e-3}},
                                 {{"type", "activation"}, {"fn", "swish:deg4:range4"}},
                                 {{"type", "avgpool2d"}, {"pool", 2}, {"stride", 2}},
                                 {{"type", "globalavgpool2d"}},
                                 {{"type", "dense"}, {"units", 6}},
                                 {{"type", "batchnorm"}, {"eps", 1e-3}},
                                 {{"type", "activation"}, {"fn", "square"}},
                                 {{"type", "dense"}, {"units", 3}}}}};
  torch::manual_seed(12);
  train::Network net(nn::Model::from_architecture(arch));
  randomize_batch_norm(net);
  net->eval();
  const nn::Model m = net->to_model();
  EXPECT_EQ(m.layers[5].params.at("weight").shape, (std::vector<std::int64_t>{6, 5}));
  const torch::Tensor x = torch::rand({5, 2, 9, 7});
  const torch::Tensor y = net->forward(x).detach();
  ASSERT_EQ(y.size(1), 3);
  double worst = 0, scale = 0;
  for (int i = 0; i < 5; ++i) {
    const std::vector<double> ref = nn::forward(m, x[i].contiguous().data_ptr<float>());
    ASSERT_EQ(ref.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      worst = std::max(worst, std::abs(ref[static_cast<std::size_t>(j)] - y[i][j].item<double>()));
      scale = std::max(scale, std::abs(ref[static_cast<std::size_t>(j)]));
    }
  }
  EXPECT_LT(worst, 1e-4) << "largest output " << scale;
  EXPECT_GT(scale, 1e-2);

  torch::manual_seed(13);
  const nn::Dataset data = synthetic(200, 7);
  nn::Dataset tr, val;
  nn::split_validation(data, 0.2, 1, tr, val);
  train::Network gap(nn::preset_architecture("mnist-paper-gap", "swish:deg4:range4"));
  const train::TrainResult r = train::train_network(gap, tr, val, quick_options(1));
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(r.history[0].train_loss));
  const nn::Model exported = gap->to_model();
  EXPECT_EQ(exported.layers[6].type, nn::LayerType::GlobalAvgPool2d);
  const auto [vx, vy] = tensors(val);
  EXPECT_NEAR(nn::evaluate(exported, val).accuracy(), train::evaluate_network(gap, vx, vy).accuracy, 0.01);
}

TEST(Train, TinyRunReducesLoss) {
  torch::manual_seed(5);
  const nn::Dataset data = synthetic(400, 1);
  nn::Dataset tr, val;
  nn::split_validation(data, 0.2, 1, tr, val);
  train::Network net(nn::preset_architecture("mnist-paper", "swish:deg4:range4"));
  const auto [x, y] = tensors(tr);
  const train::Loss before = train::evaluate_network(net, x, y);
  train::TrainOptions o = quick_options(1);
  const train::TrainResult r = train::train_network(net, tr, val, o);
  // train_network updated the batch-norm statistics; evaluate in eval mode like the export.
  const train::Loss after = train::evaluate_network(net, x, y);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(after.loss));
  EXPECT_LT(after.loss, 0.7 * before.loss) << "before " << before.loss << ", after " << after.loss;
  EXPECT_LT(r.history[0].train_loss, before.loss);
  // The exported model classifies as the libtorch network does.
  const nn::Evaluation e = nn::evaluate(net->to_model(), tr);
  EXPECT_NEAR(e.accuracy(), after.accuracy, 0.01);
}

TEST(Train, DistillationAndRangePenalty) {
  torch::manual_seed(6);
  const nn::Dataset data = synthetic(200, 4);
  nn::Dataset tr, val;
  nn::split_validation(data, 0.2, 1, tr, val);
  train::TrainOptions o = quick_options(1);
  train::Network teacher(nn::preset_architecture("mnist-paper", "relu"));
  train::train_network(teacher, tr, val, o);
  o.teacher = teacher;
  o.distill_alpha = 0.7;
  o.range_penalty = 1;
  o.label_smoothing = 0.1;
  train::Network student(nn::preset_architecture("mnist-paper", "swish:deg4:range4"));
  const train::TrainResult r = train::train_network(student, tr, val, o);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_TRUE(std::isfinite(r.history[0].train_loss));
  EXPECT_GT(r.history[0].val_acc, 0.3);
  // A teacher for other images is refused.
  const nlohmann::json small = {{"input", {1, 8, 8}}, {"layers", {{{"type", "flatten"}}, {{"type", "dense"}, {"units", 10}}}}};
  o.teacher = train::Network(nn::Model::from_architecture(small));
  EXPECT_THROW(train::train_network(student, tr, val, o), hecnn::Error);
}

TEST(Train, CosineScheduleAndDropout) {
  torch::manual_seed(7);
  const nn::Dataset data = synthetic(200, 5);
  nn::Dataset tr, val;
  nn::split_validation(data, 0.2, 1, tr, val);
  train::TrainOptions o = quick_options(2);
  o.min_lr = 1e-4;
  o.schedule = "cosine";
  o.dropout = 0.5;
  train::Network net(nn::preset_architecture("mnist-paper", "swish:deg4:range4"));
  const train::TrainResult r = train::train_network(net, tr, val, o);
  ASSERT_EQ(r.history.size(), 2u);
  // Half a cosine over the run, per batch: 160 images in 5 batches of 32, so epoch 1 ends at t = 4/10
  // and the run at t = 9/10.
  const double expected0 = 1e-4 + 0.5 * (1e-2 - 1e-4) * (1 + std::cos(M_PI * 0.4));
  EXPECT_NEAR(r.history[0].lr, expected0, 1e-9);
  EXPECT_LT(r.final_lr, 1e-3);
  EXPECT_GT(r.final_lr, 1e-4 - 1e-12);
  // Dropout is off once training returns: evaluation is deterministic and matches the export.
  const auto [x, y] = tensors(tr);
  const train::Loss a = train::evaluate_network(net, x, y), b = train::evaluate_network(net, x, y);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_NEAR(nn::evaluate(net->to_model(), tr).accuracy(), a.accuracy, 0.01);
  o.schedule = "step";
  EXPECT_THROW(train::train_network(net, tr, val, o), hecnn::Error);
  o.schedule = "cosine";
  o.dropout = 1;
  EXPECT_THROW(train::train_network(net, tr, val, o), hecnn::Error);
}

TEST(Train, WeightAveraging) {
  const nn::Dataset data = synthetic(200, 6);
  nn::Dataset tr, val;
  nn::split_validation(data, 0.2, 1, tr, val);
  train::TrainOptions o = quick_options(2);
  auto run = [&](double ema) {
    torch::manual_seed(8);
    train::Network net(nn::preset_architecture("mnist-paper", "swish:deg4:range4"));
    o.ema = ema;
    const train::TrainResult r = train::train_network(net, tr, val, o);
    EXPECT_TRUE(std::isfinite(r.history.back().val_loss));
    return net;
  };
  train::Network plain = run(0), averaged = run(0.9);
  // Same seed, same batches: only the averaging differs, and the averaged weights are what is kept.
  const auto a = plain->named_parameters(), b = averaged->named_parameters();
  double diff = 0;
  for (const auto& p : a) diff = std::max(diff, (p.value() - b[p.key()]).abs().max().item<double>());
  EXPECT_GT(diff, 1e-4);
  const auto [x, y] = tensors(val);
  EXPECT_NEAR(nn::evaluate(averaged->to_model(), val).accuracy(), train::evaluate_network(averaged, x, y).accuracy, 0.01);
  o.ema = 1;
  EXPECT_THROW(train::train_network(averaged, tr, val, o), hecnn::Error);
}

TEST(Train, Optimizers) {
  for (const char* name : {"adam", "sgd", "adadelta"}) {
    torch::Tensor w = torch::full({4}, 3.0, torch::requires_grad());
    train::TrainOptions o;
    o.optimizer = name;
    auto opt = train::make_optimizer({w}, o);
    EXPECT_DOUBLE_EQ(opt->lr(), train::default_lr(name));
    for (int i = 0; i < 20; ++i) {
      opt->zero_grad();
      (w * w).sum().backward();
      opt->step();
    }
    EXPECT_LT(w.abs().max().item<double>(), 3.0) << name;
    opt->set_lr(0.125);
    EXPECT_DOUBLE_EQ(opt->lr(), 0.125);
  }
  train::TrainOptions bad;
  bad.optimizer = "rmsprop";
  EXPECT_THROW(train::make_optimizer({torch::zeros({1}, torch::requires_grad())}, bad), hecnn::Error);
}

TEST(Train, RangeReport) {
  // A lone activation over 101 values from -5 to 5: 20 of them lie outside [-4, 4].
  const nlohmann::json arch = {{"input", {1, 1, 101}}, {"layers", {{{"type", "activation"}, {"fn", "swish:deg4:range4"}}}}};
  const nn::Model m = nn::Model::from_architecture(arch);
  nn::Dataset d;
  d.shape = {1, 1, 101};
  for (int i = 0; i <= 100; ++i) d.images.push_back(static_cast<float>(-5.0 + 0.1 * i));
  d.labels.push_back(0);
  const auto r = train::activation_ranges(m, d);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].count, 101u);
  EXPECT_NEAR(r[0].min, -5, 1e-6);
  EXPECT_NEAR(r[0].max, 5, 1e-6);
  EXPECT_DOUBLE_EQ(r[0].range, 4);
  EXPECT_NEAR(r[0].outside, 20.0 / 101, 1e-9);
  EXPECT_NEAR(r[0].q001, -5, 0.01);
  EXPECT_NEAR(r[0].q999, 5, 0.01);
  EXPECT_NE(train::format_ranges(r).find("swish:deg4:range4"), std::string::npos);
  EXPECT_EQ(train::ranges_json(r)[0]["range"], 4.0);
}

// The command line end to end: `hecnn train` runs hecnn-train on IDX files and writes a model.
void write_idx(const std::string& dir, const std::string& prefix, const nn::Dataset& d) {
  auto be32 = [](std::ofstream& f, std::uint32_t v) {
    const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                                static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
    f.write(reinterpret_cast<const char*>(b), 4);
  };
  std::ofstream img(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
  be32(img, 0x803);
  be32(img, static_cast<std::uint32_t>(d.size()));
  be32(img, 28);
  be32(img, 28);
  for (float v : d.images) img.put(static_cast<char>(static_cast<unsigned char>(std::lround(v * 255))));
  std::ofstream lab(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
  be32(lab, 0x801);
  be32(lab, static_cast<std::uint32_t>(d.size()));
  for (auto l : d.labels) lab.put(static_cast<char>(l));
}

TEST(Train, CommandLine) {
  const fs::path dir = fs::temp_directory_path() / ("hecnn_train_cli_" + std::to_string(getpid()));
  fs::create_directories(dir);
  write_idx(dir.string(), "train", synthetic(300, 2));
  write_idx(dir.string(), "t10k", synthetic(100, 3));
  const std::string out = (dir / "m.safetensors").string();
  const std::string cmd = std::string(HECNN_BIN) + " train --dataset mnist --data-dir " + dir.string() + " --test-dir " +
                          dir.string() + " --epochs 1 --batch-size 32 --lr 0.01 --augment --threads 1 --quiet --out " + out +
                          " > " + (dir / "log.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(dir / "log.txt");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  ASSERT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("test accuracy"), std::string::npos) << text;
  EXPECT_NE(text.find("outside [-r, r]"), std::string::npos) << text;
  const nn::Model m = nn::load_model(out);
  EXPECT_EQ(m.info["dataset"], "mnist");
  EXPECT_EQ(m.info["activation"], "swish:deg4:range4");
  EXPECT_EQ(m.info["images"]["train"], 270);
  EXPECT_TRUE(m.info["accuracy"].contains("test"));
  EXPECT_EQ(m.info["activation_ranges"].size(), 2u);
  EXPECT_EQ(m.info["command"].get<std::string>().rfind("hecnn train --dataset mnist", 0), 0u);
  EXPECT_EQ(m.layers[2].activation.spec, "swish:deg4:range4");
  // --init: architecture, activations and weights from a model file (here with a square activation,
  // which no preset has); a tiny learning rate leaves the weights where the file put them.
  nn::Model init = m;
  init.layers[2].activation = nn::Activation::parse("square");
  const std::string init_path = (dir / "init.safetensors").string(), tuned = (dir / "tuned.safetensors").string();
  nn::save_model(init, init_path);
  const std::string tune = std::string(HECNN_BIN) + " train --init " + init_path + " --dataset mnist --data-dir " + dir.string() +
                           " --test-dir " + dir.string() + " --epochs 1 --batch-size 32 --lr 1e-9 --threads 1 --quiet --out " +
                           tuned + " > " + (dir / "tune.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(tune.c_str()), 0);
  const nn::Model t = nn::load_model(tuned);
  EXPECT_EQ(t.layers[2].activation.spec, "square");
  EXPECT_EQ(t.layers[5].activation.spec, "swish:deg4:range4");
  EXPECT_EQ(t.info["architecture"], init_path);
  const auto& w0 = init.layers[0].params.at("weight").data;
  const auto& w1 = t.layers[0].params.at("weight").data;
  ASSERT_EQ(w0.size(), w1.size());
  for (std::size_t k = 0; k < w0.size(); ++k) EXPECT_NEAR(w1[k], w0[k], 1e-5);
  EXPECT_NE(std::system((std::string(HECNN_BIN) + " train --init " + init_path + " --arch mnist-paper --out " + tuned +
                         " > /dev/null 2>&1").c_str()),
            0);
  // Usage errors exit non-zero with a message.
  EXPECT_NE(std::system((std::string(HECNN_BIN) + " train --dataset nope --out x > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(std::system((std::string(HECNN_BIN) + " train --arch " + (dir / "missing.json").string() + " --out " + out +
                         " > /dev/null 2>&1").c_str()),
            0);
  fs::remove_all(dir);
}

// hecnn train's exit code and output for the arguments after "train".
std::pair<int, std::string> run_train(const std::string& args, const fs::path& dir) {
  const std::string cmd = std::string(HECNN_BIN) + " train " + args + " > " + (dir / "out.txt").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(dir / "out.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

// --arch FILE is read like a model file's architecture: its size checked before it is read, the
// JSON parsed with the nesting bound; a clear message and exit code 1 otherwise. Option errors
// exit 2 (usage).
TEST(Train, ArchitectureFileBounded) {
  const fs::path dir = fs::temp_directory_path() / ("hecnn_train_arch_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string out = " --out " + (dir / "m.safetensors").string();
  const auto expect = [&](const std::string& args, int code, const std::string& needle) {
    const auto [rc, text] = run_train(args, dir);
    EXPECT_EQ(rc, code) << args << ": " << text;
    EXPECT_NE(text.find(needle), std::string::npos) << args << ": " << text;
  };
  {  // 17 MiB (sparse): refused from its size, not read.
    std::ofstream(dir / "big.json").put('{');
    fs::resize_file(dir / "big.json", std::uintmax_t{17} << 20);
  }
  expect("--arch " + (dir / "big.json").string() + out, 1, "big.json: 17825792 bytes, more than the 16777216");
  std::ofstream(dir / "deep.json") << std::string(100, '[') << std::string(100, ']');
  expect("--arch " + (dir / "deep.json").string() + out, 1, "deep.json: JSON nested more than 64 levels deep");
  std::ofstream(dir / "broken.json") << "{\"input\": [1, 28, 28], \"layers\": [";
  expect("--arch " + (dir / "broken.json").string() + out, 1, "broken.json: not valid JSON");
  expect("--arch " + dir.string() + out, 1, "is a directory");
  expect("--arch " + (dir / "missing.json").string() + out, 1, "is neither a preset");
  expect("--arch mnist-paper --no-such-option" + out, 2, "--no-such-option");
  expect("--epochs abc" + out, 2, "--epochs");
  fs::remove_all(dir);
}

}  // namespace
