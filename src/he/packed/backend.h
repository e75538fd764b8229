#pragma once
// The packed back end: an image's values share the slots of a few ciphertexts, and several images
// share a ciphertext when they fit (image k of a ciphertext owns the slots [k B, (k + 1) B), B the
// block, a power of two). Every stage maps a placement of its inputs (value -> ciphertext, slot in
// the block) to a placement of its outputs:
//
//  - Input: channel c of the image as a row-major plane (row pitch W, column pitch 1), channels one
//    after the other, as many per ciphertext as fit in a block. The client places them, and may
//    place R copies of the whole image, block / R slots apart: a convolution over a replicated
//    input computes its output channels in all copies at once (the offsets do not depend on the
//    copy), either replicated again (when a convolution follows) or partitioned, output channel c
//    in copy c mod R. Partitioning lets R times as many output channels share the same few base
//    slots, and so the same diagonals: fewer plaintext products and rotations per layer at the
//    price of fewer images per ciphertext. The lowering tries R = 1, 2, 4, ... and the block sizes,
//    and keeps the cheapest (estimated key switches and plaintext products per ciphertext group).
//  - Convolution: the output keeps the input's pitches times the stride (a stride-2 layer leaves
//    gaps), and each output channel goes to the first base slot where its grid collides with no
//    other channel's (channels fill each other's gaps: multiplexing). Every product term then has a
//    slot offset (input slot - output slot) that depends only on the channel pair and the tap, so
//    the layer is a sum of "diagonals": y = sum_d diag_d * rot(x, d), one plaintext product per
//    distinct (input ciphertext, output ciphertext, offset). The offsets are split d = g + b into
//    baby steps b (rotations of each input, hoisted over one key-switching decomposition) and giant
//    steps g (one rotation per partial sum, the plaintexts pre-rotated by -g); the split minimizes
//    the rotation count over the candidate baby-step sizes.
//  - Dense (and merged dense): outputs at slots 0..m-1. With m much smaller than the block, each
//    term goes to a partial sum at slot o + kQ (Q = next power of two >= m) within Q of its input,
//    so there are fewer than 2Q diagonals; log2(B / Q) rotate-and-add steps after rescaling fold the
//    partial sums into slot o (the other slots hold partial sums nobody reads).
//  - Sum pooling (average and global average pooling, 1/window folded forward): rotate-and-add over
//    the window's offsets, rows and columns separately, each as one hoisted sum; the result stays at
//    the window's top-left slot with the pitches times the stride. No level. The slots between
//    hold partial sums that the next linear stage never reads (its diagonals are zero there).
//  - Activation: the polynomial slot-wise on each ciphertext (every value at once).
//
// A linear stage costs one level (the plaintext products, then one rescale); rotations cost none.
// The rotation keys are those of the distinct baby, giant, fold and pooling steps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ckks/params.h"
#include "he/compile/parameters.h"
#include "he/backend.h"
#include "he/compile/program.h"
#include "he/spec.h"

namespace hecnn::he::packed {

inline constexpr const char* kValueUnit = "values";

struct Slot {
  std::uint32_t ct = 0, slot = 0;  // ciphertext of the image's group, slot within the block
  bool operator==(const Slot&) const = default;
};

// Where each value of a stage's tensor (CHW order) lives.
struct Placement {
  nn::Shape shape;
  std::size_t cts = 1;
  std::vector<Slot> at;  // per value (its first copy)
  // Replicated placements: every value also at slot + r * copy_stride, r < copies (same ciphertext).
  std::size_t copies = 1, copy_stride = 0;
  // The grid the values were placed on: value (c, y, x) at base[c] + y * row_pitch + x * col_pitch of
  // ciphertext ct_of[c]. Empty base: no grid (dense outputs).
  std::int64_t row_pitch = 0, col_pitch = 0;
  std::vector<std::uint32_t> base, ct_of;
};

// One plaintext product of a linear stage: input ciphertext, its baby-step rotation, and the
// plaintext's nonzero slots within the block (already pre-rotated by the giant step).
struct Diagonal {
  std::uint32_t in_ct = 0;
  int baby = 0;  // rotation step, normalized to [0, slots)
  std::vector<std::pair<std::uint32_t, double>> entries;
};
struct GiantStep {
  std::uint32_t out_ct = 0;
  int step = 0;  // normalized to [0, slots)
  std::vector<Diagonal> diagonals;
};
struct LinearPlan {
  std::vector<std::vector<int>> baby;  // per input ciphertext: the nonzero baby steps, sorted
  std::vector<GiantStep> giants;
  std::vector<std::vector<std::pair<std::uint32_t, double>>> bias;  // per output ciphertext
  std::vector<int> fold;  // after rescaling: x += rot(x, step), in order
  std::size_t diagonal_count() const;
  std::size_t rotation_count() const;  // baby + nonzero giant + fold rotations per image group
};
struct PoolPlan {
  std::vector<int> col_steps, row_steps;  // including 0
};

struct PackedStage {
  Placement in, out;
  LinearPlan linear;  // linear stages
  PoolPlan pool;      // sum-pool stages
};

struct PackedProgram : LoweredLayout {
  std::size_t slots = 0;  // N/2
  std::size_t block = 0;  // slots per image
  std::vector<PackedStage> stages;
  std::size_t images_per_ciphertext() const { return slots / block; }
  const Placement& input() const { return stages.front().in; }
  const Placement& output() const { return stages.back().out; }
  std::vector<int> rotation_steps() const;  // distinct, sorted, normalized to [1, slots)
};

// The input placement for a block size and a number of copies (the client's side of the layout):
// the channels one after the other within block / copies slots, replicated `copies` times. Throws
// hecnn::Error when they do not fit.
Placement input_placement(const nn::Shape& in, std::size_t block, std::size_t copies = 1);

// Lowers a compiled program for `slots` slots per ciphertext: chooses the block (the smallest
// power of two that keeps every stage in one ciphertext per image group, or all the slots) and the
// placements. Throws hecnn::Error when the image does not fit the layout.
// The choice minimizes the estimated time of `images` images (ciphertext groups times the cost of
// one). block and copies, when nonzero, fix it (the server reproduces the client's layout).
PackedProgram lower(const Program& program, std::size_t slots, std::size_t block = 0, std::size_t copies = 0,
                    std::size_t images = 1);

// The rotation steps with the highest level each is used at (the program's stages from top_level).
KeyRequirements key_requirements(const Program& program, const PackedProgram& packed, std::size_t top_level);
ClientSpec client_spec(const Program& program, const PackedProgram& packed, const ckks::CkksParameters& params,
                       int scale_bits);
// Per stage: one line of what the layout spends (rotations, plaintext products).
std::string describe_layout(const Program& program, const PackedProgram& packed);

// A plan's packed lowering; throws hecnn::Error for a plan of another layout.
const PackedProgram& program_of(const HePlan& plan);

// The layout behind he::Backend (he/packed/layout.cpp; registered in he/backend.cpp).
class PackedBackend : public Backend {
 public:
  Layout layout() const override { return Layout::Packed; }
  std::string name() const override { return "packed"; }
  bool bootstraps() const override { return true; }
  std::string value_unit() const override;
  std::string query_unit() const override;
  void prepare(Program& program) const override;
  void lower(HePlan& plan, std::size_t images, const ClientSpec* spec) const override;
  std::size_t batch_size(const HePlan& plan) const override;
  ClientSpec client_spec(const HePlan& plan) const override;
  void write_spec(const ClientSpec& s, nlohmann::json& j) const override;
  void read_spec(const nlohmann::json& j, ClientSpec& s) const override;
  std::string describe_layout(const HePlan& plan) const override;
  void estimate_ciphertexts(const HePlan& plan, int threads, std::size_t plaintext_budget, bool with_client, int tile,
                            std::size_t resident_limit, MemoryEstimate& m) const override;
  double stage_seconds(const HePlan& plan, std::size_t i, const CostModel& cost, const std::vector<bool>& preencoded) const override;
  std::shared_ptr<const EngineState> engine_state(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                  const EngineOptions& options) const override;
  std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                               const EngineOptions& options) const override;
  std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk) const override;
};

}  // namespace hecnn::he::packed
