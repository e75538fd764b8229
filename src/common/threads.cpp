#include "common/threads.h"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace hecnn {
namespace {
// All cores, or OMP_NUM_THREADS, bounded (check_thread_environment refuses a value beyond).
const int kDefaultThreads = std::min(omp_get_max_threads(), max_threads());
}  // namespace
int max_threads() { return std::clamp(4 * omp_get_num_procs(), 64, 1024); }
void set_num_threads(int n) {
  if (n < 0 || n > max_threads()) {
    throw Error("the thread count must be from 0 (all cores) to " + std::to_string(max_threads()) + "; got " +
                std::to_string(n));
  }
  omp_set_num_threads(n > 0 ? n : kDefaultThreads);
}
int num_threads() { return omp_get_max_threads(); }

void check_thread_environment() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env == nullptr) return;
  const std::string value(env);
  const auto bad = [&] {
    std::string shown = value.size() > 40 ? value.substr(0, 40) + "..." : value;
    return Error("OMP_NUM_THREADS='" + shown + "' is not a thread count: expected a whole number from 1 to " +
                 std::to_string(max_threads()) + " (or unset it for all cores)");
  };
  if (value.empty() || value.size() > 256) throw bad();
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = std::min(value.find(',', start), value.size());
    std::size_t b = start, e = comma;
    while (b < e && (value[b] == ' ' || value[b] == '\t')) ++b;  // libgomp skips blanks
    while (e > b && (value[e - 1] == ' ' || value[e - 1] == '\t')) --e;
    long long n = 0;
    const auto [end, ec] = std::from_chars(value.data() + b, value.data() + e, n);
    if (b == e || ec != std::errc() || end != value.data() + e || n < 1 || n > max_threads()) throw bad();
    if (comma == value.size()) break;
    start = comma + 1;
  }
}
}  // namespace hecnn
