#pragma once
// The batch back end: one ciphertext per value (input pixel and channel, then every intermediate
// value, CHW order), one image per slot. A linear stage is a sparse matrix over ciphertexts
// (Evaluator::multiply_sparse), sum pooling adds ciphertexts, an activation evaluates its
// polynomial on each ciphertext. No rotations: the only evaluation key is the relinearization key.
#include <cstddef>

#include "ckks/evaluator.h"
#include "ckks/params.h"
#include "he/compile/parameters.h"
#include "he/compile/program.h"
#include "he/spec.h"

namespace hecnn::he::batch {

inline constexpr const char* kValueUnit = "ciphertexts";

std::size_t batch_size(const ckks::CkksParameters& params);
KeyRequirements key_requirements(const Program& program);
ClientSpec client_spec(const Program& program, const ckks::CkksParameters& params, int scale_bits);
// A linear stage as a sparse matrix over its input ciphertexts (rows: output ciphertexts).
ckks::SparseMatrix lower_linear(const Stage& stage);

}  // namespace hecnn::he::batch
