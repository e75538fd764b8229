#include "he/memory.h"

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "common/error.h"
#include "he/backend.h"

namespace hecnn::he {

namespace {
constexpr std::size_t kProcessBytes = 256u << 20;  // code, contexts, NTT tables, the dataset, the allocator's slack

}  // namespace

std::size_t plaintext_bytes(const ckks::CkksParameters& p, std::size_t level) { return (level + 1) * p.poly_degree() * 8; }

std::size_t ciphertext_bytes(const ckks::CkksParameters& p, std::size_t level, std::size_t components) {
  return components * plaintext_bytes(p, level);
}

std::string gib(std::size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return b;
}

std::string MemoryEstimate::describe(bool per_stage) const {
  std::ostringstream os;
  os << gib(total()) << " (keys " << gib(keys) << ", ciphertexts " << gib(ciphertexts);
  if (plaintexts) os << ", encoded weights " << gib(plaintexts);
  if (spill) os << ", spilled to disk at most " << gib(spill);
  os << ", tables " << gib(tables) << ", process " << gib(process) << ")";
  if (per_stage) {
    if (held_at_peak) os << "\n  held at the peak, by the stage that made them:";
    for (const auto& [name, bytes] : stages) os << "\n    " << name << ": " << gib(bytes) << " of ciphertexts";
  }
  return os.str();
}

MemoryEstimate estimate_memory(const HePlan& plan, int threads, std::size_t plaintext_budget,
                               bool with_client, int tile, std::size_t resident_limit) {
  if (!plan.params) throw Error("memory estimate: the plan has no parameters");
  const ckks::CkksParameters& p = *plan.params;
  const Program& prog = plan.program;
  MemoryEstimate m;
  m.process = kProcessBytes;
  if (plan.keys.relinearization) m.keys += relin_key_bytes(p, false);
  m.keys += rotation_keys_bytes(p, plan.keys, false);
  if (with_client) m.keys += plaintext_bytes(p, p.max_level()) * 2;  // the secret key, and the client's encoder buffers
  m.preencoded.assign(prog.stages.size(), false);
  if (plan.bootstrap) {
    // The encapsulation keys (s' -> s over the whole chain, s -> s' at q_0 p_0) and conjugation; the
    // bootstrap's DFT plaintexts come out of the plaintext budget first (as the engine stores them).
    m.keys += relin_key_bytes(p, false) + 4 * p.poly_degree() * sizeof(std::uint64_t) +
              rotation_key_bytes(p, plan.keys.conjugation_level, false);
    const std::size_t stored = plan.bootstrap->stored_bytes_for(plaintext_budget);
    m.tables += plan.bootstrap->table_bytes;
    plaintext_budget = plaintext_budget > stored ? plaintext_budget - stored : 0;
    backend(plan.layout).estimate_ciphertexts(plan, threads, plaintext_budget, with_client, tile, resident_limit, m);
    m.plaintexts += stored;
    return m;
  }
  backend(plan.layout).estimate_ciphertexts(plan, threads, plaintext_budget, with_client, tile, resident_limit, m);
  return m;
}

std::size_t free_disk_space(const std::string& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return 0;
  return static_cast<std::size_t>(v.f_bavail) * v.f_frsize;
}

namespace {

// The first line of a small file (a /proc or cgroup file), at most 256 bytes; nullopt when it cannot be read.
std::optional<std::string> read_small_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text(256, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// A cgroup file's byte count: a decimal number, or "max" (nullopt: no limit). Values of 2^62 and
// more are cgroup v1's way of saying "no limit" (9223372036854771712). Throws on anything else.
std::optional<std::size_t> parse_cgroup_bytes(const std::string& text, const std::string& path) {
  if (text == "max") return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    throw Error(path + ": '" + text.substr(0, 40) + "' is not a byte count or \"max\"");
  }
  if (v >= (std::uint64_t{1} << 62)) return std::nullopt;
  return static_cast<std::size_t>(v);
}

// "VmSize:   123456 kB" from /proc/self/status, in bytes; nullopt when absent.
std::optional<std::size_t> status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    std::istringstream is(line.substr(key.size() + 1));
    std::uint64_t kib = 0;
    if (is >> kib && kib < (std::uint64_t{1} << 50)) return static_cast<std::size_t>(kib * 1024);
    return std::nullopt;
  }
  return std::nullopt;
}

void take_least(MemoryLimit& m, std::size_t bytes, const std::string& source) {
  if (bytes < m.bytes) m = {bytes, source};
}

// The limit less the usage of one cgroup directory (v2 files, else v1); false when it has neither.
// strict: a file that cannot be read or parsed is an error, not skipped.
bool read_cgroup(const std::filesystem::path& dir, MemoryLimit& m, bool strict) {
  for (const auto& [limit_file, usage_file] : {std::pair<const char*, const char*>{"memory.max", "memory.current"},
                                               {"memory.limit_in_bytes", "memory.usage_in_bytes"}}) {
    const auto limit_text = read_small_file(dir / limit_file);
    if (!limit_text) continue;
    try {
      const auto limit = parse_cgroup_bytes(*limit_text, (dir / limit_file).string());
      if (!limit) return true;
      const auto usage_text = read_small_file(dir / usage_file);
      if (!usage_text) throw Error((dir / usage_file).string() + ": cannot be read");
      const auto usage = parse_cgroup_bytes(*usage_text, (dir / usage_file).string());
      const std::size_t used = usage ? *usage : 0;
      take_least(m, *limit > used ? *limit - used : 0, std::string("cgroup ") + (dir / limit_file).string());
    } catch (const Error&) {
      if (strict) throw;
    }
    return true;
  }
  return false;
}

// The process's memory cgroup and its ancestors, as /proc/self/cgroup names them: the cgroup v2
// line "0::/path" under /sys/fs/cgroup, the v1 line "N:...memory...:/path" under
// /sys/fs/cgroup/memory. A path that does not exist there (a container that mounts its own cgroup
// at the root) falls back to the mount's root.
void read_own_cgroups(MemoryLimit& m) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  for (int lines = 0; lines < 64 && std::getline(in, line); ++lines) {
    const auto c1 = line.find(':');
    const auto c2 = c1 == std::string::npos ? std::string::npos : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string rel = line.substr(c2 + 1);
    std::filesystem::path root;
    if (controllers.empty()) {
      root = "/sys/fs/cgroup";
    } else {
      bool memory = false;
      std::istringstream cs(controllers);
      for (std::string c; std::getline(cs, c, ',');) memory = memory || c == "memory";
      if (!memory) continue;
      root = "/sys/fs/cgroup/memory";
    }
    std::error_code ec;
    std::filesystem::path dir = root / std::filesystem::path(rel).relative_path();
    if (!std::filesystem::is_directory(dir, ec)) dir = root;
    for (int depth = 0; depth < 64; ++depth) {
      read_cgroup(dir, m, false);
      if (dir == root || !dir.has_parent_path()) break;
      dir = dir.parent_path();
    }
  }
}

}  // namespace

MemoryLimit system_memory_limit() {
  MemoryLimit m;
  {
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    std::uint64_t kib = 0;
    while (in >> key >> kib >> unit) {
      if (key == "MemAvailable:") {
        if (kib < (std::uint64_t{1} << 50)) take_least(m, static_cast<std::size_t>(kib * 1024), "MemAvailable");
        break;
      }
    }
  }
  if (const char* dir = std::getenv("HECNN_CGROUP_DIR"); dir && *dir) {
    if (!read_cgroup(dir, m, true)) {
      throw Error(std::string("HECNN_CGROUP_DIR: '") + dir + "' holds neither memory.max (cgroup v2) nor memory.limit_in_bytes (cgroup v1)");
    }
  } else {
    read_own_cgroups(m);
  }
  for (const auto& [resource, used, source] : {std::tuple<int, const char*, const char*>{RLIMIT_AS, "VmSize", "ulimit -v"},
                                               {RLIMIT_DATA, "VmData", "ulimit -d"}}) {
    rlimit r{};
    if (::getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY) continue;
    const std::size_t limit = static_cast<std::size_t>(r.rlim_cur);
    const std::size_t in_use = status_bytes(used).value_or(0);
    take_least(m, limit > in_use ? limit - in_use : 0, source);
  }
  return m;
}

std::size_t available_memory() {
  const MemoryLimit m = system_memory_limit();
  return m.bytes == MemoryLimit::kNone ? 0 : m.bytes;
}

std::size_t parse_memory_size(const std::string& text, const std::string& what) {
  const auto bad = [&] {
    return Error(what + ": '" + text + "' is not a memory size (e.g. 8G, 512M, 1.5G; at least 64M, at most 1P)");
  };
  if (text.empty() || text.size() > 32) throw bad();
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad();
  }
  if (!std::isfinite(v) || v < 0 || !std::isdigit(static_cast<unsigned char>(text[0]))) throw bad();
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit == "" || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    mult = 1024.0;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    mult = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "TB" || unit == "TIB") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else if (unit == "P" || unit == "PB" || unit == "PIB") {
    mult = 1024.0 * 1024 * 1024 * 1024 * 1024;
  } else {
    throw bad();
  }
  const double bytes = v * mult;
  if (bytes < 64.0 * 1024 * 1024 || bytes > 1024.0 * 1024 * 1024 * 1024 * 1024) throw bad();
  return static_cast<std::size_t>(bytes);
}

}  // namespace hecnn::he
