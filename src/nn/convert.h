#pragma once
// Turning an ordinary CNN into an HE-friendly one: every exact activation (ReLU, ...) replaced by a
// fitted polynomial, and a batch normalization calibrated on a dataset inserted in front of each
// activation that has none, so that the polynomial's inputs fall within its interval [-r, r].
#include <map>
#include <string>
#include <vector>

#include "nn/dataset.h"
#include "nn/model.h"

namespace hecnn::nn {

struct ConvertOptions {
  // Polynomial specification for every exact activation ("swish:deg4:range4"); empty: keep them.
  std::string activation;
  // Per activation layer (index in the input model, as `hecnn inspect` numbers them): a
  // specification that overrides `activation` for that layer.
  std::map<std::size_t, std::string> per_layer;
  // Insert a calibrated batch normalization in front of every polynomial activation whose input
  // does not come from one.
  bool insert_batch_norm = true;
  // Fold every batch normalization that follows a convolution or dense layer into it at the end
  // (fine-tuning wants them unfolded; compilation for encrypted inference folds them anyway).
  bool fold = false;
};

// The inputs of one activation over the calibration images.
struct InputRange {
  double min = 0, max = 0;
  double outside = 0;  // fraction of values with |x| > r (0 for exact functions)
};

struct ConvertedActivation {
  std::size_t layer_before = 0, layer_after = 0;  // indices in the input and the converted model
  std::string before, after;                       // activation specifications
  double range = 0;                                // r of the converted activation's interval (0: none)
  bool inserted_batch_norm = false;
  InputRange input_before, input_after;
};

struct Conversion {
  Model model;
  std::vector<ConvertedActivation> activations;
  std::size_t calibration_images = 0;
};

// Converts `m` using `count` images of `calibration` (spread evenly over it; 0: all), activation
// by activation, each calibrated on the outputs of the layers already converted before it. A calibrated
// batch normalization maps channel c's inputs x to (x - mean_c) / std_c * (r / z_c), z_c the largest
// |x - mean_c| / std_c seen: every calibration input lands in [-r, r]. Its statistics are those
// that `hecnn train` recomputes after each epoch, so fine-tuning starts from the same function. Throws hecnn::Error for a
// specification that is not a polynomial, a layer index that is not an activation, or a dataset
// whose images the model does not take.
Conversion convert_to_polynomials(const Model& m, const Dataset& calibration, std::size_t count, const ConvertOptions& o);
// The checks of the options alone (before a dataset is read): throws hecnn::Error for a
// specification that is not a polynomial or a layer index that is not an activation.
void check_convert_options(const Model& m, const ConvertOptions& o);

// A table of every activation: function before and after, input range before and after, share of
// inputs outside [-r, r].
std::string format_conversion(const Conversion& c);

}  // namespace hecnn::nn
