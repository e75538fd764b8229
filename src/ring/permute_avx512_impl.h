// Internal: permuted 8-lane loads shared by kernels_avx512.cpp and kernels_ifma.cpp. Include inside an
// anonymous namespace after defining HECNN_TARGET (a target attribute with AVX-512 F).
//
// A Galois automorphism in NTT (bit-reversed) order takes every aligned block of 8 outputs from one
// aligned block of 8 inputs, in some lane order (across such a block only the top 3 bits of the
// evaluation exponent (2 brev(i) + 1) g mod 2N change). Such a block is one 64-byte load and a lane
// permutation instead of a gather, which costs several times more where microcode slows gathers down
// (the Gather Data Sampling mitigation). Any other index block takes the gather.

// Source indices perm[0..8) as 64-bit lanes.
HECNN_TARGET inline __m512i perm_indices(const std::uint32_t* perm) {
  return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(perm)));
}

// True when the 8 indices are the 8 distinct lanes of one aligned block, whose start goes to *base
// (every word of that block is then one of the indices: the load stays within what the gather reads).
HECNN_TARGET inline bool perm_is_block(__m512i idx, std::uint32_t first, std::size_t* base) {
  const std::size_t b = first & ~std::size_t{7};
  const __m512i lane = _mm512_and_si512(idx, _mm512_set1_epi64(7));
  const __mmask8 same =
      _mm512_cmpeq_epi64_mask(_mm512_sub_epi64(idx, lane), _mm512_set1_epi64(static_cast<long long>(b)));
  const unsigned long long lanes =
      static_cast<unsigned long long>(_mm512_reduce_or_epi64(_mm512_sllv_epi64(_mm512_set1_epi64(1), lane)));
  *base = b;
  return same == 0xFF && lanes == 0xFF;
}

// a[idx[k]] for the 8 lanes.
HECNN_TARGET inline __m512i perm_load(const u64* a, __m512i idx, bool block, std::size_t base) {
  return block ? _mm512_permutexvar_epi64(idx, _mm512_loadu_si512(a + base))
               : _mm512_i64gather_epi64(idx, reinterpret_cast<const long long*>(a), 8);
}
