#include "common/threads.h"

#include <omp.h>

#include <algorithm>
#include <string>

#include "common/error.h"

namespace hecnn {
namespace {
const int kDefaultThreads = omp_get_max_threads();
}
int max_threads() { return std::clamp(4 * omp_get_num_procs(), 64, 1024); }
void set_num_threads(int n) {
  if (n < 0 || n > max_threads()) {
    throw Error("the thread count must be from 0 (all cores) to " + std::to_string(max_threads()) + "; got " +
                std::to_string(n));
  }
  omp_set_num_threads(n > 0 ? n : kDefaultThreads);
}
int num_threads() { return omp_get_max_threads(); }
}  // namespace hecnn
