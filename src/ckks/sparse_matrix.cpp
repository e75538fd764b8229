// Evaluator::multiply_sparse: plaintext-integer linear maps over many ciphertexts at once.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ckks/evaluator.h"
#include "ckks/polyops.h"
#include "common/error.h"
#include "common/parallel.h"
#include "ring/kernels.h"

namespace hecnn::ckks {

namespace {

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
  std::vector<u64> w(limbs * nnz), bias(limbs * outs);
  std::vector<kernels::DotConstants> dots;
  for (std::size_t j = 0; j < limbs; ++j) {
    const Modulus& m = ctx_->modulus(j);
    dots.emplace_back(m);
    for (std::size_t k = 0; k < nnz; ++k) w[j * nnz + k] = signed_residue(mat.weight[k] * weight_scale, m);
    for (std::size_t o = 0; o < outs; ++o) {
      bias[j * outs + o] = mat.bias[o] == 0 ? 0 : detail::double_to_residue(mat.bias[o] * out_scale, m);
    }
  }
  std::vector<Ciphertext> out(outs);
  for (auto& r : out) r.reset(n, level, comps, in(0).slots(), out_scale);
  // Coefficient blocks are independent: each task runs every output over one block of one limb of
  // one component, so the inputs' blocks stay in cache while all outputs read them.
  const std::size_t B = std::min(kernels::kDotBlock, n);  // n is a power of two
  const std::size_t blocks = n / B, tasks = comps * limbs * blocks;
  const auto progress_every = std::max<std::size_t>(1, tasks / 50);
  std::size_t done = 0;
  ParallelErrors errors;
#pragma omp parallel
  {
    const u64* src[kernels::kDotMaxTerms];
#pragma omp for schedule(dynamic, 4)
    for (std::size_t task = 0; task < tasks; ++task) errors.run([&] {
      const std::size_t k = task / (limbs * blocks), j = task / blocks % limbs, b0 = task % blocks * B;
      const Modulus& m = ctx_->modulus(j);
      const u64* wj = w.data() + j * nnz;
      alignas(64) u64 part[kernels::kDotBlock];
      for (std::size_t o = 0; o < outs; ++o) {
        u64* dst = out[o].limb(k, j) + b0;
        const std::uint32_t first = mat.row_start[o], end = mat.row_start[o + 1];
        if (first == end) std::fill(dst, dst + B, u64{0});
        for (std::uint32_t t = first; t < end; t += kernels::kDotMaxTerms) {
          const std::size_t terms = std::min<std::size_t>(kernels::kDotMaxTerms, end - t);
          for (std::size_t e = 0; e < terms; ++e) src[e] = in(mat.col[t + e]).limb(k, j) + b0;
          if (t == first) {
            kernels::dot_block(wj + t, src, terms, B, dst, m, dots[j]);
          } else {
            kernels::dot_block(wj + t, src, terms, B, part, m, dots[j]);
            kernels::add_mod(dst, part, dst, B, m.value);
          }
        }
        // A constant is the same value at every NTT point.
        const u64 b = k == 0 ? bias[j * outs + o] : 0;
        if (b != 0) kernels::add_scalar_mod(dst, b, dst, B, m.value);
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
