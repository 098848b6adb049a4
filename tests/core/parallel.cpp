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
