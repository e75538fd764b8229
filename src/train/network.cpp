#include "train/network.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace hecnn::train {

namespace {

// Same split as nn::forward: out = ceil(in / s), total = max((out - 1) s + k - in, 0), the extra
// row/column at the bottom/right (TensorFlow's "same").
std::pair<std::int64_t, std::int64_t> same_padding(int in, int k, int s) {
  const int out = (in + s - 1) / s;
  const int total = std::max((out - 1) * s + k - in, 0);
  return {total / 2, total - total / 2};
}

void copy_into(torch::Tensor& dst, const nn::Tensor& src, const std::string& what) {
  if (static_cast<std::int64_t>(src.data.size()) != dst.numel()) {
    throw Error("network: parameter " + what + " has " + std::to_string(src.data.size()) + " values, expected " +
                std::to_string(dst.numel()));
  }
  torch::NoGradGuard no_grad;
  auto t = torch::from_blob(const_cast<float*>(src.data.data()), dst.sizes(), torch::kFloat32);
  dst.copy_(t);
}

nn::Tensor to_nn(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  nn::Tensor out(std::vector<std::int64_t>(c.sizes().begin(), c.sizes().end()));
  std::memcpy(out.data.data(), c.data_ptr<float>(), out.data.size() * sizeof(float));
  return out;
}

}  // namespace

BatchNormImpl::BatchNormImpl(std::int64_t channels, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
  running_mean = register_buffer("running_mean", torch::zeros({channels}));
  running_var = register_buffer("running_var", torch::ones({channels}));
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& x) {
  return torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(), momentum, eps,
                           /*cudnn_enabled=*/false);
}

torch::Tensor apply_activation(const nn::Activation& a, const torch::Tensor& x) {
  if (a.poly) {
    const approx::Polynomial p = a.poly->to_power();
    const auto& c = p.coeffs();
    const int d = p.degree();
    torch::Tensor y = torch::full_like(x, c[static_cast<std::size_t>(d)]);
    for (int i = d - 1; i >= 0; --i) y = y * x + c[static_cast<std::size_t>(i)];
    return y;
  }
  const std::string& f = a.spec;
  if (f == "relu") return torch::relu(x);
  if (f == "swish") return x * torch::sigmoid(x);
  if (f == "gelu") return 0.5 * x * (1.0 + torch::erf(x * M_SQRT1_2));
  if (f == "mish") return x * torch::tanh(torch::softplus(x));
  if (f == "softplus") return torch::softplus(x);
  if (f == "sigmoid") return torch::sigmoid(x);
  if (f == "tanh") return torch::tanh(x);
  if (f == "square") return x * x;
  throw Error("training: no libtorch form for the activation '" + f + "'");
}

NetworkImpl::NetworkImpl(const nn::Model& model, const std::set<std::size_t>& without_bias, double bn_momentum) {
  const auto shapes = model.shapes(false);
  if (!model.is_chain()) {
    throw Error("training: hecnn-train builds chains of layers; this model branches (add layers): train it in PyTorch and "
                "import it with import-onnx");
  }
  arch_.input = model.input;
  arch_.info = model.info;
  const std::size_t n = model.layers.size();
  conv_.assign(n, nullptr);
  dense_.assign(n, nullptr);
  bn_.assign(n, nullptr);
  pad_.assign(n, {});
  nn::Shape in = model.input;
  for (std::size_t i = 0; i < n; ++i) {
    const nn::Layer& l = model.layers[i];
    nn::Layer bare = l;
    bare.params.clear();
    arch_.layers.push_back(bare);
    in_shapes_.push_back(in);
    const bool trained = l.params.count("weight") != 0;
    const std::string name = std::to_string(i);
    switch (l.type) {
      case nn::LayerType::Conv2d: {
        const bool bias = trained ? l.has_bias() : !without_bias.count(i);
        conv_[i] = register_module(name, torch::nn::Conv2d(torch::nn::Conv2dOptions(in.c, l.filters, {l.kernel_h, l.kernel_w})
                                                                .stride({l.stride_h, l.stride_w})
                                                                .bias(bias)));
        if (l.padding == nn::Padding::Same) {
          const auto [top, bottom] = same_padding(in.h, l.kernel_h, l.stride_h);
          const auto [left, right] = same_padding(in.w, l.kernel_w, l.stride_w);
          if (top || bottom || left || right) pad_[i] = {left, right, top, bottom};
        } else if (l.padding == nn::Padding::Explicit) {
          pad_[i] = {l.pad_left, l.pad_right, l.pad_top, l.pad_bottom};
        }
        if (trained) {
          copy_into(conv_[i]->weight, l.params.at("weight"), name + ".weight");
          if (bias) copy_into(conv_[i]->bias, l.params.at("bias"), name + ".bias");
        }
        break;
      }
      case nn::LayerType::Dense: {
        const bool bias = trained ? l.has_bias() : !without_bias.count(i);
        dense_[i] = register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in.size(), l.units).bias(bias)));
        if (trained) {
          copy_into(dense_[i]->weight, l.params.at("weight"), name + ".weight");
          if (bias) copy_into(dense_[i]->bias, l.params.at("bias"), name + ".bias");
        }
        break;
      }
      case nn::LayerType::BatchNorm: {
        bn_[i] = register_module(name, BatchNorm(in.c, l.eps, bn_momentum));
        if (trained) {
          copy_into(bn_[i]->weight, l.params.at("weight"), name + ".weight");
          copy_into(bn_[i]->bias, l.params.at("bias"), name + ".bias");
          copy_into(bn_[i]->running_mean, l.params.at("running_mean"), name + ".running_mean");
          copy_into(bn_[i]->running_var, l.params.at("running_var"), name + ".running_var");
        }
        break;
      }
      case nn::LayerType::Activation:
        apply_activation(l.activation, torch::zeros({1}));  // fails early for a function without a torch form
        break;
      case nn::LayerType::AvgPool2d:
        if (l.padding == nn::Padding::Explicit) throw Error("training: padded average pooling is not supported by hecnn-train");
        break;
      default:
        break;
    }
    in = shapes[i];
  }
}

torch::Tensor NetworkImpl::forward(torch::Tensor x, std::vector<torch::Tensor>* activation_inputs) {
  for (std::size_t i = 0; i < arch_.layers.size(); ++i) {
    const nn::Layer& l = arch_.layers[i];
    switch (l.type) {
      case nn::LayerType::Conv2d:
        if (!pad_[i].empty()) x = torch::constant_pad_nd(x, pad_[i], 0.0);
        x = conv_[i]->forward(x);
        break;
      case nn::LayerType::BatchNorm:
        x = bn_[i]->forward(x);
        break;
      case nn::LayerType::Activation:
        if (activation_inputs) activation_inputs->push_back(x);
        x = apply_activation(l.activation, x);
        break;
      case nn::LayerType::AvgPool2d:
        x = torch::avg_pool2d(x, {l.pool, l.pool}, {l.pool_stride, l.pool_stride});
        break;
      case nn::LayerType::GlobalAvgPool2d:
        x = x.mean({2, 3}, /*keepdim=*/true);
        break;
      case nn::LayerType::Flatten:
        x = x.flatten(1);
        break;
      case nn::LayerType::Dense:
        x = x.flatten(1);
        if (dropout_ > 0 && is_training()) x = torch::dropout(x, dropout_, true);
        x = dense_[i]->forward(x);
        break;
    }
  }
  return x.flatten(1);
}

std::vector<double> NetworkImpl::activation_intervals() const {
  std::vector<double> r;
  for (const auto& l : arch_.layers) {
    if (l.type != nn::LayerType::Activation) continue;
    r.push_back(l.activation.poly && l.activation.spec != "square" ? l.activation.poly->range() : 0.0);
  }
  return r;
}

void NetworkImpl::recalibrate_batch_norm(const torch::Tensor& images, std::int64_t batch_size) {
  std::vector<BatchNorm> bns;
  for (const auto& b : bn_) {
    if (b) bns.push_back(b);
  }
  if (bns.empty() || images.size(0) < 2) return;
  torch::NoGradGuard no_grad;
  const bool was_training = is_training();
  const double dropout = dropout_;
  dropout_ = 0;  // the statistics of what inference sees
  train();
  std::vector<double> momentum;
  for (auto& b : bns) {
    momentum.push_back(b->momentum);
    b->running_mean.zero_();
    b->running_var.fill_(1);
  }
  // With momentum 1 / (k + 1) at batch k, the running values are the mean of the batch values.
  const std::int64_t n = images.size(0);
  std::int64_t k = 0;
  for (std::int64_t s = 0; s + 2 <= n; s += batch_size, ++k) {
    for (auto& b : bns) b->momentum = 1.0 / static_cast<double>(k + 1);
    forward(images.slice(0, s, std::min(n, s + batch_size)));
  }
  for (std::size_t i = 0; i < bns.size(); ++i) bns[i]->momentum = momentum[i];
  dropout_ = dropout;
  train(was_training);
}

nn::Model NetworkImpl::to_model() const {
  nn::Model m = arch_;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    nn::Layer& l = m.layers[i];
    if (conv_[i]) {
      l.params["weight"] = to_nn(conv_[i]->weight);
      if (conv_[i]->options.bias()) l.params["bias"] = to_nn(conv_[i]->bias);
    } else if (dense_[i]) {
      l.params["weight"] = to_nn(dense_[i]->weight);
      if (dense_[i]->options.bias()) l.params["bias"] = to_nn(dense_[i]->bias);
    } else if (bn_[i]) {
      l.params["weight"] = to_nn(bn_[i]->weight);
      l.params["bias"] = to_nn(bn_[i]->bias);
      l.params["running_mean"] = to_nn(bn_[i]->running_mean);
      l.params["running_var"] = to_nn(bn_[i]->running_var);
    }
  }
  m.validate();
  return m;
}

torch::Tensor images_tensor(const float* images, std::size_t count, const nn::Shape& shape) {
  return torch::from_blob(const_cast<float*>(images),
                          {static_cast<std::int64_t>(count), shape.c, shape.h, shape.w}, torch::kFloat32)
      .clone();
}

}  // namespace hecnn::train
