#pragma once
// Homomorphic operations on CKKS ciphertexts. All operands stay in NTT form; key switching is
// hybrid (digit decomposition + special primes P), with rotations hoistable over one decomposition.
#include <complex>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"

namespace hecnn::ckks {

// A sparse matrix of real weights applied to a vector of ciphertexts: output o is
//   sum over k in [row_start[o], row_start[o+1]) of weight[k] * in[col[k]], plus bias[o].
struct SparseMatrix {
  std::vector<std::uint32_t> row_start{0}, col;
  std::vector<double> weight, bias;
  std::size_t rows() const { return bias.size(); }
};

class Evaluator {
 public:
  explicit Evaluator(ContextPtr ctx);

  // Addition and subtraction. Operands must share level, slot count and (to 1e-9 relative) scale;
  // 3-component operands are accepted so products can be summed before one relinearization.
  void add_inplace(Ciphertext& a, const Ciphertext& b) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const;
  void negate_inplace(Ciphertext& a) const;
  void add_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  void sub_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  // Adds the real constant c to every slot (encoded at the ciphertext's scale, no plaintext built).
  void add_const_inplace(Ciphertext& a, double c) const;
  void sub_const_inplace(Ciphertext& a, double c) const { add_const_inplace(a, -c); }

  // Multiplication. Ciphertext products have 3 components until relinearized.
  void multiply_inplace(Ciphertext& a, const Ciphertext& b) const;
  // out = a * b (3 components); out may be a or b.
  void multiply(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const;
  void square_inplace(Ciphertext& a) const;
  // out = a * a (3 components), without copying a first; out may be a.
  void square(const Ciphertext& a, Ciphertext& out) const;
  void relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const;
  // Relinearizes (when a has 3 components) and rescales in one step: round((ks + P c) / (P q_l))
  // with a single division by P q_l, where relinearize_inplace then rescale_inplace divide twice
  // (saving one inverse and l forward NTTs per component). The result equals theirs up to the
  // rounding error (it is not bit-identical).
  void relinearize_rescale_inplace(Ciphertext& a, const RelinKeys& rk) const;
  // The same into out (not a), sized by out.reset: a default-constructed out gets exactly the
  // storage it needs, for results held a long time.
  void relinearize_rescale(const Ciphertext& a, const RelinKeys& rk, Ciphertext& out) const;
  void multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  // Sums of products, out[g] = sum over (a, p) in terms[g] of a * p (the inner sums of a diagonal
  // linear transform): every ciphertext at one level, size and slot count, every product at one
  // scale. Runs chunk by chunk of coefficients over all the sums at once, so the ciphertexts (read
  // by many sums) and the sums stay in cache while each plaintext streams through once.
  using PlainProduct = std::pair<const Ciphertext*, const Plaintext*>;
  void multiply_plain_sums(const std::vector<std::vector<PlainProduct>>& terms, std::vector<Ciphertext>& out) const;
  // Multiplies by round(c * const_scale); the scale grows by const_scale. With const_scale == 0 the
  // top prime of the ciphertext's level is used, so a following rescale restores the scale exactly.
  void multiply_const_inplace(Ciphertext& a, double c, double const_scale = 0) const;
  // out = a, dropped to `level` (at most a's), times c as multiply_const_inplace does (const_scale 0:
  // the prime at `level`), in one pass over the kept limbs; out may be a.
  void multiply_const(const Ciphertext& a, double c, double const_scale, std::size_t level, Ciphertext& out) const;
  // acc += a * round(c * const_scale), over acc's level (a at that level or above, acc of at least
  // a's size), in one pass; acc's scale must equal a's times const_scale (to 1e-9 relative).
  void multiply_const_add_inplace(Ciphertext& acc, const Ciphertext& a, double c, double const_scale) const;
  // Multiplies by an integer; the scale is unchanged.
  void multiply_integer_inplace(Ciphertext& a, std::int64_t c) const;

  // The product m * in of a sparse matrix with ciphertexts of one level, size (2 or 3) and scale:
  // each weight is multiplied by weight_scale and rounded to an integer, each bias encoded at the
  // output scale in.scale() * weight_scale. The outputs keep the inputs' level and size (rescale
  // them next). Runs as blocked multi-term dot products on the RNS limbs (ring dot_block), in
  // parallel over coefficient blocks, limbs and components; progress(done, total), if given, is
  // called from one thread now and then. Throws hecnn::Error for mixed inputs, a malformed matrix
  // or a weight whose scaled value overflows 64 bits.
  std::vector<Ciphertext> multiply_sparse(const std::vector<Ciphertext>& in, const SparseMatrix& m, double weight_scale,
                                          const std::function<void(std::size_t, std::size_t)>& progress = nullptr) const;
  // The same over ciphertexts held elsewhere (column i of the matrix is *in[i]).
  std::vector<Ciphertext> multiply_sparse(const std::vector<const Ciphertext*>& in, const SparseMatrix& m, double weight_scale,
                                          const std::function<void(std::size_t, std::size_t)>& progress = nullptr) const;

  // Divides by the top prime of the level (rounding) and moves one level down.
  void rescale_inplace(Ciphertext& a) const;
  // The same into out (not a); see relinearize_rescale.
  void rescale(const Ciphertext& a, Ciphertext& out) const;
  // Drops top primes without dividing: the scale is unchanged.
  void drop_to_level_inplace(Ciphertext& a, std::size_t level) const;
  void drop_to_level_inplace(Plaintext& p, std::size_t level) const;
  // Brings two operands to the same level and, if their scales differ, the same scale (the
  // smaller-scale operand is multiplied by the ratio and rescaled, which costs it one level).
  void align_inplace(Ciphertext& a, Ciphertext& b) const;

  // Rotation to the left by `step` slots (negative: right), with the key for that step.
  void rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const;
  // out = a rotated (out may be a); reuses out's storage.
  void rotate(const Ciphertext& a, int step, const GaloisKeys& gk, Ciphertext& out) const;
  // Rotations of one ciphertext by many steps, sharing one key-switching decomposition (the
  // modulus raising is done once; each step costs a permutation, an inner product and a mod-down).
  std::vector<Ciphertext> rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                         const GaloisKeys& gk) const;
  // The same into `out` (resized to steps.size()), reusing the storage its ciphertexts already have.
  void rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps, const GaloisKeys& gk,
                      std::vector<Ciphertext>& out) const;
  // The sum of the rotations of `a` by every step (a step may repeat; 0 adds `a` itself): one modulus
  // raising, the inner products summed over Q*P, and a single mod-down for the whole sum.
  Ciphertext rotate_sum_hoisted(const Ciphertext& a, const std::vector<int>& steps, const GaloisKeys& gk) const;
  // Key switching: a ciphertext under s' becomes one under s, for a key from s' to s
  // (KeyGenerator::create_switch_key); level, scale and slots are kept.
  void switch_key_inplace(Ciphertext& a, const KeySwitchKey& key) const;
  // Complex conjugation of every slot.
  void conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const;
  void apply_galois_inplace(Ciphertext& a, std::uint32_t galois_elt, const GaloisKeys& gk) const;

  // Out-of-place conveniences.
  Ciphertext add(const Ciphertext& a, const Ciphertext& b) const { Ciphertext r = a; add_inplace(r, b); return r; }
  Ciphertext sub(const Ciphertext& a, const Ciphertext& b) const { Ciphertext r = a; sub_inplace(r, b); return r; }
  Ciphertext multiply(const Ciphertext& a, const Ciphertext& b) const { Ciphertext r; multiply(a, b, r); return r; }
  Ciphertext rotate(const Ciphertext& a, int step, const GaloisKeys& gk) const { Ciphertext r; rotate(a, step, gk, r); return r; }

  const CkksContext& context() const { return *ctx_; }

 private:
  void check(const Ciphertext& a) const;
  void check_pair(const Ciphertext& a, const Ciphertext& b, const char* op) const;
  void add_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const;
  void add_sub_plain(Ciphertext& a, const Plaintext& p, bool subtract) const;
  // round(c * const_scale) modulo q_0..q_level, after checking both are finite (and the scale >= 1).
  std::vector<MulConst> const_multipliers(double c, double const_scale, std::size_t level) const;
  // Multiplies limb i of every component by w[i].
  void multiply_residues(Ciphertext& a, const std::vector<MulConst>& w) const;
  // Decomposes poly (NTT form, level l) into digits extended to q_0..q_l, P, in NTT form: digit d,
  // extended limb j at digits + (d * ext + j) * N, ext = l + 1 + K. Returns the digit buffer
  // (per-thread scratch, valid until the next key switch on this thread).
  // With perm, decomposes poly o perm (a Galois automorphism, a permutation in NTT form) without
  // materializing it. With one-prime digits that equals the decomposition of poly with every
  // extended limb permuted, word for word (see rotate_one).
  // With skip_own (and no perm), a digit's own limbs are not copied: the caller reads them from poly.
  u64* mod_up(const u64* poly, std::size_t level, const std::uint32_t* perm = nullptr, bool skip_own = false) const;
  // Key switching of one decomposition with `count` keys (and permutations of the digits, for hoisted
  // rotations; null for none): for each s, (ks0, ks1) = round(sum_d (digit_d o perm_s) * key_s,d / P)
  // over q_0..q_l, added to (out0[s], out1[s]) when `accumulate`, else written there, with
  // base0 o base_perms[s] added to out0[s] when base0 is given. The inner products of the P limbs
  // come first; then each chain limb's inner product, conversion and subtraction run in one task, so
  // nothing over Q*P leaves the cache. With `sum`, the count results are summed over Q*P and written
  // to out0[0], out1[0] after a single mod-down.
  void key_switch(const u64* digits, std::size_t level, const KeySwitchKey* const* keys,
                  const std::uint32_t* const* perms, std::size_t count, u64* const* out0, u64* const* out1,
                  const u64* base0, const std::uint32_t* const* base_perms, bool accumulate, bool sum) const;
  // Throws unless `key` fits these parameters at `level` with `digits` digits.
  void check_key(const KeySwitchKey& key, std::size_t level, std::size_t digits) const;
  // r = a o g key-switched back to the secret key, for one Galois element g != 1 (r is not a).
  // With one-prime digits the automorphism is applied to c1 before the decomposition, which then
  // needs no permutation (the key switch of a relinearization); see the definition.
  void rotate_one(const Ciphertext& a, std::uint32_t galois_elt, const KeySwitchKey& key, Ciphertext& r) const;
  // r[s] = (a0 o g_s, 0) + key switch of the decomposed a1 o g_s, for `count` Galois elements at once.
  void switch_galois(const Ciphertext& a, const u64* digits, const std::uint32_t* galois_elts,
                     const KeySwitchKey* const* keys, std::size_t count, Ciphertext* const* r) const;
  std::shared_ptr<const std::vector<std::uint32_t>> permutation(std::uint32_t galois_elt) const;
  const KeySwitchKey& galois_key(const GaloisKeys& gk, std::uint32_t elt, int step) const;

  ContextPtr ctx_;
  mutable std::mutex perm_mutex_;
  mutable std::map<std::uint32_t, std::shared_ptr<const std::vector<std::uint32_t>>> perms_;
};

}  // namespace hecnn::ckks
