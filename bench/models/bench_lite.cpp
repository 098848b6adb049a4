// bench_lite: DeepSeek-Lite (examples/lite) on random int4 weights, against the DRAM read roof measured in
// the same run and against the models the seed compares it with, in one run.
//   roof/dram_read/t<N>            the DRAM streaming-read roof (bench/roofs/dram.hpp), counter bytes/s
//   lite_card/load                 mmap of the 2.8 GB checkpoint (written to a temporary file first, so its
//                                  pages are in the page cache: a warm load), int4 views, kv_b dequantized
//                                  to f32, scales checked for NaN/inf; counter rss_growth_MiB (resident
//                                  memory the load adds: the mapping is read only where tokens touch it)
//   lite_card/ttft_p64             time to first token: prefill of a 64-token prompt + argmax of its logits
//   lite_card/ttft_p64_a8, <lite model>/decode_ctx64_a8: the same with int8 activations (W4A8 products)
//   <model>/decode_ctx64           one decoded token (absorbed MLA over the latent cache, after a 64-token
//                                  prompt; 32 tokens per run); counters ms_per_token, MB_per_token (weight
//                                  bytes the token reads, from the model's in-memory formats), GB/s
//                                  (MB_per_token / time: compare with the roof row), weights_MiB (held in
//                                  memory)
// Models for the seed's ratios (equal logical parameter count, ~0.48 B):
//   lite_mid      Lite: hidden 1024, 8 heads (MLA 512/64/128/128), 32 routed + 1 shared experts of 512
//                 (top 4), 4 stored blocks run twice (8 layers), vocab 32000 tied, int4 per channel
//   v2_bf16_mid   the same widths without sharing (8 distinct layers) in bf16, separate head (dsk_v2)
//   v1_bf16_mid   DeepSeek-V1 (encoder-decoder, dynamic block attention) of V1's mid widths with 18 + 18
//                 layers: the same total parameter count in bf16; decode reads the decoder and the head
// Run: bench_lite --benchmark_repetitions=3 --benchmark_report_aggregates_only=true (2 threads:
// DSK_NUM_THREADS)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "dsk/core/parallel.hpp"
#include "lite/model.hpp"
#include "roofs/dram.hpp"
#include "v1/model.hpp"

namespace {
using dsk::index_t;

inline constexpr dsk_lite::preset lite_mid{.name = "lite_mid",
                                           .vocab_size = 32000,
                                           .hidden_size = 1024,
                                           .intermediate_size = 0,
                                           .moe_intermediate_size = 512,
                                           .num_hidden_layers = 8,
                                           .num_attention_heads = 8,
                                           .q_lora_rank = 0,
                                           .kv_lora_rank = 512,
                                           .qk_nope_head_dim = 128,
                                           .qk_rope_head_dim = 64,
                                           .v_head_dim = 128,
                                           .n_routed_experts = 32,
                                           .n_shared_experts = 1,
                                           .num_experts_per_tok = 4,
                                           .first_k_dense_replace = 0,
                                           .share_repeats = 2};
constexpr dsk_v1::preset v1_equal() {
  dsk_v1::preset p = dsk_v1::mid;
  p.name = "v1_mid_18x18";
  p.encoder_layers = p.decoder_layers = 18;
  return p;
}
// Logical parameters (a shared block counted each time it runs) equal within 2% (482 M vs 488 M): the
// premise.
constexpr std::int64_t lite_logical_params(const dsk_lite::preset& p) {
  const std::int64_t embed = p.vocab_size * p.hidden_size;
  return (dsk_lite::stored_params(p) - embed) * p.share_repeats + embed;
}
static_assert(lite_logical_params(lite_mid) > 0.98 * double(dsk_v1::parameter_count(v1_equal())) &&
              lite_logical_params(lite_mid) < 1.02 * double(dsk_v1::parameter_count(v1_equal())));

constexpr index_t prompt_len = 64, decode_tokens = 32;

std::vector<std::int32_t> prompt(index_t vocab) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(prompt_len));
  for (index_t i = 0; i < prompt_len; ++i)
    t[static_cast<std::size_t>(i)] = std::int32_t((i * 7919 + 13) % vocab);
  return t;
}

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return double(resident) * double(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// Weight bytes one decode token reads in the Lite model as held in memory: the preset's int4 arithmetic
// (dsk_lite::decode_bytes_per_token), with kv_b_proj in f32 and the router gate in f32 (how dsk_v2's model
// holds them) instead of int4 / f16.
double lite_decode_bytes(const dsk_lite::preset& p) {
  const index_t H = p.num_attention_heads, kvb_rows = H * (p.qk_nope_head_dim + p.v_head_dim);
  const double kv_b_extra =
      4.0 * kvb_rows * p.kv_lora_rank - double(dsk_lite::int4_bytes(p, kvb_rows, p.kv_lora_rank));
  const double gate_extra = 2.0 * p.n_routed_experts * p.hidden_size;
  return double(dsk_lite::decode_bytes_per_token(p)) + p.num_hidden_layers * (kv_b_extra + gate_extra);
}
// The same for dsk_v2 on bf16 weights without sharing: every layer's attention (kv_b bf16), f32 gate, the
// active experts, the bf16 head.
double v2_decode_bytes(const dsk_lite::preset& p) {
  const index_t H = p.num_attention_heads, D = p.hidden_size, qk = dsk_lite::qk_head_dim(p);
  const double attn =
      2.0 * (double(H * qk) * D + double(p.kv_lora_rank + p.qk_rope_head_dim) * D +
             double(H * (p.qk_nope_head_dim + p.v_head_dim)) * p.kv_lora_rank + double(D) * H * p.v_head_dim);
  const double experts =
      2.0 * 3 * (p.num_experts_per_tok + p.n_shared_experts) * double(p.moe_intermediate_size) * D;
  return 2.0 * double(p.vocab_size) * D +
         p.num_hidden_layers * (attn + 4.0 * p.n_routed_experts * D + experts);
}
// V1 (bf16): one decoder token reads every decoder layer (self attention q, k, v, o in bf16 and its gates in
// f32; cross attention's q and o -- its K / V were projected once in start() --; the FFN) and the tied head.
double v1_decode_bytes(const dsk_v1::preset& p) {
  const double d = double(p.hidden_size), qd = double(p.num_heads * p.head_dim),
               kvd = double(p.num_kv_heads * p.head_dim);
  const double self = 2.0 * (2 * d * qd + 2 * d * kvd) + 4.0 * 3 * p.num_heads * d;
  return 2.0 * double(p.vocab_size) * d +
         p.decoder_layers * (self + 2.0 * 2 * d * qd + 2.0 * double(dsk_v1::ffn_params(p)));
}

void set_counters(benchmark::State& st, double bytes_per_token, double weight_bytes) {
  st.counters["ms_per_token"] =
      benchmark::Counter(1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  st.counters["MB_per_token"] = bytes_per_token / 1e6;
  st.counters["GB/s"] =
      benchmark::Counter(bytes_per_token / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["weights_MiB"] = weight_bytes / (1 << 20);
}

// One decoded token per iteration after a 64-token prompt (V2-family models).
void v2_decode(benchmark::State& st, const dsk_v2::model& m, double bytes_per_token) {
  auto cache = m.new_cache(prompt_len + decode_tokens + 1);
  const index_t V = m.config().vocab_size;
  dsk::tensor<float, 2> logits(std::array<index_t, 2>{1, V});
  m.forward(prompt(V), cache, logits.view());
  std::int32_t t = 1;
  for (auto _ : st) {
    m.forward(std::span<const std::int32_t>(&t, 1), cache, logits.view());
    t = static_cast<std::int32_t>((t * 31 + 7) % V);
  }
  set_counters(st, bytes_per_token, double(m.weight_bytes()));
}

// lite_card's checkpoint: written once (setup), removed at exit; each load maps it again.
const std::string& card_file() {
  static const struct holder {
    std::string path = (std::filesystem::temp_directory_path() /
                        ("bench_lite_card_" + std::to_string(::getpid()) + ".safetensors"))
                           .string();
    holder() { dsk_lite::write_random_checkpoint(dsk_lite::lite_card, path, 20261203); }
    ~holder() {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  } h;
  return h.path;
}
using act = dsk::quant::activations;
std::unique_ptr<dsk_v2::model> load_card(act a = act::f32) {
  return std::make_unique<dsk_v2::model>(
      dsk_v2::to_config(dsk_lite::to_v2_preset(dsk_lite::lite_card, false)),
      std::make_shared<const dsk::io::checkpoint>(card_file()), dsk_v2::weight_format::checkpoint,
      dsk_v2::load_options{}, dsk_lite::structure_of(dsk_lite::lite_card, a));
}
const dsk_v2::model& card(act a) {
  static const auto f32 = load_card(act::f32), a8 = load_card(act::int8);
  return a == act::int8 ? *a8 : *f32;
}

void card_load(benchmark::State& st) {
  for (auto _ : st) {
    const double before = rss_mib();
    const auto m = load_card();
    st.counters["rss_growth_MiB"] = rss_mib() - before;
    st.counters["weights_MiB"] = double(m->weight_bytes()) / (1 << 20);
  }
}

void card_ttft(benchmark::State& st, act a) {
  const auto& m = card(a);
  const index_t V = m.config().vocab_size;
  const auto p = prompt(V);
  dsk::tensor<float, 2> logits(std::array<index_t, 2>{1, V});
  for (auto _ : st) {
    auto cache = m.new_cache(prompt_len + 1);
    m.forward(p, cache, logits.view());
    index_t best = 0;
    for (index_t v = 1; v < V; ++v)
      if (logits(0, v) > logits(0, best)) best = v;
    benchmark::DoNotOptimize(best);
  }
}

// The seed's ratios at equal logical parameter count.
const dsk_v2::model& lite(act a) {
  static const auto f32 = std::make_unique<dsk_v2::model>(dsk_lite::random(lite_mid, act::f32)),
                    a8 = std::make_unique<dsk_v2::model>(dsk_lite::random(lite_mid, act::int8));
  return a == act::int8 ? *a8 : *f32;
}
const dsk_v2::model& v2_bf16() {
  static const auto m = std::make_unique<dsk_v2::model>(
      dsk_v2::model::random(dsk_lite::to_v2_preset(lite_mid, false), dsk_v2::weight_format::bf16));
  return *m;
}
const dsk_v1::model& v1_bf16() {
  static const auto m =
      std::make_unique<dsk_v1::model>(dsk_v1::model::random(v1_equal(), dsk_examples::weight_format::bf16));
  return *m;
}

void v1_decode(benchmark::State& st) {
  const auto& m = v1_bf16();
  const index_t V = m.config().vocab_size;
  const auto src = prompt(V);
  const auto memory = m.encode(src);
  auto state = m.start(memory.cview());
  dsk::tensor<float, 2> logits(std::array<index_t, 2>{1, V});
  m.decode(src, state, logits.view());
  std::int32_t t = 1;
  for (auto _ : st) {
    m.decode(std::span<const std::int32_t>(&t, 1), state, logits.view());
    t = static_cast<std::int32_t>((t * 31 + 7) % V);
  }
  set_counters(st, v1_decode_bytes(v1_equal()), double(m.weight_bytes()));
}

void register_all() {
  using benchmark::RegisterBenchmark;
  const int threads = dsk::num_threads();
  RegisterBenchmark(("roof/dram_read/t" + std::to_string(threads)).c_str(), dsk::bench::dram_read, threads)
      ->UseRealTime();
  RegisterBenchmark("lite_card/load", card_load)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
  for (const auto& [name, a] :
       {std::pair{"lite_card/ttft_p64", act::f32}, std::pair{"lite_card/ttft_p64_a8", act::int8}})
    RegisterBenchmark(name, card_ttft, a)->Unit(benchmark::kMillisecond)->UseRealTime();
  auto decode = [&](const char* name, auto&& fn) {
    RegisterBenchmark(name, fn)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(decode_tokens);
  };
  decode("lite_card/decode_ctx64",
         [](benchmark::State& st) { v2_decode(st, card(act::f32), lite_decode_bytes(dsk_lite::lite_card)); });
  decode("lite_card/decode_ctx64_a8", [](benchmark::State& st) {
    v2_decode(st, card(act::int8), lite_decode_bytes(dsk_lite::lite_card));
  });
  decode("lite_mid/decode_ctx64",
         [](benchmark::State& st) { v2_decode(st, lite(act::f32), lite_decode_bytes(lite_mid)); });
  decode("lite_mid/decode_ctx64_a8",
         [](benchmark::State& st) { v2_decode(st, lite(act::int8), lite_decode_bytes(lite_mid)); });
  decode("v2_bf16_mid/decode_ctx64",
         [](benchmark::State& st) { v2_decode(st, v2_bf16(), v2_decode_bytes(lite_mid)); });
  decode("v1_bf16_mid/decode_ctx64", v1_decode);
}
}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all();
  benchmark::AddCustomContext("lite_card_MB_per_token",
                              std::to_string(lite_decode_bytes(dsk_lite::lite_card) / 1e6));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
