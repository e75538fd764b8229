#pragma once
// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header mapping each tensor name to {dtype, shape, data_offsets} plus an
// optional "__metadata__" map of strings, then the raw little-endian tensor bytes.
#include <map>
#include <string>

#include "nn/model.h"

namespace hecnn::nn {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;       // stored as F32 (F64, F16 and BF16 are read too)
  std::map<std::string, std::string> metadata;
};

void write_safetensors(const std::string& path, const SafetensorsFile& f);
// Validates everything before trusting it: header length against the file size, JSON syntax, dtypes,
// shapes against byte ranges, ranges inside the data section, no overlaps or gaps, no trailing
// bytes, finite values. Throws hecnn::Error naming the file and the problem.
SafetensorsFile read_safetensors(const std::string& path);

// Models: architecture JSON in metadata["hecnn.architecture"], free-form info in
// metadata["hecnn.info"], parameters as "<layer index>.<role>" tensors.
void save_model(const Model& m, const std::string& path);
Model load_model(const std::string& path);

}  // namespace hecnn::nn
