// bench_attention: dsk's host attention kernels against baselines in the same process. Names <impl>/<case>:
//   prefill: dsk (flash) vs openblas (two sgemm + softmax, non-causal only) — GFLOP/s of the attention math
//   decode:  dsk vs roof (a SIMD streaming read of the same KV bytes) — GB/s of KV bytes read
//   nsa:     dsk NSA prefill vs dsk dense flash prefill at 8k/32k/64k tokens (dense/ and nsa/ impl prefixes)
//   encoder: bidirectional NSA (causal = false; paper sizes, and the local + global form with blocks of 64)
//            vs dense bidirectional flash prefill at 1k/4k/16k/64k (nsa_bidir/, localglobal_bidir/,
//            dense_full/)
//   mla:     absorbed vs expanded decode over the 576-float latent cache
// Run: bench_attention --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//      (DSK_NUM_THREADS=1 DSK_BENCH_CPU_TIME=1 for per-thread rates on a shared machine)
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "dsk/attention/flash.hpp"
#include "dsk/attention/mla.hpp"
#include "dsk/attention/nsa.hpp"
#include "dsk/simd/simd.hpp"

#if defined(DSK_BENCH_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace {
using dsk::index_t;
namespace att = dsk::attention;

template <std::size_t R>
dsk::tensor<float, R> filled(std::array<index_t, R> shape, unsigned seed) {
  dsk::tensor<float, R> t(shape, dsk::uninitialized);
  unsigned s = seed * 2654435761u + 1;
  for (index_t i = 0; i < t.size(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data()[i] = float(int(s >> 9) % 2001 - 1000) * 1e-3f;
  }
  return t;
}

std::string kname(index_t n) { return n % 1024 == 0 ? std::to_string(n / 1024) + "k" : std::to_string(n); }

void flops_counter(benchmark::State& st, double flops) {
  st.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void bytes_counter(benchmark::State& st, double bytes) {
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Attention math of a prefill: 2 (D + Dv) per visible (query, key) pair per head.
double attention_flops(index_t T, index_t L, index_t H, int D, int Dv, bool causal) {
  const double pairs =
      causal ? double(T) * double(T + 1) / 2 + double(T) * double(L - T) : double(T) * double(L);
  return 2.0 * double(D + Dv) * pairs * double(H);
}

template <int D, bool Causal>
void prefill_dsk(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, D}, 1), k = filled<3>({L, H, D}, 2), v = filled<3>({L, H, D}, 3);
  dsk::tensor<float, 3> o(L, H, D);
  for (auto _ : st) {
    att::dense<att::dense_config{.head_dim = D, .causal = Causal}>(q, k, v, o);
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(st, attention_flops(L, L, H, D, D, Causal));
}

#if defined(DSK_BENCH_HAVE_OPENBLAS)
// The textbook evaluation: S = Q K^T (sgemm), row softmax, O = P V (sgemm), one head at a time, all threads
// in OpenBLAS. Non-causal (full S).
template <int D>
void prefill_openblas(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, D}, 1), k = filled<3>({L, H, D}, 2), v = filled<3>({L, H, D}, 3);
  dsk::tensor<float, 3> o(L, H, D);
  std::vector<float> s(static_cast<std::size_t>(L * L));
  const float scale = 1.0f / std::sqrt(float(D));
  for (auto _ : st) {
    for (index_t h = 0; h < H; ++h) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(L), int(L), D, scale, q.data() + h * D,
                  int(H * D), k.data() + h * D, int(H * D), 0.0f, s.data(), int(L));
      dsk::parallel_for(0, L, [&](index_t i) {
        float* r = s.data() + i * L;
        float mx = r[0], sum = 0;
        for (index_t j = 1; j < L; ++j) mx = std::max(mx, r[j]);
        for (index_t j = 0; j < L; ++j) sum += (r[j] = std::exp(r[j] - mx));
        for (index_t j = 0; j < L; ++j) r[j] /= sum;
      });
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(L), D, int(L), 1.0f, s.data(), int(L),
                  v.data() + h * D, int(H * D), 0.0f, o.data() + h * D, int(H * D));
    }
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(st, attention_flops(L, L, H, D, D, false));
}
#endif

// Decode: one query token per head against a cache of L tokens; `copies` caches cycled so that the bytes read
// per iteration exceed the L3 when the cache itself does not.
template <int D>
void decode_dsk(benchmark::State& st, index_t L, index_t H, index_t Hkv) {
  const auto q = filled<3>({1, H, D}, 1), k = filled<3>({L, Hkv, D}, 2), v = filled<3>({L, Hkv, D}, 3);
  dsk::tensor<float, 3> o(1, H, D);
  for (auto _ : st) {
    att::dense<att::dense_config{.head_dim = D, .causal = true}>(q, k, v, o);
    benchmark::DoNotOptimize(o.data());
  }
  bytes_counter(st, 2.0 * double(L * Hkv * D) * 4);
}

// The read roof of the same bytes: a packet sum over k and v, split over the threads like the kernel.
template <int D>
void decode_roof(benchmark::State& st, index_t L, index_t H, index_t Hkv) {
  (void)H;
  using S = dsk::simd::native;
  const auto k = filled<3>({L, Hkv, D}, 2), v = filled<3>({L, Hkv, D}, 3);
  const index_t n = k.size();
  const int threads = dsk::num_threads();
  std::vector<float> part(static_cast<std::size_t>(threads) * 16);
  for (auto _ : st) {
    dsk::parallel_for(0, threads, [&](index_t t) {
      const index_t lo = n * t / threads / 32 * 32,
                    hi = t + 1 == threads ? n : n * (t + 1) / threads / 32 * 32;
      S::f32 a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
      for (const float* p : {k.data(), v.data()})
        for (index_t i = lo; i < hi; i += 32) {
          a0 = S::add(a0, S::load(p + i));
          a1 = S::add(a1, S::load(p + i + 8));
          a2 = S::add(a2, S::load(p + i + 16));
          a3 = S::add(a3, S::load(p + i + 24));
        }
      part[static_cast<std::size_t>(t) * 16] = S::reduce_add(S::add(S::add(a0, a1), S::add(a2, a3)));
    });
    benchmark::DoNotOptimize(part.data());
  }
  bytes_counter(st, 2.0 * double(n) * 4);
}

// NSA (paper defaults) vs dense flash attention, prefill, GQA: 16 query heads share 1 KV head, head_dim 64.
constexpr att::nsa_config nsa_cfg{.head_dim = 64};
void nsa_dsk(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, 64}, 1), k = filled<3>({L, 1, 64}, 2), v = filled<3>({L, 1, 64}, 3);
  dsk::tensor<float, 3> g(L, H, 3), o(L, H, 64);
  g.fill(1.0f / 3.0f);
  for (auto _ : st) {
    att::nsa<nsa_cfg>(q, k, v, g, o);
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(st, attention_flops(L, L, H, 64, 64, true));  // dense-equivalent work: comparable with dense/
}
void nsa_dense(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, 64}, 1), k = filled<3>({L, 1, 64}, 2), v = filled<3>({L, 1, 64}, 3);
  dsk::tensor<float, 3> o(L, H, 64);
  for (auto _ : st) {
    att::dense<att::dense_config{.head_dim = 64, .causal = true}>(q, k, v, o);
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(st, attention_flops(L, L, H, 64, 64, true));
}

// Encoder prefill: bidirectional NSA vs dense bidirectional flash attention, 16 query heads sharing 1 KV
// head, d64. nsa_bidir_cfg: paper sizes (l 32, d 16, l' 64, n 16, w 512 on each side); local_global_cfg: the
// seed's form, global attention over mean-pooled blocks of 64 plus a band of 256 on each side, no selection.
constexpr att::nsa_config nsa_bidir_cfg{.head_dim = 64, .causal = false};
constexpr att::nsa_config local_global_cfg{.head_dim = 64,
                                           .cmp_block = 64,
                                           .cmp_stride = 64,
                                           .sel_block = 64,
                                           .sel_count = 4,
                                           .window = 256,
                                           .sel = false,
                                           .causal = false};
template <att::nsa_config C>
void encoder_nsa(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, 64}, 1), k = filled<3>({L, 1, 64}, 2), v = filled<3>({L, 1, 64}, 3);
  dsk::tensor<float, 3> g(L, H, 3), o(L, H, 64);
  g.fill(1.0f / 3.0f);
  for (auto _ : st) {
    att::nsa<C>(q, k, v, g, o);
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(
      st, attention_flops(L, L, H, 64, 64, false));  // dense-equivalent work: comparable with dense_full/
}
void encoder_dense(benchmark::State& st, index_t L, index_t H) {
  const auto q = filled<3>({L, H, 64}, 1), k = filled<3>({L, 1, 64}, 2), v = filled<3>({L, 1, 64}, 3);
  dsk::tensor<float, 3> o(L, H, 64);
  for (auto _ : st) {
    att::dense<att::dense_config{.head_dim = 64, .causal = false}>(q, k, v, o);
    benchmark::DoNotOptimize(o.data());
  }
  flops_counter(st, attention_flops(L, L, H, 64, 64, false));
}

// MLA decode, DeepSeek-V2-Lite shapes: 16 heads, latent cache [L, 576], kv_b_proj [16 * 256, 512].
template <bool Absorbed>
void mla_decode(benchmark::State& st, index_t L) {
  constexpr att::mla_config C{};
  const index_t H = 16;
  const auto qn = filled<3>({1, H, 128}, 1), qp = filled<3>({1, H, 64}, 2);
  const auto cache = filled<2>({L, 576}, 3), w = filled<2>({H * 256, 512}, 4);
  dsk::tensor<float, 3> o(1, H, 128);
  for (auto _ : st) {
    if constexpr (Absorbed)
      att::mla_absorbed<C>(qn, qp, cache, w, o);
    else
      att::mla_expanded<C>(qn, qp, cache, w, o);
    benchmark::DoNotOptimize(o.data());
  }
  bytes_counter(st, double(L) * 576 * 4);  // latent cache bytes: the memory the decode step must read
}

// The same absorbed decode over a bf16 latent cache (mla_cache<bf16>: half the bytes) with kv_b_proj in bf16
// or int8 per channel: what the V2 runner holds without f32 copies.
template <bool Int8>
void mla_decode_bf16(benchmark::State& st, index_t L) {
  constexpr att::mla_config C{};
  const index_t H = 16;
  const auto qn = filled<3>({1, H, 128}, 1), qp = filled<3>({1, H, 64}, 2);
  att::mla_cache<dsk::bf16> cache(L, C);
  cache.append(filled<2>({L, 576}, 3));
  const auto w = filled<2>({H * 256, 512}, 4);
  dsk::tensor<float, 3> o(1, H, 128);
  auto run = [&](const auto& wk) {
    for (auto _ : st) {
      att::mla_absorbed<C>(qn, qp, cache, wk, o);
      benchmark::DoNotOptimize(o.data());
    }
  };
  if constexpr (Int8) {
    run(dsk::quant::quantize<dsk::quant::quantize_config{.fmt = dsk::quant::int8_per_channel}>(w.cview()));
  } else {
    dsk::tensor<dsk::bf16, 2> wb(w.extent(0), w.extent(1));
    for (index_t i = 0; i < w.size(); ++i) wb.data()[i] = dsk::bf16(w.data()[i]);
    run(wb);
  }
  bytes_counter(st, double(L) * 576 * 2);  // bf16 latent cache bytes
}

// DSK_BENCH_CPU_TIME=1: rates per CPU second of the calling thread instead of wall time. Only meaningful with
// DSK_NUM_THREADS=1; it filters out the time other processes take from a shared machine.
bool cpu_time_mode() {
  const char* e = std::getenv("DSK_BENCH_CPU_TIME");
  return e && std::string(e) == "1";
}

template <class F>
void reg(const std::string& name, F f, int iterations = 0) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), f)->Unit(benchmark::kMillisecond);
  if (!cpu_time_mode()) b->UseRealTime();
  if (iterations) b->Iterations(iterations);
}

void register_all() {
  const index_t H = 16;
  for (index_t L : {512, 1024, 2048, 4096, 8192}) {
    reg("dsk/prefill_d64_causal_L" + kname(L),
        [=](benchmark::State& st) { prefill_dsk<64, true>(st, L, H); });
    reg("dsk/prefill_d128_causal_L" + kname(L),
        [=](benchmark::State& st) { prefill_dsk<128, true>(st, L, H); });
  }
  for (index_t L : {512, 2048, 4096}) {
    reg("dsk/prefill_d128_full_L" + kname(L),
        [=](benchmark::State& st) { prefill_dsk<128, false>(st, L, H); });
#if defined(DSK_BENCH_HAVE_OPENBLAS)
    reg("openblas/prefill_d128_full_L" + kname(L),
        [=](benchmark::State& st) { prefill_openblas<128>(st, L, H); });
#endif
  }
  for (index_t L : {1024, 2048, 4096, 8192, 16384, 32768}) {
    const std::string cs = "decode_d128_h16_kv16_ctx" + kname(L);
    reg("dsk/" + cs, [=](benchmark::State& st) { decode_dsk<128>(st, L, 16, 16); });
    reg("roof/" + cs, [=](benchmark::State& st) { decode_roof<128>(st, L, 16, 16); });
  }
  for (index_t L : {8192, 32768, 65536}) {
    const int it = L >= 32768 ? 1 : 0;  // one dense 32k/64k prefill is tens of seconds
    const std::string cs = "prefill_d64_h16_kv1_L" + kname(L);
    reg(
        "nsa/" + cs, [=](benchmark::State& st) { nsa_dsk(st, L, 16); }, it);
    reg(
        "dense/" + cs, [=](benchmark::State& st) { nsa_dense(st, L, 16); }, it);
  }
  for (index_t L : {1024, 2048, 4096, 16384, 65536}) {
    const int it = L >= 16384 ? 1 : 0;  // one dense bidirectional 16k prefill is ~a minute, 64k ~15
    const std::string cs = "encoder_d64_h16_kv1_L" + kname(L);
    reg(
        "nsa_bidir/" + cs, [=](benchmark::State& st) { encoder_nsa<nsa_bidir_cfg>(st, L, 16); }, it);
    reg(
        "localglobal_bidir/" + cs, [=](benchmark::State& st) { encoder_nsa<local_global_cfg>(st, L, 16); },
        it);
    reg(
        "dense_full/" + cs, [=](benchmark::State& st) { encoder_dense(st, L, 16); }, it);
  }
  for (index_t L : {1024, 2048, 4096, 8192, 16384}) {
    const std::string cs = "mla_decode_h16_ctx" + kname(L);
    reg("absorbed/" + cs, [=](benchmark::State& st) { mla_decode<true>(st, L); });
    reg("expanded/" + cs, [=](benchmark::State& st) { mla_decode<false>(st, L); });
    reg("absorbed_bf16cache_bf16w/" + cs, [=](benchmark::State& st) { mla_decode_bf16<false>(st, L); });
    reg("absorbed_bf16cache_int8w/" + cs, [=](benchmark::State& st) { mla_decode_bf16<true>(st, L); });
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
