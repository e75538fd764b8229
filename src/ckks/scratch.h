#pragma once
// Internal: per-thread scratch buffers for the hot paths, grown on demand and kept for reuse, so
// steady-state evaluation allocates nothing beyond its results. A buffer is valid until the same
// thread asks for the same slot again; pass pointers (not the slot) into OpenMP regions, whose
// worker threads have their own buffers.
#include <cstddef>

#include "ckks/modarith.h"

namespace hecnn::ckks::detail {

enum class Scratch {
  digits,    // key switching: the decomposed, extended digits
  coeff,     // key switching, rescale: coefficient-form limbs
  acc,       // key switching: the two inner-product accumulators over Q*P
  task,      // one limb's worth, used inside a single OpenMP task
  encrypt,   // encryption: u, e0, e1 over Q*P
  decode,    // decoding: coefficient form
  count
};

// 64-byte aligned, uninitialized words; the contents of earlier calls for the slot are not kept when
// it grows.
u64* scratch(Scratch slot, std::size_t words);

}  // namespace hecnn::ckks::detail
