#pragma once
// Memory is planned, never discovered: the peak memory of an encrypted run predicted from the plan
// before anything is allocated, so that a run that cannot fit is refused with the estimate.
#include <cstddef>
#include <string>
#include <vector>

#include "he/batch/schedule.h"
#include "he/plan.h"

namespace hecnn::he {

// Packed layout, diagonals encoded at every run: at most this many bytes of them at a time.
inline constexpr std::size_t kOnTheFlyPlaintextBytes = std::size_t{256} << 20;

struct MemoryEstimate {
  std::size_t keys = 0;         // evaluation keys as held in memory (expanded)
  std::size_t plaintexts = 0;   // packed layout: the diagonals encoded once, at engine construction
  std::size_t ciphertexts = 0;  // the largest stage's ciphertexts (inputs, outputs and temporaries)
  std::size_t tables = 0;       // the engine's tables: weight matrices, diagonal entries
  std::size_t process = 0;      // the rest of the process (code, contexts, the dataset)
  // Packed layout: the ciphertext bytes while each stage runs. Batch layout: the bytes of each
  // stage's values (and the query's) still held at the peak: the streamed schedule's line buffers.
  std::vector<std::pair<std::string, std::size_t>> stages;
  bool held_at_peak = false;  // which of the two `stages` holds
  std::vector<bool> preencoded;  // packed layout: per stage, whether its diagonals are encoded once
  std::size_t spill = 0;         // batch layout with a resident limit: the most bytes in the spill file
  std::size_t working = 0;       // batch layout: the largest step's inputs, outputs and temporaries
  std::size_t total() const { return keys + plaintexts + ciphertexts + tables + process; }
  // "1.23 GiB (keys ..., ciphertexts ..., ...)" and, with per_stage, one line per stage.
  std::string describe(bool per_stage = false) const;
};

// Bytes of a ciphertext of `components` at `level`.
std::size_t ciphertext_bytes(const ckks::CkksParameters& p, std::size_t level, std::size_t components = 2);
// Bytes of one plaintext (an encoded diagonal) at `level`.
std::size_t plaintext_bytes(const ckks::CkksParameters& p, std::size_t level);

// The predicted peak of one engine running one query (batch layout: a batch, whose ciphertext count
// does not depend on its image count; packed: one ciphertext group) on `threads` threads, with the
// keys, and the client's
// secret key and encryption of the query in the same process when `with_client`. Packed layout:
// the diagonals of a stage are encoded once while they fit in `plaintext_budget` bytes (stages in
// order), and encoded again at every run otherwise (preencoded says which).
// Batch layout: the streamed schedule with tiles of `tile` positions (he/batch/schedule.h); the
// query is encrypted as the schedule takes it when `with_client`, and held whole otherwise; with a
// `resident_limit`, the ciphertexts beyond it are spilled to disk (he::EngineOptions).
MemoryEstimate estimate_memory(const HePlan& plan, int threads, std::size_t plaintext_budget,
                               bool with_client, int tile = batch::kDefaultTile,
                               std::size_t resident_limit = static_cast<std::size_t>(-1));

// Free bytes on the file system holding `dir` (0 when unknown).
std::size_t free_disk_space(const std::string& dir);

// How much memory this process may still use, and what says so.
struct MemoryLimit {
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t bytes = kNone;  // kNone: no limit known
  std::string source;         // e.g. "MemAvailable", "ulimit -v", "cgroup /sys/fs/cgroup/x/memory.max"
};

// The least of what this process may still allocate: MemAvailable (/proc/meminfo); the memory
// cgroup's limit less its usage, for the process's own cgroup (from /proc/self/cgroup, under
// /sys/fs/cgroup) and each of its ancestors: cgroup v2 memory.max - memory.current ("max": no
// limit), cgroup v1 memory.limit_in_bytes - memory.usage_in_bytes; RLIMIT_AS (ulimit -v) less
// VmSize and RLIMIT_DATA (ulimit -d) less VmData (/proc/self/status). The environment variable
// HECNN_CGROUP_DIR names a cgroup directory to read instead of the process's own (for tests, or a
// limit the process's cgroup does not show). What cannot be read is skipped; bytes is kNone when
// nothing can. Throws hecnn::Error when HECNN_CGROUP_DIR is set to an unreadable directory or holds
// a malformed value.
MemoryLimit system_memory_limit();

// system_memory_limit().bytes, 0 when unknown.
std::size_t available_memory();

// "12G", "512M", "1.5G", "2048" (bytes), "4GiB"; throws hecnn::Error naming `what` on anything else
// or on a size below 64 MiB or above 1 PiB.
std::size_t parse_memory_size(const std::string& text, const std::string& what);

std::string gib(std::size_t bytes);

}  // namespace hecnn::he
