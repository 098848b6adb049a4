// The DRAM streaming-read roof, measured in the running binary (bench_roofs, and the model benches that
// report their bytes per token against it): 8 streams read in lockstep (GEMV-shaped; one sequential stream
// reaches about half the bandwidth) with dsk's packet layer, from a buffer far larger than any L3
// (DSK_ROOFS_DRAM_MIB, default 1024 MiB), on `threads` threads. Counter `bytes` per second.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <cstdlib>

#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::bench {

inline index_t dram_bytes() {
  long mib = 1024;
  if (const char* e = std::getenv("DSK_ROOFS_DRAM_MIB"); e && *e) mib = std::strtol(e, nullptr, 10);
  return static_cast<index_t>(mib < 64 ? 64 : mib) << 20;
}

inline dsk::tensor<float, 1>& dram_buffer() {
  static dsk::tensor<float, 1> buf = [] {
    dsk::tensor<float, 1> t(dram_bytes() / index_t(sizeof(float)));  // zeroed: every page touched once
    return t;
  }();
  return buf;
}

inline void dram_read(benchmark::State& st, int threads) {
  using P = dsk::simd::native;
  const dsk::thread_count_scope scope(threads);
  auto& buf = dram_buffer();
  const index_t n = buf.size() / (8 * P::width) * (8 * P::width);
  const index_t rows = n / 8;  // 8 streams: rows [p * rows, (p + 1) * rows)
  const float* base = buf.data();
  std::array<float, 256> sink{};
  for (auto _ : st) {
    dsk::parallel_for_chunks(0, rows / P::width, 4096, [&](index_t lo, index_t hi) {
      std::array<P::f32, 8> acc;
      for (auto& v : acc) v = P::zero();
      for (index_t i = lo; i < hi; ++i)
        for (int p = 0; p < 8; ++p) acc[p] = P::add(acc[p], P::load(base + p * rows + i * P::width));
      for (int p = 1; p < 8; ++p) acc[0] = P::add(acc[0], acc[p]);
      sink[static_cast<std::size_t>(lo % 256)] += P::reduce_add(acc[0]);
    });
    benchmark::DoNotOptimize(sink.data());
  }
  st.counters["bytes"] =
      benchmark::Counter(double(n) * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
  st.counters["threads"] = threads;
}

}  // namespace dsk::bench
