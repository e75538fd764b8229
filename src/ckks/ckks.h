#pragma once
// The hecnn CKKS library: include this one header.
#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ckks/keys.h"
#include "ckks/params.h"
#include "ckks/serialization.h"
#include "common/error.h"
#include "common/threads.h"
#include "ring/simd.h"

namespace hecnn::ckks {
// The vectorization level of the ring layer's kernels (see ring/simd.h), for users of the scheme.
using ring::detected_simd_level;
using ring::parse_simd_level;
using ring::set_simd_level;
using ring::simd_level;
using ring::simd_level_name;
using ring::simd_level_supported;
using ring::SimdLevel;
using ring::supported_simd_levels;
}  // namespace hecnn::ckks
