#include "dsk/core/parallel.hpp"

#include <atomic>
#include <cstdlib>
#include <vector>

#include <catch2/catch.hpp>

TEST_CASE("parallel_for visits every index exactly once, for 1 and 2 threads", "[parallel]") {
  for (int threads : {1, 2}) {
    const dsk::thread_count_scope scope(threads);
    REQUIRE(dsk::num_threads() == threads);
    for (dsk::index_t n : {0, 1, 2, 3, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      dsk::parallel_for(0, n, [&](dsk::index_t i) { hits[static_cast<std::size_t>(i)]++; });
      for (auto& h : hits) REQUIRE(h.load() == 1);
    }
    std::atomic<dsk::index_t> covered{0};
    dsk::parallel_for_chunks(5, 105, 16, [&](dsk::index_t lo, dsk::index_t hi) {
      REQUIRE(lo >= 5);
      REQUIRE(hi <= 105);
      covered += hi - lo;
    });
    REQUIRE(covered.load() == 100);
  }
}

TEST_CASE("exceptions inside parallel_for reach the caller", "[parallel]") {
  const dsk::thread_count_scope scope(2);
  REQUIRE_THROWS_WITH(dsk::parallel_for(0, 100,
                                        [](dsk::index_t i) {
                                          if (i == 77) dsk::fail("index ", i, " failed");
                                        }),
                      "index 77 failed");
}

TEST_CASE("thread count: caller setting, environment, validation", "[parallel]") {
  dsk::set_num_threads(0);
  ::setenv("DSK_NUM_THREADS", "3", 1);
  REQUIRE(dsk::num_threads() == 3);
  {
    const dsk::thread_count_scope scope(1);
    REQUIRE(dsk::num_threads() == 1);
  }
  REQUIRE(dsk::num_threads() == 3);
  ::setenv("DSK_NUM_THREADS", "two", 1);
  REQUIRE_THROWS_WITH(dsk::num_threads(),
                      Catch::Contains("DSK_NUM_THREADS: expected an integer in [1, 4096], got 'two'"));
  ::unsetenv("DSK_NUM_THREADS");
  REQUIRE(dsk::num_threads() >= 1);
  REQUIRE_THROWS_AS(dsk::set_num_threads(-1), dsk::error);
}

#if DSK_THREADS
#include <mutex>
#include <set>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

TEST_CASE("thread pool: part t of nt runs on its own thread, the caller runs part 0", "[parallel][pool]") {
  for (int threads : {2, 3, 4}) {
    const dsk::thread_count_scope scope(threads);
    std::mutex m;
    std::set<std::thread::id> ids;
    std::thread::id first;
    dsk::parallel_for_chunks(0, 1000, 1, [&](dsk::index_t lo, dsk::index_t) {
      const std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
      if (lo == 0) first = std::this_thread::get_id();
    });
    REQUIRE(ids.size() == static_cast<std::size_t>(threads));
    REQUIRE(first == std::this_thread::get_id());
    REQUIRE(dsk::detail::thread_pool::instance().workers() >= threads - 1);
  }
}

TEST_CASE("thread pool: the split is even and contiguous, whatever the grain", "[parallel][pool]") {
  const dsk::thread_count_scope scope(3);
  std::mutex m;
  std::set<std::pair<dsk::index_t, dsk::index_t>> parts;
  dsk::parallel_for_chunks(10, 110, 4, [&](dsk::index_t lo, dsk::index_t hi) {
    const std::lock_guard<std::mutex> lock(m);
    parts.emplace(lo, hi);
  });
  // n = 100 over 3 parts: [10 + 100 t / 3, 10 + 100 (t + 1) / 3).
  REQUIRE(parts == std::set<std::pair<dsk::index_t, dsk::index_t>>{{10, 43}, {43, 76}, {76, 110}});
}

TEST_CASE("thread pool: a parallel_for inside a part runs serially on that thread", "[parallel][pool]") {
  const dsk::thread_count_scope scope(2);
  std::atomic<int> inner_calls{0}, wrong{0};
  dsk::parallel_for_chunks(0, 2, 1, [&](dsk::index_t, dsk::index_t) {
    const auto outer = std::this_thread::get_id();
    dsk::parallel_for_chunks(0, 100, 1, [&](dsk::index_t lo, dsk::index_t hi) {
      inner_calls++;
      if (lo != 0 || hi != 100 || std::this_thread::get_id() != outer) wrong++;
    });
  });
  REQUIRE(inner_calls.load() == 2);
  REQUIRE(wrong.load() == 0);
}

TEST_CASE("thread pool: thousands of back-to-back regions of changing width visit every index once",
          "[parallel][pool]") {
  std::vector<int> hits(97);
  for (int r = 0; r < 3000; ++r) {
    const dsk::thread_count_scope scope(1 + r % 4);
    dsk::parallel_for(0, 97, [&](dsk::index_t i) { hits[static_cast<std::size_t>(i)]++; });
  }
  for (int h : hits) REQUIRE(h == 3000);
}

TEST_CASE("thread pool: user threads calling at once each get every index once (the pool or their own)",
          "[parallel][pool]") {
  const dsk::thread_count_scope scope(2);  // the setting is process-wide
  constexpr int callers = 3, rounds = 300, n = 64;
  std::vector<std::vector<int>> hits(callers, std::vector<int>(n));
  std::vector<std::thread> ts;
  for (int c = 0; c < callers; ++c)
    ts.emplace_back([&, c] {
      for (int r = 0; r < rounds; ++r)
        dsk::parallel_for(
            0, n, [&](dsk::index_t i) { hits[static_cast<std::size_t>(c)][static_cast<std::size_t>(i)]++; });
    });
  for (auto& t : ts) t.join();
  for (const auto& h : hits)
    for (int v : h) REQUIRE(v == rounds);
}

TEST_CASE("thread pool: a child process after fork() gets its own pool", "[parallel][pool]") {
  if (std::getenv("DSK_TEST_EMULATED")) {  // qemu-user aborts on fork() of a process with threads (its bug)
    WARN("skipped: fork() of a threaded process does not work under qemu-user");
    return;
  }
  const dsk::thread_count_scope scope(2);
  dsk::parallel_for(0, 10, [](dsk::index_t) {});  // the parent's pool exists
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::atomic<int> sum{0};
    dsk::parallel_for(0, 100, [&](dsk::index_t i) { sum += static_cast<int>(i); });
    ::_exit(sum.load() == 4950 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}
#endif
