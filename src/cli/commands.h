#pragma once
#include <CLI/CLI.hpp>

namespace hecnn::cli {
// Subcommands register themselves with a callback that runs on parse.
void register_demo(CLI::App& app);
void register_params(CLI::App& app);
void register_approx(CLI::App& app);
void register_models(CLI::App& app);
void register_plan(CLI::App& app);
void register_client_server(CLI::App& app);
void register_train(CLI::App& app);
void register_remote(CLI::App& app);
// Replaces the process with hecnn-train (next to hecnn) given argv[0..argc); returns only on error.
int exec_train(int argc, char** argv);
}  // namespace hecnn::cli
