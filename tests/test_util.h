#pragma once
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <complex>
#include <random>
#include <source_location>
#include <vector>

#include "common/error.h"

namespace hecnn::test {

// A fresh temporary directory, removed with its contents when the object goes.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("hecnn-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string dir() const { return path_.string(); }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

inline std::vector<double> random_vector(std::size_t n, double lo, double hi, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// -log2 of the largest absolute error (64 when exact).
inline double precision_bits(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, std::fabs(got.at(i) - want[i]));
  return err == 0 ? 64.0 : -std::log2(err);
}

inline double precision_bits(const std::vector<std::complex<double>>& got,
                             const std::vector<std::complex<double>>& want) {
  double err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, std::abs(got.at(i) - want[i]));
  return err == 0 ? 64.0 : -std::log2(err);
}

// Runs f, which must throw hecnn::Error with `needle` in its message (failures name the caller's line).
template <typename F>
void expect_error_mentioning(F&& f, const std::string& needle,
                             const std::source_location& where = std::source_location::current()) {
  try {
    f();
    ADD_FAILURE_AT(where.file_name(), static_cast<int>(where.line())) << "expected an error mentioning '" << needle << "'";
  } catch (const hecnn::Error& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      ADD_FAILURE_AT(where.file_name(), static_cast<int>(where.line()))
          << "the error does not mention '" << needle << "': " << e.what();
    }
  }
}

}  // namespace hecnn::test
