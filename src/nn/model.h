#pragma once
// The model description shared by training, the plaintext reference and the encrypted compiler:
// a graph of layers over CHW tensors, with their parameters. Layers are stored in a topological
// order: each reads the outputs of earlier layers (or the model's input), by default the one just
// before it, so that a chain needs no wiring; a residual network names its branches
// (Layer::inputs) and joins them with Add layers. The last layer's output is the model's output.
// Parameter layouts follow PyTorch (conv weight [out, in, kh, kw], dense weight [out, in], flatten
// in C, H, W order), and parameter names follow a torch.nn.Sequential state dict
// ("<layer index>.weight"), so a trained chain exports without renaming.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "approx/polynomial.h"

namespace hecnn::nn {

struct Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<std::int64_t> s, float fill = 0.0f);
  std::int64_t numel() const;
  std::string shape_string() const;
};

struct Shape {
  int c = 0, h = 0, w = 0;  // a flat vector of n values is {n, 1, 1}
  std::int64_t size() const { return static_cast<std::int64_t>(c) * h * w; }
  bool operator==(const Shape&) const = default;
  std::string to_string() const;
};

// GlobalAvgPool2d: the mean of every channel over its whole plane (output C x 1 x 1), as Keras'
// GlobalAveragePooling2D.
// Add: the element-wise sum of two or more tensors of one shape (a residual connection).
enum class LayerType { Conv2d, BatchNorm, Activation, AvgPool2d, GlobalAvgPool2d, Flatten, Dense, Add };
// Same: TensorFlow's (out = ceil(in / stride), the odd row and column at the bottom and right).
// Explicit: the rows and columns of Layer::pad_* (PyTorch's padding=k, ONNX's pads).
enum class Padding { Valid, Same, Explicit };

std::string to_string(LayerType t);

// An activation: an exact function (for plaintext baselines) or a polynomial. Polynomials come from
// a fit specification such as "swish:deg4:range4" (see approx::parse_activation_spec), from
// "square", or from explicit power-basis coefficients.
struct Activation {
  std::string spec;                         // "relu", "swish:deg4:range4", "square", "poly"
  std::optional<approx::Polynomial> poly;   // set for polynomial activations
  bool is_polynomial() const { return poly.has_value(); }
  // Resolves a specification: exact names ("relu", "swish", ...), fitted polynomials, "square".
  static Activation parse(const std::string& spec);
  static Activation polynomial(std::vector<double> power_coeffs, double range, std::string spec = "poly");
  double operator()(double x) const;
};

// The model's input, as a layer's source (Layer::inputs).
inline constexpr int kModelInput = -1;

struct Layer {
  LayerType type = LayerType::Flatten;
  std::string name;
  // The layers whose outputs this one reads: indices of earlier layers, or kModelInput. Empty: the
  // layer just before (the model's input for the first layer). Add reads two or more, the others one.
  std::vector<int> inputs;
  // Conv2d
  int filters = 0, kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1;
  // Conv2d and AvgPool2d (a pooling is Valid or Explicit); Explicit pads with zeros.
  Padding padding = Padding::Valid;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  // AvgPool2d
  int pool = 0, pool_stride = 0;
  // AvgPool2d with padding: whether the padded zeros count in the mean (PyTorch's default) or only
  // the window's cells inside the image (ONNX's default, TensorFlow's "same").
  bool count_include_pad = true;
  // Dense
  int units = 0;
  // BatchNorm
  double eps = 1e-5;
  // Activation
  Activation activation;
  // Parameters by role: weight, bias (conv/dense); weight, bias, running_mean, running_var (BN).
  std::map<std::string, Tensor> params;

  bool has_bias() const { return params.count("bias") != 0; }
};

struct Model {
  Shape input;
  std::vector<Layer> layers;
  nlohmann::json info = nlohmann::json::object();  // free-form: name, dataset, training summary

  // The layers layer i reads (Layer::inputs with the chain's default filled in).
  std::vector<int> sources(std::size_t i) const;
  // Whether every layer reads the one before it (a chain: no branches, no Add).
  bool is_chain() const;
  // Per layer, the later layers reading its output (ascending); the last layer's output is the model's.
  std::vector<std::vector<std::size_t>> consumers() const;
  // The shape of a source (kModelInput or a layer index) given the layers' shapes.
  Shape shape_of(int source, const std::vector<Shape>& shapes) const {
    return source == kModelInput ? input : shapes[static_cast<std::size_t>(source)];
  }
  // Clears every Layer::inputs that names just the layer before (the stored form of a chain).
  void compact_inputs();

  // Output shape of every layer (index i = after layer i); throws hecnn::Error on inconsistent
  // hyper-parameters, parameter shapes or wiring (a source that is not an earlier layer, an Add of
  // tensors of different shapes).
  // With check_params = false only the hyper-parameters are checked (an untrained architecture).
  std::vector<Shape> shapes(bool check_params = true) const;
  Shape output() const;
  // shapes(), and every layer's output read by a later layer (but the last).
  void validate() const;
  // Parameter shapes each layer must have, given its input shape.
  static std::map<std::string, std::vector<std::int64_t>> expected_params(const Layer& l, const Shape& in);

  // Architecture as JSON (no tensors) and back. The JSON form is also what `--arch FILE` reads.
  nlohmann::json architecture() const;
  static Model from_architecture(const nlohmann::json& arch);
  std::string summary() const;
};

// The model without the layers marked in `drop` (each one input): their readers read that input
// instead, and the inputs of the others are renumbered.
Model without_layers(const Model& m, const std::vector<bool>& drop);

// Presets: "mnist-paper" (Conv 5@5x5 s2 -> BN -> act -> Conv 50@5x5 s2 -> BN -> act -> Flatten ->
// Dense 10) and "cifar-paper" (3 x [Conv 3x3 same (32, 64, 128) -> BN -> act -> AvgPool 2x2] ->
// Flatten -> Dense 256 -> Dense 10), with the given activation specification; "mnist-paper-gap" and
// "cifar-paper-gap" are PP-CNN's --gap variants, with GlobalAvgPool in place of the Flatten.
Model preset_architecture(const std::string& name, const std::string& activation);
std::vector<std::string> preset_names();

}  // namespace hecnn::nn
