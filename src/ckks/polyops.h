#pragma once
// Internal helpers shared by the key generator, encryptor, encoder and evaluator.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckks/context.h"

namespace hecnn::ckks::detail {

// Key indices of a level-l polynomial (q_0..q_l).
std::vector<std::size_t> chain_indices(std::size_t level);
// Key indices of an extended level-l polynomial (q_0..q_l, p_0..p_K-1).
std::vector<std::size_t> extended_indices(const CkksContext& ctx, std::size_t level);

// Forward / inverse NTT of limb j (modulus key_indices[j]) at data + j*N, parallel over limbs.
void ntt_forward(const CkksContext& ctx, u64* data, const std::vector<std::size_t>& key_indices);
void ntt_inverse(const CkksContext& ctx, u64* data, const std::vector<std::size_t>& key_indices);

// A small signed polynomial (secret, error) reduced modulo each listed prime, in NTT form.
template <typename Int>
void small_to_ntt(const CkksContext& ctx, const Int* v, const std::vector<std::size_t>& key_indices, u64* out);

// ext holds a level-l polynomial over q_0..q_l, p_0..p_K-1 in NTT form; writes round(ext / P) over
// q_0..q_l (NTT form) into out, or adds it to out when `accumulate`. The P limbs of ext are clobbered.
void divide_round_by_p(const CkksContext& ctx, u64* ext, std::size_t level, u64* out, bool accumulate);
// The same for `count` polynomials at once, parallel over all their limbs (no serial section).
void divide_round_by_p(const CkksContext& ctx, u64* const* ext, std::size_t count, std::size_t level,
                       u64* const* out, const bool* accumulate);

// small_to_ntt for several polynomials at once, parallel over all their limbs.
template <typename Int>
void small_to_ntt_many(const CkksContext& ctx, const Int* const* v, std::size_t count,
                       const std::vector<std::size_t>& key_indices, u64* const* out);

// The integer nearest to x (a finite double of any magnitude) modulo m; exact.
u64 double_to_residue(double x, const Modulus& m);

}  // namespace hecnn::ckks::detail
