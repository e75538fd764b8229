#pragma once
// Thread count for the OpenMP loops over RNS limbs and independent ciphertexts.
namespace hecnn {
// n <= 0 restores the default (all cores, or OMP_NUM_THREADS).
void set_num_threads(int n);
int num_threads();
}  // namespace hecnn
