#pragma once
// Predicted inference time of a plan on this machine: the plan's operation counts (rotations,
// plaintext products, sparse-matrix terms, polynomial evaluations, per stage and level) times unit
// costs measured here, once, on a few ciphertexts of the plan's parameters (about a tenth of a
// second at N = 16384). A prediction, not a measurement: within a factor of 2 to 3 on the models
// measured (docs/BENCHMARKS.md).
#include <cstddef>
#include <string>
#include <vector>

#include "he/plan.h"

namespace hecnn::he {

struct UnitCosts {  // seconds at the top level, one thread
  double key_switch = 0;       // a rotation (relinearization costs about the same)
  double hoisted = 0;          // one more rotation of a hoisted set
  double plain_product = 0;    // a diagonal's multiply-accumulate (packed)
  double encode = 0;           // encoding one plaintext (packed diagonals encoded at every run)
  double sparse_term = 0;      // one weight x ciphertext term of a sparse matrix (batch)
  double rescale = 0;
  double multiply = 0;         // ciphertext x ciphertext, without relinearization
};
UnitCosts measure_unit_costs(const ckks::CkksParameters& params);

// Cost ratios at a level l relative to the top level: per-limb work r(l), and key switching rks(l)
// (digits x (limbs + special primes)).
struct CostModel {
  UnitCosts unit;
  double top_limbs = 1, special = 0, digits = 1, alpha = 1;
  CostModel(const UnitCosts& u, const ckks::CkksParameters& p);
  double r(std::size_t level) const { return static_cast<double>(level + 1) / top_limbs; }
  double rks(std::size_t level) const;
  // A polynomial evaluation on one ciphertext at `level`.
  double activation(const ActivationOp& a, std::size_t level) const;
};

struct TimeEstimate {
  double seconds = 0;                  // one query (a batch, or a packed ciphertext group)
  std::vector<double> stage_seconds;
  std::size_t images = 0;              // images per query
  std::string describe() const;        // "~1.2 s per batch of 8192 images (~6800 images/s)"
};
// `preencoded` (packed): per stage, whether its diagonals are encoded once (MemoryEstimate).
TimeEstimate estimate_time(const HePlan& plan, const UnitCosts& unit, int threads, const std::vector<bool>& preencoded = {});

// Bytes of a query (the client's encrypted images, seeded) and of a result.
std::size_t query_bytes(const HePlan& plan);
std::size_t result_bytes(const HePlan& plan);

}  // namespace hecnn::he
