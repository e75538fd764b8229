#include "ring/scratch.h"

#include <array>
#include <memory>

namespace hecnn::ring {

namespace {
struct AlignedDelete {
  void operator()(u64* p) const { ::operator delete(p, std::align_val_t{64}); }
};
struct Buffers {
  std::array<std::unique_ptr<u64, AlignedDelete>, static_cast<std::size_t>(Scratch::count)> data;
  std::array<std::size_t, static_cast<std::size_t>(Scratch::count)> size{};
};
}  // namespace

u64* scratch(Scratch slot, std::size_t words) {
  thread_local Buffers b;
  const auto s = static_cast<std::size_t>(slot);
  if (b.size[s] < words) {
    b.data[s].reset();
    b.data[s].reset(static_cast<u64*>(::operator new(words * sizeof(u64), std::align_val_t{64})));
    b.size[s] = words;
  }
  return b.data[s].get();
}

}  // namespace hecnn::ring
