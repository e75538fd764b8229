#pragma once
// Internal: the arithmetic kernels behind every hot loop, one implementation per SIMD level.
// Each level's namespace (portable, avx2, avx512, ifma) defines every kernel; where a level has no
// faster way (or the prime is too large for it: IFMA needs q < 2^50) it forwards to the level below.
// All results are fully reduced to [0, q), so every level is bit-identical to `portable`.
// The dispatching wrappers at the bottom pick the level from simd_level() on each call.
#include <cstddef>
#include <cstdint>

#include "ring/modarith.h"
#include "ring/simd.h"

namespace hecnn::ring {
class NttTables;
struct InverseScale;
namespace kernels {

// Below this bound a prime qualifies for the IFMA (52-bit) kernels: lazy values in [0, 4q) < 2^52.
constexpr u64 kIfmaPrimeBound = 1ULL << 50;

// The multi-term dot kernel (dot_block): at most kDotBlock coefficients and kDotMaxTerms terms a
// call (products below 2^120 sum without overflow in 128 bits, and below 2^60 in 52-bit halves).
constexpr std::size_t kDotBlock = 64;
constexpr std::size_t kDotMaxTerms = 256;
// Per-prime constants of dot_block, built once per prime (not per call).
struct DotConstants {
  DotConstants() = default;
  explicit DotConstants(const Modulus& m);
  u64 c52 = 0, c52_shoup = 0;    // 2^52 mod q and floor(c52 * 2^52 / q)
  u64 c104 = 0, c104_shoup = 0;  // 2^104 mod q and its quotient
  u64 one_shoup = 0;             // floor(2^52 / q)
};

#define HECNN_KERNELS_DECLARE                                                                                  \
  /* Negacyclic NTT from in to out (in == out allowed, else no overlap). forward: of in[i] + add, each     \
     below 4q; inverse: input in [0, 2q), times scale's factor when given; outputs in [0, q). */                                                \
  void ntt_forward(const NttTables& t, const u64* in, u64* out, u64 add);                                      \
  void ntt_inverse(const NttTables& t, const u64* in, u64* out, const InverseScale* scale);                    \
  /* Element-wise, inputs in [0, q) unless noted; out may alias an input. */                                  \
  void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q);                                    \
  void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q);                                    \
  void neg_mod(const u64* a, u64* out, std::size_t n, u64 q);                                                  \
  void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q);                                    \
  /* out = a * w mod q, a in [0, 4q). */                                                                       \
  void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q);                        \
  /* out = (x - y + c) * w mod q, or out += that when accumulate. */                                           \
  void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n, u64 q, \
                          bool accumulate);                                                                    \
  /* out = b + a * w mod q, a and b in [0, q); out may alias b. */                                             \
  void mul_scalar_add_mod(const u64* a, const MulConst& w, const u64* b, u64* out, std::size_t n, u64 q);      \
  /* out = (x - y) * w + z * v mod q, all inputs in [0, q). */                                                 \
  void sub_mul_add_scalar_mod(const u64* x, const u64* y, const MulConst& w, const u64* z, const MulConst& v,  \
                              u64* out, std::size_t n, u64 q);                                                 \
  /* out = a mod q for any 64-bit a. */                                                                        \
  void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m);                                    \
  /* out = a mod q for any signed 64-bit a. */                                                                 \
  void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m);                    \
  void mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, const Modulus& m);                         \
  /* out = c + a * b mod q. */                                                                                 \
  void mul_add_mod(const u64* a, const u64* b, const u64* c, u64* out, std::size_t n, const Modulus& m);       \
  /* (a0, a1) x (b0, b1) -> (a0 b0, a0 b1 + a1 b0, a1 b1); outputs must not alias inputs. */                  \
  void tensor_mod(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* d0, u64* d1, u64* d2,       \
                  std::size_t n, const Modulus& m);                                                            \
  void square_mod(const u64* a0, const u64* a1, u64* d0, u64* d1, u64* d2, std::size_t n, const Modulus& m);   \
  /* out[i] = a[perm[i]]; out must not alias a. */                                                             \
  void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n);                              \
  /* Key-switching inner product over D digits: out0 = sum_d x_d * kb[d], out1 = sum_d x_d * ka[d] mod q,    \
     x_d = digits[d] (permuted by perm when not null). */                                                      \
  void ks_inner_product(const u64* const* digits, const u64* const* kb, const u64* const* ka, std::size_t D,   \
                        const std::uint32_t* perm, u64* out0, u64* out1, std::size_t n, const Modulus& m);     \
  /* Base conversion sum: out = sum_i y[i] * hat[i] mod q, hat[i] < q; y[i] values below y_bound. */          \
  void convert_sum(const u64* const* y, const u64* hat, std::size_t k, u64 y_bound, u64* out, std::size_t n,   \
                   const Modulus& m);                                                                          \
  /* Dot products of one block: dst[i] = sum_t w[t] * src[t][i] mod q for i < len, len <= kDotBlock,        \
     terms <= kDotMaxTerms, w[t] < q and src values < q (below 2^50 on the IFMA path). */                      \
  void dot_block(const u64* w, const u64* const* src, std::size_t terms, std::size_t len, u64* dst,            \
                 const Modulus& m, const DotConstants& c);                                                  \
  /* Dot products of `rows` rows sharing their terms: dst[r][i] = sum_t w[t * rows + r] * src[t][i] mod q   \
     (plus dst[r][i] when accumulate) for i < len, terms <= kDotMaxTerms, w < q, src values < q. Each      \
     loaded input feeds every row (a convolution's output channels at one position share their inputs). */ \
  void dot_rows(const u64* w, std::size_t rows, const u64* const* src, std::size_t terms, std::size_t len,   \
                u64* const* dst, bool accumulate, const Modulus& m, const DotConstants& c);

namespace portable {
HECNN_KERNELS_DECLARE
}
namespace avx2 {
HECNN_KERNELS_DECLARE
}
namespace avx512 {
HECNN_KERNELS_DECLARE
}
namespace ifma {
HECNN_KERNELS_DECLARE
}
#undef HECNN_KERNELS_DECLARE

#define HECNN_DISPATCH(fn, ...)                                  \
  switch (simd_level()) {                                        \
    case SimdLevel::ifma: return ifma::fn(__VA_ARGS__);          \
    case SimdLevel::avx512: return avx512::fn(__VA_ARGS__);      \
    case SimdLevel::avx2: return avx2::fn(__VA_ARGS__);          \
    default: return portable::fn(__VA_ARGS__);                   \
  }

inline void ntt_forward(const NttTables& t, const u64* in, u64* out, u64 add) {
  HECNN_DISPATCH(ntt_forward, t, in, out, add)
}
inline void ntt_inverse(const NttTables& t, const u64* in, u64* out, const InverseScale* scale) {
  HECNN_DISPATCH(ntt_inverse, t, in, out, scale)
}
inline void add_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(add_mod, a, b, out, n, q)
}
inline void sub_mod(const u64* a, const u64* b, u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(sub_mod, a, b, out, n, q)
}
inline void neg_mod(const u64* a, u64* out, std::size_t n, u64 q) { HECNN_DISPATCH(neg_mod, a, out, n, q) }
inline void add_scalar_mod(const u64* a, u64 c, u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(add_scalar_mod, a, c, out, n, q)
}
inline void mul_scalar_mod(const u64* a, const MulConst& w, u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(mul_scalar_mod, a, w, out, n, q)
}
inline void sub_mul_scalar_mod(const u64* x, const u64* y, u64 c, const MulConst& w, u64* out, std::size_t n, u64 q,
                               bool accumulate) {
  HECNN_DISPATCH(sub_mul_scalar_mod, x, y, c, w, out, n, q, accumulate)
}
inline void mul_scalar_add_mod(const u64* a, const MulConst& w, const u64* b, u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(mul_scalar_add_mod, a, w, b, out, n, q)
}
inline void sub_mul_add_scalar_mod(const u64* x, const u64* y, const MulConst& w, const u64* z, const MulConst& v,
                                   u64* out, std::size_t n, u64 q) {
  HECNN_DISPATCH(sub_mul_add_scalar_mod, x, y, w, z, v, out, n, q)
}
inline void reduce_mod(const u64* a, u64* out, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(reduce_mod, a, out, n, m)
}
inline void reduce_signed_mod(const std::int64_t* a, u64* out, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(reduce_signed_mod, a, out, n, m)
}
inline void mul_mod(const u64* a, const u64* b, u64* out, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(mul_mod, a, b, out, n, m)
}
inline void mul_add_mod(const u64* a, const u64* b, const u64* c, u64* out, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(mul_add_mod, a, b, c, out, n, m)
}
inline void tensor_mod(const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* d0, u64* d1, u64* d2,
                       std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(tensor_mod, a0, a1, b0, b1, d0, d1, d2, n, m)
}
inline void square_mod(const u64* a0, const u64* a1, u64* d0, u64* d1, u64* d2, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(square_mod, a0, a1, d0, d1, d2, n, m)
}
inline void permute(const u64* a, const std::uint32_t* perm, u64* out, std::size_t n) {
  HECNN_DISPATCH(permute, a, perm, out, n)
}
inline void ks_inner_product(const u64* const* digits, const u64* const* kb, const u64* const* ka, std::size_t D,
                             const std::uint32_t* perm, u64* out0, u64* out1, std::size_t n, const Modulus& m) {
  HECNN_DISPATCH(ks_inner_product, digits, kb, ka, D, perm, out0, out1, n, m)
}
inline void convert_sum(const u64* const* y, const u64* hat, std::size_t k, u64 y_bound, u64* out, std::size_t n,
                        const Modulus& m) {
  HECNN_DISPATCH(convert_sum, y, hat, k, y_bound, out, n, m)
}
inline void dot_block(const u64* w, const u64* const* src, std::size_t terms, std::size_t len, u64* dst,
                      const Modulus& m, const DotConstants& c) {
  HECNN_DISPATCH(dot_block, w, src, terms, len, dst, m, c)
}
inline void dot_rows(const u64* w, std::size_t rows, const u64* const* src, std::size_t terms, std::size_t len,
                     u64* const* dst, bool accumulate, const Modulus& m, const DotConstants& c) {
  HECNN_DISPATCH(dot_rows, w, rows, src, terms, len, dst, accumulate, m, c)
}
#undef HECNN_DISPATCH

}  // namespace kernels
}  // namespace hecnn::ring
