#pragma once
// The service's structured log: one line per session and query event, key=value pairs after a
// UTC timestamp. Values are ids, names, sizes, durations and outcomes only: never key or
// ciphertext bytes, never a token (callers pass nothing else, and values are quoted so that a
// message cannot forge fields).
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <ostream>
#include <string>
#include <utility>

namespace hecnn::service {

class Log {
 public:
  // Lines go to `os` (not owned; nullptr: nowhere).
  explicit Log(std::ostream* os) : os_(os) {}
  struct Field {
    std::string key, value;
    Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
    Field(std::string k, const char* v) : key(std::move(k)), value(v) {}
    Field(std::string k, std::uint64_t v) : key(std::move(k)), value(std::to_string(v)) {}
    Field(std::string k, std::int64_t v) : key(std::move(k)), value(std::to_string(v)) {}
    Field(std::string k, int v) : key(std::move(k)), value(std::to_string(v)) {}
    Field(std::string k, unsigned v) : key(std::move(k)), value(std::to_string(v)) {}
    Field(std::string k, double v);
  };
  // "ts=2024-01-01T00:00:00.123Z event=<event> k=v ..."
  void event(const std::string& event, std::initializer_list<Field> fields);

 private:
  std::ostream* os_;
  std::mutex mu_;
};

}  // namespace hecnn::service
