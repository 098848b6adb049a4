// Host parallelism: parallel_for over index ranges on dsk's persistent thread pool (core/thread_pool.hpp)
// when threads are enabled (DSK_THREADS=1; the default when the TU is built with OpenMP, as dsk's CMake
// targets are), serially otherwise. The thread count comes from set_num_threads(), else the
// DSK_NUM_THREADS environment variable, else OpenMP's default (OMP_NUM_THREADS) or the hardware's.
// Exceptions thrown by the body are carried out of the parallel region and rethrown.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "dsk/core/config.hpp"
#include "dsk/core/error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

// 1: parallel_for runs on the thread pool; 0: always serial. Default: 1 when OpenMP is on (the switch
// consumers already use to ask for threads), else 0. -DDSK_THREADS=1 enables threads without OpenMP.
#ifndef DSK_THREADS
#if defined(_OPENMP)
#define DSK_THREADS 1
#else
#define DSK_THREADS 0
#endif
#endif

#if DSK_THREADS
#include "dsk/core/thread_pool.hpp"
#endif

namespace dsk {

namespace detail {
inline std::atomic<int>& thread_setting() {
  static std::atomic<int> n{0};  // 0: not set by the caller
  return n;
}

inline int default_threads() {
  if (const char* env = std::getenv("DSK_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
      fail("dsk: environment variable DSK_NUM_THREADS: expected an integer in [1, 4096], got '", env, "'");
    return static_cast<int>(n);
  }
#if defined(_OPENMP)
  return omp_get_max_threads();
#elif DSK_THREADS
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4096u));
#else
  return 1;
#endif
}
}  // namespace detail

// True when this build can run bodies on several threads (DSK_THREADS, above).
constexpr bool parallel_enabled() { return DSK_THREADS != 0; }

// Threads that parallel_for uses.
inline int num_threads() {
  const int n = detail::thread_setting().load(std::memory_order_relaxed);
  return n > 0 ? n : detail::default_threads();
}

// n >= 1 fixes the thread count for all later calls; 0 returns to the default (DSK_NUM_THREADS or OpenMP's).
inline void set_num_threads(int n) {
  if (n < 0) fail("dsk::set_num_threads: argument 'n': expected >= 0 (0 = default), got ", n);
  detail::thread_setting().store(n, std::memory_order_relaxed);
}

// Sets the thread count for the lifetime of the object, then restores the previous setting.
class thread_count_scope {
 public:
  explicit thread_count_scope(int n) : previous_(detail::thread_setting().load()) { set_num_threads(n); }
  ~thread_count_scope() { detail::thread_setting().store(previous_); }
  thread_count_scope(const thread_count_scope&) = delete;
  thread_count_scope& operator=(const thread_count_scope&) = delete;

 private:
  int previous_;
};

// Calls body(lo, hi) on consecutive chunks that cover [begin, end); each chunk holds at least `grain`
// indices (except the last). The range is split into as many even contiguous parts as threads run (at most
// num_threads()), so the same thread count gives the same split. Runs serially (one chunk) inside another
// parallel region or when one chunk covers the range. When another user thread holds the pool, the caller
// runs the same parts itself, one after the other (same split, so the same results).
template <class Body>
void parallel_for_chunks(index_t begin, index_t end, index_t grain, Body&& body) {
  if (end <= begin) return;
  grain = std::max<index_t>(grain, 1);
  const index_t n = end - begin;
  const index_t max_chunks = (n + grain - 1) / grain;
  const index_t threads = std::min<index_t>(num_threads(), max_chunks);
#if DSK_THREADS
  bool nested = detail::thread_pool::in_region();
#if defined(_OPENMP)
  nested = nested || omp_in_parallel();  // inside the caller's own OpenMP region: serial, as before
#endif
  if (threads > 1 && !nested) {
    struct region {
      Body& body;
      index_t begin, n;
      std::exception_ptr first_error;
      std::once_flag once;
      std::atomic<bool> failed{false};
    } r{body, begin, n, {}, {}, {}};
    // Part t of nt: [begin + n t / nt, begin + n (t + 1) / nt).
    const auto part = [](void* ctx, index_t t, index_t nt) {
      auto& rg = *static_cast<region*>(ctx);
      const index_t lo = rg.begin + rg.n * t / nt, hi = rg.begin + rg.n * (t + 1) / nt;
      if (lo >= hi || rg.failed.load(std::memory_order_relaxed)) return;
      try {
        rg.body(lo, hi);
      } catch (...) {
        std::call_once(rg.once, [&] { rg.first_error = std::current_exception(); });
        rg.failed = true;
      }
    };
    if (!detail::thread_pool::instance().try_run(threads, part, &r)) {
      detail::thread_pool::in_region() = true;  // nested calls inside these parts stay serial, as above
      for (index_t t = 0; t < threads; ++t) part(&r, t, threads);
      detail::thread_pool::in_region() = false;
    }
    if (r.first_error) std::rethrow_exception(r.first_error);
    return;
  }
#endif
  (void)threads;
  body(begin, end);
}

// Calls body(i) for every i in [begin, end), split over the threads in contiguous parts.
template <class Body>
void parallel_for(index_t begin, index_t end, Body&& body) {
  parallel_for_chunks(begin, end, 1, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) body(i);
  });
}

}  // namespace dsk
