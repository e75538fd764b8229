#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "common/error.h"
#include "common/progress.h"
#include "common/stopwatch.h"
#include "nn/forward.h"

namespace hecnn::train {

namespace {

torch::Tensor labels_tensor(const nn::Dataset& d) {
  torch::Tensor y = torch::empty({static_cast<std::int64_t>(d.size())}, torch::kInt64);
  auto* p = y.data_ptr<std::int64_t>();
  for (std::size_t i = 0; i < d.size(); ++i) p[i] = d.labels[i];
  return y;
}

// libtorch's own optimizers (Adam, SGD); the learning rate lives in each parameter group.
class TorchOptimizer : public Optimizer {
 public:
  explicit TorchOptimizer(std::unique_ptr<torch::optim::Optimizer> o) : o_(std::move(o)) {}
  void zero_grad() override { o_->zero_grad(); }
  void step() override { o_->step(); }
  double lr() const override { return o_->param_groups().front().options().get_lr(); }
  void set_lr(double lr) override {
    for (auto& g : o_->param_groups()) g.options().set_lr(lr);
  }

 private:
  std::unique_ptr<torch::optim::Optimizer> o_;
};

// Adadelta (Zeiler 2012), as in torch.optim.Adadelta: E[g^2] and E[dx^2] running averages with decay
// rho; dx = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g; p -= lr * dx.
class Adadelta : public Optimizer {
 public:
  Adadelta(std::vector<torch::Tensor> params, double lr, double weight_decay, double rho = 0.9, double eps = 1e-6)
      : params_(std::move(params)), lr_(lr), wd_(weight_decay), rho_(rho), eps_(eps) {
    for (const auto& p : params_) {
      sq_grad_.push_back(torch::zeros_like(p));
      sq_delta_.push_back(torch::zeros_like(p));
    }
  }
  void zero_grad() override {
    for (auto& p : params_) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
  }
  void step() override {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      if (!p.grad().defined()) continue;
      torch::Tensor g = p.grad();
      if (wd_ != 0) g = g + wd_ * p;
      sq_grad_[i].mul_(rho_).addcmul_(g, g, 1 - rho_);
      const torch::Tensor delta = (sq_delta_[i] + eps_).sqrt_().div_((sq_grad_[i] + eps_).sqrt_()).mul_(g);
      sq_delta_[i].mul_(rho_).addcmul_(delta, delta, 1 - rho_);
      p.add_(delta, -lr_);
    }
  }
  double lr() const override { return lr_; }
  void set_lr(double lr) override { lr_ = lr; }

 private:
  std::vector<torch::Tensor> params_, sq_grad_, sq_delta_;
  double lr_, wd_, rho_, eps_;
};

// A copy of every parameter and buffer, to keep the best epoch.
using Snapshot = std::map<std::string, torch::Tensor>;

Snapshot snapshot(const Network& net) {
  Snapshot s;
  for (const auto& p : net->named_parameters()) s[p.key()] = p.value().detach().clone();
  for (const auto& b : net->named_buffers()) s[b.key()] = b.value().detach().clone();
  return s;
}

void restore(Network& net, const Snapshot& s) {
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) p.value().copy_(s.at(p.key()));
  for (auto& b : net->named_buffers()) b.value().copy_(s.at(b.key()));
}

// The epoch's progress bar, on the project's one progress line.
class ProgressBar {
 public:
  ProgressBar(bool enabled, int epoch, int epochs, std::size_t batches)
      : line_(enabled, 0.1), epoch_(epoch), epochs_(epochs), batches_(batches) {}
  void update(std::size_t done, double loss, double acc, double secs) {
    if (!line_.enabled()) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / std::max<std::size_t>(batches_, 1));
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<std::size_t>(kWidth - filled - 1), ' ');
    char text[256];
    std::snprintf(text, sizeof text, "  epoch %d/%d [%s] %zu/%zu  loss %.4f  acc %.2f %%  %.1f s", epoch_, epochs_,
                  bar.c_str(), done, batches_, loss, 100 * acc, secs);
    line_.update(text, done == batches_);
  }
  void clear() { line_.clear(); }

 private:
  ProgressLine line_;
  int epoch_, epochs_;
  std::size_t batches_;
};

}  // namespace

double default_lr(const std::string& optimizer) {
  if (optimizer == "adam") return 1e-3;
  if (optimizer == "sgd") return 1e-2;
  if (optimizer == "adadelta") return 1.0;
  throw Error("unknown optimizer '" + optimizer + "' (known: adam, adadelta, sgd)");
}

std::unique_ptr<Optimizer> make_optimizer(const std::vector<torch::Tensor>& params, const TrainOptions& o) {
  const double lr = o.lr > 0 ? o.lr : default_lr(o.optimizer);
  if (o.optimizer == "adam") {
    return std::make_unique<TorchOptimizer>(
        std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr).weight_decay(o.weight_decay)));
  }
  if (o.optimizer == "sgd") {
    return std::make_unique<TorchOptimizer>(std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(lr).momentum(o.momentum).weight_decay(o.weight_decay)));
  }
  if (o.optimizer == "adadelta") return std::make_unique<Adadelta>(params, lr, o.weight_decay);
  default_lr(o.optimizer);  // throws for unknown names
  return nullptr;
}

torch::Tensor augment_batch(const torch::Tensor& x, const TrainOptions& o) {
  const std::int64_t n = x.size(0);
  const auto uniform = [n](double a) { return (torch::rand({n}, torch::kFloat64) * 2 - 1) * a; };
  const torch::Tensor angle = uniform(o.rotate_deg * M_PI / 180.0);
  const torch::Tensor scale = 1 + uniform(o.zoom);     // > 1 zooms in
  torch::Tensor tx = uniform(2 * o.shift), ty = uniform(2 * o.shift);  // normalized coordinates span 2
  if (o.rotate_deg == 0 && o.zoom == 0) {
    // A pure translation by whole pixels copies pixels exactly (no interpolation blur).
    tx = torch::round(tx * (x.size(3) / 2.0)) * (2.0 / x.size(3));
    ty = torch::round(ty * (x.size(2) / 2.0)) * (2.0 / x.size(2));
  }
  torch::Tensor sx = torch::ones({n}, torch::kFloat64);
  if (o.flip) sx = torch::where(torch::rand({n}, torch::kFloat64) < 0.5, -sx, sx);
  // affine_grid maps output coordinates to input coordinates: in = R(angle) out / scale + t.
  const torch::Tensor c = torch::cos(angle) / scale, s = torch::sin(angle) / scale;
  const torch::Tensor theta = torch::stack({torch::stack({c * sx, -s, tx}, 1), torch::stack({s * sx, c, ty}, 1)}, 1)
                                  .to(x.scalar_type());
  namespace F = torch::nn::functional;
  const torch::Tensor grid = F::affine_grid(theta, x.sizes(), /*align_corners=*/false);
  return F::grid_sample(x, grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
}

Loss evaluate_network(Network& net, const torch::Tensor& images, const torch::Tensor& labels, int batch_size) {
  Loss out;
  const std::int64_t n = images.size(0);
  if (n == 0) return out;
  torch::NoGradGuard no_grad;
  const bool was_training = net->is_training();
  net->eval();
  double loss = 0;
  std::int64_t correct = 0;
  for (std::int64_t b = 0; b < n; b += batch_size) {
    const std::int64_t e = std::min(n, b + batch_size);
    const torch::Tensor logits = net->forward(images.slice(0, b, e));
    const torch::Tensor y = labels.slice(0, b, e);
    loss += torch::nn::functional::cross_entropy(logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
  }
  net->train(was_training);
  out.loss = loss / static_cast<double>(n);
  out.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  return out;
}

TrainResult train_network(Network& net, const nn::Dataset& train, const nn::Dataset& val, const TrainOptions& o) {
  if (o.epochs < 1) throw Error("--epochs must be at least 1");
  if (o.batch_size < 2) throw Error("--batch-size must be at least 2 (batch normalization needs a batch)");
  if (train.size() < 2) throw Error("the training set needs at least 2 images");
  if (!(o.lr_factor > 0 && o.lr_factor <= 1)) throw Error("--lr-factor must be in (0, 1]");
  if (o.schedule != "plateau" && o.schedule != "cosine") {
    throw Error("--schedule must be 'plateau' or 'cosine', not '" + o.schedule + "'");
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) throw Error("--dropout must be in [0, 1)");
  if (!(o.ema >= 0 && o.ema < 1)) throw Error("--ema must be in [0, 1)");
  if (!(train.shape == net->architecture().input)) {
    throw Error("the network expects " + net->architecture().input.to_string() + " inputs, the dataset '" + train.name +
                "' has " + train.shape.to_string() + " images");
  }
  const torch::Tensor x_train = images_tensor(train.images.data(), train.size(), train.shape);
  const torch::Tensor y_train = labels_tensor(train);
  const torch::Tensor x_val = images_tensor(val.images.data(), val.size(), val.shape);
  const torch::Tensor y_val = labels_tensor(val);
  const bool has_val = val.size() > 0;

  auto opt = make_optimizer(net->parameters(), o);
  const std::vector<double> intervals = net->activation_intervals();
  Network teacher = o.teacher;
  const bool distill = !teacher.is_empty();
  const double T = o.distill_temperature;
  if (distill) {
    if (!(o.distill_alpha >= 0 && o.distill_alpha <= 1)) throw Error("--distill-alpha must be in [0, 1]");
    if (!(T > 0)) throw Error("--distill-temperature must be positive");
    if (!(teacher->architecture().input == train.shape)) {
      throw Error("the teacher expects " + teacher->architecture().input.to_string() + " inputs, the dataset has " +
                  train.shape.to_string() + " images");
    }
    if (teacher->architecture().output() != net->architecture().output()) {
      throw Error("the teacher has " + std::to_string(teacher->architecture().output().size()) + " outputs, the network " +
                  std::to_string(net->architecture().output().size()));
    }
    teacher->eval();
  }
  // Without augmentation the teacher sees the same images every epoch: its soft targets are computed once.
  torch::Tensor teacher_soft;
  if (distill && !o.augment) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (std::int64_t i = 0; i < x_train.size(0); i += 1000) {
      parts.push_back(torch::softmax(teacher->forward(x_train.slice(0, i, std::min<std::int64_t>(i + 1000, x_train.size(0)))) / T, 1));
    }
    teacher_soft = torch::cat(parts);
  }
  net->set_dropout(o.dropout);
  const double lr0 = opt->lr();
  // The averaged parameters (batch-norm buffers are recomputed, not averaged).
  std::vector<torch::Tensor> params = net->parameters(), averaged;
  if (o.ema > 0) {
    for (const auto& p : params) averaged.push_back(p.detach().clone());
  }
  std::int64_t steps = 0;
  const bool penalize = o.range_penalty > 0 && std::any_of(intervals.begin(), intervals.end(), [](double r) { return r > 0; });
  TrainResult r;
  Snapshot best;
  double best_monitor = std::numeric_limits<double>::infinity();
  int wait = 0;
  const auto n = static_cast<std::int64_t>(train.size());
  const std::int64_t bs = o.batch_size;
  const std::size_t batches = static_cast<std::size_t>((n + bs - 1) / bs);
  const Stopwatch t0;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const Stopwatch te;
    net->train();
    ProgressBar bar(o.progress, epoch, o.epochs, batches);
    const torch::Tensor perm = torch::randperm(n, torch::kInt64);
    double loss_sum = 0;
    std::int64_t correct = 0, seen = 0;
    for (std::size_t b = 0; b < batches; ++b) {
      const std::int64_t start = static_cast<std::int64_t>(b) * bs, end = std::min(n, start + bs);
      if (end - start < 2) continue;  // batch normalization needs two samples
      if (o.schedule == "cosine") {
        const double t = (static_cast<double>(epoch - 1) * static_cast<double>(batches) + static_cast<double>(b)) /
                         (static_cast<double>(o.epochs) * static_cast<double>(batches));
        opt->set_lr(o.min_lr + 0.5 * (lr0 - o.min_lr) * (1 + std::cos(M_PI * t)));
      }
      const torch::Tensor idx = perm.slice(0, start, end);
      torch::Tensor xb = x_train.index_select(0, idx);
      const torch::Tensor yb = y_train.index_select(0, idx);
      if (o.augment) xb = augment_batch(xb, o);
      std::vector<torch::Tensor> acts;
      const torch::Tensor logits = net->forward(xb, penalize ? &acts : nullptr);
      const torch::Tensor ce = torch::nn::functional::cross_entropy(
          logits, yb, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(o.label_smoothing));
      torch::Tensor loss = ce;
      if (distill) {
        torch::Tensor soft;
        if (teacher_soft.defined()) {
          soft = teacher_soft.index_select(0, idx);
        } else {
          torch::NoGradGuard no_grad;
          soft = torch::softmax(teacher->forward(xb) / T, 1);
        }
        namespace F = torch::nn::functional;
        const torch::Tensor kd =
            F::kl_div(torch::log_softmax(logits / T, 1), soft, F::KLDivFuncOptions().reduction(torch::kBatchMean)) * (T * T);
        loss = (1 - o.distill_alpha) * ce + o.distill_alpha * kd;
      }
      for (std::size_t k = 0; k < acts.size(); ++k) {
        if (intervals[k] > 0) loss = loss + o.range_penalty * torch::relu(acts[k].abs() - intervals[k]).square().mean();
      }
      const double l = ce.item<double>();
      if (!std::isfinite(loss.item<double>())) {
        bar.clear();
        throw Error("the training loss is not finite at epoch " + std::to_string(epoch) + ", batch " + std::to_string(b + 1) +
                    ": the network diverged (polynomial activations grow fast outside their range); "
                    "try a lower --lr, --clip-grad 1 or --range-penalty");
      }
      opt->zero_grad();
      loss.backward();
      if (o.clip_grad > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), o.clip_grad);
      opt->step();
      if (o.ema > 0) {
        // Warm-up as in TensorFlow's ExponentialMovingAverage: early steps weigh the present more.
        ++steps;
        const double d = std::min(o.ema, (1.0 + static_cast<double>(steps)) / (10.0 + static_cast<double>(steps)));
        torch::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i) averaged[i].mul_(d).add_(params[i].detach(), 1 - d);
      }
      loss_sum += l * static_cast<double>(end - start);
      correct += logits.argmax(1).eq(yb).sum().item<std::int64_t>();
      seen += end - start;
      bar.update(b + 1, loss_sum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen),
                 te.seconds());
    }
    bar.clear();
    EpochStats s;
    s.epoch = epoch;
    s.train_loss = loss_sum / static_cast<double>(std::max<std::int64_t>(seen, 1));
    s.train_acc = static_cast<double>(correct) / static_cast<double>(std::max<std::int64_t>(seen, 1));
    s.lr = opt->lr();
    Snapshot training_state;
    if (o.ema > 0) {
      // Evaluate (and keep, if best) the averaged weights; training goes on from its own.
      training_state = snapshot(net);
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(averaged[i]);
      net->recalibrate_batch_norm(x_train);
    } else if (o.bn_recalibrate) {
      net->recalibrate_batch_norm(x_train);
    }
    if (has_val) {
      const Loss v = evaluate_network(net, x_val, y_val);
      s.val_loss = v.loss;
      s.val_acc = v.accuracy;
      if (!std::isfinite(v.loss)) {
        throw Error("the validation loss is not finite after epoch " + std::to_string(epoch) +
                    ": try a lower --lr or --clip-grad 1");
      }
    }
    s.seconds = te.seconds();
    r.history.push_back(s);
    const bool improved = !has_val || r.best_epoch == 0 || s.val_acc > r.best_val_acc;
    if (improved) {
      r.best_epoch = epoch;
      r.best_val_acc = s.val_acc;
      if (has_val || o.ema > 0) best = snapshot(net);
    }
    if (o.ema > 0 && epoch < o.epochs) restore(net, training_state);
    if (o.log) {
      std::fprintf(o.log, "epoch %3d/%d  train loss %.4f acc %6.2f %%", epoch, o.epochs, s.train_loss, 100 * s.train_acc);
      if (has_val) std::fprintf(o.log, "  val loss %.4f acc %6.2f %%%s", s.val_loss, 100 * s.val_acc, improved ? " *" : "  ");
      std::fprintf(o.log, "  lr %.3g  %.1f s\n", s.lr, s.seconds);
      std::fflush(o.log);
    }
    // Reduce on plateau, watching the validation loss (the training loss without a validation set).
    const double monitor = has_val ? s.val_loss : s.train_loss;
    if (monitor < best_monitor * (1 - 1e-4)) {
      best_monitor = monitor;
      wait = 0;
    } else if (o.schedule == "plateau" && o.lr_patience > 0 && ++wait >= o.lr_patience) {
      wait = 0;
      const double lr = std::max(opt->lr() * o.lr_factor, o.min_lr);
      if (lr < opt->lr()) {
        opt->set_lr(lr);
        if (o.log) std::fprintf(o.log, "  learning rate reduced to %.3g\n", lr);
      }
    }
  }
  net->set_dropout(0);
  if (has_val || o.ema > 0) restore(net, best);
  r.final_lr = opt->lr();
  r.seconds = t0.seconds();
  return r;
}

std::vector<ActivationRange> activation_ranges(const nn::Model& m, const nn::Dataset& d, std::size_t limit) {
  std::vector<std::size_t> layers;
  std::vector<ActivationRange> out;
  std::map<std::size_t, std::size_t> slot;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const nn::Layer& l = m.layers[i];
    if (l.type != nn::LayerType::Activation) continue;
    slot[i] = out.size();
    ActivationRange r;
    r.layer = i;
    r.activation = l.activation.spec;
    // A fitted polynomial's interval; "square" is exact everywhere.
    if (l.activation.poly && l.activation.spec != "square") r.range = l.activation.poly->range();
    r.min = std::numeric_limits<double>::infinity();
    r.max = -std::numeric_limits<double>::infinity();
    out.push_back(r);
  }
  const std::size_t n = limit == 0 ? d.size() : std::min(limit, d.size());
  const std::size_t k = out.size();
  if (k == 0 || n == 0) return out;
  const int threads = omp_get_max_threads();
  // Pass 1: min, max, count, outside; pass 2: a histogram of 2^16 bins between min and max.
  std::vector<std::vector<ActivationRange>> part(static_cast<std::size_t>(threads), out);
  std::vector<std::vector<std::uint64_t>> outside(static_cast<std::size_t>(threads), std::vector<std::uint64_t>(k, 0));
#pragma omp parallel for schedule(dynamic, 32) num_threads(threads)
  for (std::size_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    nn::forward(m, d.image(i), [&](std::size_t layer, const double* v, std::size_t cnt) {
      ActivationRange& r = part[t][slot.at(layer)];
      std::uint64_t& o = outside[t][slot.at(layer)];
      for (std::size_t j = 0; j < cnt; ++j) {
        r.min = std::min(r.min, v[j]);
        r.max = std::max(r.max, v[j]);
        if (r.range > 0 && std::abs(v[j]) > r.range) ++o;
      }
      r.count += cnt;
    });
  }
  std::vector<std::uint64_t> out_total(k, 0);
  for (std::size_t t = 0; t < part.size(); ++t) {
    for (std::size_t j = 0; j < k; ++j) {
      out[j].min = std::min(out[j].min, part[t][j].min);
      out[j].max = std::max(out[j].max, part[t][j].max);
      out[j].count += part[t][j].count;
      out_total[j] += outside[t][j];
    }
  }
  constexpr std::size_t kBins = 1 << 16;
  std::vector<std::vector<std::vector<std::uint64_t>>> hist(
      static_cast<std::size_t>(threads), std::vector<std::vector<std::uint64_t>>(k, std::vector<std::uint64_t>(kBins, 0)));
#pragma omp parallel for schedule(dynamic, 32) num_threads(threads)
  for (std::size_t i = 0; i < n; ++i) {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    nn::forward(m, d.image(i), [&](std::size_t layer, const double* v, std::size_t cnt) {
      const std::size_t j = slot.at(layer);
      const double lo = out[j].min, width = out[j].max - out[j].min;
      auto& h = hist[t][j];
      for (std::size_t q = 0; q < cnt; ++q) {
        const double f = width > 0 ? (v[q] - lo) / width * kBins : 0;
        h[std::min(static_cast<std::size_t>(std::max(f, 0.0)), kBins - 1)]++;
      }
    });
  }
  for (std::size_t j = 0; j < k; ++j) {
    std::vector<std::uint64_t> h(kBins, 0);
    for (const auto& ht : hist) {
      for (std::size_t b = 0; b < kBins; ++b) h[b] += ht[j][b];
    }
    const double width = out[j].max - out[j].min;
    // The value below which a fraction q of the values lie, interpolated inside its bin.
    auto quantile = [&](double q) {
      const double target = q * static_cast<double>(out[j].count);
      double cum = 0;
      for (std::size_t b = 0; b < kBins; ++b) {
        const double next = cum + static_cast<double>(h[b]);
        if (next >= target && h[b] > 0) {
          const double frac = (target - cum) / static_cast<double>(h[b]);
          return out[j].min + width * (static_cast<double>(b) + frac) / kBins;
        }
        cum = next;
      }
      return out[j].max;
    };
    out[j].q001 = quantile(0.001);
    out[j].q999 = quantile(0.999);
    out[j].outside = static_cast<double>(out_total[j]) / static_cast<double>(out[j].count);
  }
  return out;
}

std::string format_ranges(const std::vector<ActivationRange>& ranges) {
  std::string s = "activation inputs (plaintext reference):\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-5s %-22s %10s %10s %10s %10s  %s\n", "layer", "activation", "min", "0.1 %",
                "99.9 %", "max", "outside [-r, r]");
  s += line;
  for (const auto& r : ranges) {
    std::string out = "-";
    if (r.range > 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.4f %% (r = %g)", 100 * r.outside, r.range);
      out = buf;
    }
    std::snprintf(line, sizeof line, "  %-5zu %-22s %10.4f %10.4f %10.4f %10.4f  %s\n", r.layer, r.activation.c_str(), r.min,
                  r.q001, r.q999, r.max, out.c_str());
    s += line;
  }
  return s;
}

nlohmann::json ranges_json(const std::vector<ActivationRange>& ranges) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : ranges) {
    nlohmann::json j = {{"layer", r.layer}, {"activation", r.activation}, {"count", r.count}, {"min", r.min},
                        {"q0.001", r.q001}, {"q0.999", r.q999}, {"max", r.max}};
    if (r.range > 0) {
      j["range"] = r.range;
      j["outside"] = r.outside;
    }
    a.push_back(j);
  }
  return a;
}

nn::Dataset subset(const nn::Dataset& d, const std::vector<std::size_t>& indices) {
  nn::Dataset out;
  out.name = d.name;
  out.shape = d.shape;
  out.classes = d.classes;
  const auto per = static_cast<std::size_t>(d.shape.size());
  out.images.reserve(indices.size() * per);
  for (std::size_t i : indices) {
    if (i >= d.size()) throw Error("subset: index out of range");
    out.images.insert(out.images.end(), d.image(i), d.image(i) + per);
    out.labels.push_back(d.labels[i]);
  }
  return out;
}

}  // namespace hecnn::train
