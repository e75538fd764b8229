#include "nn/limits.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <climits>
#include <cstring>
#include <fstream>

#include "common/error.h"

namespace hecnn::nn {

using namespace limits;

void check_input_shape(const Shape& s) {
  if (s.c <= 0 || s.h <= 0 || s.w <= 0) throw Error("model: input shape " + s.to_string() + " is invalid");
  if (s.c > kMaxChannels || s.h > kMaxImageSide || s.w > kMaxImageSide || s.size() > kMaxValues) {
    throw Error("model: input shape " + s.to_string() + " is too large (at most " + std::to_string(kMaxChannels) +
                " channels, " + std::to_string(kMaxImageSide) + " pixels a side and " + std::to_string(kMaxValues) +
                " values)");
  }
}

void check_layer_hyperparameters(const Layer& l, const std::string& where) {
  auto within = [&](const char* what, int v, int max) {
    if (v <= 0 || v > max) {
      throw Error(where + ": " + what + " " + std::to_string(v) + " is out of range (1 to " + std::to_string(max) + ")");
    }
  };
  switch (l.type) {
    case LayerType::Conv2d:
      within("filters", l.filters, kMaxChannels);
      within("kernel height", l.kernel_h, kMaxKernel);
      within("kernel width", l.kernel_w, kMaxKernel);
      within("vertical stride", l.stride_h, kMaxKernel);
      within("horizontal stride", l.stride_w, kMaxKernel);
      break;
    case LayerType::AvgPool2d:
      within("pool size", l.pool, kMaxKernel);
      within("pool stride", l.pool_stride, kMaxKernel);
      break;
    case LayerType::Dense:
      within("units", l.units, static_cast<int>(kMaxValues));
      break;
    default:
      break;
  }
}

void check_layer_size(const Layer& l, const Shape& in, const Shape& out, const std::string& where) {
  if (out.size() > kMaxValues) {
    throw Error(where + ": output " + out.to_string() + " has " + std::to_string(out.size()) + " values, more than the " +
                std::to_string(kMaxValues) + " a layer may have");
  }
  std::int64_t connections = 0;
  if (l.type == LayerType::Conv2d) connections = out.size() * in.c * l.kernel_h * l.kernel_w;
  if (l.type == LayerType::Dense) connections = out.size() * in.size();
  if (connections > kMaxConnections) {
    throw Error(where + ": " + std::to_string(connections) + " multiply-adds, more than the " +
                std::to_string(kMaxConnections) + " a layer may have");
  }
}

void check_parameter_values(const Model& m) {
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const std::string where = "model: layer " + std::to_string(i) + " (" + to_string(l.type) +
                              (l.name.empty() ? "" : " '" + l.name + "'") + ")";
    for (const auto& [role, t] : l.params) {
      const std::string tensor = "tensor '" + std::to_string(i) + "." + role + "'";
      for (std::size_t k = 0; k < t.data.size(); ++k) {
        if (!std::isfinite(t.data[k])) {
          throw Error(where + ": " + tensor + " holds a non-finite value (" + std::to_string(t.data[k]) + ") at index " +
                      std::to_string(k));
        }
        if (l.type == LayerType::BatchNorm && role == "running_var" && !(t.data[k] + l.eps > 0)) {
          throw Error(where + ": " + tensor + " holds a " + (t.data[k] < 0 ? "negative" : "zero") + " variance (" +
                      std::to_string(t.data[k]) + ") at index " + std::to_string(k) +
                      (t.data[k] < 0 ? "" : " with epsilon 0"));
        }
      }
    }
  }
}

int json_int(const nlohmann::json& v, const std::string& what) {
  const bool ok = v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT_MAX)
                  : v.is_number_integer() ? v.get<std::int64_t>() >= INT_MIN && v.get<std::int64_t>() <= INT_MAX
                                          : false;
  if (!ok) throw Error(what + " must be an integer from " + std::to_string(INT_MIN) + " to " + std::to_string(INT_MAX) + ", got " + v.dump());
  return static_cast<int>(v.get<std::int64_t>());
}

nlohmann::json parse_json_bounded(const std::string& text, const std::string& what) {
  if (text.size() > kMaxJsonBytes) {
    throw Error(what + ": " + std::to_string(text.size()) + " bytes of JSON, more than the " + std::to_string(kMaxJsonBytes) +
                " accepted");
  }
  // Nesting depth, counted outside strings, before the parser builds anything.
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > kMaxJsonDepth) {
        throw Error(what + ": JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
      }
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": not valid JSON (" + e.what() + ")");
  }
}

nlohmann::json read_json_file_bounded(const std::string& path, const std::string& what) {
  const std::uint64_t size = regular_file_size(path, what);
  if (size > kMaxJsonBytes) {
    throw Error(path + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(kMaxJsonBytes) + " a " + what +
                " may have");
  }
  std::string text(static_cast<std::size_t>(size), '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(text.data(), static_cast<std::streamsize>(size))) throw Error("cannot read " + what + " " + path);
  return parse_json_bounded(text, path);
}

}  // namespace hecnn::nn
