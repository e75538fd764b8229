#include "nn/safetensors.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "common/error.h"
#include "common/files.h"
#include "nn/limits.h"

namespace hecnn::nn {

using nlohmann::json;

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// The reference implementation allows 100 MiB; a hecnn model's header is a few KiB per layer.
constexpr std::uint64_t kMaxHeader = limits::kMaxJsonBytes;

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

}  // namespace

void write_safetensors(const std::string& path, const SafetensorsFile& f) {
  json header = json::object();
  if (!f.metadata.empty()) header["__metadata__"] = f.metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    if (static_cast<std::int64_t>(t.data.size()) != t.numel()) {
      throw Error("safetensors: tensor '" + name + "' has " + std::to_string(t.data.size()) + " values for shape " +
                  t.shape_string());
    }
    const std::uint64_t bytes = t.data.size() * sizeof(float);
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the format suggests
  // Atomic: a fresh temporary file beside `path` (never a symbolic link), renamed over it when complete.
  write_file_atomic(path, [&](std::ostream& out) {
    const std::uint64_t n = h.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& [name, t] : f.tensors) {
      out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
    }
    if (!out) throw Error("cannot write " + path + " (disk full?)");
  });
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::uint64_t file_size = regular_file_size(path, "model file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open model file " + path);
  auto bad = [&](const std::string& what) {
    return Error(path + ": not a valid safetensors file (" + what + ")");
  };
  if (file_size < 8) throw bad("shorter than its 8-byte header length");
  std::uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  if (n < 2 || n > kMaxHeader || n > file_size - 8) throw bad("header length " + std::to_string(n) + " does not fit the file");
  std::string h(n, '\0');
  if (!in.read(h.data(), static_cast<std::streamsize>(n))) throw bad("truncated header");
  json header;
  try {
    header = parse_json_bounded(h, "header");
  } catch (const Error& e) {
    throw bad(e.what());
  }
  if (!header.is_object()) throw bad("header is not a JSON object");
  if (const std::size_t tensors = header.size() - (header.contains("__metadata__") ? 1 : 0); tensors > limits::kMaxTensors) {
    throw bad(std::to_string(tensors) + " tensors, more than the " + std::to_string(limits::kMaxTensors) + " accepted");
  }
  const std::uint64_t data_size = file_size - 8 - n;
  SafetensorsFile out;
  // First every entry and its byte range, checked against the others, before any tensor is read:
  // tensors sharing bytes could otherwise make a small file decode into many times its size.
  struct Entry {
    std::uint64_t begin, end;
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t count;
  };
  std::vector<Entry> entries;
  try {
    for (const auto& [name, v] : header.items()) {
      if (name == "__metadata__") {
        if (!v.is_object()) throw bad("__metadata__ is not an object");
        for (const auto& [k, s] : v.items()) {
          if (!s.is_string()) throw bad("metadata value '" + k + "' is not a string");
          out.metadata[k] = s.get<std::string>();
        }
        continue;
      }
      const std::string dtype = v.at("dtype").get<std::string>();
      const auto shape = v.at("shape").get<std::vector<std::int64_t>>();
      const auto offs = v.at("data_offsets").get<std::vector<std::uint64_t>>();
      std::uint64_t elem = 0;
      if (dtype == "F32") elem = 4;
      else if (dtype == "F64") elem = 8;
      else if (dtype == "F16" || dtype == "BF16") elem = 2;
      else throw bad("tensor '" + name + "' has unsupported dtype " + dtype + " (expected F32, F64, F16 or BF16)");
      if (shape.size() > 8) throw bad("tensor '" + name + "' has " + std::to_string(shape.size()) + " dimensions (at most 8)");
      std::uint64_t count = 1;
      for (auto d : shape) {
        if (d < 0 || d > (1ll << 31)) throw bad("tensor '" + name + "' has an invalid dimension");
        count *= static_cast<std::uint64_t>(d);
        if (count > (1ull << 31)) throw bad("tensor '" + name + "' is too large");
      }
      if (offs.size() != 2 || offs[0] > offs[1] || offs[1] > data_size) {
        throw bad("tensor '" + name + "' has data offsets outside the file (truncated?)");
      }
      if (offs[1] - offs[0] != count * elem) {
        throw bad("tensor '" + name + "' spans " + std::to_string(offs[1] - offs[0]) + " bytes, its shape needs " +
                  std::to_string(count * elem));
      }
      entries.push_back({offs[0], offs[1], name, dtype, shape, count});
    }
  } catch (const json::exception& e) {
    throw bad(std::string("malformed tensor entry: ") + e.what());
  }
  // The ranges must tile the data section exactly: no overlap, no gap, nothing after the last.
  std::vector<const Entry*> order;
  for (const auto& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t pos = 0;
  for (const Entry* e : order) {
    if (e->begin < pos) throw bad("tensor '" + e->name + "' overlaps another");
    if (e->begin > pos) throw bad("tensor '" + e->name + "' leaves a gap before it");
    pos = e->end;
  }
  if (pos != data_size) throw bad(std::to_string(data_size - pos) + " bytes after the last tensor");
  // Now the values: at most the data section's size in total (x2 for 16-bit types).
  for (const Entry& e : entries) {
    Tensor t;
    t.shape = e.shape;
    t.data.resize(e.count);
    std::vector<char> raw(e.end - e.begin);
    in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
    if (!in.read(raw.data(), static_cast<std::streamsize>(raw.size()))) throw bad("tensor '" + e.name + "' is truncated");
    for (std::uint64_t i = 0; i < e.count; ++i) {
      float f = 0;
      if (e.dtype == "F32") {
        std::memcpy(&f, raw.data() + 4 * i, 4);
      } else if (e.dtype == "F64") {
        double d;
        std::memcpy(&d, raw.data() + 8 * i, 8);
        f = static_cast<float>(d);
      } else {
        std::uint16_t b;
        std::memcpy(&b, raw.data() + 2 * i, 2);
        if (e.dtype == "F16") {
          f = half_to_float(b);
        } else {
          const std::uint32_t w = static_cast<std::uint32_t>(b) << 16;
          std::memcpy(&f, &w, 4);
        }
      }
      if (!std::isfinite(f)) throw bad("tensor '" + e.name + "' holds a non-finite value at index " + std::to_string(i));
      t.data[i] = f;
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void save_model(const Model& m, const std::string& path) {
  m.validate();
  SafetensorsFile f;
  f.metadata["format"] = "pt";
  f.metadata["hecnn.architecture"] = m.architecture().dump();
  f.metadata["hecnn.info"] = m.info.dump();
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    for (const auto& [role, t] : m.layers[i].params) f.tensors[std::to_string(i) + "." + role] = t;
  }
  write_safetensors(path, f);
}

Model load_model(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  auto it = f.metadata.find("hecnn.architecture");
  if (it == f.metadata.end()) {
    throw Error(path + ": a safetensors file without a hecnn architecture (metadata 'hecnn.architecture'); "
                "import Keras models with hecnn import-keras");
  }
  Model m;
  try {
    m = Model::from_architecture(parse_json_bounded(it->second, "architecture metadata"));
    if (auto info = f.metadata.find("hecnn.info"); info != f.metadata.end()) {
      m.info = parse_json_bounded(info->second, "info metadata");
    }
  } catch (const json::exception& e) {
    throw Error(path + ": architecture metadata is not valid JSON: " + e.what());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  std::set<std::string> used;
  for (auto& [name, t] : f.tensors) {
    // "<layer index>.<role>"; an index of any length (even beyond 64 bits) is just not a layer.
    const auto dot = name.find('.');
    std::size_t idx = 0;
    bool ok = dot != std::string::npos && dot > 0;
    for (std::size_t i = 0; ok && i < dot; ++i) ok = std::isdigit(static_cast<unsigned char>(name[i])) != 0;
    if (ok) {
      const auto [end, ec] = std::from_chars(name.data(), name.data() + dot, idx);
      ok = ec == std::errc() && end == name.data() + dot && idx < m.layers.size();
    }
    if (!ok) throw Error(path + ": tensor '" + name + "' does not belong to any layer");
    m.layers[idx].params[name.substr(dot + 1)] = std::move(t);
  }
  try {
    m.validate();
    check_parameter_values(m);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return m;
}

}  // namespace hecnn::nn
