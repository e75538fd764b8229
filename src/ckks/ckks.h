#pragma once
// The hecnn CKKS library: include this one header.
#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/error.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"
#include "ckks/keys.h"
#include "ckks/params.h"
#include "ckks/serialization.h"
#include "ckks/simd.h"
#include "ckks/threads.h"
