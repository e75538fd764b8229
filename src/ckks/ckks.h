#pragma once
// The hecnn CKKS library: include this one header.
#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "common/error.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ckks/keys.h"
#include "ckks/params.h"
#include "ckks/serialization.h"
#include "ring/simd.h"
#include "common/threads.h"
