#include "he/packed/backend.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "common/error.h"

namespace hecnn::he::packed {

namespace {

int normalize(std::int64_t step, std::size_t slots) {
  std::int64_t s = step % static_cast<std::int64_t>(slots);
  if (s < 0) s += static_cast<std::int64_t>(slots);
  return static_cast<int>(s);
}

std::int64_t floor_mod(std::int64_t a, std::int64_t m) {
  const std::int64_t r = a % m;
  return r < 0 ? r + m : r;
}

std::size_t next_pow2(std::size_t v) {
  std::size_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

std::int64_t grid_span(const nn::Shape& s, std::int64_t rp, std::int64_t cp) {
  return static_cast<std::int64_t>(s.h - 1) * rp + static_cast<std::int64_t>(s.w - 1) * cp + 1;
}

// Channels of `shape` on a grid with the given pitches, each at the first base (over the
// ciphertexts in order) where none of its slots is taken. The block is cut into `regions` regions of
// region_size slots; channel c goes to region c mod regions (partitioned), or with regions == 1 to
// the first region_size slots.
Placement place_grid(const nn::Shape& shape, std::int64_t rp, std::int64_t cp, std::size_t block, std::size_t region_size,
                     std::size_t regions, const std::string& what) {
  const std::int64_t span = grid_span(shape, rp, cp);
  if (span > static_cast<std::int64_t>(region_size)) {
    throw Error("packed layout: " + what + " needs " + std::to_string(span) + " slots per channel, more than the " +
                std::to_string(region_size) + " available");
  }
  Placement p;
  p.shape = shape;
  p.row_pitch = rp;
  p.col_pitch = cp;
  std::vector<std::int64_t> offs;
  offs.reserve(static_cast<std::size_t>(shape.h) * shape.w);
  for (int y = 0; y < shape.h; ++y)
    for (int x = 0; x < shape.w; ++x) offs.push_back(y * rp + x * cp);
  std::vector<std::vector<std::uint8_t>> taken;
  std::vector<std::vector<std::int64_t>> next;  // per ciphertext and region: bases below it are known not to fit
  for (int c = 0; c < shape.c; ++c) {
    const std::size_t r = static_cast<std::size_t>(c) % regions;
    const std::int64_t lo = static_cast<std::int64_t>(r * region_size);
    const std::int64_t last_base = lo + static_cast<std::int64_t>(region_size) - span;
    bool placed = false;
    for (std::size_t ct = 0; !placed; ++ct) {
      if (ct == taken.size()) {
        if (ct >= 4096) throw Error("packed layout: " + what + " needs more than 4096 ciphertexts");
        taken.emplace_back(block, 0);
        next.emplace_back(regions, 0);
        for (std::size_t k = 0; k < regions; ++k) next.back()[k] = static_cast<std::int64_t>(k * region_size);
      }
      auto& occ = taken[ct];
      for (std::int64_t b = next[ct][r]; b <= last_base; ++b) {
        bool fits = true;
        for (std::int64_t o : offs) {
          if (occ[static_cast<std::size_t>(b + o)]) {
            fits = false;
            break;
          }
        }
        if (!fits) {
          if (b == next[ct][r]) ++next[ct][r];
          continue;
        }
        for (std::int64_t o : offs) occ[static_cast<std::size_t>(b + o)] = 1;
        p.base.push_back(static_cast<std::uint32_t>(b));
        p.ct_of.push_back(static_cast<std::uint32_t>(ct));
        placed = true;
        break;
      }
    }
  }
  p.cts = taken.size();
  p.at.resize(static_cast<std::size_t>(shape.size()));
  std::size_t v = 0;
  for (int c = 0; c < shape.c; ++c)
    for (std::int64_t o : offs) p.at[v++] = Slot{p.ct_of[static_cast<std::size_t>(c)], static_cast<std::uint32_t>(p.base[static_cast<std::size_t>(c)] + o)};
  return p;
}

// Outputs of a dense map at consecutive slots.
Placement place_flat(const nn::Shape& shape, std::size_t block) {
  Placement p;
  p.shape = shape;
  const auto n = static_cast<std::size_t>(shape.size());
  p.cts = (n + block - 1) / block;
  p.at.resize(n);
  for (std::size_t v = 0; v < n; ++v) p.at[v] = Slot{static_cast<std::uint32_t>(v / block), static_cast<std::uint32_t>(v % block)};
  return p;
}

struct DiagKey {
  std::uint32_t in_ct, out_ct;
  std::int64_t d;
  bool operator<(const DiagKey& o) const {
    return std::tie(out_ct, in_ct, d) < std::tie(o.out_ct, o.in_ct, o.d);
  }
};

constexpr double kBabyCost = 0.6;  // a hoisted rotation, relative to a full one

// replicate: a convolution over a replicated input keeps its outputs replicated (a convolution
// follows); otherwise it partitions its output channels over the copies.
// target: where the outputs must go (the placement of the value an Add joins them to); null: the
// lowering chooses.
LinearPlan lower_linear(const Stage& s, const Placement& in, Placement& out, std::size_t block, std::size_t slots,
                        bool replicate, const Placement* target) {
  const LinearOp& op = s.linear();
  const std::size_t m = static_cast<std::size_t>(s.out.size());
  std::size_t fold_q = 0;
  const std::size_t region = in.copies > 1 ? in.copy_stride : block;
  if (target) {
    if (target->copies > 1 && target->copies != in.copies) {
      throw Error("packed layout: stage '" + s.name + "' cannot make the replicated placement its sum needs");
    }
    out = *target;
  } else if (op.conv) {
    if (in.base.empty()) throw Error("packed layout: stage '" + s.name + "': a convolution needs an image-shaped input");
    const bool partition = in.copies > 1 && !replicate;
    out = place_grid(s.out, in.row_pitch * op.geometry.stride_h, in.col_pitch * op.geometry.stride_w, block, region,
                     partition ? in.copies : 1, "stage '" + s.name + "'");
    if (in.copies > 1 && replicate) {
      out.copies = in.copies;
      out.copy_stride = in.copy_stride;
    }
  } else {
    out = place_flat(s.out, block);
    const std::size_t q = next_pow2(m);
    if (2 * q <= block) fold_q = q;
  }
  if (target) fold_q = 0;  // the outputs go where the target has them, not to a folded partial sum
  std::map<DiagKey, std::vector<std::pair<std::uint32_t, double>>> diags;
  op.for_each_term(s.in, s.out, [&](std::size_t o, std::size_t i, double w) {
    Slot si = in.at[i];
    const Slot so = out.at[o];
    // A partitioned output reads the copy of its input in its own region.
    if (op.conv && in.copies > 1 && out.copies == 1) si.slot += static_cast<std::uint32_t>(so.slot / region * region);
    std::int64_t p = so.slot;
    if (fold_q) {
      // The partial sum within Q below the input's slot (or at o itself for inputs below o).
      const auto q = static_cast<std::int64_t>(fold_q);
      if (static_cast<std::int64_t>(si.slot) >= p) p += (static_cast<std::int64_t>(si.slot) - p) / q * q;
    }
    diags[DiagKey{si.ct, so.ct, static_cast<std::int64_t>(si.slot) - p}].push_back({static_cast<std::uint32_t>(p), w});
  });

  // The baby-step size with the fewest (weighted) rotations.
  std::set<std::int64_t> sizes;
  for (std::int64_t b = 1; b <= 128; ++b) sizes.insert(b);
  for (std::int64_t b = 1; b <= 2 * static_cast<std::int64_t>(block); b *= 2) sizes.insert(b);
  for (std::int64_t pitch : {in.row_pitch, in.col_pitch}) {
    for (std::int64_t k = 1; pitch > 0 && k <= 64 && k * pitch <= 2 * static_cast<std::int64_t>(block); ++k) sizes.insert(k * pitch);
  }
  std::int64_t best = 1;
  double best_cost = -1;
  for (std::int64_t bs : sizes) {
    std::set<std::pair<std::uint32_t, std::int64_t>> baby, giant;
    for (const auto& [k, e] : diags) {
      const std::int64_t b = floor_mod(k.d, bs);
      if (b != 0) baby.insert({k.in_ct, b});
      if (k.d - b != 0) giant.insert({k.out_ct, k.d - b});
    }
    const double cost = kBabyCost * static_cast<double>(baby.size()) + static_cast<double>(giant.size());
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = bs;
    }
  }

  LinearPlan plan;
  plan.baby.resize(in.cts);
  std::map<std::pair<std::uint32_t, std::int64_t>, std::size_t> giant_index;
  for (auto& [k, e] : diags) {
    const std::int64_t b = floor_mod(k.d, best), g = k.d - b;
    auto [it, fresh] = giant_index.insert({{k.out_ct, g}, plan.giants.size()});
    if (fresh) plan.giants.push_back(GiantStep{k.out_ct, normalize(g, slots), {}});
    Diagonal diag;
    diag.in_ct = k.in_ct;
    diag.baby = normalize(b, slots);
    if (diag.baby != 0) plan.baby[k.in_ct].push_back(diag.baby);
    diag.entries = std::move(e);
    if (out.copies > 1) {  // the same products in every copy
      const std::size_t n = diag.entries.size();
      for (std::size_t r = 1; r < out.copies; ++r)
        for (std::size_t j = 0; j < n; ++j)
          diag.entries.push_back({static_cast<std::uint32_t>(diag.entries[j].first + r * out.copy_stride), diag.entries[j].second});
    }
    for (auto& [slot, w] : diag.entries) slot = static_cast<std::uint32_t>(floor_mod(static_cast<std::int64_t>(slot) + g, static_cast<std::int64_t>(block)));
    plan.giants[it->second].diagonals.push_back(std::move(diag));
  }
  for (auto& b : plan.baby) {
    std::sort(b.begin(), b.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
  }
  plan.bias.resize(out.cts);
  for (std::size_t o = 0; o < m; ++o) {
    const double b = op.bias_of(o, s.out);
    if (b == 0) continue;
    for (std::size_t r = 0; r < out.copies; ++r) {
      plan.bias[out.at[o].ct].push_back({static_cast<std::uint32_t>(out.at[o].slot + r * out.copy_stride), b});
    }
  }
  if (fold_q) {
    for (std::size_t step = fold_q; step < block; step *= 2) plan.fold.push_back(normalize(static_cast<std::int64_t>(step), slots));
  }
  return plan;
}

PoolPlan lower_pool(const Stage& s, const Placement& in, Placement& out, std::size_t slots) {
  const SumPoolOp& op = s.pool();
  if (in.base.empty()) throw Error("packed layout: stage '" + s.name + "': pooling needs an image-shaped input");
  PoolPlan plan;
  for (int kx = 0; kx < op.pool_w; ++kx) plan.col_steps.push_back(normalize(kx * in.col_pitch, slots));
  for (int ky = 0; ky < op.pool_h; ++ky) plan.row_steps.push_back(normalize(ky * in.row_pitch, slots));
  out = Placement{};
  out.shape = s.out;
  out.cts = in.cts;
  out.copies = in.copies;
  out.copy_stride = in.copy_stride;
  out.row_pitch = in.row_pitch * op.stride_h;
  out.col_pitch = in.col_pitch * op.stride_w;
  out.base = in.base;
  out.ct_of = in.ct_of;
  out.at.resize(static_cast<std::size_t>(s.out.size()));
  std::size_t v = 0;
  for (int c = 0; c < s.out.c; ++c)
    for (int y = 0; y < s.out.h; ++y)
      for (int x = 0; x < s.out.w; ++x)
        out.at[v++] = Slot{out.ct_of[static_cast<std::size_t>(c)],
                           static_cast<std::uint32_t>(out.base[static_cast<std::size_t>(c)] + y * out.row_pitch + x * out.col_pitch)};
  return plan;
}

// Whether every linear stage that stage i's values reach (through activations and poolings) is a
// convolution: its outputs may then stay replicated. An Add keeps them partitioned.
bool conv_follows(const Program& prog, const std::vector<std::vector<std::size_t>>& readers, std::size_t i) {
  if (readers[i].empty()) return false;
  for (std::size_t j : readers[i]) {
    const Stage& r = prog.stages[j];
    if (r.kind() == StageKind::Linear) {
      if (!r.linear().conv) return false;
    } else if (r.kind() == StageKind::Add || !conv_follows(prog, readers, j)) {
      return false;
    }
  }
  return true;
}

bool same_placement(const Placement& a, const Placement& b) {
  return a.cts == b.cts && a.at == b.at && a.copies == b.copies && a.copy_stride == b.copy_stride;
}

// Lowers with a fixed block and input copies; throws when something does not fit.
PackedProgram lower_with(const Program& prog, std::size_t slots, std::size_t block, std::size_t copies) {
  PackedProgram pp;
  pp.slots = slots;
  pp.block = block;
  const Placement input = input_placement(prog.input, block, copies);
  const auto readers = prog.consumers();
  const auto placement_of = [&](int source) -> const Placement& {
    return source == kProgramInput ? input : pp.stages[static_cast<std::size_t>(source)].out;
  };
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    const Stage& s = prog.stages[i];
    PackedStage ps;
    ps.in = placement_of(s.inputs[0]);
    switch (s.kind()) {
      case StageKind::Linear: {
        // A linear stage whose only reader is an Add puts its outputs where the Add's other input,
        // already placed, holds its values.
        const Placement* target = nullptr;
        if (readers[i].size() == 1 && prog.stages[readers[i][0]].kind() == StageKind::Add) {
          for (int other : prog.stages[readers[i][0]].inputs) {
            if (other < static_cast<int>(i)) target = &placement_of(other);
          }
        }
        ps.linear = lower_linear(s, ps.in, ps.out, block, slots, conv_follows(prog, readers, i), target);
        break;
      }
      case StageKind::SumPool: ps.pool = lower_pool(s, ps.in, ps.out, slots); break;
      case StageKind::Activation:
      case StageKind::Bootstrap: ps.out = ps.in; break;
      case StageKind::Add:
        for (int other : s.inputs) {
          if (!same_placement(placement_of(other), ps.in)) {
            throw Error("packed layout: stage '" + s.name + "' adds values placed differently (a linear layer before the "
                        "sum would align them)");
          }
        }
        ps.out = ps.in;
        break;
    }
    pp.stages.push_back(std::move(ps));
  }
  return pp;
}

// Estimated cost of one ciphertext group, in key switches at the top level: a key switch costs
// about the limbs it handles, a plaintext product (streamed from memory) about 0.3 of a rotation
// at the same level, a polynomial evaluation a few key switches.
double estimated_cost(const Program& prog, const PackedProgram& pp) {
  double cost = 0;
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    const double limbs = prog.depth - prog.stages[i].depth_in + 1;
    const PackedStage& ps = pp.stages[i];
    switch (prog.stages[i].kind()) {
      case StageKind::Linear:
        cost += limbs * (static_cast<double>(ps.linear.rotation_count()) + 0.3 * static_cast<double>(ps.linear.diagonal_count()));
        break;
      case StageKind::SumPool:
        cost += limbs * static_cast<double>(ps.in.cts) * static_cast<double>(ps.pool.col_steps.size() + ps.pool.row_steps.size());
        break;
      case StageKind::Activation: cost += limbs * static_cast<double>(ps.in.cts) * 3.0; break;
      case StageKind::Add: cost += limbs * static_cast<double>(ps.in.cts) * 0.1; break;
      // About 80 key switches at 20-odd limbs per ciphertext (two ciphertexts share one).
      case StageKind::Bootstrap: cost += 80.0 * 20.0 * static_cast<double>((ps.in.cts + 1) / 2); break;
    }
  }
  return cost;
}

}  // namespace

std::size_t LinearPlan::diagonal_count() const {
  std::size_t n = 0;
  for (const auto& g : giants) n += g.diagonals.size();
  return n;
}

std::size_t LinearPlan::rotation_count() const {
  std::size_t n = fold.size();
  for (const auto& b : baby) n += b.size();
  for (const auto& g : giants) n += g.step != 0;
  return n;
}

std::vector<int> PackedProgram::rotation_steps() const {
  std::set<int> steps;
  for (const auto& s : stages) {
    for (const auto& b : s.linear.baby) steps.insert(b.begin(), b.end());
    for (const auto& g : s.linear.giants) steps.insert(g.step);
    steps.insert(s.linear.fold.begin(), s.linear.fold.end());
    steps.insert(s.pool.col_steps.begin(), s.pool.col_steps.end());
    steps.insert(s.pool.row_steps.begin(), s.pool.row_steps.end());
  }
  steps.erase(0);
  return {steps.begin(), steps.end()};
}

Placement input_placement(const nn::Shape& in, std::size_t block, std::size_t copies) {
  if (in.c <= 0 || in.h <= 0 || in.w <= 0) throw Error("packed layout: empty input shape");
  if (copies == 0 || block % copies != 0) throw Error("packed layout: the copies must divide the block");
  Placement p = place_grid(in, in.w, 1, block, block / copies, 1, "the input image");
  if (copies > 1) {
    if (p.cts > 1) throw Error("packed layout: a replicated input must fit in one ciphertext");
    p.copies = copies;
    p.copy_stride = block / copies;
  }
  return p;
}

PackedProgram lower(const Program& prog, std::size_t slots, std::size_t fixed_block, std::size_t fixed_copies,
                    std::size_t images) {
  images = std::max<std::size_t>(1, std::min(images, slots));
  if (slots == 0 || (slots & (slots - 1)) != 0) throw Error("packed layout: the slot count must be a power of two");
  const std::size_t plane = next_pow2(static_cast<std::size_t>(prog.input.h) * static_cast<std::size_t>(prog.input.w));
  if (plane > slots) {
    throw Error("packed layout: an image plane of " + std::to_string(prog.input.h) + "x" + std::to_string(prog.input.w) +
                " does not fit in the " + std::to_string(slots) + " slots of a ciphertext");
  }
  // Copies only help a convolution over the input.
  bool first_conv = false;
  for (const Stage& s : prog.stages) {
    if (s.kind() == StageKind::Linear) {
      first_conv = s.linear().conv;
      break;
    }
  }
  std::optional<PackedProgram> best;
  double best_cost = 0;
  std::string last_error;
  for (std::size_t block = plane; block <= slots; block *= 2) {
    if (fixed_block && block != fixed_block) continue;
    for (std::size_t copies = 1; copies <= (first_conv ? 16u : 1u) && block / copies >= plane; copies *= 2) {
      if (fixed_copies && copies != fixed_copies) continue;
      try {
        PackedProgram pp = lower_with(prog, slots, block, copies);
        // Prefer the cheaper group; at equal cost, more images per ciphertext.
        const double groups = static_cast<double>((images + pp.images_per_ciphertext() - 1) / pp.images_per_ciphertext());
        const double cost = estimated_cost(prog, pp) * groups;
        if (!best || cost < best_cost * 0.98) {
          best = std::move(pp);
          best_cost = cost;
        }
      } catch (const Error& e) {
        last_error = e.what();
      }
    }
  }
  if (!best) throw Error(last_error.empty() ? "packed layout: the model does not fit" : last_error);
  return std::move(*best);
}

KeyRequirements key_requirements(const Program& prog, const PackedProgram& pp, std::size_t top_level) {
  std::map<int, std::size_t> level_of;
  const auto use = [&](int step, std::size_t level) {
    if (step == 0) return;
    auto [it, fresh] = level_of.insert({step, level});
    if (!fresh) it->second = std::max(it->second, level);
  };
  for (std::size_t i = 0; i < pp.stages.size() && i < prog.stages.size(); ++i) {
    const PackedStage& s = pp.stages[i];
    const std::size_t level = top_level - std::min<std::size_t>(top_level, static_cast<std::size_t>(prog.stages[i].depth_in));
    for (const auto& b : s.linear.baby)
      for (int step : b) use(step, level);
    for (const auto& g : s.linear.giants) use(g.step, level);
    for (int step : s.linear.fold) use(step, level > 0 ? level - 1 : 0);  // after the rescale
    for (int step : s.pool.col_steps) use(step, level);
    for (int step : s.pool.row_steps) use(step, level);
  }
  KeyRequirements k;
  k.relinearization = true;
  for (const auto& [step, l] : level_of) {
    k.rotations.push_back(step);
    k.rotation_levels.push_back(l);
  }
  return k;
}

ClientSpec client_spec(const Program& prog, const PackedProgram& pp, const ckks::CkksParameters& params, int scale_bits) {
  ClientSpec s;
  s.layout = Layout::Packed;
  s.params_id = params.id();
  s.scale_bits = scale_bits;
  s.input = prog.input;
  s.outputs = prog.outputs();
  s.output_factor = prog.output_factor;
  s.batch_size = pp.images_per_ciphertext();
  s.block = pp.block;
  s.input_copies = pp.input().copies;
  s.input_ciphertexts = pp.input().cts;
  s.output_ciphertexts = pp.output().cts;
  for (const Slot& o : pp.output().at) s.output_slots.push_back({o.ct, o.slot});
  return s;
}

std::string describe_layout(const Program& prog, const PackedProgram& pp) {
  std::ostringstream os;
  os << "packed layout: " << pp.block << " slots per image (" << pp.input().copies << " input cop"
     << (pp.input().copies == 1 ? "y" : "ies") << "), " << pp.images_per_ciphertext() << " image(s) per ciphertext, "
     << pp.input().cts << " input and " << pp.output().cts << " output ciphertext(s) per image group, "
     << pp.rotation_steps().size() << " distinct rotation steps\n";
  for (std::size_t i = 0; i < pp.stages.size(); ++i) {
    const Stage& s = prog.stages[i];
    const PackedStage& ps = pp.stages[i];
    os << "  " << s.name << ": " << ps.in.cts << " -> " << ps.out.cts << " ciphertext(s)";
    switch (s.kind()) {
      case StageKind::Linear: {
        std::size_t baby = 0, giant = 0;
        for (const auto& b : ps.linear.baby) baby += b.size();
        for (const auto& g : ps.linear.giants) giant += g.step != 0;
        os << ", " << ps.linear.diagonal_count() << " plaintext products, " << baby << " baby-step + " << giant
           << " giant-step + " << ps.linear.fold.size() << " fold rotations";
        break;
      }
      case StageKind::SumPool:
        os << ", " << (ps.pool.col_steps.size() - 1) + (ps.pool.row_steps.size() - 1) << " rotations (hoisted sums)";
        break;
      case StageKind::Activation: os << ", slot-wise polynomial"; break;
      case StageKind::Add: os << ", slot-wise sum of " << s.inputs.size(); break;
      case StageKind::Bootstrap: os << ", bootstrapped in pairs (a + i b)"; break;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace hecnn::he::packed
