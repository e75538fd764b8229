#pragma once
// Shared pieces of the encrypted-inference commands.
#include <CLI/CLI.hpp>

#include <string>

#include "he/engine.h"

namespace hecnn::cli {

void add_compile_options(CLI::App* cmd, he::CompileOptions& o);
// Per-stage progress on stderr (done/total, elapsed, estimated remaining), or nothing.
he::ProgressFn stage_progress(bool enabled);
double peak_memory_gib();
void run_encrypted_eval_cli(const std::string& model, const std::string& dataset, const std::string& data_dir,
                            std::size_t limit, int threads, bool quiet, bool simulate, const he::CompileOptions& c);

}  // namespace hecnn::cli
