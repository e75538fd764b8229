// Evaluator::multiply_sparse: plaintext-integer linear maps over many ciphertexts at once.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "ckks/evaluator.h"
#include "ckks/polyops.h"
#include "common/error.h"
#include "common/parallel.h"
#include "ring/kernels.h"

namespace hecnn::ckks {

namespace {

// Coefficients per task of multiply_sparse.
constexpr std::size_t kSparseBlock = 512;

// Residue of round(x) modulo m for |x| < 2^63.
u64 signed_residue(double x, const Modulus& m) {
  const double r = std::nearbyint(x);
  if (!(std::fabs(r) < 9.2e18)) throw Error("multiply_sparse: a weight times its scale overflows 64 bits");
  const auto v = static_cast<std::int64_t>(r);
  const u64 a = m.reduce(static_cast<u64>(v < 0 ? -v : v));
  return v < 0 && a != 0 ? m.value - a : a;
}

void check_matrix(const SparseMatrix& m, std::size_t inputs) {
  const std::size_t rows = m.rows(), nnz = m.col.size();
  if (m.row_start.size() != rows + 1 || m.row_start.front() != 0 || m.row_start.back() != nnz ||
      m.weight.size() != nnz) {
    throw Error("multiply_sparse: malformed matrix (row starts, columns and weights disagree)");
  }
  for (std::size_t o = 0; o < rows; ++o) {
    if (m.row_start[o] > m.row_start[o + 1]) throw Error("multiply_sparse: row starts decrease");
  }
  for (std::uint32_t c : m.col) {
    if (c >= inputs) throw Error("multiply_sparse: column " + std::to_string(c) + " beyond the " + std::to_string(inputs) + " inputs");
  }
}

}  // namespace

std::vector<Ciphertext> Evaluator::multiply_sparse(const std::vector<Ciphertext>& in, const SparseMatrix& mat,
                                                   double weight_scale,
                                                   const std::function<void(std::size_t, std::size_t)>& progress) const {
  std::vector<const Ciphertext*> ptrs(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) ptrs[i] = &in[i];
  return multiply_sparse(ptrs, mat, weight_scale, progress);
}

std::vector<Ciphertext> Evaluator::multiply_sparse(const std::vector<const Ciphertext*>& in_ptrs, const SparseMatrix& mat,
                                                   double weight_scale,
                                                   const std::function<void(std::size_t, std::size_t)>& progress) const {
  namespace kernels = ring::kernels;
  if (in_ptrs.empty()) throw Error("multiply_sparse: no input ciphertexts");
  for (const Ciphertext* c : in_ptrs) {
    if (c == nullptr) throw Error("multiply_sparse: a missing input ciphertext");
  }
  const auto in = [&](std::size_t i) -> const Ciphertext& { return *in_ptrs[i]; };
  check_matrix(mat, in_ptrs.size());
  const std::size_t level = in(0).level(), n = ctx_->n(), comps = in(0).size(), outs = mat.rows();
  for (const Ciphertext* cp : in_ptrs) {
    const Ciphertext& c = *cp;
    check(c);
    if (c.level() != level || c.size() != comps || c.scale() != in(0).scale()) {
      throw Error("multiply_sparse: the inputs differ in level, size or scale");
    }
  }
  if (!(weight_scale > 0) || !std::isfinite(weight_scale)) throw Error("multiply_sparse: invalid weight scale");
  const double out_scale = in(0).scale() * weight_scale;
  const std::size_t limbs = level + 1, nnz = mat.weight.size();
  // Rows that read the same inputs (a convolution's output channels at one position, or every row of
  // a dense layer) form a group: the kernel loads each input once for all of the group's rows.
  std::vector<std::uint32_t> order(outs);
  for (std::size_t o = 0; o < outs; ++o) order[o] = static_cast<std::uint32_t>(o);
  const auto cols_of = [&](std::uint32_t o) {
    return std::pair(mat.col.begin() + mat.row_start[o], mat.col.begin() + mat.row_start[o + 1]);
  };
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const auto [a0, a1] = cols_of(a);
    const auto [b0, b1] = cols_of(b);
    return std::lexicographical_compare(a0, a1, b0, b1);
  });
  struct Group {
    std::size_t first, count;  // rows order[first, first + count)
    std::size_t terms, weights;  // terms per row; offset of the group's weights ([terms][count])
  };
  std::vector<Group> groups;
  for (std::size_t i = 0, off = 0; i < outs;) {
    const auto [c0, c1] = cols_of(order[i]);
    std::size_t e = i + 1;
    while (e < outs) {
      const auto [d0, d1] = cols_of(order[e]);
      if (!std::equal(c0, c1, d0, d1)) break;
      ++e;
    }
    const auto terms = static_cast<std::size_t>(c1 - c0);
    groups.push_back({i, e - i, terms, off});
    off += terms * (e - i);
    i = e;
  }
  std::vector<u64> w(limbs * nnz), bias(limbs * outs);
  std::vector<kernels::DotConstants> dots;
  for (std::size_t j = 0; j < limbs; ++j) {
    const Modulus& m = ctx_->modulus(j);
    dots.emplace_back(m);
    for (const Group& g : groups) {
      for (std::size_t r = 0; r < g.count; ++r) {
        const std::size_t row_first = mat.row_start[order[g.first + r]];
        for (std::size_t t = 0; t < g.terms; ++t) {
          w[j * nnz + g.weights + t * g.count + r] = signed_residue(mat.weight[row_first + t] * weight_scale, m);
        }
      }
    }
    for (std::size_t o = 0; o < outs; ++o) {
      bias[j * outs + o] = mat.bias[o] == 0 ? 0 : detail::double_to_residue(mat.bias[o] * out_scale, m);
    }
  }
  std::vector<Ciphertext> out(outs);
  for (auto& r : out) r.reset(n, level, comps, in(0).slots(), out_scale);
  // Tasks are (component, limb, block of coefficients, group), the group varying fastest: the
  // groups of one block run one after another (on all threads), so the block's slice of every input
  // (inputs x B words) is read from memory once and then from the cache by every group that reads it.
  const std::size_t B = std::min<std::size_t>(kSparseBlock, n);  // n is a power of two
  const std::size_t blocks = n / B, G = groups.size(), tasks = comps * limbs * blocks * G;
  const auto progress_every = std::max<std::size_t>(1, tasks / 50);
  std::size_t done = 0;
  ParallelErrors errors;
#pragma omp parallel
  {
    const u64* src[kernels::kDotMaxTerms];
    std::vector<u64*> dst;
#pragma omp for schedule(dynamic, 1)
    for (std::size_t task = 0; task < tasks; ++task) errors.run([&] {
      const Group& g = groups[task % G];
      const std::size_t rest = task / G;
      const std::size_t k = rest / (limbs * blocks), j = rest / blocks % limbs, b0 = rest % blocks * B;
      const Modulus& m = ctx_->modulus(j);
      dst.resize(g.count);
      for (std::size_t r = 0; r < g.count; ++r) dst[r] = out[order[g.first + r]].limb(k, j) + b0;
      const std::uint32_t first = mat.row_start[order[g.first]];
      if (g.terms == 0) {
        for (u64* d : dst) std::fill(d, d + B, u64{0});
      }
      for (std::size_t t = 0; t < g.terms; t += kernels::kDotMaxTerms) {
        const std::size_t terms = std::min(kernels::kDotMaxTerms, g.terms - t);
        for (std::size_t e = 0; e < terms; ++e) src[e] = in(mat.col[first + t + e]).limb(k, j) + b0;
        kernels::dot_rows(w.data() + j * nnz + g.weights + t * g.count, g.count, src, terms, B, dst.data(), t != 0,
                          m, dots[j]);
      }
      // A constant is the same value at every NTT point.
      if (k == 0) {
        for (std::size_t r = 0; r < g.count; ++r) {
          const u64 b = bias[j * outs + order[g.first + r]];
          if (b != 0) kernels::add_scalar_mod(dst[r], b, dst[r], B, m.value);
        }
      }
#pragma omp atomic
      ++done;
      if (progress && omp_get_thread_num() == 0 && done % progress_every == 0) progress(done, tasks);
    });
  }
  errors.rethrow();
  if (progress) progress(tasks, tasks);
  return out;
}

}  // namespace hecnn::ckks
