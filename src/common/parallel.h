#pragma once
// Exceptions must not escape an OpenMP region: run each task's body through ParallelErrors::run,
// which keeps the first exception thrown by any thread, and call rethrow() after the region.
#include <exception>
#include <mutex>

namespace hecnn {

class ParallelErrors {
 public:
  template <typename F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  // Rethrows the first exception any task threw, if one did.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace hecnn
