#include "nn/forward.h"

#include <omp.h>

#include <cmath>

#include "approx/activation.h"
#include "common/error.h"
#include "common/parallel.h"
#include "nn/conv.h"
#include "nn/limits.h"

namespace hecnn::nn {

void forward_layer(const Layer& l, const Shape& in, const std::vector<double>& x, std::vector<double>& y) {
  switch (l.type) {
    case LayerType::Conv2d: {
      const int oh = window_out(in.h, l.kernel_h, l.stride_h, l.padding, l.pad_top, l.pad_bottom);
      const int ow = window_out(in.w, l.kernel_w, l.stride_w, l.padding, l.pad_left, l.pad_right);
      const Shape out{l.filters, oh, ow};
      const auto& w = l.params.at("weight").data;
      y.assign(static_cast<std::size_t>(out.size()), 0.0);
      if (l.has_bias()) {
        const auto& b = l.params.at("bias").data;
        for (std::size_t o = 0; o < y.size(); ++o) y[o] = b[o / (static_cast<std::size_t>(oh) * ow)];
      }
      for_each_conv_tap(l, in, out, [&](std::size_t o, std::size_t i, std::size_t k) {
        y[o] += static_cast<double>(w[k]) * x[i];
      });
      return;
    }
    case LayerType::BatchNorm: {
      const auto& g = l.params.at("weight").data;
      const auto& beta = l.params.at("bias").data;
      const auto& mean = l.params.at("running_mean").data;
      const auto& var = l.params.at("running_var").data;
      y.resize(x.size());
      const std::size_t plane = static_cast<std::size_t>(in.h) * in.w;
      for (int c = 0; c < in.c; ++c) {
        const double a = g[static_cast<std::size_t>(c)] / std::sqrt(static_cast<double>(var[static_cast<std::size_t>(c)]) + l.eps);
        const double m = mean[static_cast<std::size_t>(c)], bb = beta[static_cast<std::size_t>(c)];
        for (std::size_t i = 0; i < plane; ++i) y[c * plane + i] = (x[c * plane + i] - m) * a + bb;
      }
      return;
    }
    case LayerType::Activation: {
      y.resize(x.size());
      if (l.activation.poly) {
        const auto& p = *l.activation.poly;
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = p(x[i]);
      } else {
        const auto& f = approx::find_activation(l.activation.spec);
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = f.eval(x[i]);
      }
      return;
    }
    case LayerType::AvgPool2d: {
      const Shape out{in.c, window_out(in.h, l.pool, l.pool_stride, l.padding, l.pad_top, l.pad_bottom),
                      window_out(in.w, l.pool, l.pool_stride, l.padding, l.pad_left, l.pad_right)};
      y.assign(static_cast<std::size_t>(out.size()), 0.0);
      for_each_pool_tap(
          l, in, out, [&](std::size_t o, std::size_t i) { y[o] += x[i]; },
          [&](std::size_t o, int cells) { y[o] /= cells; });
      return;
    }
    case LayerType::GlobalAvgPool2d: {
      const std::size_t plane = static_cast<std::size_t>(in.h) * in.w;
      y.assign(static_cast<std::size_t>(in.c), 0.0);
      for (std::size_t c = 0; c < y.size(); ++c) {
        double s = 0;
        for (std::size_t i = 0; i < plane; ++i) s += x[c * plane + i];
        y[c] = s / static_cast<double>(plane);
      }
      return;
    }
    case LayerType::Flatten:
      y = x;
      return;
    case LayerType::Add:
      throw Error("forward_layer: an add layer reads several tensors (nn::forward runs it)");
    case LayerType::Dense: {
      const auto& w = l.params.at("weight").data;
      const auto* b = l.has_bias() ? &l.params.at("bias").data : nullptr;
      const std::size_t n_in = x.size();
      y.assign(static_cast<std::size_t>(l.units), 0.0);
      for (int u = 0; u < l.units; ++u) {
        double acc = b ? (*b)[static_cast<std::size_t>(u)] : 0.0;
        const float* row = w.data() + static_cast<std::size_t>(u) * n_in;
        for (std::size_t i = 0; i < n_in; ++i) acc += static_cast<double>(row[i]) * x[i];
        y[static_cast<std::size_t>(u)] = acc;
      }
      return;
    }
  }
}

std::vector<double> forward(const Model& m, const float* image, const ActivationObserver& observe) {
  const auto shapes = m.shapes();
  std::vector<double> input(static_cast<std::size_t>(m.input.size()));
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = image[i];
  if (m.layers.empty()) return input;
  // Every layer's output, freed after its last reader.
  const auto readers = m.consumers();
  std::vector<std::vector<double>> out(m.layers.size());
  std::vector<std::size_t> last(m.layers.size(), 0);
  for (std::size_t i = 0; i < m.layers.size(); ++i)
    for (std::size_t r : readers[i]) last[i] = std::max(last[i], r);
  const auto value = [&](int src) -> const std::vector<double>& {
    return src == kModelInput ? input : out[static_cast<std::size_t>(src)];
  };
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const auto src = m.sources(i);
    const std::vector<double>& x = value(src[0]);
    if (l.type == LayerType::Add) {
      out[i] = x;
      for (std::size_t k = 1; k < src.size(); ++k) {
        const auto& b = value(src[k]);
        for (std::size_t j = 0; j < b.size(); ++j) out[i][j] += b[j];
      }
    } else {
      if (observe && l.type == LayerType::Activation) observe(i, x.data(), x.size());
      forward_layer(l, m.shape_of(src[0], shapes), x, out[i]);
    }
    for (int s : src) {
      if (s >= 0 && last[static_cast<std::size_t>(s)] == i) std::vector<double>().swap(out[static_cast<std::size_t>(s)]);
    }
  }
  return std::move(out.back());
}

Model fold_batch_norm(const Model& m) {
  m.validate();
  Model out = m;
  const auto readers = m.consumers();
  std::vector<bool> drop(m.layers.size(), false);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    if (l.type != LayerType::BatchNorm) continue;
    const int src = m.sources(i)[0];
    // Only into a layer whose output nothing else reads (the unnormalized values stay needed otherwise).
    if (src < 0 || readers[static_cast<std::size_t>(src)].size() != 1) continue;
    Layer& prev = out.layers[static_cast<std::size_t>(src)];
    if (prev.type != LayerType::Conv2d && prev.type != LayerType::Dense) continue;
    const int channels = prev.type == LayerType::Conv2d ? prev.filters : prev.units;
    Tensor& w = prev.params.at("weight");
    if (!prev.has_bias()) prev.params["bias"] = Tensor({channels});
    Tensor& b = prev.params.at("bias");
    const std::size_t per = w.data.size() / static_cast<std::size_t>(channels);
    const auto& g = l.params.at("weight").data;
    const auto& beta = l.params.at("bias").data;
    const auto& mean = l.params.at("running_mean").data;
    const auto& var = l.params.at("running_var").data;
    for (int c = 0; c < channels; ++c) {
      const auto k = static_cast<std::size_t>(c);
      const double a = g[k] / std::sqrt(static_cast<double>(var[k]) + l.eps);
      for (std::size_t j = 0; j < per; ++j) w.data[k * per + j] = static_cast<float>(w.data[k * per + j] * a);
      b.data[k] = static_cast<float>((b.data[k] - mean[k]) * a + beta[k]);
    }
    if (!prev.name.empty() && !l.name.empty()) prev.name += "+" + l.name;
    drop[i] = true;
  }
  out = without_layers(out, drop);
  out.validate();
  return out;
}

int argmax(const std::vector<double>& v) {
  int best = 0;
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] > v[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
  }
  return best;
}

Evaluation evaluate(const Model& m, const Dataset& d, std::size_t limit, bool keep_logits,
                    const std::function<void(std::size_t)>& progress) {
  m.validate();
  check_parameter_values(m);
  if (!(m.input == d.shape)) {
    throw Error("the model expects " + m.input.to_string() + " inputs, the dataset '" + d.name + "' has " +
                d.shape.to_string() + " images");
  }
  const Shape out_shape = m.output();
  if (out_shape.size() < d.classes) {
    throw Error("the model has " + std::to_string(out_shape.size()) + " outputs, the dataset has " +
                std::to_string(d.classes) + " classes");
  }
  const std::size_t n = limit == 0 ? d.size() : std::min(limit, d.size());
  Evaluation e;
  e.count = n;
  e.predictions.assign(n, 0);
  if (keep_logits) e.logits.resize(n);
  std::size_t done = 0;
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::size_t i = 0; i < n; ++i) errors.run([&] {
    std::vector<double> out = forward(m, d.image(i));
    // A NaN or an infinity would still give an argmax, and so a meaningless accuracy.
    for (double v : out) {
      if (!std::isfinite(v)) {
        throw Error("image " + std::to_string(i) + ": the model's output is not finite (" + std::to_string(v) +
                    "); its parameters or activations overflow");
      }
    }
    e.predictions[i] = argmax(out);
    if (keep_logits) e.logits[i] = std::move(out);
    if (progress) {
#pragma omp critical(hecnn_eval_progress)
      {
        ++done;
        if (omp_get_thread_num() == 0 || done == n) progress(done);
      }
    }
  });
  errors.rethrow();
  e.confusion.assign(static_cast<std::size_t>(d.classes), std::vector<std::size_t>(out_shape.size(), 0));
  for (std::size_t i = 0; i < n; ++i) {
    const int p = e.predictions[i];
    if (p == d.labels[i]) ++e.correct;
    e.confusion[d.labels[i]][static_cast<std::size_t>(p)]++;
  }
  return e;
}

}  // namespace hecnn::nn
