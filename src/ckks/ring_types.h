#pragma once
// The ring layer's types and helpers that the scheme uses throughout, brought into hecnn::ckks.
#include "ckks/ring_types.h"
#include "ring/ntt.h"
#include "ring/rns.h"

namespace hecnn::ckks {
using ring::BaseConverter;
using ring::DivideRoundByP;
using ring::Modulus;
using ring::MulConst;
using ring::NttTables;
using ring::u128;
using ring::u64;
}  // namespace hecnn::ckks
