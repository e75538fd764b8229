#pragma once
// Storage for polynomial data: 64-byte aligned (for vector loads) and left uninitialized on growth
// (every user overwrites what it allocates, so zeroing megabytes would be a wasted pass).
#include <atomic>
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace hecnn::ring {

// Bytes of polynomial storage (every ciphertext, plaintext and key lives in it) allocated now, and
// the most since reset_aligned_peak(): what the memory plan's tests measure against.
inline std::atomic<std::size_t> g_aligned_in_use{0}, g_aligned_peak{0};
inline std::size_t aligned_bytes_in_use() { return g_aligned_in_use.load(std::memory_order_relaxed); }
inline std::size_t aligned_bytes_peak() { return g_aligned_peak.load(std::memory_order_relaxed); }
inline void reset_aligned_peak() { g_aligned_peak.store(aligned_bytes_in_use(), std::memory_order_relaxed); }

// Allocator that leaves new elements uninitialized and aligns storage to 64 bytes (for vector loads).
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(std::size_t n) {
    T* p = static_cast<T*>(::operator new(n * sizeof(T), kAlign));
    const std::size_t now = g_aligned_in_use.fetch_add(n * sizeof(T), std::memory_order_relaxed) + n * sizeof(T);
    std::size_t peak = g_aligned_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_aligned_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return p;
  }
  void deallocate(T* p, std::size_t n) {
    g_aligned_in_use.fetch_sub(n * sizeof(T), std::memory_order_relaxed);
    ::operator delete(p, kAlign);
  }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialize: no zeroing of large buffers
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace hecnn::ring
