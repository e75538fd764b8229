#pragma once
// Shared pieces of the libFuzzer harnesses: the input as a file (loaders take paths), and the
// expected outcome of every input: either success or hecnn::Error. Anything else (another
// exception, a crash, a leak, an allocation over -malloc_limit_mb, a timeout) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/error.h"

namespace hecnn::fuzz {

// A scratch directory of this process (under $TMPDIR or /tmp), created once, removed at exit.
const std::string& scratch_dir();

// Writes bytes to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, const std::uint8_t* data, std::size_t size);

// Runs f; hecnn::Error is the expected way to refuse an input.
template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const hecnn::Error&) {
  }
}

}  // namespace hecnn::fuzz

namespace hecnn::fuzz {
// A key directory for a tiny model at small insecure parameters (made once per process), with the
// model's plan; and a valid query file for it.
struct TinySetup {
  std::string key_dir, query_path;
};
const TinySetup& tiny_setup();
}  // namespace hecnn::fuzz
