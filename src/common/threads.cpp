#include "common/threads.h"

#include <omp.h>

namespace hecnn {
namespace {
const int kDefaultThreads = omp_get_max_threads();
}
void set_num_threads(int n) { omp_set_num_threads(n > 0 ? n : kDefaultThreads); }
int num_threads() { return omp_get_max_threads(); }
}  // namespace hecnn
