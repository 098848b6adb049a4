// bench_quant: quantized GEMV/GEMM (weight-only w4a32/w8a32 and integer w4a8/w8a8), quantize throughput, and
// in the same run the baselines they are judged against: dsk::gemm's bf16 GEMV and f32 GEMM, OpenBLAS sgemm,
// and the DRAM streaming-read roof measured over the same buffers.
//
// Names: <impl>/<op>/<shape>, impl in {dsk, openblas, roof}; op says the weight/activation types (bf16 and
// f32 are dsk::gemm). Shapes, named as in bench_gemm: m<M>_k2048_n2048 (x[M, 2048] * W[2048, 2048]^T, weights
// in L3) and decode_dram_m1_k4096_n14336 (M = 1, W[14336, 4096] as perf-roofs' sgemv, several matrices cycled
// so that every call reads its weights from DRAM: at least twice the last-level cache of distinct packed
// weights per op, and >= 64 MiB; the run's context prints the L3 size and the bytes per op). Counters:
// GB/s of weight bytes (codes + scales) for GEMV, GFLOP/s (2 M N K) for GEMM, GB/s of f32 read + codes
// written for quantize.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/packed.hpp"
#include "dsk/quant/quant.hpp"

#if defined(DSK_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

using namespace dsk;
namespace q = dsk::quant;

namespace {

constexpr q::format w4 = q::int4_g128_f16;                      // the Lite checkpoint format
constexpr q::format w8{q::qtype::int8, 0, q::scale_type::f32};  // per-channel int8
constexpr q::quantize_config c4{w4}, c8{w8};

tensor<float, 2> random_matrix(index_t r, index_t c, std::uint64_t seed) {
  tensor<float, 2> t({r, c}, uninitialized);
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  // Filling 235 MB with normal samples is slow; repeat a 1 Mi-sample block (content does not affect timing).
  std::vector<float> block(1 << 20);
  for (auto& v : block) v = d(g);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = block[static_cast<std::size_t>(i) & ((1 << 20) - 1)];
  return t;
}

// ---- shared data, built on first use --------------------------------------------------------------------
constexpr index_t dram_n = 14336, dram_k = 4096;

// Bytes of the last-level cache (sysconf, else sysfs' index3, else 64 MiB): a 2-vCPU guest may sit on a
// host with a 260 MiB L3, where a fixed 118 MB set of int4 matrices would be served from L3.
inline std::size_t llc_bytes() {
  long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (v > 0) return static_cast<std::size_t>(v);
  std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index3/size");
  std::size_t kib = 0;
  if (f >> kib && kib > 0) return kib * 1024;
  return std::size_t{64} << 20;
}
// Copies of one matrix of `bytes` so that the cycled set is >= 2x the LLC and >= 64 MiB (at least 2).
inline int copies_for(std::size_t bytes) {
  const std::size_t want = std::max<std::size_t>(2 * llc_bytes(), std::size_t{64} << 20);
  return static_cast<int>(std::max<std::size_t>(2, (want + bytes - 1) / bytes));
}

struct dram_set {
  tensor<float, 2> src = random_matrix(dram_n, dram_k, 1);
  std::vector<q::quantized_weight<w4>> i4;
  std::vector<q::quantized_weight<w8>> i8;
  std::vector<tensor<bf16, 2>> b16;
  dram_set() {
    const auto one4 = q::quantize<c4>(src.cview());  // 29.5 MB
    const auto one8 = q::quantize<c8>(src.cview());  // 58.8 MB
    for (int i = copies_for(one4.code_bytes()); i > 0; --i) i4.push_back(one4);
    for (int i = copies_for(one8.code_bytes()); i > 0; --i) i8.push_back(one8);
    tensor<bf16, 2> b({dram_n, dram_k}, uninitialized);  // 117 MB
    for (index_t j = 0; j < b.size(); ++j) b.data()[j] = bf16(src.data()[j]);
    for (int i = copies_for(static_cast<std::size_t>(b.size()) * 2); i > 0; --i) b16.push_back(b);
    std::fprintf(stderr, "bench_quant: LLC %zu MiB; DRAM rows cycle %zu int4 / %zu int8 / %zu bf16 copies\n",
                 llc_bytes() >> 20, i4.size(), i8.size(), b16.size());
  }
};
dram_set& dram() {
  static dram_set s;
  return s;
}

void set_gbps(benchmark::State& st, double bytes) {
  st.counters["GB/s"] =
      benchmark::Counter(bytes * static_cast<double>(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
}
void set_gflops(benchmark::State& st, double flops) {
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// ---- DRAM-bound decode GEMV -------------------------------------------------------------------------------
template <class QW, bool A8>
void gemv_dram_q(benchmark::State& st, std::vector<QW> dram_set::*member) {
  auto& ws = dram().*member;
  tensor<float, 2> x = random_matrix(1, dram_k, 2), y(1, dram_n);
  std::size_t i = 0;
  for (auto _ : st) {
    const auto& w = ws[i++ % ws.size()];
    if constexpr (A8)
      q::matmul_a8(x.cview(), w, y.view());
    else
      q::matmul(x.cview(), w, y.view());
    benchmark::DoNotOptimize(y.data());
  }
  set_gbps(st, static_cast<double>(ws[0].bytes()));
}

void gemv_dram_bf16(benchmark::State& st) {
  auto& ws = dram().b16;
  tensor<float, 2> x = random_matrix(1, dram_k, 2), y(1, dram_n);
  std::size_t i = 0;
  for (auto _ : st) {
    gemm::matmul(x.cview(), ws[i++ % ws.size()].cview(), y.view());
    benchmark::DoNotOptimize(y.data());
  }
  set_gbps(st, 2.0 * dram_n * dram_k);
}

// Streaming read of the int4 buffers with 8 independent accumulators, split over the threads like the
// kernels: the bandwidth a perfect GEMV of these bytes would reach in this run.
void roof_read(benchmark::State& st) {
  auto& ws = dram().i4;
  std::size_t i = 0;
  for (auto _ : st) {
    const auto& w = ws[i++ % ws.size()];
    const auto* p = reinterpret_cast<const __m256i*>(w.codes());
    const index_t n = w.code_bytes() / 32;
    std::vector<long long> sums(64);
    parallel_for_chunks(0, n, 1 << 16, [&](index_t lo, index_t hi) {
      __m256i a[8];
      for (auto& v : a) v = _mm256_setzero_si256();
      index_t j = lo;
      for (; j + 8 <= hi; j += 8)
        for (int u = 0; u < 8; ++u) a[u] = _mm256_add_epi64(a[u], _mm256_load_si256(p + j + u));
      for (int u = 1; u < 8; ++u) a[0] = _mm256_add_epi64(a[0], a[u]);
      sums[static_cast<std::size_t>(lo * 8 / n)] += _mm256_extract_epi64(a[0], 0) + static_cast<long long>(j);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  set_gbps(st, static_cast<double>(ws[0].code_bytes()));
}

// ---- quantize throughput (f32 source from DRAM) ---------------------------------------------------------
template <q::quantize_config C>
void quantize_dram(benchmark::State& st) {
  auto& src = dram().src;
  q::quantized_weight<C.fmt> out;
  q::quantize<C>(src.cview(), out);
  for (auto _ : st) {
    q::quantize<C>(src.cview(), out);
    benchmark::DoNotOptimize(out.codes());
  }
  set_gbps(st, 4.0 * dram_n * dram_k + static_cast<double>(out.bytes()));
}

// ---- x[M, 2048] * W[2048, 2048]^T ---------------------------------------------------------------------
constexpr index_t sq = 2048;
struct square_set {
  tensor<float, 2> w = random_matrix(sq, sq, 3);
  q::quantized_weight<w4> i4 = q::quantize<c4>(w.cview());
  q::quantized_weight<w8> i8 = q::quantize<c8>(w.cview());
  gemm::packed_weights<float> packed{w.cview()};
  tensor<bf16, 2> b16 = [&] {
    tensor<bf16, 2> b({sq, sq}, uninitialized);
    for (index_t j = 0; j < b.size(); ++j) b.data()[j] = bf16(w.data()[j]);
    return b;
  }();
};
square_set& square() {
  static square_set s;
  return s;
}

enum class op { w4a32, w4a8, w8a32, w8a8, f32, bf16, openblas };
template <op O>
void square_case(benchmark::State& st) {
  const index_t M = st.range(0);
  auto& s = square();
  tensor<float, 2> x = random_matrix(M, sq, 4), y(M, sq);
  for (auto _ : st) {
    if constexpr (O == op::w4a32) q::matmul(x.cview(), s.i4, y.view());
    if constexpr (O == op::w4a8) q::matmul_a8(x.cview(), s.i4, y.view());
    if constexpr (O == op::w8a32) q::matmul(x.cview(), s.i8, y.view());
    if constexpr (O == op::w8a8) q::matmul_a8(x.cview(), s.i8, y.view());
    if constexpr (O == op::f32) gemm::matmul(x.cview(), s.packed, y.view());
    if constexpr (O == op::bf16) gemm::matmul(x.cview(), s.b16.cview(), y.view());
#if defined(DSK_BENCH_HAVE_OPENBLAS)
    if constexpr (O == op::openblas)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), sq, sq, 1.0f, x.data(), sq,
                  s.w.data(), sq, 0.0f, y.data(), sq);
#endif
    benchmark::DoNotOptimize(y.data());
  }
  set_gflops(st, 2.0 * static_cast<double>(M) * sq * sq);
}

void register_all() {
  using benchmark::RegisterBenchmark;
  const char* dram_shape = "decode_dram_m1_k4096_n14336";
  auto name = [](const char* impl, const char* o, const std::string& shape) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s/%s/%s", impl, o, shape.c_str());
    return std::string(buf);
  };
  RegisterBenchmark(name("roof", "read", dram_shape).c_str(), roof_read)->UseRealTime();
  RegisterBenchmark(name("dsk", "w4a32", dram_shape).c_str(), [](benchmark::State& st) {
    gemv_dram_q<q::quantized_weight<w4>, false>(st, &dram_set::i4);
  })->UseRealTime();
  RegisterBenchmark(name("dsk", "w4a8", dram_shape).c_str(), [](benchmark::State& st) {
    gemv_dram_q<q::quantized_weight<w4>, true>(st, &dram_set::i4);
  })->UseRealTime();
  RegisterBenchmark(name("dsk", "w8a32", dram_shape).c_str(), [](benchmark::State& st) {
    gemv_dram_q<q::quantized_weight<w8>, false>(st, &dram_set::i8);
  })->UseRealTime();
  RegisterBenchmark(name("dsk", "w8a8", dram_shape).c_str(), [](benchmark::State& st) {
    gemv_dram_q<q::quantized_weight<w8>, true>(st, &dram_set::i8);
  })->UseRealTime();
  RegisterBenchmark(name("dsk", "bf16", dram_shape).c_str(), gemv_dram_bf16)->UseRealTime();
  RegisterBenchmark("dsk/quantize_int4_g128_f16/dram_k4096_n14336", quantize_dram<c4>)->UseRealTime();
  RegisterBenchmark("dsk/quantize_int8/dram_k4096_n14336", quantize_dram<c8>)->UseRealTime();
  for (index_t M : {1, 16, 128, 512}) {
    char shape_buf[64];
    std::snprintf(shape_buf, sizeof shape_buf, "m%ld_k2048_n2048", static_cast<long>(M));
    const std::string shape = shape_buf;
    auto reg = [&](const char* impl, const char* o, void (*f)(benchmark::State&)) {
      RegisterBenchmark(name(impl, o, shape).c_str(), f)->Arg(M)->UseRealTime();
    };
    reg("dsk", "w4a32", square_case<op::w4a32>);
    reg("dsk", "w4a8", square_case<op::w4a8>);
    reg("dsk", "w8a32", square_case<op::w8a32>);
    reg("dsk", "w8a8", square_case<op::w8a8>);
    reg("dsk", "f32", square_case<op::f32>);
    reg("dsk", "bf16", square_case<op::bf16>);
#if defined(DSK_BENCH_HAVE_OPENBLAS)
    reg("openblas", "f32", square_case<op::openblas>);
#endif
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
