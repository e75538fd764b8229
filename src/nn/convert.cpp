#include "nn/convert.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "common/error.h"
#include "nn/forward.h"

namespace hecnn::nn {

namespace {

// Per-channel sums, extremes and counts of the inputs of one activation layer.
struct ChannelStats {
  std::vector<double> sum, sumsq, min, max;
  std::uint64_t per_channel = 0;  // values seen per channel
  std::uint64_t outside = 0;      // values with |x| > range (when range > 0)
  double range = 0;
};

// Inputs of every activation layer of `m` over the sample images, channel by channel.
std::map<std::size_t, ChannelStats> activation_inputs(const Model& m, const Dataset& d, const std::vector<std::size_t>& sample) {
  const std::vector<Shape> shapes = m.shapes();
  std::map<std::size_t, ChannelStats> stats;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    if (m.layers[i].type != LayerType::Activation) continue;
    const Shape in = m.shape_of(m.sources(i)[0], shapes);
    ChannelStats& s = stats[i];
    s.sum.assign(static_cast<std::size_t>(in.c), 0.0);
    s.sumsq = s.sum;
    s.min.assign(static_cast<std::size_t>(in.c), std::numeric_limits<double>::infinity());
    s.max.assign(static_cast<std::size_t>(in.c), -std::numeric_limits<double>::infinity());
    const auto& a = m.layers[i].activation;
    if (a.poly && a.spec != "square") s.range = a.poly->range();
  }
  for (std::size_t idx : sample) {
    forward(m, d.image(idx), [&](std::size_t layer, const double* v, std::size_t n) {
      ChannelStats& s = stats.at(layer);
      const std::size_t channels = s.sum.size(), plane = n / channels;
      for (std::size_t c = 0; c < channels; ++c) {
        for (std::size_t k = 0; k < plane; ++k) {
          const double x = v[c * plane + k];
          s.sum[c] += x;
          s.sumsq[c] += x * x;
          s.min[c] = std::min(s.min[c], x);
          s.max[c] = std::max(s.max[c], x);
          if (s.range > 0 && std::fabs(x) > s.range) ++s.outside;
        }
      }
      s.per_channel += plane;
    });
  }
  return stats;
}

InputRange summary(const ChannelStats& s) {
  InputRange r;
  r.min = *std::min_element(s.min.begin(), s.min.end());
  r.max = *std::max_element(s.max.begin(), s.max.end());
  const double total = static_cast<double>(s.per_channel) * static_cast<double>(s.sum.size());
  r.outside = total > 0 ? static_cast<double>(s.outside) / total : 0;
  return r;
}

}  // namespace

void check_convert_options(const Model& m, const ConvertOptions& o) {
  for (const auto& [layer, spec] : o.per_layer) {
    if (layer >= m.layers.size() || m.layers[layer].type != LayerType::Activation) {
      throw Error("convert: layer " + std::to_string(layer) + " is not an activation layer (see hecnn inspect)");
    }
  }
  std::vector<std::pair<std::string, std::string>> specs;
  if (!o.activation.empty()) specs.emplace_back(o.activation, "--activation");
  for (const auto& [layer, spec] : o.per_layer) specs.emplace_back(spec, "layer " + std::to_string(layer));
  for (const auto& [spec, what] : specs) {
    if (!Activation::parse(spec).is_polynomial()) {
      throw Error("convert: activation '" + spec + "' (" + what + ") is not a polynomial (use a fit such as swish:deg4:range4, or square)");
    }
  }
}

Conversion convert_to_polynomials(const Model& m, const Dataset& calibration, std::size_t count, const ConvertOptions& o) {
  m.validate();
  if (!(m.input == calibration.shape)) {
    throw Error("convert: the model takes " + m.input.to_string() + " inputs, the calibration images are " +
                calibration.shape.to_string());
  }
  if (calibration.size() == 0) throw Error("convert: the calibration dataset is empty");
  check_convert_options(m, o);
  // Evenly spread over the dataset (training sets may be sorted by label).
  const std::size_t n = count == 0 ? calibration.size() : std::min(count, calibration.size());
  std::vector<std::size_t> sample(n);
  for (std::size_t k = 0; k < n; ++k) sample[k] = k * calibration.size() / n;

  const auto before = activation_inputs(m, calibration, sample);
  Conversion out;
  out.calibration_images = n;
  out.model.input = m.input;
  out.model.info = m.info;
  const std::vector<Shape> shapes = m.shapes();
  std::vector<int> index(m.layers.size());  // layer of m -> layer of the converted model
  const auto inputs_of = [&](std::size_t i) {
    std::vector<int> src = m.sources(i);
    for (int& s : src) s = s == kModelInput ? kModelInput : index[static_cast<std::size_t>(s)];
    return src;
  };
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    if (l.type != LayerType::Activation) {
      out.model.layers.push_back(l);
      out.model.layers.back().inputs = inputs_of(i);
      index[i] = static_cast<int>(out.model.layers.size()) - 1;
      continue;
    }
    ConvertedActivation row;
    row.layer_before = i;
    row.before = l.activation.spec;
    Layer act = l;
    act.inputs = inputs_of(i);
    const auto override = o.per_layer.find(i);
    const std::string spec = override != o.per_layer.end() ? override->second : (l.activation.is_polynomial() ? "" : o.activation);
    if (!spec.empty()) {
      act.activation = Activation::parse(spec);  // a polynomial (check_convert_options)
    }
    const int src = act.inputs[0];
    const bool after_bn = src >= 0 && out.model.layers[static_cast<std::size_t>(src)].type == LayerType::BatchNorm;
    if (o.insert_batch_norm && act.activation.is_polynomial() && !after_bn) {
      // Calibrated on what the converted layers before it give (not the original model's inputs:
      // the polynomials upstream change them). (x - mean) / sqrt(var + eps) has unit variance;
      // gamma = r / z_c brings the largest |value| of the calibration set to r (a hair inside: the
      // parameters are rounded to float).
      Model prefix;
      prefix.input = m.input;
      prefix.layers = out.model.layers;
      prefix.layers.push_back(act);
      const auto seen = activation_inputs(prefix, calibration, sample);
      const ChannelStats& s = seen.at(prefix.layers.size() - 1);
      const double r = act.activation.poly->range() * (1 - 0x1p-16);
      const auto channels = static_cast<std::int64_t>(s.sum.size());
      Layer bn;
      bn.type = LayerType::BatchNorm;
      bn.inputs = act.inputs;
      bn.name = l.name.empty() ? "calibrated_bn_" + std::to_string(i) : l.name + "_bn";
      bn.eps = 1e-5;
      Tensor gamma({channels}), beta({channels}, 0.0f), mean({channels}), var({channels});
      const double per = static_cast<double>(s.per_channel);
      for (std::int64_t c = 0; c < channels; ++c) {
        const auto k = static_cast<std::size_t>(c);
        const double mu = s.sum[k] / per;
        const double v = std::max(s.sumsq[k] / per - mu * mu, 0.0);
        const double sd = std::sqrt(v + bn.eps);
        const double z = std::max(std::fabs(s.max[k] - mu), std::fabs(s.min[k] - mu)) / sd;
        mean.data[k] = static_cast<float>(mu);
        var.data[k] = static_cast<float>(v);
        gamma.data[k] = static_cast<float>(z > 0 ? r / z : 1.0);
      }
      bn.params["weight"] = std::move(gamma);
      bn.params["bias"] = std::move(beta);
      bn.params["running_mean"] = std::move(mean);
      bn.params["running_var"] = std::move(var);
      out.model.layers.push_back(std::move(bn));
      act.inputs = {static_cast<int>(out.model.layers.size()) - 1};
      row.inserted_batch_norm = true;
    }
    row.after = act.activation.spec;
    row.layer_after = out.model.layers.size();
    row.range = act.activation.is_polynomial() && act.activation.spec != "square" ? act.activation.poly->range() : 0;
    out.model.layers.push_back(std::move(act));
    index[i] = static_cast<int>(out.model.layers.size()) - 1;
    out.activations.push_back(std::move(row));
  }
  out.model.compact_inputs();
  if (o.fold) out.model = fold_batch_norm(out.model);
  out.model.validate();

  // Input ranges before and after, matched activation by activation.
  const auto after = activation_inputs(out.model, calibration, sample);
  std::size_t k = 0;
  for (std::size_t i = 0; i < out.model.layers.size(); ++i) {
    if (out.model.layers[i].type != LayerType::Activation) continue;
    ConvertedActivation& row = out.activations.at(k++);
    row.layer_after = i;
    row.input_before = summary(before.at(row.layer_before));
    row.input_after = summary(after.at(i));
  }
  return out;
}

std::string format_conversion(const Conversion& c) {
  std::string s = "activation inputs over " + std::to_string(c.calibration_images) + " calibration images:\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-6s %-22s %-22s %-6s %-24s %-24s %s\n", "layer", "before", "after", "r", "input before",
                "input after", "outside [-r, r] after");
  s += line;
  for (const auto& a : c.activations) {
    const std::string layers = std::to_string(a.layer_before) + "->" + std::to_string(a.layer_after);
    char rb[64], ra[64], r[16];
    std::snprintf(rb, sizeof rb, "[%.3g, %.3g]", a.input_before.min, a.input_before.max);
    std::snprintf(ra, sizeof ra, "[%.3g, %.3g]", a.input_after.min, a.input_after.max);
    std::snprintf(r, sizeof r, "%g", a.range);
    std::snprintf(line, sizeof line, "  %-6s %-22s %-22s %-6s %-24s %-24s %.4f %%%s\n", layers.c_str(), a.before.c_str(),
                  a.after.c_str(), a.range > 0 ? r : "-", rb, ra, 100.0 * a.input_after.outside,
                  a.inserted_batch_norm ? "  (batch normalization inserted)" : "");
    s += line;
  }
  return s;
}

}  // namespace hecnn::nn
