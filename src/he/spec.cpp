#include "he/spec.h"

#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "he/backend.h"

namespace hecnn::he {

using nlohmann::json;

std::string to_string(Layout l) { return backend(l).name(); }

Layout parse_layout(const std::string& name) {
  std::string known;
  for (const Backend* b : backends()) {
    if (b->name() == name) return b->layout();
    known += (known.empty() ? "" : ", ") + b->name();
  }
  throw Error("unknown layout '" + name + "' (known: " + known + ")");
}

double ClientSpec::scale() const { return std::ldexp(1.0, scale_bits); }

json ClientSpec::to_json() const {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(params_id));
  json j = {{"layout", to_string(layout)},
          {"params_id", id},
          {"scale_bits", scale_bits},
          {"input", {input.c, input.h, input.w}},
          {"outputs", outputs},
          {"output_factor", output_factor},
          {"batch_size", batch_size},
          {"input_ciphertexts", input_ciphertexts},
          {"output_ciphertexts", output_ciphertexts}};
  if (input_level) j["input_level"] = input_level;
  backend(layout).write_spec(*this, j);
  return j;
}

const json& spec_field(const json& j, const char* name) {
  if (!j.is_object() || !j.contains(name)) throw Error(std::string("client specification: missing '") + name + "'");
  return j.at(name);
}

std::size_t spec_count(const json& j, const char* name, std::size_t max) {
  const json& v = spec_field(j, name);
  // Parsed JSON holds positive numbers as unsigned, a json built in memory as signed: both count.
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::uint64_t>() > max) {
    throw Error(std::string("client specification: '") + name + "' must be an integer from 1 to " + std::to_string(max));
  }
  return static_cast<std::size_t>(v.get<std::uint64_t>());
}

ClientSpec ClientSpec::from_json(const json& j) {
  ClientSpec s;
  const auto field = [&](const char* name) -> const json& { return spec_field(j, name); };
  const auto count = [&](const char* name, std::size_t max) { return spec_count(j, name, max); };
  const json& layout = field("layout");
  if (!layout.is_string()) throw Error("client specification: 'layout' must be a string");
  s.layout = parse_layout(layout.get<std::string>());
  const json& id = field("params_id");
  if (!id.is_string() || id.get<std::string>().size() != 16) throw Error("client specification: malformed 'params_id'");
  try {
    std::size_t used = 0;
    s.params_id = std::stoull(id.get<std::string>(), &used, 16);
    if (used != 16) throw std::invalid_argument("params_id");
  } catch (const std::logic_error&) {
    throw Error("client specification: malformed 'params_id'");
  }
  s.scale_bits = static_cast<int>(count("scale_bits", 60));
  const json& in = field("input");
  if (!in.is_array() || in.size() != 3) throw Error("client specification: 'input' must be [channels, height, width]");
  int dims[3];
  for (std::size_t i = 0; i < 3; ++i) {
    if (!in[i].is_number_integer() || in[i].get<std::int64_t>() <= 0 || in[i].get<std::int64_t>() > 4096) {
      throw Error("client specification: each 'input' dimension must be from 1 to 4096");
    }
    dims[i] = static_cast<int>(in[i].get<std::uint64_t>());
  }
  s.input = {dims[0], dims[1], dims[2]};
  if (s.input.size() > (1 << 24)) throw Error("client specification: the input has more than 2^24 values");
  s.outputs = count("outputs", 1 << 20);
  const json& f = field("output_factor");
  if (!f.is_number() || !std::isfinite(f.get<double>()) || f.get<double>() == 0) {
    throw Error("client specification: 'output_factor' must be a finite nonzero number");
  }
  s.output_factor = f.get<double>();
  s.batch_size = count("batch_size", std::size_t{1} << 16);
  s.input_ciphertexts = count("input_ciphertexts", std::size_t{1} << 24);
  s.output_ciphertexts = count("output_ciphertexts", std::size_t{1} << 20);
  if (j.contains("input_level")) s.input_level = count("input_level", 63);
  backend(s.layout).read_spec(j, s);
  return s;
}

}  // namespace hecnn::he
