// bench_roofs: the machine's roofs that the other benches are judged against, measured with dsk's own packet
// layer (dsk::simd::native: AVX2+FMA, NEON or scalar, whichever this build targets), on 1 thread and on all
// threads (dsk::num_threads(): DSK_NUM_THREADS or OpenMP's default).
//   fma/t<T>   fp32 FMA peak, counter `flops` per second: 12 independent packet FMA chains per thread (more
//              than FMA latency x throughput on current cores), 2 * lanes * 12 FLOP per inner step.
//   dram/t<T>  DRAM streaming read, counter `bytes` per second: 8 streams read in lockstep (8 rows at once,
//              GEMV-shaped; one sequential stream reaches only about half the bandwidth) from a buffer far
//              larger than any L3 (DSK_ROOFS_DRAM_MIB, default 1024 MiB).
// The development machine's figures: shared/reference/perf-roofs.md (99 / 196 GFLOP/s, ~21 / ~30 GB/s on 2
// Zen 3 vCPUs). Run: bench_roofs --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <array>
#include <cstdlib>
#include <string>

#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/simd/simd.hpp"
#include "roofs/dram.hpp"

namespace {
using dsk::index_t;
using P = dsk::simd::native;

constexpr int chains = 12;
constexpr index_t fma_steps = 1 << 16;  // per thread and iteration

// One thread's FMA loop: `chains` independent accumulators, each a*x + b (x close to 1: no overflow).
float fma_loop(index_t steps, float seed) {
  std::array<P::f32, chains> acc;
  for (int c = 0; c < chains; ++c) acc[c] = P::broadcast(seed + static_cast<float>(c));
  const auto a = P::broadcast(0.999999f), b = P::broadcast(1e-7f);
  for (index_t s = 0; s < steps; ++s)
    for (int c = 0; c < chains; ++c) acc[c] = P::fma(acc[c], a, b);
  auto sum = acc[0];
  for (int c = 1; c < chains; ++c) sum = P::add(sum, acc[c]);
  return P::reduce_add(sum);
}

void bench_fma(benchmark::State& st, int threads) {
  const dsk::thread_count_scope scope(threads);
  std::array<float, 256> sink{};
  for (auto _ : st) {
    dsk::parallel_for(
        0, threads, [&](index_t t) { sink[static_cast<std::size_t>(t % 256)] += fma_loop(fma_steps, 1.0f); });
    benchmark::DoNotOptimize(sink.data());
  }
  const double flops = 2.0 * P::width * chains * double(fma_steps) * threads;
  st.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["threads"] = threads;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const int all = dsk::num_threads();
  std::array<int, 2> counts{1, all};
  for (int i = 0; i < (all > 1 ? 2 : 1); ++i) {
    const int t = counts[static_cast<std::size_t>(i)];
    benchmark::RegisterBenchmark(("fma/t" + std::to_string(t)).c_str(), bench_fma, t)->UseRealTime();
    benchmark::RegisterBenchmark(("dram/t" + std::to_string(t)).c_str(), dsk::bench::dram_read, t)
        ->UseRealTime();
  }
  benchmark::AddCustomContext("packet_layer", std::string(P::name));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
