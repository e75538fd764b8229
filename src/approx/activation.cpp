#include "approx/activation.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "common/error.h"

namespace hecnn::approx {

namespace {

double sigmoid(double x) {
  // Written so neither branch overflows for large |x|.
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double swish(double x) { return x * sigmoid(x); }
double relu(double x) { return x > 0 ? x : 0.0; }
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double mish(double x) { return x * std::tanh(softplus(x)); }
double tanh_fn(double x) { return std::tanh(x); }
double square(double x) { return x * x; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

const std::vector<ActivationFunction>& activation_functions() {
  static const std::vector<ActivationFunction> fns = {
      {"swish", "x * sigmoid(x)", swish, {}},
      {"relu", "max(x, 0)", relu, {0.0}},
      {"gelu", "x * Phi(x) = x/2 * (1 + erf(x/sqrt 2))", gelu, {}},
      {"mish", "x * tanh(softplus(x))", mish, {}},
      {"softplus", "log(1 + e^x)", softplus, {}},
      {"sigmoid", "1 / (1 + e^-x)", sigmoid, {}},
      {"tanh", "tanh(x)", tanh_fn, {}},
      {"square", "x^2", square, {}},
  };
  return fns;
}

std::string activation_names() {
  std::string s;
  for (const auto& f : activation_functions()) s += (s.empty() ? "" : ", ") + f.name;
  return s;
}

const ActivationFunction& find_activation(const std::string& name) {
  std::string key = lower(name);
  if (key == "silu") key = "swish";
  for (const auto& f : activation_functions()) {
    if (f.name == key) return f;
  }
  throw Error("unknown activation function '" + name + "' (known: " + activation_names() + ")");
}

}  // namespace hecnn::approx
