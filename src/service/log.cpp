#include "service/log.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace hecnn::service {

namespace {

// Bare when the value is a plain token; else double-quoted with \" \\ and control characters escaped.
std::string quoted(const std::string& v) {
  bool plain = !v.empty();
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '.' || c == '_' || c == '-' || c == ':' || c == '/')) plain = false;
  }
  if (plain) return v;
  std::string q = "\"";
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      q += '\\';
      q += c;
    } else if (u < 0x20 || u == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", u);
      q += b;
    } else {
      q += c;
    }
  }
  return q + "\"";
}

}  // namespace

Log::Field::Field(std::string k, double v) : key(std::move(k)) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  value = b;
}

void Log::event(const std::string& event, std::initializer_list<Field> fields) {
  if (!os_) return;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[48];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  std::string line = std::string("ts=") + ts + " event=" + quoted(event);
  for (const auto& f : fields) line += " " + f.key + "=" + quoted(f.value);
  line += "\n";
  const std::lock_guard<std::mutex> lock(mu_);
  *os_ << line << std::flush;
}

}  // namespace hecnn::service
