#pragma once
// One helper per option group shared by several commands, so each option has one name, one
// meaning and one help text everywhere.
#include <CLI/CLI.hpp>

#include <cstddef>
#include <string>

#include "he/compile/parameters.h"
#include "he/memory.h"
#include "he/runtime.h"
#include "he/plan.h"
#include "he/spec.h"
#include "nn/dataset.h"

namespace hecnn::cli {

struct DatasetOptions {
  std::string dataset = "mnist", data_dir;
  std::size_t limit = 0;   // 0: all
  std::size_t offset = 0;  // first image (commands that take --offset)
};
// The largest --limit and --offset.
constexpr long long kMaxImageCount = 1'000'000'000;

// Validator of an integer option, for Option::transform (check() would not let it rewrite the
// value): a decimal whole number in [lo, hi], or 0 when zero_too (0 then
// means `zero_means`, for the help text). Unlike CLI11's conversion it refuses "-1" for an unsigned
// option (which would wrap around) and reads "010" as ten.
CLI::Validator whole_number(long long lo, long long hi, bool zero_too = false, const std::string& zero_means = "");

// --dataset (one of nn::dataset_names()), --data-dir, --limit, and --offset when with_offset.
void add_dataset_options(CLI::App* cmd, DatasetOptions& o, bool with_offset);
// The test split (or train) of the named dataset; prints its size on stderr ("CIFAR-10 test set:
// 500 images").
nn::Dataset load_dataset(const DatasetOptions& o, nn::Split split = nn::Split::Test);
// Images selected from a dataset of `size`: min(limit or all, size - offset); throws hecnn::Error
// when the offset is beyond the dataset.
std::size_t selected_count(const DatasetOptions& o, std::size_t size);

// --threads (0: all cores, at most hecnn::max_threads()); apply_threads sets it for the process's
// parallel regions.
void add_threads_option(CLI::App* cmd, int& threads);
void apply_threads(int threads);

// --quiet: no progress output.
void add_quiet_flag(CLI::App* cmd, bool& quiet);

// --mode batch|packed|auto (auto: he::auto_layout, the one policy of eval, keygen and client).
void add_mode_option(CLI::App* cmd, std::string& mode);

// --memory-limit SIZE (default: what the process may still use, he::system_memory_limit()).
void add_memory_limit_option(CLI::App* cmd, std::string& limit);

// How a run uses memory beyond what it needs: a batch run's tiles (--tile N) and spill file
// (--spill-dir DIR); a packed run's weight diagonals encoded once and kept for every query
// (--diagonal-cache SIZE).
struct StreamOptions {
  int tile = he::batch::kDefaultTile;
  std::string spill_dir;
  std::string diagonal_cache;  // empty: a quarter of the memory limit (kDefaultDiagonalCacheShare)
};
// The default --diagonal-cache: this share of the memory limit, so that a run leaves most of the
// machine to others.
constexpr std::size_t kDefaultDiagonalCacheShare = 4;  // 1/4
void add_stream_options(CLI::App* cmd, StreamOptions& o);
// The limit: the parsed --memory-limit (source "--memory-limit"), or he::system_memory_limit().
// Throws hecnn::Error on a malformed size.
he::MemoryLimit memory_limit(const std::string& limit);
// "8.00 GiB (--memory-limit)", "19.10 GiB (ulimit -v)", "unknown".
std::string describe(const he::MemoryLimit& limit);
// Predicts the peak memory of running `plan` on one query and refuses (throws
// hecnn::Error with the estimate, the limit and where it comes from, and what would fit) when it
// exceeds `limit`; prints the estimate unless quiet. Returns the engine's options: the bytes of
// diagonals a packed engine may encode once (--diagonal-cache, default a quarter of the limit); a
// batch engine's tile, and with a spill directory, the bytes it may keep in memory.
he::EngineOptions plan_memory(const he::HePlan& plan, const he::MemoryLimit& limit, bool with_client, bool quiet,
                              const StreamOptions& stream = {});

// --log-n, --scale-bits, --extra-levels (within the bounds of he/compile/parameters.h), --allow-insecure.
void add_compile_options(CLI::App* cmd, he::CompileOptions& o);

}  // namespace hecnn::cli
