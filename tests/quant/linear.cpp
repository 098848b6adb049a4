// quant/linear.hpp: the quantized layer has nn::linear's forward signature and computes the quantized product
// plus the bias (weight-only and int8-activation modes), from f32 and bf16 checkpoint weights.
#include "dsk/quant/linear.hpp"

#include <cmath>
#include <type_traits>

#include <catch2/catch.hpp>

#include "dsk/quant/ref.hpp"
#include "support/compare.hpp"

using namespace dsk;
using namespace dsk::quant;

namespace {
constexpr linear_config wo{quantize_config{int4_g128_f16}};
constexpr linear_config a8{quantize_config{int8_per_channel}, activations::int8};
}  // namespace

TEST_CASE("quant::linear drops in for nn::linear", "[quant][linear]") {
  STATIC_REQUIRE(std::is_same_v<decltype(&linear<wo>::forward),
                                void (linear<wo>::*)(view<const float, 2>, view<float, 2>) const>);
  const index_t N = 10, K = 300, M = 3;
  tensor<float, 2> w(N, K), x(M, K);
  tensor<float, 1> b(N);
  const auto rw = test::random_floats(N * K, 1), rx = test::random_floats(M * K, 2),
             rb = test::random_floats(N, 3);
  std::copy(rw.begin(), rw.end(), w.data());
  std::copy(rx.begin(), rx.end(), x.data());
  std::copy(rb.begin(), rb.end(), b.data());
  const linear<wo> layer(w.cview(), b.cview());
  REQUIRE(layer.in_features() == K);
  REQUIRE(layer.out_features() == N);
  REQUIRE(layer.has_bias());
  tensor<float, 2> y(M, N), y_plain(M, N);
  layer.forward(x.cview(), y.view());
  matmul(x.cview(), layer.weight(), y_plain.view());
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) REQUIRE(y(m, n) == y_plain(m, n) + b(n));
  // int8-activation mode from bf16 weights, no bias.
  tensor<bf16, 2> wb(N, K);
  for (index_t i = 0; i < N * K; ++i) wb.data()[i] = bf16(w.data()[i]);
  const linear<a8> l8(wb.cview());
  tensor<float, 2> y8(M, N), y8_plain(M, N);
  l8.forward(x.cview(), y8.view());
  matmul_a8(x.cview(), quantize<a8.quant>(wb.cview()), y8_plain.view());
  for (index_t i = 0; i < M * N; ++i) REQUIRE(y8.data()[i] == y8_plain.data()[i]);
  // Close to the f32 layer: int8 weights and activations, NMSE well under 1e-3.
  const auto exact = ref::matmul(x.cview(), std::vector<float>(w.data(), w.data() + N * K), N);
  REQUIRE(test::nmse(std::span<const double>(exact), std::span<const float>(y8.data(), M * N)) < 1e-3);
  tensor<float, 1> bad(N + 1);
  REQUIRE_THROWS_WITH(linear<wo>(w.cview(), bad.cview()), Catch::Contains("'bias'"));
}
