#pragma once
// Training loop (libtorch), optimizers, data augmentation, and the activation range report.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nn/dataset.h"
#include "train/network.h"

namespace hecnn::train {

struct TrainOptions {
  int epochs = 20;
  int batch_size = 128;
  std::string optimizer = "adam";  // adam | adadelta | sgd
  double lr = 0;                   // 0: the optimizer's default (adam 1e-3, sgd 1e-2, adadelta 1)
  double momentum = 0.9;           // sgd
  double weight_decay = 0;         // L2 penalty added to the gradients
  int lr_patience = 3;             // reduce-on-plateau: epochs without improvement (0: off)
  double lr_factor = 0.5;          // new lr = lr * factor
  double min_lr = 1e-6;
  // "plateau": reduce-on-plateau (lr_patience, lr_factor); "cosine": lr follows half a cosine from
  // lr to min_lr over all the batches of the run.
  std::string schedule = "plateau";
  double dropout = 0;              // dropout on the inputs of dense layers while training
  // Exponential moving average of the weights (Polyak averaging), updated after every batch with
  // this decay (0: off). Validation, the best-epoch choice and the result use the averaged weights,
  // with batch-norm statistics recomputed for them.
  double ema = 0;
  double clip_grad = 0;            // maximum gradient norm (0: no clipping)
  double label_smoothing = 0;      // cross-entropy against (1 - e) one-hot + e / classes
  // Adds range_penalty * mean(max(|x| - r, 0)^2) over the inputs x of every fitted polynomial
  // activation (interval [-r, r]) to the loss: keeps inputs where the polynomial approximates its
  // function and away from the fast growth of its leading term.
  double range_penalty = 0;
  bool augment = false;            // random rotation, zoom and shift (and flip if `flip`)
  double rotate_deg = 10, zoom = 0.1, shift = 0.1;  // shift as a fraction of the image size
  bool flip = false;               // random horizontal flips (with augment)
  // After each epoch, recompute the batch-norm statistics as exact averages over the unaugmented
  // training images, for the epoch's final weights (the running averages mix earlier weights and,
  // with augment, describe augmented images rather than what inference sees).
  bool bn_recalibrate = true;
  // Knowledge distillation: with a teacher, the loss is (1 - alpha) CE + alpha T^2 KL(teacher || student)
  // on logits divided by the temperature T (Hinton et al. 2015).
  Network teacher{nullptr};
  double distill_alpha = 0.5, distill_temperature = 4;
  double bn_momentum = 0.1;        // PyTorch convention
  std::uint64_t seed = 1;
  bool progress = true;            // progress bar on stderr (only when it is a terminal)
  std::FILE* log = stdout;         // one line per epoch (nullptr: silent)
};

struct EpochStats {
  int epoch = 0;
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0;
};

struct TrainResult {
  std::vector<EpochStats> history;
  int best_epoch = 0;          // 1-based; the network holds this epoch's parameters
  double best_val_acc = 0;     // validation accuracy of that epoch (0 without a validation set)
  double seconds = 0;
  double final_lr = 0;
};

// Everything an optimizer step needs, behind one interface (libtorch 1.13 has no Adadelta).
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void zero_grad() = 0;
  virtual void step() = 0;
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
};
std::unique_ptr<Optimizer> make_optimizer(const std::vector<torch::Tensor>& params, const TrainOptions& o);
double default_lr(const std::string& optimizer);

struct Loss {
  double loss = 0, accuracy = 0;
};

// Trains `net` on `train` and, when `val` is non-empty, keeps the parameters of the epoch with the
// best validation accuracy. Throws hecnn::Error if the loss stops being finite.
TrainResult train_network(Network& net, const nn::Dataset& train, const nn::Dataset& val, const TrainOptions& o);

// Mean cross-entropy and accuracy of `net` in eval mode.
Loss evaluate_network(Network& net, const torch::Tensor& images, const torch::Tensor& labels, int batch_size = 1000);

// Random rotation / zoom / shift (and horizontal flip) of a batch [N, C, H, W], bilinear, zeros outside.
// Without rotation and zoom, shifts are rounded to whole pixels.
torch::Tensor augment_batch(const torch::Tensor& x, const TrainOptions& o);

// Inputs of one activation layer over a dataset, computed with the plaintext reference (nn::forward).
struct ActivationRange {
  std::size_t layer = 0;
  std::string activation;
  double range = 0;             // r of the fitted interval [-r, r] (0: exact function, no interval)
  std::uint64_t count = 0;      // values seen
  double min = 0, max = 0;
  double q001 = 0, q999 = 0;    // 0.1 % and 99.9 % quantiles (histogram, error < (max - min) / 65536)
  double outside = 0;           // fraction of values with |x| > r
};
std::vector<ActivationRange> activation_ranges(const nn::Model& m, const nn::Dataset& d, std::size_t limit = 0);
std::string format_ranges(const std::vector<ActivationRange>& r);
nlohmann::json ranges_json(const std::vector<ActivationRange>& r);

// A subset of a dataset (in the given order).
nn::Dataset subset(const nn::Dataset& d, const std::vector<std::size_t>& indices);

}  // namespace hecnn::train
