#include "cli/options.h"

#include "he/backend.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/threads.h"
#include "he/memory.h"

namespace hecnn::cli {

CLI::Validator whole_number(long long lo, long long hi, bool zero_too, const std::string& zero_means) {
  const std::string range = "from " + std::to_string(lo) + " to " + std::to_string(hi);
  const std::string desc = zero_too ? "0 (" + zero_means + ") or " + range : range;
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        // Decimal digits with an optional minus sign only: CLI11 would read "-1" into an unsigned
        // option as 2^64 - 1, and "010" as octal.
        long long v = 0;
        const char* b = in.data();
        const char* e = in.data() + in.size();
        const auto [end, ec] = std::from_chars(b, e, v);
        const bool number = !in.empty() && ec != std::errc::invalid_argument && end == e;
        if (number && ec == std::errc() && ((zero_too && v == 0) || (v >= lo && v <= hi))) {
          in = std::to_string(v);  // what CLI11 then converts: "010" stays ten, not octal eight
          return "";
        }
        return "must be a whole number " + (zero_too ? "0 (" + zero_means + ") or " : std::string()) + range + "; got '" +
               in + "'";
      },
      desc);
}

void add_dataset_options(CLI::App* cmd, DatasetOptions& o, bool with_offset) {
  std::string names;
  for (const auto& n : nn::dataset_names()) names += (names.empty() ? "" : " | ") + n;
  cmd->add_option("--dataset,-d", o.dataset, names)->capture_default_str()->check(CLI::IsMember(nn::dataset_names()));
  cmd->add_option("--data-dir", o.data_dir, "Directory holding the dataset files (default: the usual locations)");
  cmd->add_option("--limit,-n", o.limit, "Number of images (default: all)")->transform(whole_number(0, kMaxImageCount));
  if (with_offset) cmd->add_option("--offset", o.offset, "Index of the first image")->transform(whole_number(0, kMaxImageCount));
}

nn::Dataset load_dataset(const DatasetOptions& o, nn::Split split) {
  nn::Dataset d = nn::load_dataset(o.dataset, split, o.data_dir);
  std::fprintf(stderr, "%s %s set: %zu images\n", nn::display_name(o.dataset).c_str(), split == nn::Split::Test ? "test" : "training",
               d.size());
  return d;
}

std::size_t selected_count(const DatasetOptions& o, std::size_t size) {
  if (size == 0) throw Error("the " + nn::display_name(o.dataset) + " set holds no images");
  if (o.offset >= size) {
    throw Error("--offset " + std::to_string(o.offset) + " is beyond the " + std::to_string(size) + " images of the " +
                nn::display_name(o.dataset) + " set (the first is 0, the last " + std::to_string(size - 1) + ")");
  }
  const std::size_t left = size - o.offset;
  return o.limit == 0 ? left : std::min(o.limit, left);
}

void add_threads_option(CLI::App* cmd, int& threads) {
  cmd->add_option("--threads,-t", threads, "Threads (0: all cores)")->transform(whole_number(0, hecnn::max_threads()));
}

void apply_threads(int threads) { hecnn::set_num_threads(threads); }

void add_quiet_flag(CLI::App* cmd, bool& quiet) { cmd->add_flag("--quiet,-q", quiet, "No progress output"); }

void add_mode_option(CLI::App* cmd, std::string& mode) {
  cmd->add_option("--mode", mode,
                  "Layout: batch (one image per slot: throughput, up to N/2 images per batch), packed (an image's values "
                  "in the slots of a few ciphertexts: latency), or auto (packed while the images fill at most 16 packed "
                  "queries, batch beyond unless it does not fit in the memory limit)")
      ->check(CLI::IsMember({"batch", "packed", "auto"}))
      ->capture_default_str();
}

void add_memory_limit_option(CLI::App* cmd, std::string& limit) {
  cmd->add_option("--memory-limit", limit,
                  "Refuse a run whose predicted peak memory exceeds this (e.g. 8G, 512M; default: the least of the "
                  "memory available now, the cgroup's memory.max less its usage, and ulimit -v and -d less what the "
                  "process uses)");
}

he::MemoryLimit memory_limit(const std::string& limit) {
  if (!limit.empty()) return {he::parse_memory_size(limit, "--memory-limit"), "--memory-limit"};
  return he::system_memory_limit();
}

std::string describe(const he::MemoryLimit& limit) {
  if (limit.bytes == he::MemoryLimit::kNone) return "unknown";
  return he::gib(limit.bytes) + " (" + limit.source + ")";
}

void add_stream_options(CLI::App* cmd, StreamOptions& o) {
  cmd->add_option("--tile", o.tile,
                  "Batch layout: the streamed schedule's tile side in positions (a stage before a 2x2 pooling gets twice "
                  "that): smaller keeps fewer ciphertexts in memory, 4096 runs whole stages at once; 0: per stage, the "
                  "smallest tile with 16 ciphertexts per thread")
      ->transform(whole_number(0, he::batch::kMaxTile))
      ->capture_default_str();
  cmd->add_option("--spill-dir", o.spill_dir,
                  "Batch layout, last resort: keep the ciphertexts that do not fit in --memory-limit in a file in this "
                  "directory (removed when the run ends, however it ends)");
  cmd->add_option("--diagonal-cache", o.diagonal_cache,
                  "Packed layout: at most this much memory (e.g. 4G) for weight diagonals encoded once and kept for "
                  "every query; the others are encoded again at every query (0: none; default: a quarter of "
                  "--memory-limit; at most what the limit leaves)");
}

he::EngineOptions plan_memory(const he::HePlan& plan, const he::MemoryLimit& memory, bool with_client, bool quiet,
                              const StreamOptions& stream) {
  const int threads = hecnn::num_threads();
  he::EngineOptions eo;
  eo.tile = stream.tile;
  const std::size_t limit = memory.bytes;
  const std::string limit_text = describe(memory);
  const bool batch = he::backend(plan.layout).streams();  // tiles and spilling
  const he::MemoryEstimate least = he::estimate_memory(plan, threads, 0, with_client, stream.tile);
  if (least.total() > limit) {
    if (batch && !stream.spill_dir.empty()) {
      std::error_code ec;
      if (!std::filesystem::is_directory(stream.spill_dir, ec)) throw Error("--spill-dir: '" + stream.spill_dir + "' is not a directory");
      // Spilling: everything but the ciphertexts the schedule keeps between steps must fit.
      const std::size_t fixed = least.total() - least.ciphertexts;
      const std::size_t need = fixed + least.working + least.working / 8;
      if (need > limit) {
        throw Error("predicted peak memory " + least.describe(true) + "\nexceeds the memory limit of " + limit_text +
                    ", and with --spill-dir one step alone needs " + he::gib(need) +
                    ": try a smaller --tile, or --mode packed");
      }
      eo.spill_dir = stream.spill_dir;
      eo.resident_bytes = (limit - need) * 8 / 9;
      const he::MemoryEstimate est = he::estimate_memory(plan, threads, 0, with_client, stream.tile, eo.resident_bytes);
      const std::size_t free_disk = he::free_disk_space(stream.spill_dir);
      if (est.spill > free_disk) {
        throw Error("--spill-dir: the run would spill up to " + he::gib(est.spill) + " to '" + stream.spill_dir + "', which has " +
                    he::gib(free_disk) + " free");
      }
      if (!quiet) {
        std::printf("memory: predicted peak %s; limit %s; up to %s spilled to %s\n", est.describe().c_str(),
                    limit_text.c_str(), he::gib(est.spill).c_str(), stream.spill_dir.c_str());
      }
      return eo;
    }
    std::string hint;
    if (batch) {
      hint = "; try";
      for (int t = stream.tile == he::batch::kAutoTile ? 2 : stream.tile / 2; t >= 1; t /= 2) {
        const std::size_t smaller = he::estimate_memory(plan, threads, 0, with_client, t).total();
        if (smaller <= limit) {
          hint += " --tile " + std::to_string(t) + " (" + he::gib(smaller) + "),";
          break;
        }
      }
      hint += " --spill-dir DIR, or --mode packed";
    } else {
      hint = "; try a smaller model, fewer threads" + std::string(memory.source == "--memory-limit" ? " or a larger --memory-limit" : "");
    }
    throw Error("predicted peak memory " + least.describe(true) + "\nexceeds the memory limit of " + limit_text + hint);
  }
  // The diagonals kept for every query: --diagonal-cache, by default a quarter of the limit, and
  // never more than what the limit leaves beside everything else.
  const std::size_t left = limit == he::MemoryLimit::kNone ? limit : limit - least.total();
  const std::size_t cache = stream.diagonal_cache == "0"       ? 0
                            : !stream.diagonal_cache.empty()     ? he::parse_memory_size(stream.diagonal_cache, "--diagonal-cache")
                            : limit == he::MemoryLimit::kNone ? limit
                                                              : limit / kDefaultDiagonalCacheShare;
  eo.plaintext_budget = std::min(cache, left);
  const he::MemoryEstimate est = he::estimate_memory(plan, threads, eo.plaintext_budget, with_client, stream.tile);
  if (!quiet) std::printf("memory: predicted peak %s; limit %s\n", est.describe().c_str(), limit_text.c_str());
  return eo;
}

void add_compile_options(CLI::App* cmd, he::CompileOptions& o) {
  cmd->add_option("--packed-images", o.packed_images,
                  "Packed layout: images per query to plan for (the layout minimizes their total time; 1: the "
                  "latency of one image)")
      ->transform(whole_number(1, 65536))
      ->capture_default_str();
  cmd->add_option("--log-n", o.log_n, "Ring degree 2^k (default: the smallest secure one)")
      ->transform(whole_number(he::kMinLogN, he::kMaxLogN, true, "the default"));
  cmd->add_option("--scale-bits", o.scale_bits, "Scale 2^k (default: the largest the security bound allows, up to 40)")
      ->transform(whole_number(he::kMinScaleBits, he::kMaxScaleBits, true, "the default"));
  cmd->add_option("--extra-levels", o.extra_levels, "Levels beyond those the model needs")
      ->transform(whole_number(0, he::kMaxLevels));
  cmd->add_flag("--allow-insecure", o.allow_insecure,
                "Allow parameters above the 128-bit security bound (INSECURE: for tests and experiments only)");
  cmd->add_option_function<std::string>(
         "--bootstrap", [&o](const std::string& v) { o.bootstrap = he::parse_bootstrap_mode(v); },
         "Bootstrapping (packed layout): auto (when no parameters hold the model's depth), on, off. With it the "
         "parameters are the bootstrapping chain (boot-n65536; --log-n sets its ring degree, below 16 with "
         "--allow-insecure) and bootstraps go on the inputs of normalized activations")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->default_str("auto");
}

}  // namespace hecnn::cli
