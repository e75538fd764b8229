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
      const int oh = l.padding == Padding::Same ? (in.h + l.stride_h - 1) / l.stride_h : (in.h - l.kernel_h) / l.stride_h + 1;
      const int ow = l.padding == Padding::Same ? (in.w + l.stride_w - 1) / l.stride_w : (in.w - l.kernel_w) / l.stride_w + 1;
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
      const int oh = (in.h - l.pool) / l.pool_stride + 1, ow = (in.w - l.pool) / l.pool_stride + 1;
      y.assign(static_cast<std::size_t>(in.c) * oh * ow, 0.0);
      const double inv = 1.0 / (l.pool * l.pool);
      for (int c = 0; c < in.c; ++c) {
        for (int oy = 0; oy < oh; ++oy) {
          for (int ox = 0; ox < ow; ++ox) {
            double s = 0;
            for (int ky = 0; ky < l.pool; ++ky) {
              for (int kx = 0; kx < l.pool; ++kx) {
                s += x[(static_cast<std::size_t>(c) * in.h + oy * l.pool_stride + ky) * in.w + ox * l.pool_stride + kx];
              }
            }
            y[(static_cast<std::size_t>(c) * oh + oy) * ow + ox] = s * inv;
          }
        }
      }
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
  std::vector<double> x(static_cast<std::size_t>(m.input.size())), y;
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = image[i];
  Shape s = m.input;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    if (observe && m.layers[i].type == LayerType::Activation) observe(i, x.data(), x.size());
    forward_layer(m.layers[i], s, x, y);
    std::swap(x, y);
    s = shapes[i];
  }
  return x;
}

Model fold_batch_norm(const Model& m) {
  m.validate();
  Model out;
  out.input = m.input;
  out.info = m.info;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer& l = m.layers[i];
    const bool foldable = l.type == LayerType::BatchNorm && !out.layers.empty() &&
                          (out.layers.back().type == LayerType::Conv2d || out.layers.back().type == LayerType::Dense);
    if (!foldable) {
      out.layers.push_back(l);
      continue;
    }
    Layer& prev = out.layers.back();
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
  }
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
