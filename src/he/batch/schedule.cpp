#include "he/batch/schedule.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/error.h"
#include "he/batch/backend.h"

namespace hecnn::he::batch {

namespace {

struct TileGrid {
  nn::Shape shape;
  int th = 1, tw = 1, ny = 1, nx = 1;
  std::size_t count() const { return static_cast<std::size_t>(ny) * nx; }
  std::uint32_t tile_of(std::size_t value) const {
    const std::size_t plane = static_cast<std::size_t>(shape.h) * shape.w;
    const auto y = static_cast<int>(value % plane / static_cast<std::size_t>(shape.w));
    const auto x = static_cast<int>(value % static_cast<std::size_t>(shape.w));
    return static_cast<std::uint32_t>((y / th) * nx + x / tw);
  }
  std::vector<std::uint32_t> values_of(std::size_t tile) const {
    const int ty = static_cast<int>(tile / static_cast<std::size_t>(nx)), tx = static_cast<int>(tile % static_cast<std::size_t>(nx));
    std::vector<std::uint32_t> v;
    for (int c = 0; c < shape.c; ++c)
      for (int y = ty * th; y < std::min(shape.h, (ty + 1) * th); ++y)
        for (int x = tx * tw; x < std::min(shape.w, (tx + 1) * tw); ++x)
          v.push_back(static_cast<std::uint32_t>((static_cast<std::size_t>(c) * shape.h + y) * shape.w + x));
    return v;
  }
};

TileGrid make_grid(const nn::Shape& shape, int tile, int mul_h, int mul_w, int threads) {
  TileGrid g;
  g.shape = shape;
  if (tile == kAutoTile) {
    const std::int64_t want = static_cast<std::int64_t>(kAutoValuesPerThread) * std::max(1, threads);
    tile = 1;
    while (tile < std::max(shape.h, shape.w) &&
           static_cast<std::int64_t>(shape.c) * std::min(shape.h, tile * mul_h) * std::min(shape.w, tile * mul_w) < want) {
      ++tile;
    }
  }
  if (shape.h == 1 && shape.w == 1) {
    g.th = shape.h;
    g.tw = shape.w;
  } else {
    g.th = std::min(shape.h, tile * mul_h);
    g.tw = std::min(shape.w, tile * mul_w);
  }
  g.ny = (shape.h + g.th - 1) / g.th;
  g.nx = (shape.w + g.tw - 1) / g.tw;
  return g;
}

}  // namespace

std::vector<ckks::SparseMatrix> lower_linear_stages(const Program& program) {
  std::vector<ckks::SparseMatrix> m(program.stages.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (program.stages[i].kind() == StageKind::Linear) m[i] = lower_linear(program.stages[i]);
  }
  return m;
}

Schedule make_schedule(const Program& prog, const std::vector<ckks::SparseMatrix>& matrices, int tile, int threads) {
  if (tile < 0 || tile > kMaxTile) {
    throw Error("batch schedule: a tile side is 1 to " + std::to_string(kMaxTile) + " positions, or 0 for the automatic choice; got " +
                std::to_string(tile));
  }
  if (matrices.size() != prog.stages.size()) throw Error("batch schedule: one matrix slot per stage expected");
  const std::size_t S = prog.stages.size() + 1;
  for (std::size_t k = 0; k < S; ++k) {
    const nn::Shape& sh = k == 0 ? prog.input : prog.stages[k - 1].out;
    if (sh.size() <= 0 || sh.size() > std::numeric_limits<std::uint32_t>::max()) {
      throw Error("batch schedule: stage values out of range");
    }
  }
  Schedule sched;
  sched.tile = tile;
  // Tile grids: a stage that feeds a non-overlapping sum pooling (directly or through activations,
  // as its only reader) gets tiles as many times larger as the pooling's stride.
  const auto consumers = prog.consumers();
  std::vector<TileGrid> grid(S);
  for (std::size_t k = 0; k < S; ++k) {
    int mh = 1, mw = 1;
    if (k > 0) {
      std::size_t j = k - 1;  // the program stage of this schedule stage, then its only reader
      bool chain = true;
      do {
        chain = consumers[j].size() == 1;
        if (chain) j = consumers[j][0];
      } while (chain && prog.stages[j].kind() == StageKind::Activation);
      if (chain && prog.stages[j].kind() == StageKind::SumPool) {
        const SumPoolOp& p = prog.stages[j].pool();
        if (!p.global && p.pool_h == p.stride_h && p.pool_w == p.stride_w) {
          mh = p.stride_h;
          mw = p.stride_w;
        }
      }
    }
    grid[k] = make_grid(k == 0 ? prog.input : prog.stages[k - 1].out, tile, mh, mw, threads);
    sched.values.push_back(static_cast<std::size_t>(grid[k].shape.size()));
    sched.tiles.push_back(grid[k].count());
  }
  // The schedule stages each stage reads, and per tile the last tile of each it reads (tiles are
  // made in raster order).
  std::vector<std::vector<std::size_t>> sources(S);
  for (std::size_t k = 1; k < S; ++k) {
    for (int in : prog.stages[k - 1].inputs) sources[k].push_back(schedule_stage(in));
  }
  std::vector<std::vector<std::vector<std::int64_t>>> last_dep(S);  // [stage][tile][source]
  std::vector<std::vector<std::vector<std::uint32_t>>> tile_values(S);
  for (std::size_t k = 0; k < S; ++k) {
    tile_values[k].resize(grid[k].count());
    last_dep[k].assign(grid[k].count(), std::vector<std::int64_t>(sources[k].size(), -1));
    for (std::size_t t = 0; t < grid[k].count(); ++t) {
      tile_values[k][t] = grid[k].values_of(t);
      if (k == 0) continue;
      auto& last = last_dep[k][t];
      for (std::uint32_t v : tile_values[k][t]) {
        for_each_dependency(prog, matrices, k - 1, v, [&](std::size_t from, std::size_t i) {
          for (std::size_t j = 0; j < sources[k].size(); ++j) {
            if (sources[k][j] == from) last[j] = std::max<std::int64_t>(last[j], grid[from].tile_of(i));
          }
        });
      }
    }
  }
  // Greedy order: the deepest stage whose next tile can be made makes it; when none can, the next
  // input tile is pulled.
  std::vector<std::size_t> next(S, 0);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> order;
  const auto ready = [&](std::size_t k) {
    if (next[k] >= grid[k].count()) return false;
    for (std::size_t j = 0; j < sources[k].size(); ++j) {
      if (last_dep[k][next[k]][j] >= static_cast<std::int64_t>(next[sources[k][j]])) return false;
    }
    return true;
  };
  while (next[S - 1] < grid[S - 1].count()) {
    bool made = false;
    for (std::size_t k = S - 1; k >= 1; --k) {
      if (ready(k)) {
        order.emplace_back(static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(next[k]++));
        made = true;
        break;
      }
    }
    if (made) continue;
    if (next[0] >= grid[0].count()) throw Error("batch schedule: no tile can be made (internal error)");
    order.emplace_back(0u, static_cast<std::uint32_t>(next[0]++));
  }
  // Last reader of every value: the step after which it is released.
  constexpr std::int64_t kUnread = -1;
  std::vector<std::vector<std::int64_t>> last_use(S);
  std::vector<std::vector<std::int64_t>> made_at(S);
  for (std::size_t k = 0; k < S; ++k) {
    last_use[k].assign(sched.values[k], kUnread);
    made_at[k].assign(sched.values[k], kUnread);
  }
  for (std::size_t n = 0; n < order.size(); ++n) {
    const std::uint32_t k = order[n].first, t = order[n].second;  // no structured binding: lambdas capture k
    for (std::uint32_t v : tile_values[k][t]) {
      made_at[k][v] = static_cast<std::int64_t>(n);
      if (k > 0) {
        for_each_dependency(prog, matrices, k - 1, v, [&](std::size_t from, std::size_t i) { last_use[from][i] = static_cast<std::int64_t>(n); });
      }
    }
  }
  sched.steps.resize(order.size());
  for (std::size_t n = 0; n < order.size(); ++n) {
    sched.steps[n].stage = order[n].first;
    sched.steps[n].tile = order[n].second;
    sched.steps[n].values = std::move(tile_values[order[n].first][order[n].second]);
  }
  // Released after the last reader; a value nobody reads right after it is made (a tile nobody
  // reads is never made: an input no weight reads). The last stage's values are the result.
  for (std::size_t k = 0; k + 1 < S; ++k) {
    for (std::size_t v = 0; v < sched.values[k]; ++v) {
      if (made_at[k][v] == kUnread) continue;
      const std::int64_t n = last_use[k][v] == kUnread ? made_at[k][v] : last_use[k][v];
      sched.steps[static_cast<std::size_t>(n)].release.push_back({static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v)});
    }
  }
  // Every value is made once, before any step reads or releases it, and released once.
  {
    std::vector<std::vector<std::uint8_t>> state(S);  // 0: not made, 1: alive, 2: released
    for (std::size_t k = 0; k < S; ++k) state[k].assign(sched.values[k], 0);
    for (const auto& st : sched.steps) {
      for (std::uint32_t v : st.values) {
        if (st.stage > 0) {
          for_each_dependency(prog, matrices, st.stage - 1, v, [&](std::size_t from, std::size_t i) {
            if (state[from][i] != 1) throw Error("batch schedule: a value is read while not alive (internal error)");
          });
        }
        if (state[st.stage][v] != 0) throw Error("batch schedule: a value is made twice (internal error)");
        state[st.stage][v] = 1;
      }
      for (const auto& r : st.release) {
        if (state[r.stage][r.index] != 1) {
          throw Error("batch schedule: stage " + std::to_string(r.stage) + " value " + std::to_string(r.index) +
                      " is released while not alive (internal error)");
        }
        state[r.stage][r.index] = 2;
      }
    }
  }
  // Work estimates, in units of one limb's multiply-accumulate over the ring.
  std::vector<double> limbs(S, 1.0);
  limbs[0] = prog.depth + 1;
  for (std::size_t s = 0; s < prog.stages.size(); ++s) {
    limbs[s + 1] = prog.depth - prog.stages[s].depth_in + 1;  // the stage's input level: most of its work is there
  }
  for (auto& st : sched.steps) {
    if (st.values.empty()) continue;
    const double n = static_cast<double>(st.values.size()), L = limbs[st.stage];
    if (st.stage == 0) {
      st.work = n * 30 * L;
      continue;
    }
    const Stage& ps = prog.stages[st.stage - 1];
    switch (ps.kind()) {
      case StageKind::Linear: {
        double terms = 0;
        for (std::uint32_t v : st.values) terms += matrices[st.stage - 1].row_start[v + 1] - matrices[st.stage - 1].row_start[v];
        st.work = 2 * terms * L + n * 20 * L;
        break;
      }
      case StageKind::SumPool: st.work = n * ps.pool().window() * L * 0.2; break;
      case StageKind::Activation: st.work = n * 150 * L; break;
      case StageKind::Add: st.work = n * static_cast<double>(ps.inputs.size()) * L * 0.2; break;
      case StageKind::Bootstrap: throw Error("batch layout: bootstrapping runs in the packed layout only");
    }
    sched.work += st.work;
  }
  for (const auto& st : sched.steps) {
    if (st.stage == 0) sched.work += st.work;
  }
  return sched;
}

}  // namespace hecnn::he::batch
