#pragma once
// The model description shared by training, the plaintext reference and the encrypted compiler:
// a sequence of layers over CHW tensors, with their parameters. Parameter layouts follow PyTorch
// (conv weight [out, in, kh, kw], dense weight [out, in], flatten in C, H, W order), and parameter
// names follow a torch.nn.Sequential state dict ("<layer index>.weight"), so a trained network
// exports without renaming.
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
enum class LayerType { Conv2d, BatchNorm, Activation, AvgPool2d, GlobalAvgPool2d, Flatten, Dense };
enum class Padding { Valid, Same };

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

struct Layer {
  LayerType type = LayerType::Flatten;
  std::string name;
  // Conv2d
  int filters = 0, kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1;
  Padding padding = Padding::Valid;
  // AvgPool2d
  int pool = 0, pool_stride = 0;
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

  // Output shape of every layer (index i = after layer i); throws hecnn::Error on inconsistent
  // hyper-parameters or parameter shapes.
  // With check_params = false only the hyper-parameters are checked (an untrained architecture).
  std::vector<Shape> shapes(bool check_params = true) const;
  Shape output() const;
  void validate() const { shapes(); }
  // Parameter shapes each layer must have, given its input shape.
  static std::map<std::string, std::vector<std::int64_t>> expected_params(const Layer& l, const Shape& in);

  // Architecture as JSON (no tensors) and back. The JSON form is also what `--arch FILE` reads.
  nlohmann::json architecture() const;
  static Model from_architecture(const nlohmann::json& arch);
  std::string summary() const;
};

// Presets: "mnist-paper" (Conv 5@5x5 s2 -> BN -> act -> Conv 50@5x5 s2 -> BN -> act -> Flatten ->
// Dense 10) and "cifar-paper" (3 x [Conv 3x3 same (32, 64, 128) -> BN -> act -> AvgPool 2x2] ->
// Flatten -> Dense 256 -> Dense 10), with the given activation specification; "mnist-paper-gap" and
// "cifar-paper-gap" are PP-CNN's --gap variants, with GlobalAvgPool in place of the Flatten.
Model preset_architecture(const std::string& name, const std::string& activation);
std::vector<std::string> preset_names();

}  // namespace hecnn::nn
