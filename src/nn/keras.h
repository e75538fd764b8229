#pragma once
// Import of Keras 2.x Sequential models as PP-CNN saved them: a structure JSON (model.to_json())
// and a weights HDF5 file (model.save_weights()), channels-last.
#include <string>

#include "nn/model.h"

namespace hecnn::nn {

// Converts to hecnn's layout (CHW, PyTorch parameter shapes; the Dense layer after a Flatten has
// its inputs permuted from HWC to CHW order). Custom activations named like PP-CNN's
// ("swish_rg4_deg4") map to the coefficients PP-CNN published for them, or else to our fit of the
// same specification. Dropout is dropped (inference), a final softmax is dropped (argmax is
// unchanged). Any other unsupported layer or option is an error naming the layer.
Model import_keras(const std::string& structure_json_path, const std::string& weights_h5_path);

}  // namespace hecnn::nn
