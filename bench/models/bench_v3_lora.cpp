// bench_v3_lora: the costs the DeepSeek-V3 / LoRA paths add, each beside its baseline in the same run.
//   roof/dram_read/t<N>                  the DRAM streaming-read roof (bench/roofs/dram.hpp), counter bytes/s
//   fp8_dequant/<R>x<C>/{bf16,f32}       io::read_fp8_block_scaled of one V3 expert weight (F8_E4M3 codes +
//                                        128 x 128 F32 scales, in a temporary safetensors file whose pages
//                                        are in the page cache): counter bytes/s = codes read + output
//                                        written (compare with the roof: load time of an FP8 checkpoint)
//   lora/<fmt>/<out>x<in>/T<T>/{base,attached,merged}   nn::linear forward with a rank-16 adapter attached
//                                        (base + scale (x A^T) B^T) or merged into the weight, against the
//                                        same layer without one: what --lora costs per token vs --lora-merge
//   route/E256/T<T>/{noaux_tc,group_limited_greedy}  moe::route with V3's router (256 experts, 8 groups, 4
//                                        kept, top-8, bias) vs V2's group rule on the same logits
// Run: bench_v3_lora --benchmark_repetitions=5 --benchmark_report_aggregates_only=true (DSK_NUM_THREADS)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "dsk/io/io.hpp"
#include "dsk/moe/router.hpp"
#include "dsk/nn/linear.hpp"
#include "roofs/dram.hpp"

namespace {
using dsk::index_t;

dsk::tensor<float, 2> random_matrix(index_t r, index_t c, std::uint64_t seed, float scale = 1.0f) {
  dsk::tensor<float, 2> t(std::array<index_t, 2>{r, c}, dsk::uninitialized);
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = u(g);
  return t;
}

// A V3 expert weight [R, C] as FP8 codes + 128 x 128 scales, in a temporary file (mapped, then unlinked).
struct fp8_file {
  std::filesystem::path path;
  std::unique_ptr<dsk::io::safetensors_file> file;
  fp8_file(index_t R, index_t C) {
    path = std::filesystem::temp_directory_path() / ("dsk_bench_fp8_" + std::to_string(::getpid()) + ".st");
    dsk::io::safetensors_writer w;
    std::vector<std::byte> codes(static_cast<std::size_t>(R * C));
    std::mt19937_64 g(7);
    for (auto& b : codes) {
      auto v = static_cast<std::uint8_t>(g());
      if ((v & 0x7f) == 0x7f) v = 0x38;  // no NaN codes
      b = std::byte(v);
    }
    w.add("w.weight", dsk::io::st_dtype::F8_E4M3, {R, C}, codes);
    w.add("w.weight_scale_inv", random_matrix((R + 127) / 128, (C + 127) / 128, 8, 1e-3f));
    w.write(path);
    file = std::make_unique<dsk::io::safetensors_file>(path);
    std::filesystem::remove(path);
  }
};

template <class T>
void fp8_dequant(benchmark::State& st, index_t R, index_t C) {
  const fp8_file f(R, C);  // outside the timed loop
  for (auto _ : st) {
    auto w = dsk::io::read_fp8_block_scaled<T>(*f.file, "w.weight", {R, C}, {128, 128});
    benchmark::DoNotOptimize(w.data());
  }
  st.counters["bytes"] =
      benchmark::Counter(double(R) * C * (1 + sizeof(T)), benchmark::Counter::kIsIterationInvariantRate);
}

void lora_linear(benchmark::State& st, const char* fmt, index_t out, index_t in, index_t T, int mode) {
  auto w = random_matrix(out, in, 1, 0.02f);
  dsk::nn::lora_adapter l{random_matrix(16, in, 2, 0.02f), random_matrix(out, 16, 3, 0.02f), 2.0f};
  if (mode == 2) dsk::nn::merge_lora(w.view(), l);
  dsk::nn::linear layer(w.cview(), dsk::nn::parse_linear_format(fmt));
  if (mode == 1) layer.set_adapter(l);
  const auto x = random_matrix(T, in, 4);
  dsk::tensor<float, 2> y(std::array<index_t, 2>{T, out}, dsk::uninitialized);
  for (auto _ : st) {
    layer.forward(x.cview(), y.view());
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["weight_bytes"] = double(layer.bytes());  // adapter included
}

template <dsk::moe::router_config R>
void route(benchmark::State& st, index_t T, dsk::moe::router_options opt) {
  constexpr index_t E = 256, K = 8;
  const auto logits = random_matrix(T, E, 5, 4.0f);
  const auto bias = random_matrix(1, E, 6, 0.1f);
  dsk::tensor<float, 2> scores(std::array<index_t, 2>{T, E}), w(std::array<index_t, 2>{T, K});
  dsk::tensor<dsk::moe::expert_id, 2> idx(std::array<index_t, 2>{T, K});
  const dsk::view<const float, 1> b(bias.data(), dsk::dims<1>(E), {1});
  for (auto _ : st) {
    dsk::moe::route<R>(logits.cview(), b, scores.view(), idx.view(), w.view(), opt);
    benchmark::DoNotOptimize(w.data());
  }
  st.counters["tokens"] = benchmark::Counter(double(T), benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  using benchmark::RegisterBenchmark;
  const int threads = dsk::num_threads();
  RegisterBenchmark(("roof/dram_read/t" + std::to_string(threads)).c_str(), [threads](benchmark::State& st) {
    dsk::bench::dram_read(st, threads);
  })->UseRealTime();
  // V3's expert up_proj [2048, 7168] and its shared expert's down_proj [7168, 2048].
  for (auto [R, C] : {std::pair<index_t, index_t>{2048, 7168}, {7168, 2048}}) {
    const std::string s = std::to_string(R) + "x" + std::to_string(C);
    RegisterBenchmark(("fp8_dequant/" + s + "/bf16").c_str(), fp8_dequant<dsk::bf16>, R, C)->UseRealTime();
    RegisterBenchmark(("fp8_dequant/" + s + "/f32").c_str(), fp8_dequant<float>, R, C)->UseRealTime();
  }
  for (const char* fmt : {"bf16", "int4"})
    for (index_t T : {1, 64}) {
      const std::string s = std::string("lora/") + fmt + "/4096x4096/T" + std::to_string(T) + "/";
      for (auto [mode, name] : {std::pair{0, "base"}, std::pair{1, "attached"}, std::pair{2, "merged"}})
        RegisterBenchmark((s + name).c_str(), lora_linear, fmt, 4096, 4096, T, mode)->UseRealTime();
    }
  const dsk::moe::router_options v3{.n_group = 8,
                                    .topk_group = 4,
                                    .norm_topk_prob = true,
                                    .routed_scaling_factor = 2.5f,
                                    .scale_normalised = true};
  for (index_t T : {1, 512}) {
    const std::string s = "route/E256/T" + std::to_string(T) + "/";
    RegisterBenchmark((s + "noaux_tc").c_str(), route<dsk::moe::deepseek_v3_router>, T, v3)->UseRealTime();
    RegisterBenchmark((s + "group_limited_greedy").c_str(),
                      route<dsk::moe::router_config{.score = dsk::moe::scoring::sigmoid,
                                                    .method = dsk::moe::topk_method::group_limited_greedy}>,
                      T, v3)
        ->UseRealTime();
  }
}
}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
