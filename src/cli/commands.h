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
}  // namespace hecnn::cli
