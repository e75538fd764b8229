#pragma once
// Limits on what the model and dataset readers accept, checked before anything is allocated from
// the sizes a file declares, so that a small hostile or corrupted file cannot cost unbounded time
// or memory. README.md ("Limits on inputs") lists them.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/files.h"

#include "nn/model.h"

namespace hecnn::nn {

namespace limits {
// Model architecture.
constexpr int kMaxLayers = 256;
constexpr int kMaxImageSide = 4096;             // input height and width
constexpr int kMaxChannels = 4096;              // input channels, convolution filters
constexpr int kMaxKernel = 64;                  // convolution kernel, pool size, strides
constexpr std::int64_t kMaxValues = 1 << 20;    // values in a layer's input or output (also dense units)
constexpr std::int64_t kMaxConnections = std::int64_t{1} << 26;  // multiply-adds of one conv/dense layer
constexpr std::int64_t kMaxFitPointsPerModel = 1'000'000;  // lsq points of all the distinct activation fits
// Files.
constexpr std::uint64_t kMaxJsonBytes = std::uint64_t{16} << 20;  // architecture, Keras structure, safetensors header
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxTensors = 65536;      // tensors in a safetensors file
constexpr std::uint64_t kMaxOnnxBytes = std::uint64_t{512} << 20;  // an ONNX model file
constexpr int kMaxOnnxNodes = 4096;             // nodes of an ONNX graph
constexpr std::int64_t kMaxOnnxTensorValues = std::int64_t{1} << 26;  // values of one ONNX tensor
// Datasets.
constexpr std::uint32_t kMaxImages = 1'000'000;           // IDX: images in one file
constexpr std::uint32_t kMaxIdxSide = 1024;               // IDX: rows and columns
constexpr std::uint64_t kMaxIdxPixels = std::uint64_t{1} << 27;  // IDX: count x rows x cols
constexpr std::size_t kCifarBatchRecords = 10'000;        // CIFAR-10: records in a batch file (at most; any whole number from 1)
}  // namespace limits

// Throws hecnn::Error (message starting with `where`) when a layer's own hyper-parameters (filters,
// kernel, strides, pool, units) exceed the limits; called before its output shape is computed.
void check_layer_hyperparameters(const Layer& l, const std::string& where);
// Throws when a layer's output has more than kMaxValues values or a convolution or dense layer more
// than kMaxConnections multiply-adds.
void check_layer_size(const Layer& l, const Shape& in, const Shape& out, const std::string& where);
// Throws when the input shape is outside the limits.
void check_input_shape(const Shape& s);

// Throws hecnn::Error naming the layer and the tensor ("<layer index>.<role>", as in model files)
// when a parameter holds a non-finite value or a batch normalization variance is negative.
void check_parameter_values(const Model& m);

// The integer `v` holds; throws hecnn::Error starting with `what` for anything else (a fraction, a
// string, a number outside the range of int: no silent truncation or wrap-around).
int json_int(const nlohmann::json& v, const std::string& what);

// Parses JSON text of at most kMaxJsonBytes, nested at most kMaxJsonDepth deep; throws hecnn::Error
// starting with `what` otherwise or when it is not valid JSON.
nlohmann::json parse_json_bounded(const std::string& text, const std::string& what);

// Reads and parses a JSON file (`what` names it in messages, e.g. "architecture file"): a regular
// file of at most kMaxJsonBytes (its size checked before it is read), then parse_json_bounded.
// Throws hecnn::Error naming the file otherwise.
nlohmann::json read_json_file_bounded(const std::string& path, const std::string& what);

// Regular files only (common/files.h).
using hecnn::check_regular_file;
using hecnn::regular_file_size;

}  // namespace hecnn::nn
