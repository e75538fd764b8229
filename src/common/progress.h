#pragma once
// The one progress line: a status line on stderr rewritten in place ("\r...", cleared to the end
// of the line), at most every `interval` seconds, when progress is enabled. When stderr is not a
// terminal (a log), the line is printed whole every kLogInterval seconds instead, so that only long
// runs show it. Long runs show what is done, the elapsed time and an estimate of what is left.
#include <cstddef>
#include <string>

#include "common/stopwatch.h"

namespace hecnn {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled, double interval_s = 0.25);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  static constexpr double kLogInterval = 30.0;
  bool enabled() const { return enabled_; }
  // Rewrites the line with `text` (rate-limited unless `force`).
  void update(const std::string& text, bool force = false);
  // Leaves the last text on its own line (the next update starts a new one).
  void finish();
  // Clears the line.
  void clear();

 private:
  bool enabled_, terminal_;
  double interval_;
  Stopwatch since_last_;
  bool shown_ = false;
};

// "done/total, 12.3 s, ~45 s left" style pieces: the time left at the rate so far, or "" before
// anything is done.
std::string time_left(double elapsed_s, double done, double total);

}  // namespace hecnn
