// bench_cuda: dsk's CUDA GEMV kernels (int8 / int4 weight-only, bf16 / f32 dense) and dense GEMM (cuBLASLt)
// at the bench_gemm shapes, against cuBLASLt (dense bf16, the baseline) and the device-to-device copy roof
// (the same bytes copied with cudaMemcpyAsync). Names <impl>/<case>, case = <shape>/<weights>, identical
// across impls. Counters: GB/s (weight bytes read per second; for roof: bytes copied, counted once), TFLOP/s
// (2 M N K). CUDA-event timing.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "dsk/cuda.cuh"
#include "dsk/gemm/cuda/matmul.cuh"
#include "dsk/quant/cuda/quant.cuh"

using dsk::index_t;
namespace dev = dsk::device;

namespace {

template <class... P>
std::string cat(const P&... p) {
  return dsk::detail::concat(p...);
}

struct shape {
  std::string name;
  index_t M, N, K;
  int copies =
      1;  // distinct weight matrices cycled, so that the working set exceeds the 50 MB L2 of an H100/H200
};

void set_counters(benchmark::State& st, const shape& s, double weight_bytes) {
  st.counters["GB/s"] =
      benchmark::Counter(weight_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["TFLOP/s"] = benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K) * 1e-12,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

// Times f(copy index) per iteration with CUDA events on s.
template <class F>
void timed(benchmark::State& st, const dev::stream& s, int copies, F&& f) {
  dev::event e0, e1;
  int i = 0;
  f(0);  // warm-up (cuBLASLt heuristics, module load)
  s.synchronize();
  for (auto _ : st) {
    e0.record(s);
    f(i);
    e1.record(s);
    e1.synchronize();
    st.SetIterationTime(static_cast<double>(elapsed_ms(e0, e1)) * 1e-3);
    i = (i + 1) % copies;
  }
}

template <class T>
dev::tensor<T, 2> device_random(index_t rows, index_t cols, std::uint64_t seed) {
  dsk::tensor<T, 2> h(rows, cols);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (index_t i = 0; i < h.size(); ++i) h.data()[i] = dsk::from_float<T>(d(g));
  return dev::upload(h);
}

template <dsk::quant::format F>
void bench_quant(benchmark::State& st, shape s) {
  const dev::stream stream;
  std::vector<dsk::quant::device_quantized_weight<F>> w;
  std::mt19937_64 g(7);
  for (int c = 0; c < s.copies; ++c) {
    dsk::quant::device_quantized_weight<F> q(s.N, s.K);
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(s.N * dsk::quant::code_row_bytes(F, s.K)));
    for (auto& b : codes) b = static_cast<std::uint8_t>(g());
    std::vector<dsk::quant::scale_t<F>> scales(static_cast<std::size_t>(s.N * q.groups()),
                                               dsk::from_float<dsk::quant::scale_t<F>>(0.01f));
    dev::copy(reinterpret_cast<std::uint8_t*>(q.codes()), codes.data(), static_cast<index_t>(codes.size()),
              dev::copy_kind::host_to_device, stream);
    dev::copy(q.scales(), scales.data(), static_cast<index_t>(scales.size()), dev::copy_kind::host_to_device,
              stream);
    stream.synchronize();
    w.push_back(std::move(q));
  }
  const auto x = device_random<float>(s.M, s.K, 1);
  dev::tensor<float, 2> y(s.M, s.N);
  timed(st, stream, s.copies,
        [&](int c) { dsk::quant::matmul<dsk::cuda>(x.cview(), w[c].view(), y.view(), stream); });
  set_counters(st, s, static_cast<double>(w[0].bytes()));
}

// dsk's dense path: the GEMV kernel for M <= 8 (f32 activations), cuBLASLt above (activations of the weights'
// type).
template <class W>
void bench_dense(benchmark::State& st, shape s) {
  const dev::stream stream;
  std::vector<dev::tensor<W, 2>> w;
  for (int c = 0; c < s.copies; ++c) w.push_back(device_random<W>(s.N, s.K, 10 + c));
  dev::tensor<float, 2> y(s.M, s.N);
  if (s.M <= 8) {
    const auto x = device_random<float>(s.M, s.K, 1);
    timed(st, stream, s.copies,
          [&](int c) { dsk::gemm::matmul<dsk::gemm::matmul_config{}, dsk::cuda>(x.cview(), w[c].cview(), y.view(), stream); });
  } else {
    const auto x = device_random<W>(s.M, s.K, 1);
    timed(st, stream, s.copies,
          [&](int c) { dsk::gemm::matmul<dsk::gemm::matmul_config{}, dsk::cuda>(x.cview(), w[c].cview(), y.view(), stream); });
  }
  set_counters(st, s, static_cast<double>(s.N * s.K * sizeof(W)));
}

// Baseline: cuBLASLt for every M (bf16 x bf16 -> f32, fp32 compute).
void bench_cublaslt(benchmark::State& st, shape s) {
  const dev::stream stream;
  std::vector<dev::tensor<dsk::bf16, 2>> w;
  for (int c = 0; c < s.copies; ++c) w.push_back(device_random<dsk::bf16>(s.N, s.K, 10 + c));
  const auto x = device_random<dsk::bf16>(s.M, s.K, 1);
  dev::tensor<float, 2> y(s.M, s.N);
  constexpr dsk::gemm::matmul_config lt{.algo = dsk::gemm::algorithm::cublaslt};
  timed(st, stream, s.copies,
        [&](int c) { dsk::gemm::matmul<lt, dsk::cuda>(x.cview(), w[c].cview(), y.view(), stream); });
  set_counters(st, s, static_cast<double>(s.N * s.K * 2));
}

// Roof: a device-to-device copy of the same weight bytes (read once + written once; GB/s counts the bytes
// once, so a GEMV at the copy's speed of reading would show twice this figure: the target compares reads to
// reads).
void bench_roof(benchmark::State& st, shape s, double bytes) {
  const dev::stream stream;
  const auto n = static_cast<index_t>(bytes);
  std::vector<dev::buffer<std::uint8_t>> src;
  for (int c = 0; c < s.copies; ++c) src.emplace_back(n);
  dev::buffer<std::uint8_t> dst(n);
  timed(st, stream, s.copies, [&](int c) {
    dev::copy(dst.data(), static_cast<const std::uint8_t*>(src[c].data()), n,
              dev::copy_kind::device_to_device, stream);
  });
  set_counters(st, s, 2.0 * bytes);  // read + write traffic
}

template <class F>
void add(const std::string& name, F f) {
  benchmark::RegisterBenchmark(name.c_str(), f)->UseManualTime()->Unit(benchmark::kMicrosecond);
}

void register_all() {
  std::vector<shape> shapes;
  for (index_t n : {256, 512, 1024, 2048}) shapes.push_back({cat("square", n), n, n, n});
  for (index_t m : {1, 4, 16, 128, 512})
    for (index_t n : {2048, 1408, 10944}) shapes.push_back({cat("m", m, "_k2048_n", n), m, n, 2048});
  // Decode with weights beyond the L2: 32 copies of [10944, 2048] (int4: 359 MB in all).
  shapes.push_back({"decode_hbm_m1_k2048_n10944x32", 1, 10944, 2048, 32});
  using namespace dsk::quant;
  constexpr format int8{qtype::int8, 0, scale_type::f32, int4_range::sym7};
  constexpr format int4{qtype::int4, 128, scale_type::f16, int4_range::sym7};
  for (const auto& s : shapes) {
    add(cat("dsk/", s.name, "/int8"), [s](benchmark::State& st) { bench_quant<int8>(st, s); });
    add(cat("dsk/", s.name, "/int4"), [s](benchmark::State& st) { bench_quant<int4>(st, s); });
    add(cat("dsk/", s.name, "/bf16"), [s](benchmark::State& st) { bench_dense<dsk::bf16>(st, s); });
    add(cat("dsk/", s.name, "/f32"), [s](benchmark::State& st) { bench_dense<float>(st, s); });
    add(cat("cublaslt/", s.name, "/bf16"), [s](benchmark::State& st) { bench_cublaslt(st, s); });
    if (s.M == 1) {
      const double b8 = double(s.N) * double(s.K) + 4.0 * double(s.N);
      const double b4 = double(s.N) * double(s.K) / 2 + 2.0 * double(s.N) * double(s.K) / 128;
      add(cat("roof/", s.name, "/int8"), [s, b8](benchmark::State& st) { bench_roof(st, s, b8); });
      add(cat("roof/", s.name, "/int4"), [s, b4](benchmark::State& st) { bench_roof(st, s, b4); });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (dev::device_count() == 0) {
    std::printf("bench_cuda: no usable CUDA device; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
    std::printf("bench_cuda: %s, sm_%d%d\n", p.name, p.major, p.minor);
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
