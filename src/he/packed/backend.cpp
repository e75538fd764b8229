#include "he/packed/backend.h"

#include <algorithm>
#include <cmath>
#include <map>
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
// ciphertexts in order) where none of its slots is taken.
Placement place_grid(const nn::Shape& shape, std::int64_t rp, std::int64_t cp, std::size_t block, const std::string& what) {
  const std::int64_t span = grid_span(shape, rp, cp);
  if (span > static_cast<std::int64_t>(block)) {
    throw Error("packed layout: " + what + " needs " + std::to_string(span) + " slots per channel, more than the " +
                std::to_string(block) + " of a block");
  }
  Placement p;
  p.shape = shape;
  p.row_pitch = rp;
  p.col_pitch = cp;
  std::vector<std::int64_t> offs;
  offs.reserve(static_cast<std::size_t>(shape.h) * shape.w);
  for (int y = 0; y < shape.h; ++y)
    for (int x = 0; x < shape.w; ++x) offs.push_back(y * rp + x * cp);
  const std::int64_t last_base = static_cast<std::int64_t>(block) - span;
  std::vector<std::vector<std::uint8_t>> taken;
  std::vector<std::int64_t> next;  // per ciphertext: bases below it are known not to fit
  for (int c = 0; c < shape.c; ++c) {
    bool placed = false;
    for (std::size_t ct = 0; !placed; ++ct) {
      if (ct == taken.size()) {
        taken.emplace_back(block, 0);
        next.push_back(0);
      }
      auto& occ = taken[ct];
      for (std::int64_t b = next[ct]; b <= last_base; ++b) {
        bool fits = true;
        for (std::int64_t o : offs) {
          if (occ[static_cast<std::size_t>(b + o)]) {
            fits = false;
            break;
          }
        }
        if (!fits) {
          if (b == next[ct]) ++next[ct];
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

LinearPlan lower_linear(const Stage& s, const Placement& in, Placement& out, std::size_t block, std::size_t slots) {
  const LinearOp& op = s.linear();
  const std::size_t m = static_cast<std::size_t>(s.out.size());
  std::size_t fold_q = 0;
  if (op.conv) {
    if (in.base.empty()) throw Error("packed layout: stage '" + s.name + "': a convolution needs an image-shaped input");
    out = place_grid(s.out, in.row_pitch * op.geometry.stride_h, in.col_pitch * op.geometry.stride_w, block,
                     "stage '" + s.name + "'");
  } else {
    out = place_flat(s.out, block);
    const std::size_t q = next_pow2(m);
    if (2 * q <= block) fold_q = q;
  }
  std::map<DiagKey, std::vector<std::pair<std::uint32_t, double>>> diags;
  op.for_each_term(s.in, s.out, [&](std::size_t o, std::size_t i, double w) {
    const Slot si = in.at[i], so = out.at[o];
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
    if (b != 0) plan.bias[out.at[o].ct].push_back({out.at[o].slot, b});
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

// Lowers with a fixed block; throws when something does not fit.
PackedProgram lower_with(const Program& prog, std::size_t slots, std::size_t block) {
  PackedProgram pp;
  pp.slots = slots;
  pp.block = block;
  Placement cur = input_placement(prog.input, block);
  for (const Stage& s : prog.stages) {
    PackedStage ps;
    ps.in = cur;
    switch (s.kind()) {
      case StageKind::Linear: ps.linear = lower_linear(s, ps.in, ps.out, block, slots); break;
      case StageKind::SumPool: ps.pool = lower_pool(s, ps.in, ps.out, slots); break;
      case StageKind::Activation: ps.out = ps.in; break;
    }
    cur = ps.out;
    pp.stages.push_back(std::move(ps));
  }
  return pp;
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

Placement input_placement(const nn::Shape& in, std::size_t block) {
  if (in.c <= 0 || in.h <= 0 || in.w <= 0) throw Error("packed layout: empty input shape");
  return place_grid(in, in.w, 1, block, "the input image");
}

PackedProgram lower(const Program& prog, std::size_t slots) {
  if (slots == 0 || (slots & (slots - 1)) != 0) throw Error("packed layout: the slot count must be a power of two");
  std::size_t block = next_pow2(static_cast<std::size_t>(prog.input.h) * static_cast<std::size_t>(prog.input.w));
  if (block > slots) {
    throw Error("packed layout: an image plane of " + std::to_string(prog.input.h) + "x" + std::to_string(prog.input.w) +
                " does not fit in the " + std::to_string(slots) + " slots of a ciphertext");
  }
  for (;; block *= 2) {
    try {
      PackedProgram pp = lower_with(prog, slots, block);
      bool single = true;
      for (const auto& s : pp.stages) single = single && s.in.cts == 1 && s.out.cts == 1;
      if (single || block == slots) return pp;
    } catch (const Error&) {
      if (block == slots) throw;
    }
  }
}

KeyRequirements key_requirements(const PackedProgram& pp) {
  KeyRequirements k;
  k.relinearization = true;
  k.rotations = pp.rotation_steps();
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
  s.input_ciphertexts = pp.input().cts;
  s.output_ciphertexts = pp.output().cts;
  for (const Slot& o : pp.output().at) s.output_slots.push_back({o.ct, o.slot});
  return s;
}

std::string describe_layout(const Program& prog, const PackedProgram& pp) {
  std::ostringstream os;
  os << "packed layout: " << pp.block << " slots per image, " << pp.images_per_ciphertext() << " image(s) per ciphertext, "
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
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace hecnn::he::packed
