// quant kernels on every backend (host; CUDA under the SIMT emulation; CUDA natively when built by nvcc for
// tests/cuda) against quant/ref.hpp: quantize (codes and scales bit-exact), dequantize (exact), weight-only
// int8 / int4 GEMV/GEMM (double reference), fake quantization forward and backward (exact); both divisions
// (quantize_config::div). Shapes include K = 1, K not a multiple of the group or of the 16-byte vector, odd
// int4 rows, all-zero channels.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dsk/quant/cuda/quant.cuh"
#include "dsk/quant/ref.hpp"
#include "simt/harness.hpp"
#include "support/compare.hpp"
#if !defined(__CUDACC__)
#include "dsk/quant/fake_quant.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"
#endif

using dsk::index_t;
using namespace dsk::test;
namespace quant = dsk::quant;

namespace {

// Codes times x summed per 16/32-code chunk in fp32, K <= 256 (a few hundred roundings of ~6e-8): NMSE <
// 1e-10.
constexpr double kQuantMatmulNmse = 1e-10;

using quant::format;
using quant::quantize_config;
constexpr quantize_config cfg_int8{quant::int8_per_channel, quant::rounding::half_even,
                                   quant::range_method::absmax};
constexpr quantize_config cfg_int8_g64_mse{
    format{quant::qtype::int8, 64, quant::scale_type::f32, quant::int4_range::sym7},
    quant::rounding::half_even, quant::range_method::mse};
constexpr quantize_config cfg_int4_g32_f16{
    format{quant::qtype::int4, 32, quant::scale_type::f16, quant::int4_range::sym7},
    quant::rounding::half_away, quant::range_method::mse};
constexpr quantize_config cfg_int4_g128_bf16_full8{
    format{quant::qtype::int4, 128, quant::scale_type::bf16, quant::int4_range::full8},
    quant::rounding::half_even, quant::range_method::absmax};
// PyTorch's convention (w * (1 / scale), ties to even).
constexpr quantize_config cfg_torch_int8 = quant::torch_compatible(quant::int8_per_channel);
constexpr quantize_config cfg_torch_int4_g32_f16_mse =
    quant::torch_compatible(format{quant::qtype::int4, 32, quant::scale_type::f16, quant::int4_range::full8},
                            quant::range_method::mse);
constexpr quantize_config cfg_int4_channel{quant::int4_per_channel, quant::rounding::half_even,
                                           quant::range_method::absmax};

template <class T>
dsk::tensor<T, 2> random_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  dsk::tensor<T, 2> t(rows, cols);
  const auto v = random_floats(static_cast<std::size_t>(rows * cols), seed, -3.0f, 3.0f);
  for (index_t i = 0; i < rows * cols; ++i) t.data()[i] = dsk::from_float<T>(v[static_cast<std::size_t>(i)]);
  if (rows > 1)
    for (index_t k = 0; k < cols; ++k) t(1, k) = dsk::from_float<T>(0.0f);  // an all-zero channel: scale 0
  return t;
}

// The reference's codes and scales in the storage layout of format F (host memory).
template <format F>
struct packed {
  index_t rows = 0, cols = 0;
  std::vector<std::uint8_t> codes;
  std::vector<quant::scale_t<F>> scales;
  explicit packed(const quant::ref::quantized& q) : rows(q.rows), cols(q.cols) {
    const index_t rb = quant::code_row_bytes(F, cols);
    codes.assign(static_cast<std::size_t>(rows * rb), 0);
    for (index_t i = 0; i < rows; ++i)
      for (index_t k = 0; k < cols; ++k) {
        const int c = q.code(i, k);
        auto& b = codes[static_cast<std::size_t>(i * rb + (F.type == quant::qtype::int8 ? k : k / 2))];
        if constexpr (F.type == quant::qtype::int8)
          b = static_cast<std::uint8_t>(static_cast<std::int8_t>(c));
        else
          b = static_cast<std::uint8_t>(b | ((c & 0xf) << ((k & 1) ? 4 : 0)));
      }
    for (const float s : q.scales) scales.push_back(dsk::from_float<quant::scale_t<F>>(s));
  }
  quant::qweight_view<F> view() const {
    return {reinterpret_cast<const quant::code_t<F>*>(codes.data()),
            scales.data(),
            rows,
            cols,
            quant::code_row_bytes(F, cols),
            quant::groups_per_row(F, cols)};
  }
};

// The quantized weight on backend B, as the qweight_view the kernels take (host: the packed reference
// itself).
template <class B, format F>
auto on_backend(const packed<F>& p) {
  if constexpr (is_host<B>)
    return p.view();
  else
    return quant::upload(p.view());
}

template <class B, quantize_config C, class T>
void check_quantize() {
  constexpr format F = C.fmt;
  INFO("backend " << backend_name<B>() << ", " << (F.type == quant::qtype::int8 ? "int8" : "int4")
                  << ", group " << F.group << ", weights " << dsk::name(dsk::dtype_of<T>));
  for (const index_t N : {1, 5})
    for (const index_t K : {1, 7, 64, 130, 257}) {
      INFO("N " << N << ", K " << K);
      const auto w = random_matrix<T>(N, K, 300 + static_cast<std::uint64_t>(N * K));
      const auto want = quant::ref::quantize<T>(w.cview(), C);
      const packed<F> want_packed(want);
      std::vector<std::uint8_t> codes;
      std::vector<quant::scale_t<F>> scales;
      if constexpr (is_host<B>) {
        DSK_TEST_HOST_ONLY(const auto q = quant::quantize<C>(w.cview());
                           const auto* c = reinterpret_cast<const std::uint8_t*>(q.codes());
                           codes.assign(c, c + q.code_bytes());
                           scales.assign(q.scales(), q.scales() + N * q.groups());)
      } else {
        const auto dw = put<B>(w);
        const auto q = quant::quantize<C, B>(dw.cview());
        quant::download(q, codes, scales);
      }
      CHECK(codes == want_packed.codes);
      REQUIRE(scales.size() == want_packed.scales.size());
      for (std::size_t i = 0; i < scales.size(); ++i) CHECK(scales[i] == want_packed.scales[i]);
    }
  if constexpr (!is_host<B>) {
    auto w = random_matrix<T>(3, 40, 9);
    w(2, 33) = dsk::from_float<T>(std::numeric_limits<float>::infinity());
    const auto dw = put<B>(w);
    CHECK_THROWS_WITH((quant::quantize<C, B>(dw.cview())),
                      Catch::Contains("channel 2") && Catch::Contains("column 33"));
  }
}

template <class B, quantize_config C>
void check_dequantize_and_matmul() {
  constexpr format F = C.fmt;
  INFO("backend " << backend_name<B>() << ", " << (F.type == quant::qtype::int8 ? "int8" : "int4")
                  << ", group " << F.group);
  for (const index_t N : {1, 33})
    for (const index_t K : {1, 31, 64, 200, 256}) {
      const auto w = random_matrix<float>(N, K, 400 + static_cast<std::uint64_t>(N * K));
      const auto q = quant::ref::quantize<float>(w.cview(), C);
      const packed<F> p(q);
      const auto wq = on_backend<B>(p);
      const std::vector<float> wd = quant::ref::dequantize(q, F);

      auto bd = put<B>(dsk::tensor<float, 2>(N, K));
      if constexpr (is_host<B>) {
        DSK_TEST_HOST_ONLY(quant::dequantize(quant::qweight_view<F>(wq), bd.view());)
      } else {
        quant::dequantize<B>(wq, bd.view());
      }
      const auto d = get(bd);
      INFO("N " << N << ", K " << K);
      CHECK(std::memcmp(d.data(), wd.data(), wd.size() * sizeof(float)) ==
            0);  // code * scale: one exact product

      for (const index_t M : {1, 3, 9}) {
        INFO("M " << M);
        const auto x =
            random_matrix<float>(M, K + 2, 500 + static_cast<std::uint64_t>(M * K));  // padded rows
        const auto xs = dsk::as_const(x.view().slice(1, 0, K));
        const std::vector<double> want = quant::ref::matmul(xs, wd, N);
        const auto bx = put<B>(x);
        auto by = put<B>(dsk::tensor<float, 2>(M, N));
        const auto bxs = dsk::as_const(bx.view().slice(1, 0, K));
        if constexpr (is_host<B>) {
          DSK_TEST_HOST_ONLY(quant::matmul(bxs, quant::qweight_view<F>(wq), by.view());)
        } else {
          quant::matmul<B>(bxs, wq, by.view());
        }
        const auto y = get(by);
        CHECK(nmse(std::span<const double>(want), std::span<const float>(y.data(), want.size())) <
              kQuantMatmulNmse);
      }
    }
}

template <class B, quantize_config C>
void check_fake_quant() {
  constexpr format F = C.fmt;
  INFO("backend " << backend_name<B>() << ", " << (F.type == quant::qtype::int8 ? "int8" : "int4")
                  << ", group " << F.group);
  for (const index_t K : {1, 33, 256}) {
    const index_t N = 4;
    INFO("K " << K);
    const auto x = random_matrix<float>(N, K, 600 + static_cast<std::uint64_t>(K));
    const auto q = quant::ref::quantize<float>(x.cview(), C);
    dsk::tensor<float, 2> scales(N, q.groups);
    for (index_t i = 0; i < N * q.groups; ++i)
      scales.data()[i] = q.scales[static_cast<std::size_t>(i)] * 0.8f;  // some clip
    const auto dy = random_matrix<float>(N, K, 700);
    const auto bx = put<B>(x), bs = put<B>(scales), bdy = put<B>(dy);
    auto by = put<B>(dsk::tensor<float, 2>(N, K));
    auto bdx = put<B>(dsk::tensor<float, 2>(N, K));
    if constexpr (is_host<B>) {
      DSK_TEST_HOST_ONLY(quant::fake_quantize<C>(bx.cview(), bs.cview(), by.view());
                         quant::fake_quantize_backward<C>(bx.cview(), bs.cview(), bdy.cview(), bdx.view());)
    } else {
      quant::fake_quantize<C, B>(bx.cview(), bs.cview(), by.view());
      quant::fake_quantize_backward<C, B>(bx.cview(), bs.cview(), bdy.cview(), bdx.view());
    }
    const auto y = get(by), dx = get(bdx);
    const index_t span = quant::group_span(F, K);
    for (index_t i = 0; i < N; ++i)
      for (index_t k = 0; k < K; ++k) {
        const float s = scales(i, k / span);
        const float want = quant::ref::fake_quant(x(i, k), s, F, C.round, C.div);
        REQUIRE(std::memcmp(&y(i, k), &want, sizeof(float)) == 0);  // bits: +0 for a zero code
        REQUIRE(dx(i, k) == dy(i, k) * quant::ref::fake_quant_mask(x(i, k), s, F, C.round, C.div));
      }
    if constexpr (!is_host<B>) {
      dsk::tensor<float, 2> bad = scales;
      bad(3, 0) = -1.0f;
      const auto bb = put<B>(bad);
      CHECK_THROWS_WITH((quant::fake_quantize<C, B>(bx.cview(), bb.cview(), by.view())),
                        Catch::Contains("argument 'scales'") && Catch::Contains("channel 3"));
    }
  }
}

}  // namespace

TEST_CASE("quant kernels: quantize on every backend matches ref bit for bit", "[quant][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_quantize<B, cfg_int8, float>();
    check_quantize<B, cfg_int8_g64_mse, float>();
    check_quantize<B, cfg_int4_g32_f16, float>();
    check_quantize<B, cfg_int4_g128_bf16_full8, dsk::bf16>();
    check_quantize<B, cfg_int4_channel, dsk::f16>();
    check_quantize<B, cfg_torch_int8, dsk::bf16>();
    check_quantize<B, cfg_torch_int4_g32_f16_mse, float>();
  });
}

TEST_CASE("quant kernels: dequantize and weight-only GEMV/GEMM on every backend vs ref", "[quant][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_dequantize_and_matmul<B, cfg_int8>();
    check_dequantize_and_matmul<B, cfg_int8_g64_mse>();
    check_dequantize_and_matmul<B, cfg_int4_g32_f16>();
    check_dequantize_and_matmul<B, cfg_int4_g128_bf16_full8>();
    check_dequantize_and_matmul<B, cfg_int4_channel>();
  });
}

TEST_CASE("quant kernels: fake quantization forward and backward on every backend vs ref", "[quant][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_fake_quant<B, cfg_int8>();
    check_fake_quant<B, cfg_int4_g32_f16>();
    check_fake_quant<B, cfg_int4_g128_bf16_full8>();
    check_fake_quant<B, cfg_torch_int8>();
    check_fake_quant<B, cfg_torch_int4_g32_f16_mse>();
  });
}

TEST_CASE("quant kernels: cuda contracts", "[quant][cuda]") {
  using B = dsk::cuda;
  const auto w = quant::device_quantized_weight<quant::int8_per_channel>(4, 16);
  const auto x = put<B>(dsk::tensor<float, 2>(2, 15));
  auto y = put<B>(dsk::tensor<float, 2>(2, 4));
  CHECK_THROWS_WITH(quant::matmul<B>(x.cview(), w, y.view()),
                    Catch::Contains("quant::matmul<cuda>") && Catch::Contains("argument 'x'"));
  auto out = put<B>(dsk::tensor<float, 2>(4, 15));
  CHECK_THROWS_WITH(quant::dequantize<B>(w, out.view()), Catch::Contains("quant::dequantize<cuda>"));
  const auto empty = quant::device_quantized_weight<quant::int4_per_channel>(0, 16);
  const auto x0 = put<B>(dsk::tensor<float, 2>(3, 16));
  auto y0 = put<B>(dsk::tensor<float, 2>(3, 0));
  CHECK_NOTHROW(quant::matmul<B>(x0.cview(), empty, y0.view()));
}
