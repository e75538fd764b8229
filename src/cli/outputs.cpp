#include "cli/outputs.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>

#include "ckks/serialization.h"
#include "common/error.h"
#include "common/files.h"
#include "nn/forward.h"

namespace hecnn::cli {

namespace fs = std::filesystem;

namespace {

// The object type of a hecnn (ckks format) file, if `path` is one.
std::optional<ckks::ObjectType> hecnn_object_type(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  if (!in.read(head, sizeof head) || std::memcmp(head, "HCKS", 4) != 0) return std::nullopt;
  std::uint16_t type = 0;
  std::memcpy(&type, head + 6, 2);
  return static_cast<ckks::ObjectType>(type);
}

}  // namespace

void check_output(const std::string& option, const std::string& out, const std::vector<std::string>& inputs) {
  std::error_code ec;
  for (const auto& in : inputs) {
    if (!in.empty() && fs::exists(out, ec) && fs::exists(in, ec) && fs::equivalent(out, in, ec)) {
      throw Error(option + " " + out + " is the same file as the input " + in + "; refusing to overwrite it");
    }
  }
  struct stat st {};
  if (::lstat(out.c_str(), &st) != 0) return;  // nothing there yet
  if (S_ISDIR(st.st_mode)) throw Error(option + " " + out + " is a directory");
  if (!S_ISREG(st.st_mode)) return;            // a symbolic link is replaced, not followed
  if (const auto type = hecnn_object_type(out)) {
    if (*type == ckks::ObjectType::kSecretKey || *type == ckks::ObjectType::kPublicKey ||
        *type == ckks::ObjectType::kRelinKeys || *type == ckks::ObjectType::kGaloisKeys ||
        *type == ckks::ObjectType::kParameters) {
      throw Error(option + " " + out + " holds a " + ckks::object_type_name(*type) + "; refusing to overwrite it");
    }
  }
  const fs::path p(out);
  const auto& names = he::key_file_names();
  if (std::find(names.begin(), names.end(), p.filename().string()) != names.end() &&
      fs::exists(p.parent_path().empty() ? fs::path("keys.json") : p.parent_path() / "keys.json", ec)) {
    throw Error(option + " " + out + " is a file of a key directory; refusing to overwrite it");
  }
}

std::vector<std::string> key_directory_files(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& n : he::key_file_names()) v.push_back((fs::path(dir) / n).string());
  return v;
}

void protect_secrets() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
}

void warn_if_insecure(const he::KeyInfo& info, const ckks::CkksParameters& params) {
  if (info.insecure || params.insecure()) {
    std::fprintf(stderr,
                 "WARNING: INSECURE parameters: these keys are above the 128-bit security bound (made with "
                 "--allow-insecure, for tests only); the encryption protects nothing\n");
  }
}

void write_predictions(const std::string& path, std::size_t first, const std::vector<std::vector<double>>& logits) {
  write_file_atomic(path, [&](std::ostream& os) {
    char buf[32];
    for (std::size_t i = 0; i < logits.size(); ++i) {
      os << first + i << ' ' << nn::argmax(logits[i]);
      for (double v : logits[i]) {
        std::snprintf(buf, sizeof buf, " %.9g", v);
        os << buf;
      }
      os << '\n';
    }
  });
}

}  // namespace hecnn::cli
