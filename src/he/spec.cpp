#include "he/spec.h"

#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace hecnn::he {

using nlohmann::json;

std::string to_string(Layout l) {
  switch (l) {
    case Layout::Batch: return "batch";
    case Layout::Packed: return "packed";
  }
  return "?";
}

Layout parse_layout(const std::string& name) {
  if (name == "batch") return Layout::Batch;
  if (name == "packed") return Layout::Packed;
  throw Error("unknown layout '" + name + "' (known: batch, packed)");
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
  if (layout == Layout::Packed) {
    j["block"] = block;
    j["input_copies"] = input_copies;
    json slots = json::array();
    for (const auto& [ct, slot] : output_slots) slots.push_back({ct, slot});
    j["output_slots"] = std::move(slots);
  }
  return j;
}

ClientSpec ClientSpec::from_json(const json& j) {
  ClientSpec s;
  const auto field = [&](const char* name) -> const json& {
    if (!j.is_object() || !j.contains(name)) throw Error(std::string("client specification: missing '") + name + "'");
    return j.at(name);
  };
  const auto count = [&](const char* name, std::size_t max) {
    const json& v = field(name);
    // Parsed JSON holds positive numbers as unsigned, a json built in memory as signed: both count.
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::uint64_t>() > max) {
      throw Error(std::string("client specification: '") + name + "' must be an integer from 1 to " + std::to_string(max));
    }
    return static_cast<std::size_t>(v.get<std::uint64_t>());
  };
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
  if (s.layout == Layout::Batch &&
      (s.input_ciphertexts != static_cast<std::size_t>(s.input.size()) || s.output_ciphertexts != s.outputs)) {
    throw Error("client specification: batch layout needs one ciphertext per input value and per output");
  }
  if (s.layout == Layout::Packed) {
    s.block = count("block", std::size_t{1} << 16);
    if ((s.block & (s.block - 1)) != 0) throw Error("client specification: 'block' must be a power of two");
    if (s.batch_size * s.block > (std::size_t{1} << 16)) throw Error("client specification: 'batch_size' x 'block' exceeds 2^16 slots");
    s.input_copies = count("input_copies", 64);
    if (s.block % s.input_copies != 0) throw Error("client specification: 'input_copies' must divide 'block'");
    if (s.input_ciphertexts > 4096 || s.output_ciphertexts > 4096) {
      throw Error("client specification: at most 4096 ciphertexts per image group in the packed layout");
    }
    const json& slots = field("output_slots");
    if (!slots.is_array() || slots.size() != s.outputs) throw Error("client specification: 'output_slots' must list one [ciphertext, slot] per output");
    for (const json& e : slots) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer() || e[0].get<std::int64_t>() < 0 ||
          e[1].get<std::int64_t>() < 0 || e[0].get<std::uint64_t>() >= s.output_ciphertexts || e[1].get<std::uint64_t>() >= s.block) {
        throw Error("client specification: each 'output_slots' entry must be [ciphertext < output_ciphertexts, slot < block]");
      }
      s.output_slots.push_back({static_cast<std::uint32_t>(e[0].get<std::uint64_t>()), static_cast<std::uint32_t>(e[1].get<std::uint64_t>())});
    }
  }
  return s;
}

}  // namespace hecnn::he
