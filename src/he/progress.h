#pragma once
// Progress of a long encrypted run, reported by the back ends' engines.
#include <cstddef>
#include <functional>
#include <string>

namespace hecnn::he {

struct Progress {
  std::size_t stage = 0, stages = 0;
  std::string name;
  std::size_t done = 0, total = 0;  // units done / total in this stage
  double elapsed_s = 0;             // since the start of the run
  double stage_elapsed_s = 0;       // since the start of this stage
  // Streamed batch runs: stages interleave tile by tile. `done`/`total` are the stage's tiles, and
  // `fraction` the estimated share of the whole run's work done (negative: not given).
  double fraction = -1;
  std::size_t images = 0;  // images in the query, when known (0: not given)
};
using ProgressFn = std::function<void(const Progress&)>;

}  // namespace hecnn::he
