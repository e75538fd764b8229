#pragma once
// A libtorch module built from an nn::Model architecture, layer for layer, so that training and the
// plaintext reference (nn::forward) compute the same function: "same" padding with TensorFlow's
// asymmetric split, batch normalization with the model's epsilon, and polynomial activations
// evaluated from the nn::Activation's power-basis coefficients. Submodules are named by layer index
// ("0.weight", "1.running_mean", ...), the names nn::Model uses, so export is a copy.
#include <torch/torch.h>

#include <set>
#include <vector>

#include "nn/model.h"

namespace hecnn::train {

// Batch normalization over dim 1 of [N, C] or [N, C, H, W] inputs, with exactly the parameters an
// nn::Model stores (no num_batches_tracked buffer).
class BatchNormImpl : public torch::nn::Module {
 public:
  BatchNormImpl(std::int64_t channels, double eps, double momentum);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias, running_mean, running_var;
  double eps, momentum;
};
TORCH_MODULE(BatchNorm);

// y = f(x) for an nn::Activation: Horner on its power-basis coefficients, or the exact function.
torch::Tensor apply_activation(const nn::Activation& a, const torch::Tensor& x);

class NetworkImpl : public torch::nn::Module {
 public:
  // Parameters are copied from `model` where it has them (a trained model); layers without them are
  // initialized the way torch initializes Conv2d and Linear (conv and dense get a bias unless their
  // index is in `without_bias`). `bn_momentum` is PyTorch's (running = (1 - m) running + m batch).
  explicit NetworkImpl(const nn::Model& model, const std::set<std::size_t>& without_bias = {},
                       double bn_momentum = 0.1);

  // x: [N, C, H, W] -> logits [N, outputs]. If `activation_inputs` is given, the input of every
  // activation layer is appended to it (in layer order).
  torch::Tensor forward(torch::Tensor x, std::vector<torch::Tensor>* activation_inputs = nullptr);

  // For each activation layer in order: r of a fitted polynomial's interval [-r, r], 0 for exact
  // functions and "square".
  std::vector<double> activation_intervals() const;

  // Recomputes the batch-normalization running statistics as plain averages over `images` (after
  // training on augmented images, so they describe the images the model will see).
  // Dropout with probability p on the inputs of every dense layer, in training mode only (0: off).
  void set_dropout(double p) { dropout_ = p; }

  void recalibrate_batch_norm(const torch::Tensor& images, std::int64_t batch_size = 500);

  // The architecture with the current parameters (float32), ready for nn::save_model.
  nn::Model to_model() const;
  const nn::Model& architecture() const { return arch_; }

 private:
  nn::Model arch_;                          // without parameters
  std::vector<nn::Shape> in_shapes_;        // input shape of each layer
  std::vector<torch::nn::Conv2d> conv_;     // per layer index (null where not a conv)
  std::vector<torch::nn::Linear> dense_;
  std::vector<BatchNorm> bn_;
  std::vector<std::vector<std::int64_t>> pad_;
  double dropout_ = 0;  // constant_pad_nd amounts {left, right, top, bottom}
};
TORCH_MODULE(Network);

// Copies an nn image dataset into a float tensor [N, C, H, W] and labels [N] (int64).
torch::Tensor images_tensor(const float* images, std::size_t count, const nn::Shape& shape);

}  // namespace hecnn::train
