// Instructions per weight of the quantized decode GEMV (docs/performance.md, Quantization): one call per case
// between callgrind dumps, W [512, 4096] (int4 g128 f16 scales / int8 per channel), M = 1 and 2, one thread.
// Built with the benchmarks (build/release/bench/quant/quant_gemv_profile) when valgrind's header is found:
//   cd /tmp && DSK_NUM_THREADS=1 OMP_NUM_THREADS=1 valgrind --tool=callgrind
//     --toggle-collect='*parallel_for_chunks*' --callgrind-out-file=cg.out  (one line)
//     /work/main/build/release/bench/quant/quant_gemv_profile
//   for f in cg.out.*; do grep -m1 Request $f; grep -m1 '^summary:\|^totals:' $f; done
// The toggle counts the parallel regions (the tiles; the token quantization too where it runs in one, as in
// the int16 path before the decode path, ~0.006 per weight); divide by N * K = 2097152.
#include <valgrind/callgrind.h>

#include <cstdio>
#include <random>

#include "dsk/quant/quant.hpp"

using namespace dsk;
namespace q = dsk::quant;

int main() {
  constexpr q::format w4 = q::int4_g128_f16;
  constexpr q::format w8{q::qtype::int8, 0, q::scale_type::f32};
  const index_t N = 512, K = 4096;
  tensor<float, 2> w(N, K), x(1, K), y(1, N), x2(2, K), y2(2, N);
  std::mt19937 g(1);
  std::normal_distribution<float> d;
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] = d(g);
  for (index_t i = 0; i < x.size(); ++i) x.data()[i] = d(g);
  for (index_t i = 0; i < x2.size(); ++i) x2.data()[i] = d(g);
  const auto q4 = q::quantize<q::quantize_config{w4}>(w.cview());
  const auto q8 = q::quantize<q::quantize_config{w8}>(w.cview());
  q::matmul_a8(x.cview(), q4, y.view());  // warm-up: allocations, thread start
  q::matmul(x.cview(), q4, y.view());
#define DSK_CASE(name, call) \
  CALLGRIND_ZERO_STATS;      \
  call;                      \
  CALLGRIND_DUMP_STATS_AT(name);
  DSK_CASE("w4a8", q::matmul_a8(x.cview(), q4, y.view()))
  DSK_CASE("w8a8", q::matmul_a8(x.cview(), q8, y.view()))
  DSK_CASE("w4a32", q::matmul(x.cview(), q4, y.view()))
  DSK_CASE("w8a32", q::matmul(x.cview(), q8, y.view()))
  DSK_CASE("w4a8_m2", q::matmul_a8(x2.cview(), q4, y2.view()))
  DSK_CASE("w8a8_m2", q::matmul_a8(x2.cview(), q8, y2.view()))
  std::printf("%f\n", static_cast<double>(y.data()[3] + y2.data()[5]));
}
