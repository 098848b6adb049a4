// bench_moe: a DeepSeek-V2-Lite-shaped MoE layer (hidden 2048, 64 routed experts, top-6, intermediate 1408,
// 2 shared experts merged into one MLP of width 2816) at 1, 16, 128 and 512 tokens, bf16 and int4 expert
// weights. Rows: dsk/layer/<dtype>/T<n> (the whole forward),
// dsk/{route,dispatch,experts,combine}/<dtype>/T<n> (one stage each, the others done outside the timed loop),
// and roof/layer/<dtype>/T1: a streaming read of as many bytes as one decode step's activated weights (6
// routed + shared experts + the fp32 gate) from DRAM, same threads. Four input batches with different
// routings are cycled so that the activated experts change every iteration (the decode working set then
// exceeds the 32 MiB L3 for both dtypes). Run: bench_moe --benchmark_repetitions=5
// --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "dsk/moe/moe.hpp"
#include "filled.hpp"

namespace {
using namespace dsk;
using namespace dsk::moe;

constexpr index_t H = 2048, E = 64, K = 6, I = 1408, I_shared = 2 * 1408;
constexpr int batches = 4;
constexpr router_config lite_router{};  // V2-Lite: softmax, greedy, no normalisation, scale 1
constexpr quant::quantize_config q4{quant::int4_per_channel};

using dsk_bench::filled;

struct lite_weights {
  tensor<float, 2> gate{E, H};
  tensor<bf16, 3> g = filled<bf16>(E, I, H, 1), u = filled<bf16>(E, I, H, 2), d = filled<bf16>(E, H, I, 3);
  tensor<bf16, 3> sg = filled<bf16>(1, I_shared, H, 4), su = filled<bf16>(1, I_shared, H, 5),
                  sd = filled<bf16>(1, H, I_shared, 6);
  std::unique_ptr<quantized_expert_store<q4>> qr, qs;
  lite_weights() { orthogonal_init(gate, 7, 4.0f); }
  const quantized_expert_store<q4>& q_routed() {
    if (!qr) qr = std::make_unique<quantized_expert_store<q4>>(g.cview(), u.cview(), d.cview());
    return *qr;
  }
  const quantized_expert_store<q4>& q_shared() {
    if (!qs) qs = std::make_unique<quantized_expert_store<q4>>(sg.cview(), su.cview(), sd.cview());
    return *qs;
  }
};

lite_weights& weights() {
  static lite_weights w;
  return w;
}

using bf16_bank = dense_experts<bf16>;
using int4_bank = quantized_experts<q4.fmt>;

template <class Bank, bool A8 = false>
auto make_layer();
template <>
auto make_layer<bf16_bank, false>() {
  auto& w = weights();
  return deepseek_moe<lite_router, bf16_bank>(w.gate, bf16_bank(w.g.cview(), w.u.cview(), w.d.cview()),
                                              bf16_bank(w.sg.cview(), w.su.cview(), w.sd.cview()), K);
}
template <>
auto make_layer<int4_bank, false>() {
  auto& w = weights();
  return deepseek_moe<lite_router, int4_bank>(w.gate, w.q_routed().bank(), w.q_shared().bank(), K);
}
// int4 weights with int8 activations (W4A8 integer dot products).
template <>
auto make_layer<int4_bank, true>() {
  auto& w = weights();
  return deepseek_moe<lite_router, int4_bank>(w.gate, w.q_routed().bank(true), w.q_shared().bank(true), K);
}

template <class Bank>
index_t activated_bytes(const Bank& routed, const Bank& shared) {
  return K * routed.expert_bytes() + shared.expert_bytes() + E * H * index_t(sizeof(float));
}

void set_counters(benchmark::State& st, index_t T, double bytes) {
  const double flops = 2.0 * double(T) * (double(K) * 3 * H * I + 3.0 * H * I_shared + double(E) * H);
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

enum class stage { layer, route, dispatch, experts, combine };

template <class Bank, bool A8>
void bench_stage(benchmark::State& st, stage which, index_t T) {
  const auto layer = make_layer<Bank, A8>();
  std::vector<tensor<float, 2>> xs;
  std::vector<moe_workspace> ws(batches);
  for (int b = 0; b < batches; ++b) {
    xs.push_back(tensor<float, 2>(T, H));
    auto v = filled<float>(1, T, H, 100 + static_cast<std::uint32_t>(b));
    std::copy_n(v.data(), v.size(), xs.back().data());
    for (index_t i = 0; i < xs.back().size(); ++i) xs.back().data()[i] *= 1.0f / 0.03f;  // entries in [-1, 1]
  }
  tensor<float, 2> y(T, H);
  for (int b = 0; b < batches; ++b) layer.forward(xs[b], y, ws[b]);  // every stage's inputs exist
  int b = 0;
  for (auto _ : st) {
    switch (which) {
      case stage::layer:
        layer.forward(xs[b], y, ws[b]);
        break;
      case stage::route:
        layer.route(xs[b], ws[b]);
        break;
      case stage::dispatch:
        layer.dispatch(xs[b], ws[b]);
        break;
      case stage::experts:
        layer.experts(xs[b], ws[b]);
        break;
      case stage::combine:
        layer.combine(ws[b], y);
        break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    b = (b + 1) % batches;
  }
  set_counters(st, T, double(activated_bytes(layer.routed(), *layer.shared())));
}

// Reads `bytes` bytes per iteration from the routed gate weights (369 MiB), moving on every iteration, with
// the same thread count as the layer: what streaming the activated weights costs at the DRAM roof.
void bench_roof(benchmark::State& st, index_t bytes) {
  auto& w = weights();
  const auto* base = reinterpret_cast<const std::uint8_t*>(w.g.data());
  const index_t total = w.g.size() * index_t(sizeof(bf16)) / 64 * 64;
  const index_t n = bytes / 64 * 64;
  index_t off = 0;
  std::array<long long, 64> sink{};
  for (auto _ : st) {
    if (off + n > total) off = 0;
    // 8 equal parts read in lockstep (as the reference roof measurement: 8 adjacent rows at once), split over
    // the threads; a single sequential stream reaches only ~half the DRAM bandwidth here.
    const index_t lines = n / 64 / 8;
    parallel_for_chunks(0, lines, 256, [&](index_t lo, index_t hi) {
      __m256i a[8];
      for (auto& v : a) v = _mm256_setzero_si256();
      for (index_t i = lo; i < hi; ++i)
        for (int p = 0; p < 8; ++p) {
          const auto* q = reinterpret_cast<const __m256i*>(base + off + (p * lines + i) * 64);
          a[p] = _mm256_add_epi32(a[p], _mm256_add_epi32(_mm256_load_si256(q), _mm256_load_si256(q + 1)));
        }
      for (int p = 1; p < 8; ++p) a[0] = _mm256_add_epi32(a[0], a[p]);
      sink[static_cast<std::size_t>(lo % 64)] += _mm256_extract_epi64(a[0], 0);
    });
    benchmark::DoNotOptimize(sink.data());
    off += n;
  }
  set_counters(st, 1, double(bytes));
}

const char* stage_name(stage s) {
  switch (s) {
    case stage::layer:
      return "layer";
    case stage::route:
      return "route";
    case stage::dispatch:
      return "dispatch";
    case stage::experts:
      return "experts";
    case stage::combine:
      return "combine";
  }
  return "?";
}

template <class Bank, bool A8 = false>
void register_dtype(const char* dtype) {
  for (index_t T : {1, 16, 128, 512})
    for (stage s : {stage::layer, stage::route, stage::dispatch, stage::experts, stage::combine}) {
      const std::string name = std::string("dsk/") + stage_name(s) + "/" + dtype + "/T" + std::to_string(T);
      benchmark::RegisterBenchmark(name.c_str(),
                                   [s, T](benchmark::State& st) { bench_stage<Bank, A8>(st, s, T); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_dtype<bf16_bank>("bf16");
  register_dtype<int4_bank>("int4");
  register_dtype<int4_bank, true>("int4a8");
  benchmark::RegisterBenchmark("roof/layer/bf16/T1",
                               [](benchmark::State& st) {
                                 auto l = make_layer<bf16_bank>();
                                 bench_roof(st, activated_bytes(l.routed(), *l.shared()));
                               })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("roof/layer/int4/T1",
                               [](benchmark::State& st) {
                                 auto l = make_layer<int4_bank>();
                                 bench_roof(st, activated_bytes(l.routed(), *l.shared()));
                               })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("roof/layer/int4a8/T1",
                               [](benchmark::State& st) {
                                 auto l = make_layer<int4_bank, true>();
                                 bench_roof(st, activated_bytes(l.routed(), *l.shared()));
                               })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
