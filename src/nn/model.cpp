#include "nn/model.h"

#include <cmath>
#include <set>
#include <sstream>

#include "approx/fit.h"
#include "common/error.h"
#include "nn/conv.h"
#include "nn/limits.h"

namespace hecnn::nn {

using nlohmann::json;

Tensor::Tensor(std::vector<std::int64_t> s, float fill) : shape(std::move(s)) {
  data.assign(static_cast<std::size_t>(numel()), fill);
}

std::int64_t Tensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string Shape::to_string() const {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

std::string to_string(LayerType t) {
  switch (t) {
    case LayerType::Conv2d: return "conv2d";
    case LayerType::BatchNorm: return "batchnorm";
    case LayerType::Activation: return "activation";
    case LayerType::AvgPool2d: return "avgpool2d";
    case LayerType::GlobalAvgPool2d: return "globalavgpool2d";
    case LayerType::Flatten: return "flatten";
    case LayerType::Dense: return "dense";
    case LayerType::Add: return "add";
  }
  return "?";
}

namespace {

LayerType parse_layer_type(const std::string& s) {
  for (auto t : {LayerType::Conv2d, LayerType::BatchNorm, LayerType::Activation, LayerType::AvgPool2d,
                 LayerType::GlobalAvgPool2d, LayerType::Flatten, LayerType::Dense, LayerType::Add}) {
    if (s == to_string(t)) return t;
  }
  throw Error("unknown layer type '" + s +
              "' (known: conv2d, batchnorm, activation, avgpool2d, globalavgpool2d, flatten, dense, add)");
}

}  // namespace

Activation Activation::parse(const std::string& spec) {
  Activation a;
  a.spec = spec;
  if (spec == "square") {
    a.poly = approx::Polynomial::power({0.0, 0.0, 1.0}, 1.0);
    return a;
  }
  if (spec.find(':') == std::string::npos && spec.find("_rg") == std::string::npos) {
    a.spec = approx::find_activation(spec).name;  // exact function; throws for unknown names
    return a;
  }
  const approx::ActivationSpec s = approx::parse_activation_spec(spec);
  a.spec = s.to_string();
  a.poly = approx::fit(s.function, s.options).power;
  return a;
}

Activation Activation::polynomial(std::vector<double> power_coeffs, double range, std::string spec) {
  if (power_coeffs.empty() || power_coeffs.size() > static_cast<std::size_t>(approx::kMaxDegree) + 1) {
    throw Error("activation '" + spec + "': " + std::to_string(power_coeffs.size()) + " coefficients (1 to " +
                std::to_string(approx::kMaxDegree + 1) + ")");
  }
  for (double c : power_coeffs) {
    if (!std::isfinite(c)) throw Error("activation '" + spec + "': a coefficient is not finite");
  }
  if (!(range > 0) || !(range <= approx::kMaxRange)) {
    throw Error("activation '" + spec + "': range " + std::to_string(range) + " is out of (0, 1e4]");
  }
  Activation a;
  a.spec = std::move(spec);
  a.poly = approx::Polynomial::power(std::move(power_coeffs), range);
  return a;
}

double Activation::operator()(double x) const {
  if (poly) return (*poly)(x);
  return approx::find_activation(spec).eval(x);
}

std::map<std::string, std::vector<std::int64_t>> Model::expected_params(const Layer& l, const Shape& in) {
  std::map<std::string, std::vector<std::int64_t>> p;
  switch (l.type) {
    case LayerType::Conv2d:
      p["weight"] = {l.filters, in.c, l.kernel_h, l.kernel_w};
      p["bias"] = {l.filters};
      break;
    case LayerType::Dense:
      p["weight"] = {l.units, in.size()};
      p["bias"] = {l.units};
      break;
    case LayerType::BatchNorm:
      for (const char* n : {"weight", "bias", "running_mean", "running_var"}) p[n] = {in.c};
      break;
    default:
      break;
  }
  return p;
}

std::vector<int> Model::sources(std::size_t i) const {
  const Layer& l = layers.at(i);
  if (!l.inputs.empty()) return l.inputs;
  return {static_cast<int>(i) - 1};  // layer 0: kModelInput
}

bool Model::is_chain() const {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].type == LayerType::Add) return false;
    const auto src = sources(i);
    if (src.size() != 1 || src[0] != static_cast<int>(i) - 1) return false;
  }
  return true;
}

std::vector<std::vector<std::size_t>> Model::consumers() const {
  std::vector<std::vector<std::size_t>> c(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (int s : sources(i)) {
      if (s >= 0 && static_cast<std::size_t>(s) < i) c[static_cast<std::size_t>(s)].push_back(i);
    }
  }
  for (auto& v : c) v.erase(std::unique(v.begin(), v.end()), v.end());
  return c;
}

void Model::compact_inputs() {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    auto& in = layers[i].inputs;
    if (in.size() == 1 && in[0] == static_cast<int>(i) - 1 && layers[i].type != LayerType::Add) in.clear();
  }
}

std::vector<Shape> Model::shapes(bool check_params) const {
  check_input_shape(input);
  if (layers.size() > static_cast<std::size_t>(limits::kMaxLayers)) {
    throw Error("model: " + std::to_string(layers.size()) + " layers, more than the " + std::to_string(limits::kMaxLayers) +
                " accepted");
  }
  std::vector<Shape> out;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const std::string where = "model: layer " + std::to_string(i) + " (" + to_string(l.type) +
                              (l.name.empty() ? "" : " '" + l.name + "'") + ")";
    // Wiring: earlier layers or the input, one source (two or more for Add), each named once.
    if (l.inputs.size() > static_cast<std::size_t>(limits::kMaxLayers)) throw Error(where + ": too many inputs");
    const std::vector<int> src = sources(i);
    if (l.type == LayerType::Add ? src.size() < 2 : src.size() != 1) {
      throw Error(where + ": " + std::to_string(src.size()) + " inputs (" +
                  (l.type == LayerType::Add ? "add takes two or more" : "this layer takes one") + ")");
    }
    for (std::size_t k = 0; k < src.size(); ++k) {
      if (src[k] < kModelInput || src[k] >= static_cast<int>(i)) {
        throw Error(where + ": input " + std::to_string(src[k]) + " is not an earlier layer (or -1, the model's input)");
      }
      for (std::size_t j = 0; j < k; ++j) {
        if (src[j] == src[k]) throw Error(where + ": reads layer " + std::to_string(src[k]) + " twice");
      }
    }
    const Shape s = shape_of(src[0], out);
    Shape n = s;
    check_layer_hyperparameters(l, where);
    if (l.padding == Padding::Explicit) {
      for (int p : {l.pad_top, l.pad_left, l.pad_bottom, l.pad_right}) {
        if (p < 0 || p > limits::kMaxKernel) {
          throw Error(where + ": padding " + std::to_string(p) + " is out of range (0 to " + std::to_string(limits::kMaxKernel) + ")");
        }
      }
    }
    switch (l.type) {
      case LayerType::Conv2d:
        n = {l.filters, window_out(s.h, l.kernel_h, l.stride_h, l.padding, l.pad_top, l.pad_bottom),
             window_out(s.w, l.kernel_w, l.stride_w, l.padding, l.pad_left, l.pad_right)};
        break;
      case LayerType::AvgPool2d:
        if (l.padding == Padding::Same) throw Error(where + ": a pooling's padding is valid or explicit");
        if (l.padding == Padding::Explicit && (2 * std::max(l.pad_top, l.pad_bottom) > l.pool || 2 * std::max(l.pad_left, l.pad_right) > l.pool)) {
          throw Error(where + ": padding larger than half the pool size");
        }
        n = {s.c, window_out(s.h, l.pool, l.pool_stride, l.padding, l.pad_top, l.pad_bottom),
             window_out(s.w, l.pool, l.pool_stride, l.padding, l.pad_left, l.pad_right)};
        break;
      case LayerType::GlobalAvgPool2d:
        n = {s.c, 1, 1};
        break;
      case LayerType::Flatten:
        n = {static_cast<int>(s.size()), 1, 1};
        break;
      case LayerType::Dense:
        if (s.h != 1 || s.w != 1) throw Error(where + ": input " + s.to_string() + " is not flat (add a flatten layer)");
        n = {l.units, 1, 1};
        break;
      case LayerType::BatchNorm:
        if (!(l.eps >= 0) || !std::isfinite(l.eps)) throw Error(where + ": epsilon must not be negative");
        break;
      case LayerType::Activation:
        if (l.activation.spec.empty()) throw Error(where + ": no activation function");
        break;
      case LayerType::Add:
        for (int k : src) {
          if (!(shape_of(k, out) == s)) {
            throw Error(where + ": adds tensors of different shapes (" + s.to_string() + " and " + shape_of(k, out).to_string() + ")");
          }
        }
        break;
    }
    if (n.c <= 0 || n.h <= 0 || n.w <= 0) throw Error(where + ": input " + s.to_string() + " is too small");
    check_layer_size(l, s, n, where);
    // Parameters: exactly the expected ones (bias optional for conv/dense), with matching shapes.
    const auto expected = check_params ? expected_params(l, s) : decltype(expected_params(l, s)){};
    for (const auto& [name, shape] : expected) {
      auto it = l.params.find(name);
      if (it == l.params.end()) {
        if (name == "bias" && (l.type == LayerType::Conv2d || l.type == LayerType::Dense)) continue;
        throw Error(where + ": missing parameter '" + name + "'");
      }
      if (it->second.shape != shape) {
        Tensor want;
        want.shape = shape;
        throw Error(where + ": parameter '" + name + "' has shape " + it->second.shape_string() + ", expected " +
                    want.shape_string());
      }
      if (static_cast<std::int64_t>(it->second.data.size()) != it->second.numel()) {
        throw Error(where + ": parameter '" + name + "' has " + std::to_string(it->second.data.size()) +
                    " values for shape " + it->second.shape_string());
      }
    }
    for (const auto& [name, t] : l.params) {
      if (check_params && !expected.count(name)) throw Error(where + ": unexpected parameter '" + name + "'");
    }
    out.push_back(n);
  }
  return out;
}

void Model::validate() const {
  shapes();
  const auto readers = consumers();
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) {
    if (readers[i].empty()) {
      throw Error("model: the output of layer " + std::to_string(i) + " (" + to_string(layers[i].type) +
                  ") is read by no layer (only the last layer's output is the model's)");
    }
  }
}

Shape Model::output() const {
  const auto s = shapes(false);
  return s.empty() ? input : s.back();
}

json Model::architecture() const {
  json layers_json = json::array();
  for (const Layer& l : layers) {
    json j;
    j["type"] = to_string(l.type);
    if (!l.name.empty()) j["name"] = l.name;
    if (!l.inputs.empty()) j["inputs"] = l.inputs;
    const auto padding = [&] {
      if (l.padding == Padding::Explicit) return json{l.pad_top, l.pad_left, l.pad_bottom, l.pad_right};
      return json(l.padding == Padding::Same ? "same" : "valid");
    };
    switch (l.type) {
      case LayerType::Conv2d:
        j["filters"] = l.filters;
        j["kernel"] = {l.kernel_h, l.kernel_w};
        j["stride"] = {l.stride_h, l.stride_w};
        j["padding"] = padding();
        j["bias"] = l.has_bias();
        break;
      case LayerType::AvgPool2d:
        j["pool"] = l.pool;
        j["stride"] = l.pool_stride;
        if (l.padding == Padding::Explicit) {
          j["padding"] = padding();
          j["count_include_pad"] = l.count_include_pad;
        }
        break;
      case LayerType::Dense:
        j["units"] = l.units;
        j["bias"] = l.has_bias();
        break;
      case LayerType::BatchNorm:
        j["eps"] = l.eps;
        break;
      case LayerType::Activation:
        j["fn"] = l.activation.spec;
        if (l.activation.poly) {
          j["power"] = l.activation.poly->coeffs();
          j["range"] = l.activation.poly->range();
        }
        break;
      case LayerType::GlobalAvgPool2d:
      case LayerType::Flatten:
      case LayerType::Add:
        break;
    }
    layers_json.push_back(j);
  }
  return json{{"input", {input.c, input.h, input.w}}, {"layers", layers_json}};
}

namespace {
// Activation::parse for one model: an identical specification is fitted once, and the points of
// all distinct least-squares fits together are bounded (limits::kMaxFitPointsPerModel) before
// anything is fitted, so that a small file cannot ask for hundreds of costly fits.
class ModelFits {
 public:
  explicit ModelFits(const json& layers) {
    std::set<std::string> specs;
    for (const auto& j : layers) {
      if (!j.is_object() || j.value("type", "") != "activation" || j.contains("power") || !j.contains("fn") ||
          !j.at("fn").is_string()) {
        continue;
      }
      const std::string fn = j.at("fn").get<std::string>();
      if ((fn.find(':') == std::string::npos && fn.find("_rg") == std::string::npos) || !specs.insert(fn).second) continue;
      const approx::ActivationSpec s = approx::parse_activation_spec(fn);
      if (s.options.method == approx::FitMethod::LeastSquares) points_ += s.options.points;
    }
    if (points_ > limits::kMaxFitPointsPerModel) {
      throw Error("architecture: the activation fits use " + std::to_string(points_) + " points in all (at most " +
                  std::to_string(limits::kMaxFitPointsPerModel) + " per model)");
    }
  }
  Activation parse(const std::string& spec) {
    if (auto it = done_.find(spec); it != done_.end()) return it->second;
    return done_.emplace(spec, Activation::parse(spec)).first->second;
  }

 private:
  std::map<std::string, Activation> done_;
  std::int64_t points_ = 0;
};
}  // namespace

Model Model::from_architecture(const json& arch) {
  try {
    Model m;
    const auto& in = arch.at("input");
    if (!in.is_array() || in.size() != 3) throw Error("architecture: 'input' must be [channels, height, width]");
    m.input = {json_int(in[0], "architecture: 'input'"), json_int(in[1], "architecture: 'input'"),
               json_int(in[2], "architecture: 'input'")};
    check_input_shape(m.input);
    const auto& layers = arch.at("layers");
    if (!layers.is_array()) throw Error("architecture: 'layers' must be an array");
    if (layers.size() > static_cast<std::size_t>(limits::kMaxLayers)) {
      throw Error("architecture: " + std::to_string(layers.size()) + " layers, more than the " +
                  std::to_string(limits::kMaxLayers) + " accepted");
    }
    ModelFits fits(layers);
    for (const auto& j : layers) {
      Layer l;
      l.type = parse_layer_type(j.at("type").get<std::string>());
      l.name = j.value("name", "");
      if (j.contains("inputs")) {
        const auto& in = j.at("inputs");
        if (!in.is_array() || in.empty() || in.size() > static_cast<std::size_t>(limits::kMaxLayers)) {
          throw Error("architecture: 'inputs' must be a list of 1 to " + std::to_string(limits::kMaxLayers) + " layer indices");
        }
        for (const auto& v : in) l.inputs.push_back(json_int(v, "architecture: 'inputs'"));
      }
      // "valid", "same", or [top, left, bottom, right]
      const auto read_padding = [&](bool same_allowed) {
        if (!j.contains("padding")) return;
        const auto& p = j.at("padding");
        if (p.is_array()) {
          if (p.size() != 4) throw Error("architecture: explicit padding is [top, left, bottom, right]");
          l.padding = Padding::Explicit;
          l.pad_top = json_int(p[0], "architecture: 'padding'");
          l.pad_left = json_int(p[1], "architecture: 'padding'");
          l.pad_bottom = json_int(p[2], "architecture: 'padding'");
          l.pad_right = json_int(p[3], "architecture: 'padding'");
          return;
        }
        const std::string pad = p.is_string() ? p.get<std::string>() : "";
        if (pad != "valid" && !(same_allowed && pad == "same")) {
          throw Error(std::string("architecture: padding must be ") + (same_allowed ? "'valid', 'same'" : "'valid'") +
                      " or [top, left, bottom, right]");
        }
        l.padding = pad == "same" ? Padding::Same : Padding::Valid;
      };
      auto pair = [&](const char* key, int def) -> std::pair<int, int> {
        if (!j.contains(key)) return {def, def};
        const auto& v = j.at(key);
        const std::string what = std::string("architecture: '") + key + "'";
        if (v.is_number_integer()) return {json_int(v, what), json_int(v, what)};
        if (v.is_array() && v.size() == 2) return {json_int(v[0], what), json_int(v[1], what)};
        throw Error(std::string("architecture: '") + key + "' must be an integer or a pair");
      };
      switch (l.type) {
        case LayerType::Conv2d: {
          l.filters = json_int(j.at("filters"), "architecture: 'filters'");
          std::tie(l.kernel_h, l.kernel_w) = pair("kernel", 0);
          std::tie(l.stride_h, l.stride_w) = pair("stride", 1);
          read_padding(true);
          break;
        }
        case LayerType::AvgPool2d:
          l.pool = json_int(j.at("pool"), "architecture: 'pool'");
          l.pool_stride = j.contains("stride") ? json_int(j.at("stride"), "architecture: 'stride'") : l.pool;
          read_padding(false);
          if (j.contains("count_include_pad")) {
            if (!j.at("count_include_pad").is_boolean()) throw Error("architecture: 'count_include_pad' must be true or false");
            l.count_include_pad = j.at("count_include_pad").get<bool>();
          }
          break;
        case LayerType::Dense:
          l.units = json_int(j.at("units"), "architecture: 'units'");
          break;
        case LayerType::BatchNorm:
          l.eps = j.value("eps", 1e-5);
          break;
        case LayerType::Activation: {
          const std::string fn = j.at("fn").get<std::string>();
          if (j.contains("power")) {
            l.activation = Activation::polynomial(j.at("power").get<std::vector<double>>(), j.value("range", 1.0), fn);
          } else {
            l.activation = fits.parse(fn);
          }
          break;
        }
        case LayerType::GlobalAvgPool2d:
        case LayerType::Flatten:
        case LayerType::Add:
          break;
      }
      m.layers.push_back(std::move(l));
    }
    return m;
  } catch (const json::exception& e) {
    throw Error(std::string("architecture: ") + e.what());
  }
}

std::string Model::summary() const {
  std::ostringstream os;
  const auto s = shapes(false);
  os << "input " << input.to_string() << "\n";
  const bool chain = is_chain();
  std::int64_t total = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const auto src = sources(i);
    const Shape in = shape_of(src[0], s);
    std::int64_t n = 0;
    for (const auto& [k, t] : l.params) n += t.numel();
    total += n;
    os << "  " << i << ": " << to_string(l.type);
    const auto padding = [&] {
      if (l.padding != Padding::Explicit) return std::string(l.padding == Padding::Same ? "same" : "valid");
      return "pads " + std::to_string(l.pad_top) + "," + std::to_string(l.pad_left) + "," + std::to_string(l.pad_bottom) +
             "," + std::to_string(l.pad_right);
    };
    switch (l.type) {
      case LayerType::Conv2d:
        os << " " << l.filters << "@" << l.kernel_h << "x" << l.kernel_w << " stride " << l.stride_h;
        if (l.stride_w != l.stride_h) os << "x" << l.stride_w;
        os << " " << padding();
        break;
      case LayerType::AvgPool2d:
        os << " " << l.pool << "x" << l.pool << " stride " << l.pool_stride;
        if (l.padding == Padding::Explicit) os << " " << padding() << (l.count_include_pad ? "" : " (mean of the cells inside)");
        break;
      case LayerType::Add: break;
      case LayerType::GlobalAvgPool2d: os << " " << in.h << "x" << in.w; break;
      case LayerType::Dense: os << " " << l.units; break;
      case LayerType::BatchNorm: os << " eps " << l.eps; break;
      case LayerType::Activation:
        os << " " << l.activation.spec;
        if (l.activation.poly) os << " = " << l.activation.poly->to_string(6);
        break;
      case LayerType::Flatten: break;
    }
    if (!chain) {
      os << " <- ";
      for (std::size_t k = 0; k < src.size(); ++k) os << (k ? ", " : "") << (src[k] == kModelInput ? std::string("input") : std::to_string(src[k]));
    }
    os << " -> " << s[i].to_string();
    if (n) os << " (" << n << " parameters)";
    os << "\n";
  }
  os << "total parameters: " << total << "\n";
  return os.str();
}

Model without_layers(const Model& m, const std::vector<bool>& drop) {
  Model out;
  out.input = m.input;
  out.info = m.info;
  std::vector<int> index(m.layers.size(), kModelInput);  // old index -> new (a dropped layer: its source's)
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    std::vector<int> src = m.sources(i);
    for (int& s : src) s = s == kModelInput ? kModelInput : index[static_cast<std::size_t>(s)];
    if (i < drop.size() && drop[i]) {
      if (src.size() != 1) throw Error("model: layer " + std::to_string(i) + " reads several layers and cannot be removed");
      index[i] = src[0];
      continue;
    }
    Layer l = m.layers[i];
    l.inputs = std::move(src);
    index[i] = static_cast<int>(out.layers.size());
    out.layers.push_back(std::move(l));
  }
  out.compact_inputs();
  return out;
}

std::vector<std::string> preset_names() { return {"mnist-paper", "cifar-paper", "mnist-paper-gap", "cifar-paper-gap"}; }

Model preset_architecture(const std::string& name, const std::string& activation) {
  auto conv = [](int filters, int k, int stride, const char* pad) {
    return json{{"type", "conv2d"}, {"filters", filters}, {"kernel", k}, {"stride", stride}, {"padding", pad}};
  };
  const json bn = {{"type", "batchnorm"}, {"eps", 1e-3}};
  const json act = {{"type", "activation"}, {"fn", activation}};
  // PP-CNN's --gap variants: global average pooling where the others flatten.
  const bool gap = name == "mnist-paper-gap" || name == "cifar-paper-gap";
  const json to_flat = gap ? json{{"type", "globalavgpool2d"}} : json{{"type", "flatten"}};
  json arch;
  if (name == "mnist-paper" || name == "mnist-paper-gap") {
    arch = {{"input", {1, 28, 28}},
            {"layers",
             {conv(5, 5, 2, "valid"), bn, act, conv(50, 5, 2, "valid"), bn, act, to_flat,
              {{"type", "dense"}, {"units", 10}}}}};
  } else if (name == "cifar-paper" || name == "cifar-paper-gap") {
    json layers = json::array();
    for (int f : {32, 64, 128}) {
      layers.push_back(conv(f, 3, 1, "same"));
      layers.push_back(bn);
      layers.push_back(act);
      layers.push_back({{"type", "avgpool2d"}, {"pool", 2}, {"stride", 2}});
    }
    layers.push_back(to_flat);
    layers.push_back({{"type", "dense"}, {"units", 256}});
    layers.push_back({{"type", "dense"}, {"units", 10}});
    arch = {{"input", {3, 32, 32}}, {"layers", layers}};
  } else {
    throw Error("unknown architecture preset '" + name +
                "' (known: mnist-paper, cifar-paper, mnist-paper-gap, cifar-paper-gap, or a JSON file)");
  }
  return Model::from_architecture(arch);
}

}  // namespace hecnn::nn
