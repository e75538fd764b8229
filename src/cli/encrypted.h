#pragma once
// `hecnn eval --encrypted`: keygen, encrypt, infer, decrypt in one process, with timings.
#include <string>

#include "cli/options.h"
#include "he/compile/parameters.h"

namespace hecnn::cli {

struct EncryptedEvalOptions {
  std::string model;
  DatasetOptions data;
  int threads = 0;
  bool quiet = false, simulate = false;
  he::CompileOptions compile;
  std::string mode = "auto";
  std::string memory_limit;
  StreamOptions stream;
  std::string predictions;  // file for one line per image (index, class, logits); empty: none
};

void run_encrypted_eval(const EncryptedEvalOptions& o);

}  // namespace hecnn::cli
