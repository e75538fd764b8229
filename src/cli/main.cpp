// hecnn: command-line entry point. The subcommands are registered from the files of src/cli/
// (cli/commands.h), a file per family of commands.
#include <CLI/CLI.hpp>

#include <malloc.h>

#include <cstring>

#include "cli/commands.h"
#include "common/exit_codes.h"
#include "common/threads.h"
#include "hecnn/version.h"

int main(int argc, char** argv) {
  // Ciphertexts (1 to 30 MB) are allocated and freed all the time: keep freed memory in the heap
  // instead of returning it to the kernel and faulting it in (zeroed) again on the next allocation.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc >= 2 && std::strcmp(argv[1], "train") == 0) return hecnn::cli::exec_train(argc - 2, argv + 2);
  CLI::App app{"hecnn: private CNN inference over CKKS homomorphic encryption"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hecnn " HECNN_VERSION);
  hecnn::cli::register_demo(app);
  hecnn::cli::register_params(app);
  hecnn::cli::register_approx(app);
  hecnn::cli::register_models(app);
  hecnn::cli::register_plan(app);
  hecnn::cli::register_client_server(app);
  hecnn::cli::register_train(app);
  hecnn::cli::register_remote(app);
  return hecnn::run_and_report("hecnn", [&] {
    hecnn::check_thread_environment();
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return hecnn::usage_exit_code(app.exit(e));
    }
    return static_cast<int>(hecnn::kExitOk);
  });
}
