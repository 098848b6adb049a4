// bench_gemm: dsk's dense GEMM/GEMV against OpenBLAS sgemm/sgemv, Eigen and the DRAM read roof, same shapes,
// same thread counts, one process. Names <impl>/<case>, case = <shape>/<weight dtype>/t<threads>, so rows
// with the same case compare directly. Counters: GFLOP/s (2 M N K per call) and GB/s of weight bytes read per
// call. Run: bench_gemm --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/ref.hpp"
#include "dsk/simd/simd.hpp"

#if defined(DSK_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif
#if defined(DSK_BENCH_HAVE_EIGEN)
#include <Eigen/Core>
#endif

namespace {
using dsk::index_t;

template <class W>
dsk::tensor<W, 2> filled(index_t r, index_t c, unsigned seed) {
  dsk::tensor<W, 2> t(std::array<index_t, 2>{r, c}, dsk::uninitialized);
  unsigned s = seed * 2654435761u + 1;
  for (index_t i = 0; i < t.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data()[i] = dsk::from_float<W>(float(int(s >> 9) % 2001 - 1000) * 1e-3f);
  }
  return t;
}

template <class W>
const char* dtype_name() {
  return std::is_same_v<W, float> ? "f32" : "bf16";
}

void set_counters(benchmark::State& st, index_t M, index_t N, index_t K, double weight_bytes) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(M) * double(N) * double(K) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GB/s"] =
      benchmark::Counter(weight_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// `copies` distinct weight matrices are cycled so that the working set can exceed the 32 MiB L3.
struct shape {
  std::string name;
  index_t M, N, K;
  int copies = 1;
};

template <class W>
void bench_dsk(benchmark::State& st, shape s, int threads) {
  const dsk::thread_count_scope scope(threads);
  const auto x = filled<float>(s.M, s.K, 1);
  std::vector<dsk::gemm::packed_weights<W>> w;
  for (int c = 0; c < s.copies; ++c) w.emplace_back(filled<W>(s.N, s.K, 2 + c).cview());
  dsk::tensor<float, 2> y(s.M, s.N);
  int c = 0;
  for (auto _ : st) {
    dsk::gemm::matmul(x, w[c], y);
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % s.copies;
  }
  set_counters(st, s.M, s.N, s.K, double(s.N * s.K) * sizeof(W));
}

void bench_ref(benchmark::State& st, shape s, int) {
  const auto x = filled<float>(s.M, s.K, 1);
  const auto w = filled<float>(s.N, s.K, 2);
  dsk::tensor<double, 2> y(s.M, s.N);
  for (auto _ : st) {
    dsk::gemm::ref::matmul<float>(x.cview(), w.cview(), y.view());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(st, s.M, s.N, s.K, double(s.N * s.K) * 4);
}

#if defined(DSK_BENCH_HAVE_OPENBLAS)
// y = x W^T as OpenBLAS is called for it: sgemm (RowMajor, NoTrans, Trans); sgemv for M = 1 (sgemm does not
// forward M = 1 to its GEMV kernel).
void bench_openblas(benchmark::State& st, shape s, int threads) {
  openblas_set_num_threads(threads);
  const auto x = filled<float>(s.M, s.K, 1);
  std::vector<dsk::tensor<float, 2>> w;
  for (int c = 0; c < s.copies; ++c) w.push_back(filled<float>(s.N, s.K, 2 + c));
  dsk::tensor<float, 2> y(s.M, s.N);
  int c = 0;
  for (auto _ : st) {
    if (s.M == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(s.N), int(s.K), 1.0f, w[c].data(), int(s.K), x.data(), 1,
                  0.0f, y.data(), 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.M), int(s.N), int(s.K), 1.0f, x.data(),
                  int(s.K), w[c].data(), int(s.K), 0.0f, y.data(), int(s.N));
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % s.copies;
  }
  set_counters(st, s.M, s.N, s.K, double(s.N * s.K) * 4);
}
#endif

#if defined(DSK_BENCH_HAVE_EIGEN)
void bench_eigen(benchmark::State& st, shape s, int threads) {
  Eigen::setNbThreads(threads);
  using mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto x = filled<float>(s.M, s.K, 1);
  std::vector<dsk::tensor<float, 2>> w;
  for (int c = 0; c < s.copies; ++c) w.push_back(filled<float>(s.N, s.K, 2 + c));
  dsk::tensor<float, 2> y(s.M, s.N);
  Eigen::Map<const mat> xm(x.data(), s.M, s.K);
  Eigen::Map<mat> ym(y.data(), s.M, s.N);
  int c = 0;
  for (auto _ : st) {
    Eigen::Map<const mat> wm(w[c].data(), s.N, s.K);
    ym.noalias() = xm * wm.transpose();
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % s.copies;
  }
  set_counters(st, s.M, s.N, s.K, double(s.N * s.K) * 4);
}
#endif

// The DRAM read roof of the same working set: sum every float of the cycled weight copies (8 independent
// accumulators, threads over contiguous parts), i.e. what a GEMV could reach at best.
template <class W>
void bench_roof(benchmark::State& st, shape s, int threads) {
  const dsk::thread_count_scope scope(threads);
  using S = dsk::simd::native;
  std::vector<dsk::aligned_buffer<float>> w;
  const index_t n = s.N * s.K * index_t(sizeof(W)) / 4;
  for (int c = 0; c < s.copies; ++c) {
    w.emplace_back(n);
    std::memset(w.back().data(), 0, std::size_t(n) * 4);
  }
  int c = 0;
  for (auto _ : st) {
    const float* p = w[c].data();
    dsk::parallel_for_chunks(0, n / 64, 1024, [&](index_t lo, index_t hi) {
      typename S::f32 a[8];
      for (auto& v : a) v = S::zero();
      for (index_t i = lo * 64; i < hi * 64; i += 64)
        for (int j = 0; j < 8; ++j) a[j] = S::add(a[j], S::load(p + i + 8 * j));
      for (int j = 1; j < 8; ++j) a[0] = S::add(a[0], a[j]);
      benchmark::DoNotOptimize(a[0]);
    });
    c = (c + 1) % s.copies;
  }
  set_counters(st, s.M, s.N, s.K, double(s.N * s.K) * sizeof(W));
}

// String building through a stream (GCC 12 reports a false -Wrestrict on std::string operator+ chains).
template <class... P>
std::string cat(const P&... p) {
  std::ostringstream o;
  (o << ... << p);
  return o.str();
}

// Cost of one empty dsk::parallel_for_chunks region over `threads` threads: the fixed price every 2-thread
// row pays per call (microseconds on an idle machine, a scheduler time slice when the cores are
// oversubscribed).
void bench_fork_join(benchmark::State& st, shape, int threads) {
  const dsk::thread_count_scope scope(threads);
  std::atomic<int> sink{0};
  for (auto _ : st)
    dsk::parallel_for_chunks(0, threads, 1, [&](index_t lo, index_t hi) { sink += int(hi - lo); });
  benchmark::DoNotOptimize(sink.load());
}

template <class F>
void add(const std::string& impl, const std::string& cs, F f, const shape& s, int threads,
         benchmark::TimeUnit unit = benchmark::kMillisecond) {
  benchmark::RegisterBenchmark(cat(impl, "/", cs).c_str(), [=](benchmark::State& st) { f(st, s, threads); })
      ->Unit(unit)
      ->UseRealTime();
}

void register_all() {
  std::vector<shape> shapes;
  for (index_t n : {256, 512, 1024, 2048}) shapes.push_back({cat("square", n), n, n, n});
  for (index_t m : {1, 4, 16, 128, 512})
    for (index_t n : {2048, 1408, 10944}) shapes.push_back({cat("m", m, "_k2048_n", n), m, n, 2048});
  for (const auto& s : shapes)
    for (int t : {1, 2}) {
      const std::string tt = cat("/t", t);
      add("dsk", cat(s.name, "/f32", tt), bench_dsk<float>, s, t);
      add("dsk", cat(s.name, "/bf16", tt), bench_dsk<dsk::bf16>, s, t);
#if defined(DSK_BENCH_HAVE_OPENBLAS)
      add("openblas", cat(s.name, "/f32", tt), bench_openblas, s, t);
#endif
#if defined(DSK_BENCH_HAVE_EIGEN)
      add("eigen", cat(s.name, "/f32", tt), bench_eigen, s, t);
#endif
      if (s.M <= 4 && t == 1) add("ref", cat(s.name, "/f32", tt), bench_ref, s, t);
    }
  for (int t : {1, 2})
    add("dsk", cat("fork_join/t", t), bench_fork_join, shape{"fork_join", 0, 0, 0}, t,
        benchmark::kMicrosecond);
  // Decode with weights beyond the last-level cache: 4 copies of [10944, 2048] (359 MB f32, 179 MB bf16).
  const shape dram{"decode_dram_m1_k2048_n10944x4", 1, 10944, 2048, 4};
  for (int t : {1, 2}) {
    const std::string tt = cat("/t", t);
    add("dsk", cat(dram.name, "/f32", tt), bench_dsk<float>, dram, t);
    add("dsk", cat(dram.name, "/bf16", tt), bench_dsk<dsk::bf16>, dram, t);
    add("roof", cat(dram.name, "/f32", tt), bench_roof<float>, dram, t);
    add("roof", cat(dram.name, "/bf16", tt), bench_roof<dsk::bf16>, dram, t);
#if defined(DSK_BENCH_HAVE_OPENBLAS)
    add("openblas", cat(dram.name, "/f32", tt), bench_openblas, dram, t);
#endif
  }
}
}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
