#pragma once
// The one mapping from errors to exit codes, for every program of the project:
//   0  success
//   1  hecnn::Error: bad input, options or files, with a message a user can act on
//   2  anything else (a bug, or a library error): "unexpected error"
//   3  out of memory (std::bad_alloc): the run needed more memory than the machine gave it
// Usage errors of the command-line parser keep CLI11's own codes (printed by the parser).
#include <exception>
#include <string>

namespace hecnn {

enum ExitCode : int { kExitOk = 0, kExitError = 1, kExitUnexpected = 2, kExitOutOfMemory = 3 };

// Prints "<program>: error: <message>" (or the unexpected / out-of-memory form) for the exception
// to stderr and returns its exit code. Call from a catch (...) block.
int report_exception(const std::string& program, std::exception_ptr e = std::current_exception());

// Runs body() and maps what it throws; body's own return value is the exit code otherwise.
template <typename F>
int run_and_report(const std::string& program, F&& body) {
  try {
    return body();
  } catch (...) {
    return report_exception(program);
  }
}

}  // namespace hecnn
