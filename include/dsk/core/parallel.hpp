// Host parallelism: parallel_for over index ranges on OpenMP when the TU is built with it, serially
// otherwise. The thread count comes from set_num_threads(), else the DSK_NUM_THREADS environment variable,
// else OpenMP's default. Exceptions thrown by the body are carried out of the parallel region and rethrown.
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
#else
  return 1;
#endif
}
}  // namespace detail

// True when this build can run bodies on several threads (OpenMP was enabled for the TU).
constexpr bool parallel_enabled() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

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
// indices (except the last). Chunks are split statically over the threads, so the same thread count gives
// the same split. Runs serially inside another parallel region or when one chunk covers the range.
template <class Body>
void parallel_for_chunks(index_t begin, index_t end, index_t grain, Body&& body) {
  if (end <= begin) return;
  grain = std::max<index_t>(grain, 1);
  const index_t n = end - begin;
  const index_t max_chunks = (n + grain - 1) / grain;
  const index_t threads = std::min<index_t>(num_threads(), max_chunks);
#if defined(_OPENMP)
  if (threads > 1 && !omp_in_parallel()) {
    std::exception_ptr first_error;
    std::once_flag once;
    std::atomic<bool> failed{false};
#pragma omp parallel num_threads(static_cast <int>(threads))
    {
      const index_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      // Even split of [begin, end) into nt contiguous parts.
      const index_t lo = begin + n * t / nt, hi = begin + n * (t + 1) / nt;
      if (lo < hi && !failed.load(std::memory_order_relaxed)) {
        try {
          body(lo, hi);
        } catch (...) {
          std::call_once(once, [&] { first_error = std::current_exception(); });
          failed = true;
        }
      }
    }
    if (first_error) std::rethrow_exception(first_error);
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
