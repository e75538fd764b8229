#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace hecnn {

ProgressLine::ProgressLine(bool enabled, double interval_s)
    : enabled_(enabled), terminal_(isatty(fileno(stderr)) != 0), interval_(interval_s) {}

ProgressLine::~ProgressLine() {
  if (shown_) finish();
}

void ProgressLine::update(const std::string& text, bool force) {
  if (!enabled_) return;
  if (!terminal_) {
    // A log: a whole line now and then, on long runs only.
    if (since_last_.seconds() < kLogInterval) return;
    since_last_.restart();
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
    return;
  }
  if (shown_ && !force && since_last_.seconds() < interval_) return;
  since_last_.restart();
  std::fprintf(stderr, "\r%s\033[K", text.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::finish() {
  if (!enabled_ || !terminal_ || !shown_) return;
  std::fprintf(stderr, "\n");
  shown_ = false;
}

void ProgressLine::clear() {
  if (!enabled_ || !terminal_ || !shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

std::string time_left(double elapsed_s, double done, double total) {
  if (!(done > 0) || done >= total) return "";
  char b[48];
  std::snprintf(b, sizeof b, "~%.0f s left", elapsed_s * (total - done) / done);
  return b;
}

}  // namespace hecnn
