#include "he/plan.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "nn/conv.h"
#include "nn/forward.h"

namespace hecnn::he {

namespace {

// Output index -> input taps of a convolution (the same taps as nn::forward).
LinearStage conv_rows(const nn::Layer& l, const nn::Shape& in, const nn::Shape& out, double in_factor) {
  const auto& w = l.params.at("weight").data;
  std::vector<std::vector<std::pair<std::uint32_t, double>>> rows(static_cast<std::size_t>(out.size()));
  nn::for_each_conv_tap(l, in, out, [&](std::size_t o, std::size_t i, std::size_t k) {
    if (w[k] != 0) rows[o].push_back({static_cast<std::uint32_t>(i), w[k] * in_factor});
  });
  LinearStage s;
  for (std::size_t o = 0; o < rows.size(); ++o) {
    for (const auto& [i, v] : rows[o]) {
      s.col.push_back(i);
      s.weight.push_back(v);
    }
    s.row_start.push_back(static_cast<std::uint32_t>(s.col.size()));
    const std::size_t f = o / (static_cast<std::size_t>(out.h) * out.w);
    s.bias.push_back(l.has_bias() ? l.params.at("bias").data[f] : 0.0);
  }
  return s;
}

LinearStage dense_rows(const nn::Layer& l, std::int64_t n_in, double in_factor) {
  LinearStage s;
  const auto& w = l.params.at("weight").data;
  for (int u = 0; u < l.units; ++u) {
    for (std::int64_t i = 0; i < n_in; ++i) {
      const double v = w[static_cast<std::size_t>(u * n_in + i)];
      if (v == 0) continue;
      s.col.push_back(static_cast<std::uint32_t>(i));
      s.weight.push_back(v * in_factor);
    }
    s.row_start.push_back(static_cast<std::uint32_t>(s.col.size()));
    s.bias.push_back(l.has_bias() ? l.params.at("bias").data[static_cast<std::size_t>(u)] : 0.0);
  }
  return s;
}

// b = a2 o a1 for two linear stages (a1's outputs feed a2).
LinearStage compose(const LinearStage& a1, const LinearStage& a2, std::size_t n_in) {
  const std::size_t n_mid = a1.bias.size(), n_out = a2.bias.size();
  LinearStage s;
  std::vector<double> row(n_in);
  for (std::size_t o = 0; o < n_out; ++o) {
    std::fill(row.begin(), row.end(), 0.0);
    double b = a2.bias[o];
    for (std::uint32_t k = a2.row_start[o]; k < a2.row_start[o + 1]; ++k) {
      const std::size_t m = a2.col[k];
      const double w2 = a2.weight[k];
      b += w2 * a1.bias[m];
      for (std::uint32_t j = a1.row_start[m]; j < a1.row_start[m + 1]; ++j) row[a1.col[j]] += w2 * a1.weight[j];
    }
    for (std::size_t i = 0; i < n_in; ++i) {
      if (row[i] == 0) continue;
      s.col.push_back(static_cast<std::uint32_t>(i));
      s.weight.push_back(row[i]);
    }
    s.row_start.push_back(static_cast<std::uint32_t>(s.col.size()));
    s.bias.push_back(b);
  }
  (void)n_mid;
  return s;
}

// Scales a linear stage's outputs (weights and bias) by f.
void scale_outputs(LinearStage& s, double f) {
  for (auto& w : s.weight) w *= f;
  for (auto& b : s.bias) b *= f;
}

// Raw x is accurate while r^d stays well below the scale (see approx::InputForm).
bool raw_is_accurate(const approx::Polynomial& p) { return std::pow(p.range(), p.degree()) <= 65536.0; }

}  // namespace

std::size_t relin_key_bytes(const ckks::CkksParameters& p, bool seeded) {
  const std::size_t limbs = p.q().size() + p.p().size();
  const std::size_t one = p.digits() * limbs * p.poly_degree() * 8;
  return seeded ? one + p.digits() * 32 : 2 * one;
}

ckks::CkksParameters choose_parameters(int depth, const CompileOptions& o, int* scale_bits_out) {
  if (depth < 1) throw Error("compile: the computation needs no level; nothing to encrypt");
  const int levels = depth + o.extra_levels;
  std::vector<std::size_t> degrees;
  if (o.log_n != 0) {
    if (o.log_n < 10 || o.log_n > 16) throw Error("--log-n must be between 10 and 16");
    degrees.push_back(std::size_t{1} << o.log_n);
  } else {
    for (int l = 12; l <= 16; ++l) degrees.push_back(std::size_t{1} << l);
  }
  std::string tried;
  for (std::size_t n : degrees) {
    const int bound = ckks::security_bound_bits(n);
    // Scale bits: as requested, or the largest in [30, 40]; then the special primes (60 bits
    // each) that make key switching cheapest: fewest digits x limbs.
    std::vector<int> scales;
    if (o.scale_bits != 0) {
      if (o.scale_bits < 20 || o.scale_bits > 58) throw Error("--scale-bits must be between 20 and 58");
      scales.push_back(o.scale_bits);
    } else {
      for (int s = 40; s >= 30; --s) scales.push_back(s);
    }
    // The cheapest key switching (fewest digits x limbs) first, then the largest scale. Special
    // primes of 49 bits keep every prime below 2^50, where the IFMA kernels apply.
    constexpr int kSpecialBits = 49;
    int best_s = 0, best_k = 0;
    double best_cost = 1e300;
    for (int s : scales) {
      const int q0 = std::min(49, s + 14);  // room for outputs of magnitude up to ~2^13
      for (int k = 1; k <= 6; ++k) {
        const int total = q0 + levels * s + kSpecialBits * k;
        if (!o.allow_insecure && total > bound) continue;
        // Primes per key-switching digit: each digit's product (the first holds q0) stays below P.
        const int p_bits = kSpecialBits * k - 1;
        const int alpha = std::max(1, std::min(p_bits / s, 1 + (p_bits - q0) / s));
        const int digits = (levels + 1 + alpha - 1) / alpha;
        const double cost = static_cast<double>(digits) * (levels + 1 + k);
        if (cost < best_cost) {
          best_cost = cost;
          best_k = k;
          best_s = s;
        }
      }
    }
    if (best_k != 0) {
      std::vector<int> qb{std::min(49, best_s + 14)};
      for (int i = 0; i < levels; ++i) qb.push_back(best_s);
      ckks::ParameterOptions po;
      po.allow_insecure = o.allow_insecure;
      *scale_bits_out = best_s;
      return ckks::CkksParameters::from_bit_sizes(n, qb, std::vector<int>(static_cast<std::size_t>(best_k), kSpecialBits), po);
    }
    tried += " N=" + std::to_string(n) + " (bound " + std::to_string(bound) + " bits)";
  }
  throw Error("compile: no secure parameters for " + std::to_string(levels) + " levels at the requested scale; tried" +
              tried + ". Use a larger --log-n, a smaller --scale-bits, or a shallower model");
}

HePlan compile(const nn::Model& model, const CompileOptions& options) {
  const nn::Model m = nn::fold_batch_norm(model);
  const auto shapes = m.shapes();
  HePlan plan;
  plan.input = m.input;
  double pending = 1.0;  // factor on the inputs of the next linear stage
  nn::Shape cur = m.input;
  std::string pending_names;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const nn::Layer& l = m.layers[i];
    const nn::Shape out = shapes[i];
    const std::string name = l.name.empty() ? nn::to_string(l.type) + std::to_string(i) : l.name;
    const std::string where = "encrypted inference: layer " + std::to_string(i) + " (" + name + ")";
    switch (l.type) {
      case nn::LayerType::Conv2d:
      case nn::LayerType::Dense: {
        Stage s;
        s.kind = StageKind::Linear;
        s.name = name;
        s.in = cur;
        s.out = out;
        s.levels = 1;
        s.linear = l.type == nn::LayerType::Conv2d ? conv_rows(l, cur, out, pending) : dense_rows(l, cur.size(), pending);
        pending = 1.0;
        // Two linear stages in a row are one linear map: one level instead of two.
        if (l.type == nn::LayerType::Dense && !plan.stages.empty() && plan.stages.back().kind == StageKind::Linear) {
          Stage& prev = plan.stages.back();
          prev.linear = compose(prev.linear, s.linear, static_cast<std::size_t>(prev.in.size()));
          prev.out = out;
          prev.name += "+" + name;
        } else {
          plan.stages.push_back(std::move(s));
        }
        break;
      }
      case nn::LayerType::BatchNorm:
        throw Error(where + ": batch normalization must follow a convolution or dense layer to be folded");
      case nn::LayerType::Activation: {
        if (!l.activation.is_polynomial()) {
          throw Error(where + ": activation '" + l.activation.spec +
                      "' is not a polynomial; encrypted inference needs polynomial activations (e.g. "
                      "swish:deg4:range4 or square)");
        }
        const approx::Polynomial& p = *l.activation.poly;
        if (p.degree() < 1) throw Error(where + ": the activation polynomial is constant");
        Stage s;
        s.kind = StageKind::Activation;
        s.name = name;
        s.in = cur;
        s.out = out;
        // Monic form whenever a linear stage follows to absorb the leading coefficient.
        bool followed = false;
        for (std::size_t j = i + 1; j < m.layers.size(); ++j) {
          const auto t = m.layers[j].type;
          if (t == nn::LayerType::Conv2d || t == nn::LayerType::Dense) {
            followed = true;
            break;
          }
          if (t == nn::LayerType::Activation) break;
        }
        approx::InputForm form = approx::InputForm::Raw;
        if (!raw_is_accurate(p)) {
          const bool after_linear = !plan.stages.empty() && plan.stages.back().kind == StageKind::Linear && pending == 1.0;
          if (after_linear) {
            scale_outputs(plan.stages.back().linear, 1.0 / p.range());  // the previous layer computes x / r
            form = approx::InputForm::Normalized;
          } else {
            form = approx::InputForm::NormalizeFirst;
          }
        }
        if (pending != 1.0) throw Error(where + ": an activation after average pooling is not supported");
        s.activation.form = form;
        s.activation.poly = approx::plan_polynomial(p, form, followed);
        s.levels = s.activation.poly.depth;
        if (followed) pending = s.activation.poly.factor;
        plan.stages.push_back(std::move(s));
        break;
      }
      case nn::LayerType::AvgPool2d: {
        Stage s;
        s.kind = StageKind::SumPool;
        s.name = name;
        s.in = cur;
        s.out = out;
        s.pool = {l.pool, l.pool_stride};
        pending /= static_cast<double>(l.pool) * l.pool;
        plan.stages.push_back(std::move(s));
        break;
      }
      case nn::LayerType::Flatten:
        break;  // CHW ciphertext order is already the flat order
    }
    cur = out;
  }
  if (plan.stages.empty()) throw Error("encrypted inference: the model has no layers");
  plan.output_factor = pending;
  // Deferred relinearization: an activation whose outputs feed a linear stage with at most half as
  // many outputs keeps its products 3-component; the linear stage relinearizes its fewer outputs.
  for (std::size_t i = 0; i + 1 < plan.stages.size(); ++i) {
    Stage& s = plan.stages[i];
    const Stage& next = plan.stages[i + 1];
    if (s.kind == StageKind::Activation && next.kind == StageKind::Linear && s.activation.poly.monic &&
        2 * next.out.size() <= next.in.size()) {
      s.activation.relinearize_output = false;
    }
  }
  for (const auto& s : plan.stages) plan.depth += s.levels;
  plan.params = choose_parameters(plan.depth, options, &plan.scale_bits);
  return plan;
}

std::vector<double> simulate(const HePlan& plan, const float* image) {
  std::vector<double> x(static_cast<std::size_t>(plan.input.size()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = image[i];
  std::vector<double> y;
  for (const Stage& s : plan.stages) {
    switch (s.kind) {
      case StageKind::Linear: {
        const auto& L = s.linear;
        y.assign(L.bias.size(), 0.0);
        for (std::size_t o = 0; o < L.bias.size(); ++o) {
          double acc = 0;
          for (std::uint32_t k = L.row_start[o]; k < L.row_start[o + 1]; ++k) acc += L.weight[k] * x[L.col[k]];
          y[o] = acc + L.bias[o];
        }
        break;
      }
      case StageKind::SumPool: {
        const nn::Shape in = s.in, out = s.out;
        y.assign(static_cast<std::size_t>(out.size()), 0.0);
        for (int c = 0; c < out.c; ++c)
          for (int oy = 0; oy < out.h; ++oy)
            for (int ox = 0; ox < out.w; ++ox) {
              double acc = 0;
              for (int ky = 0; ky < s.pool.pool; ++ky)
                for (int kx = 0; kx < s.pool.pool; ++kx)
                  acc += x[(static_cast<std::size_t>(c) * in.h + oy * s.pool.stride + ky) * in.w + ox * s.pool.stride + kx];
              y[(static_cast<std::size_t>(c) * out.h + oy) * out.w + ox] = acc;
            }
        break;
      }
      case StageKind::Activation: {
        y.resize(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) y[i] = approx::simulate(s.activation.poly, x[i]);
        break;
      }
    }
    std::swap(x, y);
  }
  for (auto& v : x) v *= plan.output_factor;
  return x;
}

std::string HePlan::describe() const {
  std::ostringstream os;
  os << "encrypted computation: " << stages.size() << " stages, " << depth << " levels\n";
  int level = params ? static_cast<int>(params->max_level()) : depth;
  for (const Stage& s : stages) {
    os << "  level " << level << " -> " << level - s.levels << "  ";
    switch (s.kind) {
      case StageKind::Linear:
        os << "linear     " << s.name << ": " << s.in.size() << " -> " << s.out.size() << " ciphertexts, "
           << s.linear.weight.size() << " products";
        break;
      case StageKind::SumPool:
        os << "sum-pool   " << s.name << ": " << s.pool.pool << "x" << s.pool.pool << " (1/" << s.pool.pool * s.pool.pool
           << " folded forward)";
        break;
      case StageKind::Activation:
        os << "activation " << s.name << ": degree " << s.activation.poly.degree
           << (s.activation.poly.monic ? " monic (leading coefficient folded forward)" : "") << ", "
           << (s.activation.form == approx::InputForm::Raw ? "power basis" : "Chebyshev basis")
           << (s.activation.relinearize_output ? "" : ", outputs relinearized after the next stage") << ", "
           << s.out.size() << " ciphertexts";
        break;
    }
    os << "\n";
    level -= s.levels;
  }
  if (params) {
    const auto& p = *params;
    os << "parameters: N = " << p.poly_degree() << " (" << p.max_slots() << " images per batch), scale 2^" << scale_bits
       << ", " << p.total_bits() << " bits of modulus" << (p.insecure() ? " (INSECURE: above the 128-bit bound)" : " (128-bit secure)")
       << "\n  chain:";
    for (auto q : p.q()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; special:";
    for (auto q : p.p()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; " << p.digits() << " key-switching digits\n";
    os << "  keys: relinearization " << relin_key_bytes(p, true) / 1024 << " KiB stored ("
       << relin_key_bytes(p, false) / (1024 * 1024) << " MiB in memory); no rotation keys needed\n";
  }
  return os.str();
}

}  // namespace hecnn::he
