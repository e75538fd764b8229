#pragma once
// The activation functions hecnn can approximate. Adding one is a single entry in activation.cpp.
#include <string>
#include <vector>

namespace hecnn::approx {

struct ActivationFunction {
  std::string name;
  std::string formula;        // human-readable definition
  double (*eval)(double);
  // Points where the function is not smooth (quadrature panels split there).
  std::vector<double> kinks;
};

// All registered functions, in a stable order.
const std::vector<ActivationFunction>& activation_functions();
// Looks a function up by name (case-insensitive; "silu" is an alias of "swish"). Throws
// hecnn::Error listing the known names when there is no such function.
const ActivationFunction& find_activation(const std::string& name);
// "swish, relu, ..." for messages.
std::string activation_names();

}  // namespace hecnn::approx
