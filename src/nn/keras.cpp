#include "nn/keras.h"

#include <hdf5.h>

#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"
#include "nn/limits.h"

namespace hecnn::nn {

using nlohmann::json;

namespace {

// PP-CNN's published activation polynomials (power basis), by its Keras custom-object names.
const std::map<std::string, std::vector<double>>& ppcnn_polynomials() {
  static const std::map<std::string, std::vector<double>> m = {
      {"swish_rg3_deg4", {0.0108, 0.5, 0.2212, 0.0, -0.008248}},
      {"swish_rg4_deg4", {0.03347, 0.5, 0.19566, 0.0, -0.005075}},
      {"swish_rg5_deg4", {0.07066, 0.5, 0.17003, 0.0, -0.00315}},
      {"swish_rg6_deg4", {0.1198, 0.5, 0.1473, 0.0, -0.002012}},
      {"swish_rg7_deg4", {0.1773, 0.5, 0.1282, 0.0, -0.001328}},
      {"swish_rg8_deg4", {0.2401, 0.5, 0.11257, 0.0, -0.000908}},
      {"mish_rg4_deg4", {0.06021, 0.565775, 0.21051, -0.004142, -0.00609}},
      {"mish_rg5_deg4", {0.1104, 0.5495, 0.17573, -0.0022355, -0.00346443}},
      {"mish_rg6_deg4", {0.169, 0.53663, 0.148529, -0.001277, -0.002096}},
  };
  return m;
}

Activation keras_activation(const std::string& name, const std::string& layer) {
  if (auto it = ppcnn_polynomials().find(name); it != ppcnn_polynomials().end()) {
    const auto rg = name.find("_rg");
    const double range = std::stod(name.substr(rg + 3));
    return Activation::polynomial(it->second, range, name);
  }
  try {
    return Activation::parse(name);
  } catch (const Error& e) {
    throw Error("Keras layer '" + layer + "': activation '" + name + "' is not supported (" + e.what() + ")");
  }
}

// RAII for HDF5 handles.
struct H5 {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  H5(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  H5(const H5&) = delete;
  H5& operator=(const H5&) = delete;
  ~H5() {
    if (id >= 0 && close) close(id);
  }
};

class WeightsFile {
 public:
  explicit WeightsFile(const std::string& path) : path_(path), file_(-1, H5Fclose) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors become exceptions below, not stderr noise
    if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(path + ": not an HDF5 file (expected Keras weights, model.save_weights)");
    file_.id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file_.id < 0) throw Error(path + ": cannot open the HDF5 file (truncated or corrupted?)");
    root_ = file_.id;
    // Keras' model.save() nests the weights under /model_weights.
    if (H5Lexists(file_.id, "model_weights", H5P_DEFAULT) > 0) {
      group_ = std::make_unique<H5>(H5Gopen2(file_.id, "model_weights", H5P_DEFAULT), H5Gclose);
      root_ = group_->id;
    }
  }

  // The string array attribute `name` of object `obj` (fixed or variable length strings).
  std::vector<std::string> string_attr(hid_t obj, const char* name, const std::string& where) const {
    if (H5Aexists(obj, name) <= 0) throw Error(path_ + ": " + where + " has no '" + name + "' attribute (not a Keras weights file?)");
    H5 attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
    H5 type(H5Aget_type(attr.id), H5Tclose);
    H5 space(H5Aget_space(attr.id), H5Sclose);
    if (attr.id < 0 || type.id < 0 || space.id < 0 || H5Tget_class(type.id) != H5T_STRING) {
      throw Error(path_ + ": " + where + " attribute '" + name + "' is not a string array");
    }
    const hssize_t n = H5Sget_simple_extent_npoints(space.id);
    if (n < 0 || n > 64) throw Error(path_ + ": " + where + " attribute '" + name + "' has a bad size");
    std::vector<std::string> out;
    if (H5Tis_variable_str(type.id) > 0) {
      std::vector<char*> ptrs(static_cast<std::size_t>(n), nullptr);
      H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
      H5Tset_size(mem.id, H5T_VARIABLE);
      if (H5Aread(attr.id, mem.id, ptrs.data()) < 0) throw Error(path_ + ": cannot read attribute '" + std::string(name) + "'");
      for (char* p : ptrs) out.emplace_back(p ? p : "");
      H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
    } else {
      const std::size_t len = H5Tget_size(type.id);
      if (len == 0 || len > 1024) throw Error(path_ + ": bad string length in attribute '" + std::string(name) + "'");
      std::vector<char> buf(len * static_cast<std::size_t>(n));
      if (H5Aread(attr.id, type.id, buf.data()) < 0) throw Error(path_ + ": cannot read attribute '" + std::string(name) + "'");
      for (hssize_t i = 0; i < n; ++i) {
        const char* s = buf.data() + static_cast<std::size_t>(i) * len;
        out.emplace_back(s, strnlen(s, len));
      }
    }
    return out;
  }

  // Weight arrays of a layer, in the order of its weight_names attribute, which must have the
  // shapes the structure implies (`expected`, described by `what`): they are compared before any
  // array is allocated or read, so the sizes the HDF5 file declares are never trusted alone.
  std::vector<Tensor> layer_weights(const std::string& layer, const std::vector<std::vector<std::int64_t>>& expected,
                                    const std::string& what) const {
    if (H5Lexists(root_, layer.c_str(), H5P_DEFAULT) <= 0) {
      throw Error(path_ + ": no weights for layer '" + layer + "' (structure and weights files do not match)");
    }
    H5 g(H5Gopen2(root_, layer.c_str(), H5P_DEFAULT), H5Gclose);
    const std::vector<std::string> names = string_attr(g.id, "weight_names", "layer '" + layer + "'");
    if (names.size() != expected.size()) {
      throw Error(path_ + ": layer '" + layer + "' has " + std::to_string(names.size()) + " weight arrays, its structure needs " +
                  std::to_string(expected.size()) + " (" + what + ")");
    }
    std::vector<Tensor> out;
    for (std::size_t k = 0; k < names.size(); ++k) {
      const std::string& wn = names[k];
      H5 ds(H5Dopen2(g.id, wn.c_str(), H5P_DEFAULT), H5Dclose);
      if (ds.id < 0) throw Error(path_ + ": missing dataset '" + layer + "/" + wn + "'");
      H5 space(H5Dget_space(ds.id), H5Sclose);
      const int rank = H5Sget_simple_extent_ndims(space.id);
      if (rank < 0 || rank > 8) throw Error(path_ + ": dataset '" + wn + "' has a bad rank");
      std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
      H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
      Tensor t;
      for (auto d : dims) t.shape.push_back(d > (1ull << 40) ? -1 : static_cast<std::int64_t>(d));
      if (t.shape != expected[k]) {
        Tensor want;
        want.shape = expected[k];
        throw Error(path_ + ": dataset '" + layer + "/" + wn + "' has shape " + t.shape_string() + ", the structure (" + what +
                    ") needs " + want.shape_string());
      }
      const auto count = static_cast<std::uint64_t>(t.numel());
      if (count > 0 && H5Dget_storage_size(ds.id) == 0) {
        throw Error(path_ + ": dataset '" + layer + "/" + wn + "' holds no data (declared but never written)");
      }
      t.data.resize(count);
      if (H5Dread(ds.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data.data()) < 0) {
        throw Error(path_ + ": cannot read dataset '" + layer + "/" + wn + "' (truncated or corrupted file?)");
      }
      out.push_back(std::move(t));
    }
    return out;
  }

 private:
  std::string path_;
  H5 file_;
  std::unique_ptr<H5> group_;
  hid_t root_ = -1;
};

std::pair<int, int> int_pair(const json& j, const char* key, int def) {
  if (!j.contains(key) || j.at(key).is_null()) return {def, def};
  const auto& v = j.at(key);
  const std::string what = std::string("Keras structure: '") + key + "'";
  if (v.is_number_integer()) return {json_int(v, what), json_int(v, what)};
  return {json_int(v.at(0), what), json_int(v.at(1), what)};
}

void expect_shape(const Tensor& t, const std::vector<std::int64_t>& shape, const std::string& what) {
  if (t.shape != shape) {
    Tensor w;
    w.shape = shape;
    throw Error("Keras weights: " + what + " has shape " + t.shape_string() + ", expected " + w.shape_string());
  }
}

}  // namespace

Model import_keras(const std::string& structure_path, const std::string& weights_path) {
  const json structure = read_json_file_bounded(structure_path, "Keras structure file");
  check_regular_file(weights_path, "Keras weights file");
  const WeightsFile weights(weights_path);
  Model m;
  // The layers without their weights: each new layer's hyper-parameters and sizes are checked
  // against the limits (nn/limits.h) before its weights are read.
  Model skeleton;
  auto checked_output = [&](const Layer& l) {
    Layer bare = l;
    bare.params.clear();
    skeleton.layers.push_back(std::move(bare));
    return skeleton.shapes(false).back();
  };
  try {
    if (structure.value("class_name", "") != "Sequential") {
      throw Error(structure_path + ": only Keras Sequential models are supported (class_name is '" +
                  structure.value("class_name", "?") + "')");
    }
    const json& cfg = structure.at("config");
    const json& klayers = cfg.is_array() ? cfg : cfg.at("layers");
    bool have_input = false;
    Shape cur;
    bool after_flatten = false;
    Shape before_flatten;
    for (std::size_t li = 0; li < klayers.size(); ++li) {
      const json& kl = klayers[li];
      const std::string cls = kl.at("class_name").get<std::string>();
      const json& c = kl.at("config");
      const std::string name = c.value("name", cls + std::to_string(li));
      const std::string where = "Keras layer '" + name + "' (" + cls + ")";
      if (!have_input) {
        const json* shape = nullptr;
        if (c.contains("batch_input_shape")) shape = &c.at("batch_input_shape");
        if (!shape || shape->size() != 4) throw Error(where + ": the first layer must give a 4-D batch_input_shape");
        const std::string what = where + ": batch_input_shape";
        m.input = {json_int((*shape)[3], what), json_int((*shape)[1], what), json_int((*shape)[2], what)};  // NHWC -> CHW
        check_input_shape(m.input);
        skeleton.input = m.input;
        cur = m.input;
        have_input = true;
        if (cls == "InputLayer") continue;
      }
      if (c.contains("data_format") && c.at("data_format") != "channels_last") {
        throw Error(where + ": only channels_last models are supported");
      }
      auto add_activation = [&](const std::string& act) {
        if (act == "linear") return;
        Layer a;
        a.type = LayerType::Activation;
        a.name = cls == "Activation" ? name : name + "_activation";
        a.activation = keras_activation(act, name);
        checked_output(a);
        m.layers.push_back(std::move(a));
      };
      if (cls == "Conv2D") {
        Layer l;
        l.type = LayerType::Conv2d;
        l.name = name;
        l.filters = json_int(c.at("filters"), where + ": filters");
        std::tie(l.kernel_h, l.kernel_w) = int_pair(c, "kernel_size", 1);
        std::tie(l.stride_h, l.stride_w) = int_pair(c, "strides", 1);
        if (int_pair(c, "dilation_rate", 1) != std::pair<int, int>{1, 1}) throw Error(where + ": dilation is not supported");
        const std::string pad = c.value("padding", "valid");
        if (pad != "valid" && pad != "same") throw Error(where + ": padding '" + pad + "' is not supported");
        l.padding = pad == "same" ? Padding::Same : Padding::Valid;
        checked_output(l);
        const bool bias = c.value("use_bias", true);
        std::vector<std::vector<std::int64_t>> shapes = {{l.kernel_h, l.kernel_w, cur.c, l.filters}};
        if (bias) shapes.push_back({l.filters});
        auto w = weights.layer_weights(name, shapes, bias ? "kernel and bias" : "a kernel");
        // Keras kernel [kh, kw, in, out] -> [out, in, kh, kw].
        expect_shape(w[0], {l.kernel_h, l.kernel_w, cur.c, l.filters}, name + " kernel");
        Tensor k({l.filters, cur.c, l.kernel_h, l.kernel_w});
        for (int y = 0; y < l.kernel_h; ++y)
          for (int x = 0; x < l.kernel_w; ++x)
            for (int i = 0; i < cur.c; ++i)
              for (int o = 0; o < l.filters; ++o)
                k.data[((static_cast<std::size_t>(o) * cur.c + i) * l.kernel_h + y) * l.kernel_w + x] =
                    w[0].data[((static_cast<std::size_t>(y) * l.kernel_w + x) * cur.c + i) * l.filters + o];
        l.params["weight"] = std::move(k);
        if (bias) {
          expect_shape(w[1], {l.filters}, name + " bias");
          l.params["bias"] = std::move(w[1]);
        }
        m.layers.push_back(std::move(l));
        add_activation(c.value("activation", "linear"));
      } else if (cls == "BatchNormalization") {
        Layer l;
        l.type = LayerType::BatchNorm;
        l.name = name;
        l.eps = c.value("epsilon", 1e-3);
        const json axis = c.value("axis", json(-1));
        const int ax = axis.is_array() ? axis.at(0).get<int>() : axis.get<int>();
        if (ax != -1 && ax != 3) throw Error(where + ": only channel-axis batch normalization is supported");
        const bool center = c.value("center", true), scale = c.value("scale", true);
        checked_output(l);
        const std::size_t need = 2 + (center ? 1 : 0) + (scale ? 1 : 0);
        auto w = weights.layer_weights(name, std::vector<std::vector<std::int64_t>>(need, {cur.c}),
                                       std::to_string(need) + " arrays of " + std::to_string(cur.c));
        std::size_t k = 0;
        Tensor gamma({cur.c}, 1.0f), beta({cur.c}, 0.0f);
        if (scale) gamma = std::move(w[k++]);
        if (center) beta = std::move(w[k++]);
        Tensor mean = std::move(w[k++]), var = std::move(w[k++]);
        for (const Tensor* t : {&gamma, &beta, &mean, &var}) expect_shape(*t, {cur.c}, name + " parameter");
        l.params["weight"] = std::move(gamma);
        l.params["bias"] = std::move(beta);
        l.params["running_mean"] = std::move(mean);
        l.params["running_var"] = std::move(var);
        m.layers.push_back(std::move(l));
      } else if (cls == "Activation") {
        add_activation(c.at("activation").get<std::string>());
      } else if (cls == "AveragePooling2D") {
        Layer l;
        l.type = LayerType::AvgPool2d;
        l.name = name;
        const auto [ph, pw] = int_pair(c, "pool_size", 2);
        const auto [sh, sw] = int_pair(c, "strides", ph);
        if (ph != pw || sh != sw) throw Error(where + ": only square pools with equal strides are supported");
        const std::string pad = c.value("padding", "valid");
        if (pad != "valid" && pad != "same") throw Error(where + ": padding '" + pad + "' is not supported");
        l.pool = ph;
        l.pool_stride = sh;
        if (pad == "same") {
          // TensorFlow: out = ceil(in / stride), the odd padding at the bottom and right, and the mean
          // over the window's cells inside the image.
          const int pool = ph, stride = sh;  // (clang 14 lambdas cannot capture structured bindings)
          const auto pads = [pool, stride](int in) {
            const int out = (in + stride - 1) / stride, total = std::max((out - 1) * stride + pool - in, 0);
            return std::pair<int, int>{total / 2, total - total / 2};
          };
          std::tie(l.pad_top, l.pad_bottom) = pads(cur.h);
          std::tie(l.pad_left, l.pad_right) = pads(cur.w);
          if (l.pad_top || l.pad_bottom || l.pad_left || l.pad_right) {
            l.padding = Padding::Explicit;
            l.count_include_pad = false;
          }
        }
        checked_output(l);
        m.layers.push_back(std::move(l));
      } else if (cls == "GlobalAveragePooling2D") {
        // Keras gives [N, C] (or [N, 1, 1, C] with keepdims): C values in channel order either
        // way, so the next Dense needs no row permutation (unlike after flattening H x W x C).
        Layer l;
        l.type = LayerType::GlobalAvgPool2d;
        l.name = name;
        checked_output(l);
        m.layers.push_back(std::move(l));
      } else if (cls == "Flatten") {
        Layer l;
        l.type = LayerType::Flatten;
        l.name = name;
        before_flatten = cur;
        after_flatten = cur.h > 1 || cur.w > 1;
        checked_output(l);
        m.layers.push_back(std::move(l));
      } else if (cls == "Dense") {
        Layer l;
        l.type = LayerType::Dense;
        l.name = name;
        l.units = json_int(c.at("units"), where + ": units");
        checked_output(l);
        const std::int64_t n_in = cur.size();
        const bool bias = c.value("use_bias", true);
        std::vector<std::vector<std::int64_t>> shapes = {{n_in, l.units}};
        if (bias) shapes.push_back({l.units});
        auto w = weights.layer_weights(name, shapes, bias ? "kernel and bias" : "a kernel");
        expect_shape(w[0], {n_in, l.units}, name + " kernel");
        // Keras kernel [in, out] with inputs in H, W, C order (after a channels-last Flatten) ->
        // [out, in] with inputs in C, H, W order.
        Tensor k({l.units, n_in});
        const Shape s = after_flatten ? before_flatten : Shape{static_cast<int>(n_in), 1, 1};
        for (int ch = 0; ch < s.c; ++ch)
          for (int y = 0; y < s.h; ++y)
            for (int x = 0; x < s.w; ++x) {
              const std::size_t keras_in = (static_cast<std::size_t>(y) * s.w + x) * s.c + ch;
              const std::size_t our_in = (static_cast<std::size_t>(ch) * s.h + y) * s.w + x;
              for (int o = 0; o < l.units; ++o) {
                k.data[static_cast<std::size_t>(o) * n_in + our_in] = w[0].data[keras_in * l.units + o];
              }
            }
        after_flatten = false;
        l.params["weight"] = std::move(k);
        if (bias) {
          expect_shape(w[1], {l.units}, name + " bias");
          l.params["bias"] = std::move(w[1]);
        }
        m.layers.push_back(std::move(l));
        const std::string act = c.value("activation", "linear");
        const bool last = li + 1 == klayers.size();
        if (act == "softmax" && last) {
          m.info["note"] = "final softmax dropped: predictions (argmax) are unchanged";
        } else {
          add_activation(act);
        }
      } else if (cls == "Dropout") {
        continue;
      } else {
        throw Error(where + ": layer type '" + cls + "' is not supported (supported: Conv2D, BatchNormalization, "
                    "Activation, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dense, Dropout)");
      }
      cur = m.layers.empty() ? m.input : m.shapes().back();
    }
  } catch (const json::exception& e) {
    throw Error(structure_path + ": malformed Keras structure (" + e.what() + ")");
  }
  m.info["source"] = "keras";
  m.info["keras_version"] = structure.value("keras_version", "");
  m.validate();
  check_parameter_values(m);
  return m;
}

}  // namespace hecnn::nn
