#pragma once
// What the client needs to know of a compiled model, and nothing more: no weights, no stages. The
// plan produces it (HePlan::client_spec), keygen stores it in keys.json, and the client encrypts
// and decrypts with it alone.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "nn/model.h"

namespace hecnn::he {

// How values are laid out in ciphertexts.
//  - Batch: one ciphertext per input value (pixel and channel, CHW order) and per output, one
//    image per slot: a query holds up to N/2 images.
//  - Packed: an image's values share the slots of a few ciphertexts (see he/packed/backend.h),
//    several images per ciphertext when they fit: image k owns slots [k block, (k + 1) block).
enum class Layout { Batch, Packed };
std::string to_string(Layout l);
// Throws hecnn::Error on an unknown name.
Layout parse_layout(const std::string& name);

struct ClientSpec {
  Layout layout = Layout::Batch;
  std::uint64_t params_id = 0;    // the CKKS parameters (stored beside, in params.bin)
  int scale_bits = 0;             // inputs are encoded at scale 2^scale_bits
  nn::Shape input;                // one image
  std::size_t outputs = 0;        // values per image in the result
  double output_factor = 1.0;     // decrypted outputs are multiplied by this
  std::size_t batch_size = 0;     // images per batch
  std::size_t input_ciphertexts = 0, output_ciphertexts = 0;  // per batch
  // Packed layout only: slots per image, and where each output is (ciphertext, slot in the block).
  std::size_t block = 0;
  std::size_t input_copies = 1;  // copies of the image in its block, block / input_copies slots apart
  std::vector<std::pair<std::uint32_t, std::uint32_t>> output_slots;
  // Bootstrapping plans: inputs are encrypted at this level (the bootstrap's output level, below
  // the chain's top); 0: the chain's top.
  std::size_t input_level = 0;

  double scale() const;
  nlohmann::json to_json() const;
  // Validates every field (shapes, counts and factors within bounds, consistent with the layout);
  // throws hecnn::Error naming the field.
  static ClientSpec from_json(const nlohmann::json& j);
  bool operator==(const ClientSpec&) const = default;
};

// Field `name` of a specification as a count from 1 to max; throws hecnn::Error naming it.
std::size_t spec_count(const nlohmann::json& j, const char* name, std::size_t max);
// Field `name` of a specification; throws hecnn::Error when it is missing.
const nlohmann::json& spec_field(const nlohmann::json& j, const char* name);

}  // namespace hecnn::he
