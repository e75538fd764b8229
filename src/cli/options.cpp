#include "cli/options.h"

#include "common/error.h"
#include "common/threads.h"

namespace hecnn::cli {

void add_dataset_options(CLI::App* cmd, DatasetOptions& o, bool with_offset) {
  cmd->add_option("--dataset,-d", o.dataset, "mnist | fashion-mnist | cifar10")->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir, "Directory holding the dataset files (default: the usual locations)");
  cmd->add_option("--limit,-n", o.limit, "Number of images (default: all)");
  if (with_offset) cmd->add_option("--offset", o.offset, "Index of the first image");
}

nn::Dataset load_dataset(const DatasetOptions& o, nn::Split split) { return nn::load_dataset(o.dataset, split, o.data_dir); }

std::size_t selected_count(const DatasetOptions& o, std::size_t size) {
  if (o.offset >= size) throw Error("--offset is beyond the " + std::to_string(size) + " images");
  const std::size_t left = size - o.offset;
  return o.limit == 0 ? left : std::min(o.limit, left);
}

void add_threads_option(CLI::App* cmd, int& threads) { cmd->add_option("--threads,-t", threads, "Threads (0: all cores)"); }

void apply_threads(int threads) { hecnn::set_num_threads(threads); }

void add_quiet_flag(CLI::App* cmd, bool& quiet) { cmd->add_flag("--quiet,-q", quiet, "No progress output"); }

void add_compile_options(CLI::App* cmd, he::CompileOptions& o) {
  cmd->add_option("--log-n", o.log_n, "Ring degree 2^k (default: the smallest secure one)");
  cmd->add_option("--scale-bits", o.scale_bits, "Scale 2^k (default: the largest the security bound allows, up to 40)");
  cmd->add_option("--extra-levels", o.extra_levels, "Levels beyond those the model needs");
  cmd->add_flag("--allow-insecure", o.allow_insecure,
                "Allow parameters above the 128-bit security bound (INSECURE: for tests and experiments only)");
}

}  // namespace hecnn::cli
