// bench_v1: the DeepSeek-V1 encoder (examples/v1) with its dynamic block attention against the same model
// with dense bidirectional attention in the encoder (model::set_encoder_attention), in one run: the whole
// encoder (projections, FFN, norms and attention) of the mid preset's widths (d 1024, 16 heads of 64 sharing
// 4 KV heads, SwiGLU 2816, the card's block shapes: l 32, d_c 16, block 64, top-16, w 512), `layers` encoder
// layers, over source lengths 1k .. 64k. Names: <dynamic_block|dense>/encoder_mid_l<layers>_S<len>; counter
// tokens/s. One iteration from 16k on (a dense 64k encoder layer is minutes).
// Run: bench_v1 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//      (DSK_BENCH_V1_LAYERS=N: encoder layers, default 1)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "v1/model.hpp"

namespace {
using dsk::index_t;

std::string kname(index_t n) { return n % 1024 == 0 ? std::to_string(n / 1024) + "k" : std::to_string(n); }

int layers() {
  const char* e = std::getenv("DSK_BENCH_V1_LAYERS");
  const int n = e ? std::atoi(e) : 1;
  return n >= 1 && n <= 64 ? n : 1;
}

const dsk_v1::model& mid_model() {
  static const std::unique_ptr<dsk_v1::model> m = [] {
    dsk_v1::preset p = dsk_v1::mid;
    p.encoder_layers = layers();
    p.decoder_layers = 1;
    return std::make_unique<dsk_v1::model>(dsk_v1::model::random(p, dsk_examples::weight_format::f32));
  }();
  return *m;
}

void encoder(benchmark::State& st, dsk_v1::encoder_attention a, index_t S) {
  auto& m = const_cast<dsk_v1::model&>(mid_model());
  m.set_encoder_attention(a);
  std::vector<std::int32_t> src(static_cast<std::size_t>(S));
  for (index_t i = 0; i < S; ++i)
    src[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7919 + 13) % m.config().vocab_size);
  for (auto _ : st) {
    auto mem = m.encode(src);
    benchmark::DoNotOptimize(mem.data());
  }
  st.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(S), benchmark::Counter::kIsIterationInvariantRate);
  m.set_encoder_attention(dsk_v1::encoder_attention::dynamic_block);
}

void register_all() {
  const std::string l = "_l" + std::to_string(layers());
  for (index_t S : {1024, 2048, 4096, 16384, 65536}) {
    const int it = S >= 16384 ? 1 : 0;
    for (auto [name, a] : {std::pair{"dynamic_block", dsk_v1::encoder_attention::dynamic_block},
                           std::pair{"dense", dsk_v1::encoder_attention::dense}}) {
      auto* b =
          benchmark::RegisterBenchmark((std::string(name) + "/encoder_mid" + l + "_S" + kname(S)).c_str(),
                                       [=](benchmark::State& st) { encoder(st, a, S); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
      if (it) b->Iterations(it);
    }
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
