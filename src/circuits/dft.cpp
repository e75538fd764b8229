#include "circuits/dft.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"
#include "common/parallel.h"

namespace hecnn::circuits {

using ckks::Ciphertext;
using ckks::Plaintext;
using cd = std::complex<double>;

namespace {

bool power_of_two(std::size_t n) { return n != 0 && (n & (n - 1)) == 0; }

std::size_t log2_of(std::size_t n) {
  std::size_t k = 0;
  while ((std::size_t{1} << k) < n) ++k;
  return k;
}

// The butterfly twiddle exp(2 pi i g / (4 len)) for g = 5^j mod 4 len (index j of the stage of
// length len), CkksEncoder::embed's.
cd twiddle(std::size_t len, std::size_t g) {
  const double a = 2.0 * std::numbers::pi * static_cast<double>(g) / static_cast<double>(4 * len);
  return {std::cos(a), std::sin(a)};
}

// One butterfly stage of length len on n slots, or its inverse.
DiagonalMatrix stage(std::size_t n, std::size_t len, bool inverse) {
  DiagonalMatrix s;
  s.n = n;
  const std::size_t h = len / 2;
  auto diag = [&](std::size_t offset) -> std::vector<cd>& {
    auto& d = s.diagonals[static_cast<long>(offset % n)];
    if (d.empty()) d.assign(n, cd(0, 0));
    return d;
  };
  std::size_t g = 1;  // 5^j mod 4 len
  for (std::size_t j = 0; j < h; ++j, g = (g * 5) % (4 * len)) {
    const cd w = twiddle(len, g);
    for (std::size_t i = 0; i < n; i += len) {
      const std::size_t p = i + j, q = p + h;
      if (!inverse) {  // v'p = vp + w vq, v'q = vp - w vq
        diag(0)[p] += 1.0;
        diag(h)[p] += w;
        diag(0)[q] += -w;
        diag(n - h)[q] += 1.0;
      } else {  // vp = (v'p + v'q) / 2, vq = (v'p - v'q) / (2w)
        diag(0)[p] += 0.5;
        diag(h)[p] += 0.5;
        diag(0)[q] += -0.5 / w;
        diag(n - h)[q] += 0.5 / w;
      }
    }
  }
  return s;
}

// The stage lengths in the order they are applied.
std::vector<std::size_t> stage_lengths(std::size_t n, DftDirection direction) {
  std::vector<std::size_t> lens;
  for (std::size_t len = 2; len <= n; len *= 2) lens.push_back(len);
  if (direction == DftDirection::CoeffsToSlots) std::reverse(lens.begin(), lens.end());
  return lens;
}

}  // namespace

std::vector<cd> DiagonalMatrix::apply(const std::vector<cd>& x) const {
  if (x.size() != n) throw Error("diagonal matrix: vector of another size");
  std::vector<cd> y(n, cd(0, 0));
  for (const auto& [d, v] : diagonals)
    for (std::size_t p = 0; p < n; ++p) y[p] += v[p] * x[(p + static_cast<std::size_t>(d)) % n];
  return y;
}

DiagonalMatrix DiagonalMatrix::after(const DiagonalMatrix& b) const {
  if (b.n != n) throw Error("diagonal matrix: product of different sizes");
  // A(Bx)[p] = sum_a A_a[p] sum_b B_b[p + a] x[p + a + b].
  DiagonalMatrix r;
  r.n = n;
  for (const auto& [a, va] : diagonals) {
    for (const auto& [bb, vb] : b.diagonals) {
      auto& d = r.diagonals[static_cast<long>((static_cast<std::size_t>(a) + static_cast<std::size_t>(bb)) % n)];
      if (d.empty()) d.assign(n, cd(0, 0));
      for (std::size_t p = 0; p < n; ++p) d[p] += va[p] * vb[(p + static_cast<std::size_t>(a)) % n];
    }
  }
  // Diagonals that cancelled out entirely.
  for (auto it = r.diagonals.begin(); it != r.diagonals.end();) {
    const bool zero = std::all_of(it->second.begin(), it->second.end(), [](const cd& c) { return std::abs(c) < 1e-300; });
    it = zero ? r.diagonals.erase(it) : std::next(it);
  }
  return r;
}

void DiagonalMatrix::scale(cd c) {
  for (auto& [d, v] : diagonals)
    for (auto& x : v) x *= c;
}

std::vector<DiagonalMatrix> dft_factors(std::size_t n, DftDirection direction, std::size_t levels, cd constant) {
  if (!power_of_two(n) || n < 2) throw Error("DFT: the slot count must be a power of two of at least 2");
  const std::size_t stages = log2_of(n);
  if (levels < 1 || levels > stages) {
    throw Error("DFT: the level budget must be between 1 and log2(slots) = " + std::to_string(stages) + ", got " + std::to_string(levels));
  }
  const auto lens = stage_lengths(n, direction);
  std::vector<DiagonalMatrix> out;
  std::size_t next = 0;
  for (std::size_t f = 0; f < levels; ++f) {
    const std::size_t size = stages / levels + (f < stages % levels ? 1 : 0);
    DiagonalMatrix m = stage(n, lens[next++], direction == DftDirection::CoeffsToSlots);
    for (std::size_t k = 1; k < size; ++k) m = stage(n, lens[next++], direction == DftDirection::CoeffsToSlots).after(m);
    out.push_back(std::move(m));
  }
  out.front().scale(constant);
  return out;
}

std::vector<cd> dft_reference(const std::vector<cd>& x, DftDirection direction) {
  const std::size_t n = x.size();
  if (!power_of_two(n) || n < 2) throw Error("DFT: the slot count must be a power of two of at least 2");
  std::vector<cd> v = x;
  for (std::size_t len : stage_lengths(n, direction)) v = stage(n, len, direction == DftDirection::CoeffsToSlots).apply(v);
  return v;
}

HomomorphicDft::HomomorphicDft(ckks::ContextPtr ctx, const Options& opts)
    : ctx_(std::move(ctx)), encoder_(std::make_shared<const ckks::CkksEncoder>(ctx_)), opts_(opts) {
  const std::size_t n = opts_.slots;
  if (!power_of_two(n) || n < 2 || n > ctx_->n() / 2) throw Error("DFT: the slot count must be a power of two between 2 and N/2");
  if (opts_.top_level > ctx_->max_level() || opts_.levels > opts_.top_level) {
    throw Error("DFT: " + std::to_string(opts_.levels) + " levels from level " + std::to_string(opts_.top_level) +
                " do not fit the modulus chain");
  }
  for (auto& m : dft_factors(n, opts_.direction, opts_.levels, opts_.constant)) {
    Factor f;
    std::vector<long> offsets;
    for (const auto& [d, v] : m.diagonals) offsets.push_back(d);
    f.shape = bsgs_shape(offsets, n);
    f.matrix = std::make_shared<const DiagonalMatrix>(std::move(m));
    factors_.push_back(std::move(f));
  }
  plan_scales();
  store_plaintexts();
}

HomomorphicDft::HomomorphicDft(const HomomorphicDft& o, double output_scale, std::size_t plaintext_budget)
    : ctx_(o.ctx_), encoder_(o.encoder_), opts_(o.opts_) {
  opts_.output_scale = output_scale;
  opts_.plaintext_budget = plaintext_budget;
  for (const auto& f : o.factors_) factors_.push_back(Factor{f.matrix, f.shape, 0, 0, 0, 0, {}});  // not the plaintexts
  plan_scales();
  store_plaintexts();
}

std::unique_ptr<HomomorphicDft> HomomorphicDft::with_output_scale(double output_scale, std::size_t plaintext_budget) const {
  return std::unique_ptr<HomomorphicDft>(new HomomorphicDft(*this, output_scale, plaintext_budget));
}

void HomomorphicDft::plan_scales() {
  if (!(opts_.input_scale >= 1) || !(opts_.output_scale >= 1)) throw Error("DFT: scales must be at least 1");
  double scale = opts_.input_scale;
  for (std::size_t k = 0; k < factors_.size(); ++k) {
    Factor& f = factors_[k];
    f.level = opts_.top_level - k;
    // Unless geometric_scales, the first factor (which carries the constant) moves the scale to the
    // output's; the others keep it, so that each plaintext is encoded at about a prime's scale (not,
    // say, 2^22 for a factor going from 2^60 to 2^40, whose rounding would cost 20 bits).
    f.in_scale = scale;
    f.out_scale = opts_.output_scale;
    if (opts_.geometric_scales && k + 1 < factors_.size()) {
      const double t = static_cast<double>(k + 1) / static_cast<double>(factors_.size());
      f.out_scale = std::exp2((1 - t) * std::log2(opts_.input_scale) + t * std::log2(opts_.output_scale));
    }
    f.plaintext_scale = static_cast<double>(ctx_->modulus(f.level).value) * f.out_scale / f.in_scale;
    scale = f.out_scale;
  }
}

void HomomorphicDft::store_plaintexts() {
  // The factors in order while they fit.
  std::size_t stored = 0;
  for (auto& f : factors_) {
    const std::size_t bytes = f.shape.products() * (f.level + 1) * ctx_->n() * sizeof(std::uint64_t);
    if (stored + bytes > opts_.plaintext_budget) break;
    f.stored = encode(f, 0, f.shape.giants.size());
    stored += bytes;
  }
}

std::vector<std::vector<Plaintext>> HomomorphicDft::encode(const Factor& f, std::size_t g0, std::size_t g1) const {
  const std::size_t n = opts_.slots;
  std::vector<std::vector<Plaintext>> out(g1 - g0);
  std::vector<std::pair<std::size_t, std::size_t>> all;
  for (std::size_t g = g0; g < g1; ++g) {
    out[g - g0].resize(f.shape.giants[g].terms.size());
    for (std::size_t t = 0; t < f.shape.giants[g].terms.size(); ++t) all.push_back({g, t});
  }
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (std::size_t k = 0; k < all.size(); ++k) errors.run([&] {
    const auto [g, t] = all[k];
    const LtGiant& giant = f.shape.giants[g];
    const long d = term_offset(giant, giant.terms[t], n);
    const auto& diag = f.matrix->diagonals.at(d);
    // rot(diag, -step): u[r] = diag[r - step].
    std::vector<cd> u(n);
    const std::size_t step = static_cast<std::size_t>(giant.step) % n;
    for (std::size_t r = 0; r < n; ++r) u[r] = diag[(r + n - step) % n];
    encoder_->encode(std::span<const cd>(u), f.plaintext_scale, f.level, out[g - g0][t]);
  });
  errors.rethrow();
  return out;
}

Ciphertext HomomorphicDft::apply(const ckks::Evaluator& ev, const ckks::GaloisKeys& gk, Ciphertext ct) const {
  if (ct.level() != opts_.top_level) {
    throw Error("DFT: the ciphertext is at level " + std::to_string(ct.level()) + ", expected " + std::to_string(opts_.top_level));
  }
  if (std::fabs(ct.scale() - opts_.input_scale) > 1e-9 * opts_.input_scale) throw Error("DFT: the ciphertext has another scale than configured");
  if (ct.size() != 2) throw Error("DFT: relinearize the ciphertext first");
  for (const auto& f : factors_) {
    LtPlaintexts pts;
    if (!f.stored.empty()) {
      pts.stored = &f.stored;
    } else {
      pts.encode = [&](std::size_t g0, std::size_t g1) { return encode(f, g0, g1); };
      pts.plaintext_bytes = (f.level + 1) * ctx_->n() * sizeof(std::uint64_t);
    }
    std::vector<Ciphertext> in(1);
    in[0] = std::move(ct);
    auto out = circuits::apply(ev, gk, in, f.shape, pts);
    ct = std::move(out[0]);
    ev.rescale_inplace(ct);
    ct.set_scale(f.out_scale);
  }
  return ct;
}

std::map<int, std::size_t> HomomorphicDft::rotation_levels() const {
  std::map<int, std::size_t> r;
  for (const auto& f : factors_)
    for (int s : f.shape.rotation_steps()) {
      auto& l = r[s];
      l = std::max(l, f.level);
    }
  return r;
}

std::size_t HomomorphicDft::rotations() const {
  std::size_t n = 0;
  for (const auto& f : factors_) n += f.shape.rotations();
  return n;
}

std::size_t HomomorphicDft::products() const {
  std::size_t n = 0;
  for (const auto& f : factors_) n += f.shape.products();
  return n;
}

std::size_t HomomorphicDft::stored_bytes() const {
  std::size_t n = 0;
  for (const auto& f : factors_)
    for (const auto& g : f.stored)
      for (const auto& p : g) n += p.word_count() * sizeof(std::uint64_t);
  return n;
}

std::size_t HomomorphicDft::storable_bytes(std::size_t budget) const {
  std::size_t stored = 0;
  for (const auto& f : factors_) {
    const std::size_t bytes = f.shape.products() * (f.level + 1) * ctx_->n() * sizeof(std::uint64_t);
    if (stored + bytes > budget) break;
    stored += bytes;
  }
  return stored;
}

std::size_t HomomorphicDft::all_plaintext_bytes() const {
  std::size_t n = 0;
  for (const auto& f : factors_) n += f.shape.products() * (f.level + 1) * ctx_->n() * sizeof(std::uint64_t);
  return n;
}

std::size_t HomomorphicDft::matrix_bytes() const {
  std::size_t n = 0;
  for (const auto& f : factors_) n += f.matrix->diagonals.size() * f.matrix->n * sizeof(std::complex<double>);
  return n;
}

std::size_t HomomorphicDft::working_bytes() const {
  std::size_t peak = 0;
  const std::size_t N = ctx_->n(), K = ctx_->special_count();
  for (const auto& f : factors_) {
    const std::size_t ct = 2 * (f.level + 1) * N * sizeof(std::uint64_t);
    std::size_t babies = 0;
    for (const auto& b : f.shape.baby) babies += b.size();
    // The input, its baby rotations, the giant steps' sums, the output and a spare; the digits of a
    // key switch; plaintexts encoded on the fly.
    std::size_t bytes = (babies + f.shape.giants.size() + 3) * ct;
    const std::size_t digits = ctx_->key_switch(f.level).digit_count;
    bytes += (digits + 2) * (f.level + 1 + K) * N * sizeof(std::uint64_t) * 2;
    if (f.stored.empty()) bytes += std::min<std::size_t>(std::size_t{256} << 20, f.shape.products() * ct / 2) + ct / 2;
    peak = std::max(peak, bytes);
  }
  return peak;
}

}  // namespace hecnn::circuits
