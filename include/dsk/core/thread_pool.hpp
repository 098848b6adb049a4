// dsk's persistent thread pool: the worker threads that parallel_for (core/parallel.hpp) runs its parts on.
// Workers are started on first use and live for the process; between regions they spin briefly (a decode
// step opens regions back to back), then sleep on a futex (std::atomic::wait), so an idle program costs no
// CPU. The calling thread always runs part 0 itself. Host only; checked in tests/core/parallel.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

#include <pthread.h>

#include "dsk/core/config.hpp"

namespace dsk::detail {

// One pause of a spin-wait loop. Baseline instructions (x86-64's PAUSE, AArch64's YIELD), no ISA choice:
// they tell the core this is a spin loop (less power, no memory-order mis-speculation on exit).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Spins up to `spins` pauses while value == old, then sleeps until it changes; returns the new value.
template <class T>
T wait_for_change(const std::atomic<T>& value, T old, int spins) {
  for (int i = 0; i < spins; ++i) {
    const T v = value.load(std::memory_order_acquire);
    if (v != old) return v;
    cpu_relax();
  }
  for (;;) {
    value.wait(old, std::memory_order_acquire);
    const T v = value.load(std::memory_order_acquire);
    if (v != old) return v;
  }
}

class thread_pool {
 public:
  // part(ctx, t, nt) for t in [0, nt) runs on nt threads: t = 0 on the caller.
  using part_fn = void (*)(void* ctx, index_t t, index_t nt);

  // Pauses a waiting thread spins before it sleeps: ~20-200 us depending on the core's PAUSE latency, more
  // than the serial work between two regions of a decode step, far less than a scheduler tick.
  static constexpr int spin_pauses = 4096;
  // nt is packed with the region counter into one atomic word (see run()).
  static constexpr index_t max_threads = 4096;

  // The process-wide pool. Never destroyed (a parallel_for in a static destructor stays valid); a child
  // process after fork() gets a fresh pool, since fork copies no threads.
  static thread_pool& instance() {
    thread_pool* p = current().load(std::memory_order_acquire);
    if (!p) {
      std::lock_guard<std::mutex> lock(creation_mutex());
      p = current().load(std::memory_order_acquire);
      if (!p) {
        static bool registered = false;
        if (!registered) ::pthread_atfork(nullptr, nullptr, [] { current().store(nullptr); });
        registered = true;
        p = new thread_pool;  // intentionally leaked: see above
        current().store(p, std::memory_order_release);
      }
    }
    return *p;
  }

  // Runs part on nt threads (1 <= nt <= max_threads) if no other region is running in this pool; returns
  // false (nothing run) when one is, so that the caller can run the parts itself instead of waiting (two
  // user threads never deadlock on the pool). part must not throw (parallel_for catches inside it).
  bool try_run(index_t nt, part_fn part, void* ctx) {
    std::unique_lock<std::mutex> lock(region_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    grow(nt - 1);
    part_ = part;
    ctx_ = ctx;
    pending_.store(nt - 1, std::memory_order_relaxed);
    // The region number and nt in one word: a worker that is not one of the nt - 1 learns so from the word
    // alone and never reads part_ / ctx_, which the next region may already be writing.
    region_.store(
        ((region_.load(std::memory_order_relaxed) >> 16) + 1) << 16 | static_cast<std::uint64_t>(nt),
        std::memory_order_release);
    region_.notify_all();
    in_region() = true;
    part(ctx, 0, nt);
    in_region() = false;
    for (index_t left = pending_.load(std::memory_order_acquire); left != 0;)
      left = wait_for_change(pending_, left, spins());
    return true;
  }

  // True on a thread that is running a part (a pool worker, or the caller inside try_run).
  static bool& in_region() {
    static thread_local bool in = false;
    return in;
  }

  // Worker threads started so far (the pool grows to the largest nt - 1 asked for, never shrinks).
  index_t workers() const { return workers_.load(std::memory_order_acquire); }

 private:
  thread_pool() = default;

  static std::atomic<thread_pool*>& current() {
    static std::atomic<thread_pool*> p{nullptr};
    return p;
  }
  static std::mutex& creation_mutex() {
    static std::mutex m;
    return m;
  }

  // Starts workers until there are n (detached: they never exit, the pool lives for the process).
  void grow(index_t n) {
    if (workers_.load(std::memory_order_acquire) >= n) return;
    std::lock_guard<std::mutex> lock(creation_mutex());
    for (index_t id = workers_.load(std::memory_order_relaxed) + 1; id <= n; ++id) {
      std::thread([this, id, seen = region_.load(std::memory_order_acquire)] { worker(id, seen); }).detach();
      workers_.store(id, std::memory_order_release);
    }
  }

  void worker(index_t id, std::uint64_t seen) {
    in_region() = true;  // a parallel_for inside a part runs serially, as inside an OpenMP region
    for (;;) {
      seen = wait_for_change(region_, seen, spins());
      const auto nt = static_cast<index_t>(seen & 0xffff);
      if (id >= nt) continue;  // not needed in this region
      part_(ctx_, id, nt);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
  }

  // Pauses to spin before sleeping: none when the pool has more threads than the machine has hardware
  // threads (a spinning thread would only keep the one it waits for off the core).
  int spins() const {
    return workers_.load(std::memory_order_relaxed) + 1 > hardware_threads_ ? 0 : spin_pauses;
  }

  std::mutex region_mutex_;
  std::atomic<index_t> workers_{0};
  const index_t hardware_threads_ = std::max<index_t>(1, std::thread::hardware_concurrency());
  std::atomic<std::uint64_t> region_{0};  // (region number << 16) | nt of the newest region
  std::atomic<index_t> pending_{0};       // workers of the current region that have not finished
  part_fn part_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace dsk::detail
