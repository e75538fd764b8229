#pragma once
// The plaintext reference forward pass (double precision), batch-normalization folding, and
// evaluation over a dataset.
#include <array>
#include <functional>
#include <vector>

#include "nn/dataset.h"
#include "nn/model.h"

namespace hecnn::nn {

// Called with the input of every activation layer (layer index, values, count).
using ActivationObserver = std::function<void(std::size_t layer, const double* values, std::size_t n)>;

// One layer: y = layer(x) for x of shape `in` (CHW, row-major).
void forward_layer(const Layer& l, const Shape& in, const std::vector<double>& x, std::vector<double>& y);

// The whole network on one image (CHW floats); returns the outputs (logits).
std::vector<double> forward(const Model& m, const float* image, const ActivationObserver& observe = nullptr);

// A model whose every BatchNorm that directly follows a Conv2d or Dense is folded into it
// (W' = W * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * gamma / sqrt(var + eps) +
// beta). Predictions are unchanged up to rounding.
Model fold_batch_norm(const Model& m);

struct Evaluation {
  std::size_t count = 0, correct = 0;
  double accuracy() const { return count ? static_cast<double>(correct) / static_cast<double>(count) : 0; }
  std::vector<int> predictions;
  std::vector<std::vector<double>> logits;  // filled when requested
  std::vector<std::vector<std::size_t>> confusion;  // [true label][predicted]
};

// Classifies the first `limit` images (0: all) with OpenMP over images; `progress` is called with
// the number done so far (from one thread).
Evaluation evaluate(const Model& m, const Dataset& d, std::size_t limit = 0, bool keep_logits = false,
                    const std::function<void(std::size_t)>& progress = nullptr);

int argmax(const std::vector<double>& v);

}  // namespace hecnn::nn
