#pragma once
// Internal: per-thread scratch buffers for the hot paths, grown on demand and kept for reuse, so
// steady-state evaluation allocates nothing beyond its results. A buffer is valid until the same
// thread asks for the same slot again; pass pointers (not the slot) into OpenMP regions, whose
// worker threads have their own buffers.
#include <omp.h>

#include <cstddef>

#include "ring/modarith.h"

namespace hecnn::ring {

enum class Scratch {
  digits,    // key switching: the decomposed, extended digits
  coeff,     // key switching, rescale: coefficient-form limbs
  acc,       // key switching: the two inner-product accumulators over Q*P
  task,      // per-task buffers of an OpenMP region (see TeamScratch)
  encrypt,   // encryption: u, e0, e1 over Q*P
  decode,    // decoding: coefficient form
  count
};

// 64-byte aligned, uninitialized words; the contents of earlier calls for the slot are not kept when
// it grows.
u64* scratch(Scratch slot, std::size_t words);

// Per-task buffers for the OpenMP region about to start: `words` for each thread of its team, taken
// by the calling thread before the region, so that nothing allocates (or throws) inside it.
class TeamScratch {
 public:
  explicit TeamScratch(std::size_t words)
      : words_(words), base_(scratch(Scratch::task, words * static_cast<std::size_t>(omp_get_max_threads()))) {}
  // The calling thread's buffer, inside the region.
  u64* mine() const { return base_ + static_cast<std::size_t>(omp_get_thread_num()) * words_; }

 private:
  std::size_t words_;
  u64* base_;
};

}  // namespace hecnn::ring
