#pragma once
// The streamed schedule of a batch run. Every stage's outputs are computed in tiles: a block of
// positions of the stage's output plane, with all its channels (a flat vector is one tile). A tile
// is computed as soon as the tiles of the previous stage it reads are there, the deepest stage
// first, and every value is released after the last tile that reads it. The previous stages thus
// keep only the rows a later stage still needs: the line buffers of an image-processing pipeline
// (Halide's compute-at with storage folding). A convolution followed by an activation and a 2x2
// sum pooling runs with tiles of 2x2 positions, so that the pooling consumes each activated tile
// at once.
//
// The schedule is static (it depends on the program and the tile size, not on the data): the
// engine runs it, and the memory plan replays it to predict the peak before anything is encrypted.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckks/evaluator.h"
#include "he/compile/program.h"

namespace hecnn::he::batch {

// Stage indices in a schedule: 0 is the query (values pulled from the input), s + 1 is program
// stage s. A stage's tile is made once the tiles it reads of every stage it reads are there (the
// program is a DAG: an Add reads two stages).
struct ScheduleStep {
  std::uint32_t stage = 0;  // 0: pull inputs; s + 1: compute program stage s
  std::uint32_t tile = 0;   // the tile's index within its stage, in raster order
  std::vector<std::uint32_t> values;  // the stage's value indices (CHW) this step makes
  // Values released after this step: those it reads last, and those it makes that nobody reads.
  struct ValueRef {
    std::uint32_t stage, index;
  };
  std::vector<ValueRef> release;
  double work = 0;  // relative cost, for the progress line's estimate of the time left
};

struct Schedule {
  int tile = 0;  // as asked: kAutoTile or a side (the stage before a pooling gets side x stride)
  std::vector<ScheduleStep> steps;
  std::vector<std::size_t> values;  // per schedule stage: the number of values
  std::vector<std::size_t> tiles;   // per schedule stage: the number of tiles
  double work = 0;                  // the sum of the steps' work
};

// Tile sides: kAutoTile (the default) gives each stage the smallest square tile with at least
// kAutoValuesPerThread ciphertexts per thread (so that a step keeps every thread busy and the
// line buffers stay short); 1 to kMaxTile a fixed side; kMaxTile means whole planes (every stage
// in one step: the unstreamed order).
inline constexpr int kAutoTile = 0;
inline constexpr int kDefaultTile = kAutoTile;
inline constexpr int kMaxTile = 4096;
inline constexpr int kAutoValuesPerThread = 16;

// The schedule of `program` with tiles of `tile` x `tile` positions for `threads` threads;
// `matrices` are the linear stages' sparse matrices (lower_linear_stages). Throws hecnn::Error on a
// tile size out of range.
Schedule make_schedule(const Program& program, const std::vector<ckks::SparseMatrix>& matrices, int tile, int threads);

// Per stage, the sparse matrix of each linear stage (empty for the others).
std::vector<ckks::SparseMatrix> lower_linear_stages(const Program& program);

// The schedule stage of a program stage's source (kProgramInput: 0, the query).
inline std::size_t schedule_stage(int source) { return static_cast<std::size_t>(source + 1); }

// Calls f(schedule stage, value) for every value that value o of program stage s reads.
template <typename F>
void for_each_dependency(const Program& prog, const std::vector<ckks::SparseMatrix>& matrices, std::size_t s,
                         std::size_t o, F&& f) {
  const Stage& st = prog.stages[s];
  const std::size_t from = schedule_stage(st.inputs[0]);
  switch (st.kind()) {
    case StageKind::Linear: {
      const ckks::SparseMatrix& m = matrices[s];
      for (std::uint32_t t = m.row_start[o]; t < m.row_start[o + 1]; ++t) f(from, static_cast<std::size_t>(m.col[t]));
      break;
    }
    case StageKind::SumPool: st.pool().for_each_input(st.in, st.out, o, [&](std::size_t i) { f(from, i); }); break;
    case StageKind::Activation:
    case StageKind::Bootstrap: f(from, o); break;
    case StageKind::Add:
      for (int in : st.inputs) f(schedule_stage(in), o);
      break;
  }
}

}  // namespace hecnn::he::batch
