#pragma once
// Thread count for the OpenMP loops over RNS limbs and independent ciphertexts.
namespace hecnn {
// The most threads set_num_threads accepts: 4 per core, at least 64 and at most 1024 (each thread
// holds its own scratch buffers, and OpenMP cannot start an unbounded number of threads).
int max_threads();
// n == 0 restores the default (all cores, or OMP_NUM_THREADS); throws hecnn::Error unless
// 0 <= n <= max_threads().
void set_num_threads(int n);
int num_threads();
// Checks OMP_NUM_THREADS (when set) as --threads is checked: a whole number from 1 to
// max_threads(), or a comma-separated list of them (OpenMP's nesting levels). Throws hecnn::Error
// naming the variable otherwise, before OpenMP starts a parallel region with that many threads
// (libgomp would try to start any count it can parse, and silently ignores what it cannot).
// Programs call it first thing; a library user may.
void check_thread_environment();
}  // namespace hecnn
