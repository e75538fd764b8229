// hecnn: command-line entry point. Each subcommand lives in its own file.
#include <CLI/CLI.hpp>

#include <cstring>
#include <iostream>

#include "common/error.h"
#include "cli/commands.h"
#include "hecnn/version.h"

int main(int argc, char** argv) {
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const hecnn::Error& e) {
    std::cerr << "hecnn: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hecnn: unexpected error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
