#pragma once
// The one mapping from errors to exit codes, for every program of the project:
//   0  success
//   1  hecnn::Error: bad input, options or files, with a message a user can act on
//   2  usage: the command line could not be parsed (unknown option, missing or out-of-range value;
//      the parser prints the message), as getopt-style programs and shells do
//   3  out of memory (std::bad_alloc): the run needed more memory than the machine gave it
//   4  anything else (a bug, or a library error): "unexpected error"
#include <exception>
#include <string>

namespace hecnn {

enum ExitCode : int { kExitOk = 0, kExitError = 1, kExitUsage = 2, kExitOutOfMemory = 3, kExitUnexpected = 4 };

// The exit code for what a command-line parser (CLI11's App::exit) returned: 0 stays 0 (--help,
// --version), any other is kExitUsage.
inline int usage_exit_code(int parser_code) { return parser_code == 0 ? kExitOk : kExitUsage; }

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
