// bench_parallel: what one parallel region costs, dsk's thread pool (dsk::parallel_for_chunks) beside an
// OpenMP fork/join region (`#pragma omp parallel`, what parallel_for ran on before the pool), same binary,
// same thread count. Rows:
//   region/pool/t<T>, region/omp/t<T>          an empty region (each part does nothing): the pure cost
//   work/pool/t<T>, work/omp/t<T>, work/serial a region whose parts sum 16 KiB of floats each (a decode-sized
//                                              slice of work), and the same work on one thread
// Time per region is the row's time; compare pool and omp rows of one run. Run:
//   bench_parallel --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <vector>

#include "dsk/core/parallel.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {
using dsk::index_t;

constexpr index_t floats_per_part = 4096;  // 16 KiB: stays in L1/L2, the region overhead shows

float sum_part(const std::vector<float>& v, index_t part) {
  float s = 0;
  for (index_t i = part * floats_per_part; i < (part + 1) * floats_per_part; ++i)
    s += v[static_cast<std::size_t>(i)];
  return s;
}

void region_pool(benchmark::State& st, int threads) {
  const dsk::thread_count_scope scope(threads);
  for (auto _ : st)
    dsk::parallel_for_chunks(0, threads, 1,
                             [](index_t lo, index_t hi) { benchmark::DoNotOptimize(lo + hi); });
}

void work_pool(benchmark::State& st, int threads) {
  const dsk::thread_count_scope scope(threads);
  std::vector<float> v(static_cast<std::size_t>(threads * floats_per_part), 1.0f);
  for (auto _ : st)
    dsk::parallel_for_chunks(0, threads, 1, [&](index_t lo, index_t hi) {
      for (index_t p = lo; p < hi; ++p) benchmark::DoNotOptimize(sum_part(v, p));
    });
}

void work_serial(benchmark::State& st) {
  std::vector<float> v(static_cast<std::size_t>(2 * floats_per_part), 1.0f);
  for (auto _ : st)
    for (index_t p = 0; p < 2; ++p) benchmark::DoNotOptimize(sum_part(v, p));
}

#if defined(_OPENMP)
void region_omp(benchmark::State& st, int threads) {
  for (auto _ : st) {
#pragma omp parallel num_threads(threads)
    benchmark::DoNotOptimize(omp_get_thread_num());
  }
}

void work_omp(benchmark::State& st, int threads) {
  std::vector<float> v(static_cast<std::size_t>(threads * floats_per_part), 1.0f);
  for (auto _ : st) {
#pragma omp parallel num_threads(threads)
    benchmark::DoNotOptimize(sum_part(v, omp_get_thread_num()));
  }
}
#endif

const int registered = [] {
  for (int t : {2, 4}) {
    const std::string s = "/t" + std::to_string(t);
    benchmark::RegisterBenchmark(("region/pool" + s).c_str(), region_pool, t)->UseRealTime();
    benchmark::RegisterBenchmark(("work/pool" + s).c_str(), work_pool, t)->UseRealTime();
#if defined(_OPENMP)
    benchmark::RegisterBenchmark(("region/omp" + s).c_str(), region_omp, t)->UseRealTime();
    benchmark::RegisterBenchmark(("work/omp" + s).c_str(), work_omp, t)->UseRealTime();
#endif
  }
  benchmark::RegisterBenchmark("work/serial", work_serial)->UseRealTime();
  return 0;
}();
}  // namespace

BENCHMARK_MAIN();
