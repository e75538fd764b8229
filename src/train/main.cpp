// hecnn-train (also `hecnn train`): trains a CNN with libtorch and exports it as a hecnn model file.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <set>

#include "common/error.h"
#include "common/exit_codes.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "hecnn/version.h"
#include "nn/forward.h"
#include "nn/limits.h"
#include "nn/safetensors.h"
#include "train/trainer.h"

namespace {

using namespace hecnn;

struct Options {
  std::string dataset = "mnist", data_dir, test_dir, arch = "mnist-paper", activation, out, teacher, init;
  double val_split = 0.1;
  std::size_t limit = 0;
  int threads = 0;
  bool no_test = false, quiet = false;
  train::TrainOptions t;
};

std::string quote(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \t\n'\"\\$`*?;&|<>(){}[]!#~") == std::string::npos) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A preset name or a JSON architecture file (the format of nn::Model::architecture()), read with
// the model files' bounds (nn/limits.h: a regular file of at most 16 MiB, nested at most 64 deep).
// Conv and dense layers get a bias unless the file says "bias": false.
nn::Model load_architecture(const std::string& arch, std::set<std::size_t>& without_bias) {
  for (const auto& p : nn::preset_names()) {
    if (arch == p) return nn::preset_architecture(arch, "swish:deg4:range4");
  }
  std::error_code ec;
  if (!std::filesystem::exists(arch, ec) && !ec) {
    std::string names;
    for (const auto& p : nn::preset_names()) names += (names.empty() ? "" : ", ") + p;
    throw Error("--arch '" + arch + "' is neither a preset (" + names + ") nor an existing JSON file");
  }
  const nlohmann::json j = nn::read_json_file_bounded(arch, "--arch architecture file");
  nn::Model m = nn::Model::from_architecture(j);
  const auto& layers = j.at("layers");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].is_object() && layers[i].contains("bias") && layers[i]["bias"].is_boolean() && !layers[i]["bias"].get<bool>()) {
      without_bias.insert(i);
    }
  }
  return m;
}

int run(const Options& o, const std::string& command) {
  const Stopwatch t_start;
  if (o.threads > 0) {
    torch::set_num_threads(o.threads);
    omp_set_num_threads(o.threads);
  }
  torch::manual_seed(o.t.seed);
  if (o.out.empty()) throw Error("--out MODEL.safetensors is required");

  std::set<std::size_t> without_bias;
  // --init: the architecture and the starting weights (the network copies a trained model's
  // parameters) come from a model file, its activations included.
  nn::Model arch = o.init.empty() ? load_architecture(o.arch, without_bias) : nn::load_model(o.init);
  const std::string arch_name = o.init.empty() ? o.arch : o.init;
  const auto presets = nn::preset_names();
  const bool preset = o.init.empty() && std::find(presets.begin(), presets.end(), o.arch) != presets.end();
  const std::string act_spec = !o.activation.empty() ? o.activation : (preset ? "swish:deg4:range4" : "");
  if (!act_spec.empty()) {
    const nn::Activation a = nn::Activation::parse(act_spec);
    for (auto& l : arch.layers) {
      if (l.type == nn::LayerType::Activation) l.activation = a;
    }
  }
  arch.shapes(false);

  // Data: the training set (a random subset with --limit), a validation split, the test set.
  nn::Dataset all = nn::load_dataset(o.dataset, nn::Split::Train, o.data_dir);
  std::printf("%s training set: %zu images\n", nn::display_name(o.dataset).c_str(), all.size());
  if (o.limit > 0 && o.limit < all.size()) {
    std::vector<std::size_t> idx(all.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::mt19937_64 rng(o.t.seed ^ 0x5eedULL);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(o.limit);
    all = train::subset(all, idx);
  }
  nn::Dataset test;
  if (!o.no_test) {
    test = nn::load_dataset(o.dataset, nn::Split::Test, o.test_dir);
    std::printf("%s test set: %zu images\n", nn::display_name(o.dataset).c_str(), test.size());
  }
  if (!(all.shape == arch.input)) {
    throw Error("the architecture '" + arch_name + "' expects " + arch.input.to_string() + " inputs, " + o.dataset + " has " +
                all.shape.to_string() + " images");
  }
  nn::Dataset train_set, val_set;
  nn::split_validation(all, o.val_split, o.t.seed, train_set, val_set);
  const std::size_t test_n = o.limit > 0 ? std::min(o.limit, test.size()) : test.size();

  train::Network net(arch, without_bias, o.t.bn_momentum);
  std::printf("hecnn train: %s%s on %s, %zu training / %zu validation / %zu test images\n", o.init.empty() ? "" : "starting from ",
              arch_name.c_str(), o.dataset.c_str(),
              train_set.size(), val_set.size(), test_n);
  std::printf("%s", net->to_model().summary().c_str());
  const double lr = o.t.lr > 0 ? o.t.lr : train::default_lr(o.t.optimizer);
  std::printf("optimizer %s, lr %g (%s), batch %d, %d epochs, dropout %g, augmentation %s, seed %llu, %d threads\n",
              o.t.optimizer.c_str(), lr, o.t.schedule.c_str(), o.t.batch_size, o.t.epochs, o.t.dropout, o.t.augment ? (o.t.flip ? "on (with flips)" : "on") : "off",
              static_cast<unsigned long long>(o.t.seed), torch::get_num_threads());
  std::fflush(stdout);

  train::TrainOptions to = o.t;
  to.progress = !o.quiet;
  nlohmann::json teacher_info;
  if (!o.teacher.empty()) {
    const nn::Model t = nn::load_model(o.teacher);
    to.teacher = train::Network(t);
    teacher_info = {{"file", o.teacher}, {"alpha", o.t.distill_alpha}, {"temperature", o.t.distill_temperature}};
    if (t.info.contains("accuracy")) teacher_info["accuracy"] = t.info["accuracy"];
    std::printf("distilling from %s (alpha %g, temperature %g)\n", o.teacher.c_str(), o.t.distill_alpha,
                o.t.distill_temperature);
  }
  const train::TrainResult r = train::train_network(net, train_set, val_set, to);
  const train::EpochStats& best = r.history.at(static_cast<std::size_t>(r.best_epoch - 1));

  // Export, then check the exported model with the plaintext reference, not libtorch.
  nn::Model model = net->to_model();
  double test_acc = -1;
  if (!o.no_test && test_n > 0) {
    const Stopwatch t_eval;
    const nn::Evaluation e = nn::evaluate(model, test, test_n);
    test_acc = e.accuracy();
    std::printf("test accuracy (exported model, plaintext reference): %.2f %% (%zu / %zu) in %.1f s\n", 100 * test_acc,
                e.correct, e.count, t_eval.seconds());
  }
  const auto ranges = train::activation_ranges(model, train_set);
  std::printf("%s", train::format_ranges(ranges).c_str());

  nlohmann::json history = nlohmann::json::array();
  for (const auto& s : r.history) {
    history.push_back({{"epoch", s.epoch}, {"train_loss", s.train_loss}, {"train_acc", s.train_acc},
                       {"val_loss", s.val_loss}, {"val_acc", s.val_acc}, {"lr", s.lr}, {"seconds", s.seconds}});
  }
  model.info = {
      {"name", std::filesystem::path(o.out).stem().string()},
      {"dataset", o.dataset},
      {"architecture", arch_name},
      {"activation", act_spec.empty() ? "from the architecture file" : act_spec},
      {"images", {{"train", train_set.size()}, {"validation", val_set.size()}, {"test", test_n}}},
      {"training",
       {{"epochs", o.t.epochs}, {"best_epoch", r.best_epoch}, {"batch_size", o.t.batch_size}, {"optimizer", o.t.optimizer},
        {"lr", lr}, {"final_lr", r.final_lr}, {"augment", o.t.augment ? nlohmann::json{{"rotate_deg", o.t.rotate_deg}, {"zoom", o.t.zoom}, {"shift", o.t.shift}, {"flip", o.t.flip}} : nlohmann::json(false)}, {"range_penalty", o.t.range_penalty}, {"label_smoothing", o.t.label_smoothing}, {"schedule", o.t.schedule}, {"dropout", o.t.dropout}, {"ema", o.t.ema}, {"weight_decay", o.t.weight_decay}, {"bn_recalibrate", o.t.bn_recalibrate}, {"seed", o.t.seed},
        {"threads", torch::get_num_threads()}, {"seconds", r.seconds}, {"history", history}}},
      {"accuracy", {{"train", best.train_acc}, {"validation", best.val_acc}}},
      {"activation_ranges", train::ranges_json(ranges)},
      {"date", now_utc()},
      {"command", command},
      {"trainer", "hecnn-train (libtorch " TORCH_VERSION ")"},
  };
  if (test_acc >= 0) model.info["accuracy"]["test"] = test_acc;
  if (!teacher_info.is_null()) model.info["training"]["teacher"] = teacher_info;
  nn::save_model(model, o.out);

  const double total = t_start.seconds();
  std::printf("best epoch %d of %d: validation %.2f %%", r.best_epoch, o.t.epochs, 100 * r.best_val_acc);
  if (test_acc >= 0) std::printf(", test %.2f %%", 100 * test_acc);
  std::printf("; training %.1f s, total %.1f s\nwritten: %s\n", r.seconds, total, o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a CNN with libtorch and export it as a hecnn model (.safetensors)", "hecnn train"};
  app.set_version_flag("--version", "hecnn-train " HECNN_VERSION);
  app.add_option("--dataset,-d", o.dataset, "mnist | fashion-mnist | cifar10")
      ->check(CLI::IsMember({"mnist", "fashion-mnist", "cifar10"}))
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Directory of the training set (default: the usual locations)");
  app.add_option("--test-dir", o.test_dir, "Directory of the test set (default: the usual locations)");
  app.add_flag("--no-test", o.no_test, "Do not evaluate on the test set");
  auto* arch_opt = app.add_option("--arch,-a", o.arch, "Preset (mnist-paper, cifar-paper, mnist-paper-gap, cifar-paper-gap) or architecture JSON file")->capture_default_str();
  app.add_option("--init", o.init,
                 "Start from this model file (.safetensors): its architecture, activations and weights, e.g. to fine-tune a "
                 "model made by hecnn convert")
      ->excludes(arch_opt);
  app.add_option("--activation", o.activation,
                 "Activation for every activation layer: swish:deg4:range4 (default for presets), relu, swish, square, "
                 "mish:deg4:range6, ...");
  app.add_option("--out,-o", o.out, "Output model file (.safetensors)")->required();
  app.add_option("--epochs,-e", o.t.epochs, "Epochs")->capture_default_str();
  app.add_option("--batch-size,-b", o.t.batch_size, "Batch size")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  app.add_option("--optimizer", o.t.optimizer, "adam | adadelta | sgd")
      ->check(CLI::IsMember({"adam", "adadelta", "sgd"}))
      ->capture_default_str();
  app.add_option("--lr", o.t.lr, "Learning rate (default: adam 1e-3, sgd 1e-2, adadelta 1)");
  app.add_option("--momentum", o.t.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o.t.weight_decay, "L2 penalty")->capture_default_str();
  app.add_option("--lr-patience", o.t.lr_patience, "Reduce the lr after this many epochs without a lower validation loss (0: never)")
      ->capture_default_str();
  app.add_option("--lr-factor", o.t.lr_factor, "Factor applied to the lr on a plateau")->capture_default_str();
  app.add_option("--min-lr", o.t.min_lr, "Lowest lr reduce-on-plateau goes to")->capture_default_str();
  app.add_option("--schedule", o.t.schedule, "Learning-rate schedule: plateau (reduce on plateau) | cosine (to --min-lr)")
      ->check(CLI::IsMember({"plateau", "cosine"}))
      ->capture_default_str();
  app.add_option("--dropout", o.t.dropout, "Dropout on the inputs of dense layers while training")->capture_default_str();
  app.add_option("--ema", o.t.ema, "Keep an exponential moving average of the weights with this decay, e.g. 0.999 (0: off)")
      ->capture_default_str();
  app.add_option("--clip-grad", o.t.clip_grad, "Clip the gradient norm to this value (0: off)")->capture_default_str();
  app.add_option("--label-smoothing", o.t.label_smoothing, "Label smoothing of the training loss")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  app.add_option("--teacher", o.teacher, "Distill from this trained model (.safetensors, any architecture)");
  app.add_option("--distill-alpha", o.t.distill_alpha, "Weight of the distillation term (the rest: cross-entropy)")
      ->capture_default_str();
  app.add_option("--distill-temperature", o.t.distill_temperature, "Distillation temperature")->capture_default_str();
  app.add_option("--range-penalty", o.t.range_penalty,
                 "Add this times mean(max(|x| - r, 0)^2) over the inputs of polynomial activations to the loss (0: off)")
      ->capture_default_str();
  app.add_option("--val-split", o.val_split, "Fraction of the training set held out for validation and the best-epoch choice")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  app.add_flag("--augment", o.t.augment, "Random rotation, zoom and shift (and horizontal flips for cifar10)");
  app.add_option("--rotate", o.t.rotate_deg, "Augmentation: largest rotation in degrees")->capture_default_str();
  app.add_option("--zoom", o.t.zoom, "Augmentation: largest relative zoom")->capture_default_str();
  app.add_option("--shift", o.t.shift, "Augmentation: largest shift, as a fraction of the image size")->capture_default_str();
  auto* flip = app.add_flag("--flip,!--no-flip", o.t.flip, "Augmentation: random horizontal flips (default: on for cifar10)");
  app.add_flag("!--no-bn-recalibrate", o.t.bn_recalibrate,
               "Keep the batch-norm running averages of training instead of recomputing the statistics on the "
               "unaugmented training images after each epoch");
  app.add_option("--bn-momentum", o.t.bn_momentum, "Batch normalization running-average momentum (PyTorch convention)")
      ->capture_default_str();
  app.add_option("--seed", o.t.seed, "Random seed (weights, shuffles, validation split, augmentation)")->capture_default_str();
  app.add_option("--threads,-t", o.threads, "Threads (0: libtorch's default)")->check(CLI::Range(0, 1024))->capture_default_str();
  // Range: without it CLI11 would read "-1" into the unsigned count as 2^64 - 1.
  app.add_option("--limit,-n", o.limit, "Use only n random training images (and the first n test images)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1000000000}));
  app.add_flag("--quiet,-q", o.quiet, "No progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return hecnn::usage_exit_code(app.exit(e));
  }
  if (flip->count() == 0) o.t.flip = o.dataset == "cifar10";
  std::string command = argc > 0 ? argv[0] : "hecnn-train";
  for (int i = 1; i < argc; ++i) command += " " + quote(argv[i]);
  return hecnn::run_and_report("hecnn train", [&] {
    hecnn::check_thread_environment();
    try {
      return run(o, command);
    } catch (const c10::Error& e) {
      // libtorch's messages carry a C++ backtrace; report the message alone (exit code: unexpected).
      std::cerr << "hecnn train: libtorch error: " << e.what_without_backtrace() << "\n";
      return static_cast<int>(hecnn::kExitUnexpected);
    }
  });
}
