#pragma once
// Choosing CKKS parameters for a compiled computation: the cheapest secure ones for its depth and
// the keys it needs.
#include <cstddef>
#include <optional>
#include <vector>

#include "ckks/params.h"

namespace hecnn::he {

// Bounds of the options, checked before any arithmetic or prime search: ring degree 2^10 to 2^16;
// scale 2^20 to 2^58; at most 63 levels in all (the model's and the extra ones), since the chain
// holds at most 64 primes.
constexpr int kMinLogN = 10, kMaxLogN = 16;
constexpr int kMinScaleBits = 20, kMaxScaleBits = 58;
constexpr int kMaxLevels = 63;

struct CompileOptions {
  int log_n = 0;           // 0: the smallest secure ring degree; else kMinLogN..kMaxLogN
  int scale_bits = 0;      // 0: the largest scale (up to 40 bits) the security bound allows; else kMinScaleBits..kMaxScaleBits
  int extra_levels = 0;    // levels beyond those the computation needs: 0..kMaxLevels
  bool allow_insecure = false;  // tests only: parameters above the 128-bit bound
  // Packed layout: the images a query is planned for; the layout (block, input copies) minimizes
  // their total time (1: one image's latency; more: fewer copies, more images per ciphertext).
  std::size_t packed_images = 1;
  // Bootstrapping (packed layout): Auto uses it when no parameters hold the whole depth; On always;
  // Off never. With it the parameters are the bootstrapping chain (preset boot-n65536, at the ring
  // degree of log_n when given) and a placement pass inserts the bootstraps.
  enum class Bootstrap { Auto, Off, On } bootstrap = Bootstrap::Auto;
};
// "auto", "off", "on"; throws hecnn::Error otherwise.
CompileOptions::Bootstrap parse_bootstrap_mode(const std::string& name);

// Throws hecnn::Error naming the option (as on the command line) when one is out of its bounds.
void check_compile_options(const CompileOptions& options);

// Chooses ring degree, chain and special primes for `depth` levels (see CompileOptions); never
// above the 128-bit bound unless allow_insecure. Throws hecnn::Error when the options are out of
// bounds, when depth plus the extra levels exceeds kMaxLevels, or when nothing fits.
ckks::CkksParameters choose_parameters(int depth, const CompileOptions& options, int* scale_bits_out);

// Bytes of a relinearization key in its seeded (stored) form and expanded in memory; a Galois
// (rotation) key has the same size.
std::size_t relin_key_bytes(const ckks::CkksParameters& p, bool seeded);

// The evaluation keys a compiled computation needs.
struct KeyRequirements {
  bool relinearization = true;
  std::vector<int> rotations;  // rotation steps (left; negative: right)
  // The highest level each rotation is used at (parallel to rotations; empty: the top level). Keys
  // are kept only up to it (ckks::restrict_to_level): smaller, same results.
  std::vector<std::size_t> rotation_levels;
  // Bootstrapping: the conjugation key (kept up to conjugation_level) and the encapsulation keys for
  // an ephemeral secret of Hamming weight ephemeral_weight (0: no bootstrapping).
  bool conjugation = false;
  std::size_t conjugation_level = 0;
  std::size_t ephemeral_weight = 0;
};
// Bytes of a rotation key kept up to `level`, in memory (seeded: as stored).
std::size_t rotation_key_bytes(const ckks::CkksParameters& p, std::size_t level, bool seeded);

}  // namespace hecnn::he
