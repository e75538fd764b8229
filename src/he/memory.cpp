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

namespace hecnn::he {

namespace {
constexpr std::size_t kProcessBytes = 256u << 20;  // code, contexts, NTT tables, the dataset, the allocator's slack

std::size_t plaintext_bytes(const ckks::CkksParameters& p, std::size_t level) { return (level + 1) * p.poly_degree() * 8; }
}  // namespace

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

namespace {

// Replays the batch schedule: the ciphertexts alive after every step, and at its peak.
void estimate_batch(const HePlan& plan, int threads, bool streamed_inputs, int tile, std::size_t resident_limit,
                    MemoryEstimate& m) {
  const ckks::CkksParameters& p = *plan.params;
  const Program& prog = plan.program;
  const auto matrices = batch::lower_linear_stages(prog);
  const batch::Schedule sched = batch::make_schedule(prog, matrices, tile, threads);
  const std::size_t S = sched.values.size();
  const auto T = static_cast<std::size_t>(std::max(1, threads));
  // Per schedule stage: the bytes of one value, and the step's temporaries per value and per step.
  std::vector<std::size_t> value(S), made(S), temps(S), comps(S, 2);
  const std::size_t top = p.max_level();
  value[0] = made[0] = ciphertext_bytes(p, top, 2);
  // The client's encoding and encryption buffers, when it encrypts in the same process.
  temps[0] = streamed_inputs ? T * ciphertext_bytes(p, top, 2) : 0;
  for (std::size_t s = 0; s < prog.stages.size(); ++s) {
    const Stage& st = prog.stages[s];
    const std::size_t level = top - static_cast<std::size_t>(st.depth_in);
    const std::size_t out_level = top - static_cast<std::size_t>(st.depth_out);
    const std::size_t in_comps = comps[batch::schedule_stage(st.inputs[0])];
    std::size_t out_comps = in_comps;
    switch (st.kind()) {
      case StageKind::Linear:
        out_comps = 2;
        // The products keep the inputs' level and size until relinearized and rescaled.
        made[s + 1] = ciphertext_bytes(p, level, in_comps);
        temps[s + 1] = T * 2 * ciphertext_bytes(p, level, 3);
        break;
      case StageKind::SumPool: made[s + 1] = ciphertext_bytes(p, out_level, out_comps); break;
      case StageKind::Activation:
        out_comps = st.activation().relinearize_output ? 2 : 3;
        made[s + 1] = ciphertext_bytes(p, out_level, out_comps);
        temps[s + 1] = T * 4 * ciphertext_bytes(p, level, 3);
        break;
      case StageKind::Add:
        out_comps = 2;
        made[s + 1] = ciphertext_bytes(p, out_level, 2);
        temps[s + 1] = T * ciphertext_bytes(p, level, 2);  // an input dropped to the level
        break;
    }
    value[s + 1] = ciphertext_bytes(p, out_level, out_comps);
    made[s + 1] = std::max(made[s + 1], value[s + 1]);
    comps[s + 1] = out_comps;
  }
  std::size_t live = streamed_inputs ? 0 : sched.values[0] * value[0];
  std::size_t peak = 0, terms = 0, refs = 0;
  std::vector<std::size_t> by_stage(S, 0), held_at_peak(S, 0);
  if (!streamed_inputs) by_stage[0] = live;
  std::vector<std::pair<std::size_t, std::uint32_t>> deps;
  for (const auto& step : sched.steps) {
    refs += step.values.size() + step.release.size();
    // A query held whole is counted from the start: taking its ciphertexts moves them.
    const bool moved = step.stage == 0 && !streamed_inputs;
    const std::size_t out = moved ? 0 : step.values.size() * made[step.stage];
    std::size_t read = 0;
    if (step.stage > 0 && !step.values.empty()) {
      deps.clear();
      for (std::uint32_t v : step.values) {
        batch::for_each_dependency(prog, matrices, step.stage - 1, v, [&](std::size_t from, std::size_t i) {
          deps.push_back({from, static_cast<std::uint32_t>(i)});
        });
      }
      std::sort(deps.begin(), deps.end());
      deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
      for (const auto& d : deps) read += value[d.first];
    }
    const std::size_t held = resident_limit == static_cast<std::size_t>(-1) ? live : std::min(live, resident_limit) + read;
    const std::size_t at_peak = held + out + (step.values.empty() ? 0 : temps[step.stage]);
    if (at_peak > peak) {
      peak = at_peak;
      held_at_peak = by_stage;
      held_at_peak[step.stage] += out;  // the step's products, at their size before rescaling
    }
    m.working = std::max(m.working, read + out + (step.values.empty() ? 0 : temps[step.stage]));
    if (!moved) {
      live += step.values.size() * value[step.stage];
      by_stage[step.stage] += step.values.size() * value[step.stage];
    }
    for (const auto& r : step.release) {
      live -= value[r.stage];
      by_stage[r.stage] -= value[r.stage];
    }
    if (live > resident_limit) m.spill = std::max(m.spill, live - resident_limit);
  }
  for (const auto& mat : matrices) terms += mat.col.size() + mat.rows();
  m.tables += terms * 12 + refs * 8;
  m.held_at_peak = true;
  m.stages.push_back({streamed_inputs ? "query (encrypted as taken)" : "query", held_at_peak[0]});
  for (std::size_t s = 0; s < prog.stages.size(); ++s) m.stages.push_back({prog.stages[s].name, held_at_peak[s + 1]});
  m.ciphertexts = peak + peak / 8;
}

}  // namespace

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
  const std::size_t temps = static_cast<std::size_t>(std::max(1, threads)) * 4;
  m.preencoded.assign(prog.stages.size(), false);
  if (plan.layout == Layout::Batch) {
    estimate_batch(plan, threads, with_client, tile, resident_limit, m);
    return m;
  }
  std::size_t encoded = 0;
  const auto readers = prog.consumers();
  const std::size_t top = p.max_level();
  for (std::size_t i = 0; i < prog.stages.size(); ++i) {
    const Stage& s = prog.stages[i];
    const std::size_t level = top - static_cast<std::size_t>(s.depth_in);
    const std::size_t ct = ciphertext_bytes(p, level, 2);
    // The outputs of earlier stages that a later stage still reads (a residual branch's input).
    std::size_t bytes = 0;
    for (std::size_t j = 0; j < i; ++j) {
      if (!readers[j].empty() && readers[j].back() > i) {
        bytes += plan.packed->stages[j].out.cts * ciphertext_bytes(p, top - static_cast<std::size_t>(prog.stages[j].depth_out), 2);
      }
    }
    {
      const packed::PackedStage& ps = plan.packed->stages[i];
      switch (s.kind()) {
        case StageKind::Linear: {
          const auto& lp = ps.linear;
          std::size_t baby = 0, entries = 0;
          for (const auto& b : lp.baby) baby += b.size();
          for (const auto& g : lp.giants)
            for (const auto& d : g.diagonals) entries += d.entries.size();
          m.tables += entries * 12;
          const std::size_t diag_bytes = lp.diagonal_count() * plaintext_bytes(p, level);
          std::size_t on_the_fly = 0;
          if (encoded + diag_bytes <= plaintext_budget) {
            encoded += diag_bytes;
            m.preencoded[i] = true;
          } else {
            on_the_fly = std::min(diag_bytes, kOnTheFlyPlaintextBytes);
          }
          bytes += (ps.in.cts + baby + lp.giants.size() + ps.out.cts + 2) * ct + on_the_fly;
          break;
        }
        case StageKind::SumPool: bytes += (ps.in.cts + 2 * std::min<std::size_t>(ps.in.cts, static_cast<std::size_t>(std::max(1, threads)))) * ct; break;
        case StageKind::Activation: bytes += (2 * ps.in.cts + temps) * ct; break;
        case StageKind::Add: bytes += (s.inputs.size() + 1) * ps.in.cts * ct; break;
      }
    }
    bytes += bytes / 8;  // the allocator's fragmentation: measured peaks run up to ~10 % above the live bytes
    m.stages.push_back({s.name, bytes});
    m.ciphertexts = std::max(m.ciphertexts, bytes);
  }
  m.plaintexts = encoded;
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
