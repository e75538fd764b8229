#pragma once
// Internal to the evaluator (evaluator.cpp, evaluator_keyswitch.cpp); not installed.
#include "ckks/ciphertext.h"

namespace hecnn::ckks::detail {

// A per-thread spare ciphertext: out-of-place results are built in it and swapped into the operand,
// whose old storage becomes the next spare. In steady state nothing is allocated.
Ciphertext& spare();

}  // namespace hecnn::ckks::detail
