// Dense y = x * W^T on every backend (host; CUDA GEMV kernel under the SIMT emulation; natively GEMV +
// cuBLASLt when built by nvcc for tests/cuda) against gemm/ref.hpp (double accumulation). Shapes: M across
// the GEMV / cuBLASLt boundary (8), N and K not multiples of the warp or the 16-byte vector, padded
// (misaligned) row strides.
#include <catch2/catch.hpp>

#include <vector>

#include "dsk/gemm/cuda/matmul.cuh"
#include "dsk/gemm/ref.hpp"
#include "simt/harness.hpp"
#include "support/compare.hpp"
#if !defined(__CUDACC__)
#include "dsk/gemm/matmul.hpp"
#endif

using dsk::index_t;
using namespace dsk::test;
namespace gemm = dsk::gemm;

namespace {

// fp32 accumulation over K <= 1000 terms (products exact in double): NMSE far below 1e-10.
constexpr double kF32Nmse = 1e-10;
// A bf16 / f16 output adds one rounding of relative size <= 2^-9 (bf16): NMSE <= 2^-18 ~ 4e-6.
constexpr double kHalfOutNmse = 1e-5;

template <class T>
dsk::tensor<T, 2> random_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  dsk::tensor<T, 2> t(rows, cols);
  const auto v = random_floats(static_cast<std::size_t>(rows * cols), seed);
  for (index_t i = 0; i < rows * cols; ++i) t.data()[i] = dsk::from_float<T>(v[static_cast<std::size_t>(i)]);
  return t;
}

// full: the whole shape grid (f32 weights); otherwise a smaller grid that still crosses every boundary.
template <class B, class X, class W, class Y>
void check_matmul(bool full) {
  constexpr bool host_supported = std::is_same_v<X, float> && !std::is_same_v<Y, dsk::f16>;
  if constexpr (is_host<B> && !host_supported) {
    return;
  } else {
    INFO("backend " << backend_name<B>() << ", x " << dsk::name(dsk::dtype_of<X>) << ", w "
                    << dsk::name(dsk::dtype_of<W>) << ", y " << dsk::name(dsk::dtype_of<Y>));
    const std::vector<index_t> Ms = full ? std::vector<index_t>{1, 3, 8, 9, 20} : std::vector<index_t>{1, 9};
    const std::vector<index_t> Ns = full ? std::vector<index_t>{1, 17, 100} : std::vector<index_t>{17};
    const std::vector<index_t> Ks =
        full ? std::vector<index_t>{1, 15, 64, 257} : std::vector<index_t>{15, 64};
    for (const index_t M : Ms)
      for (const index_t N : Ns)
        for (const index_t K : Ks)
          for (const index_t pad : {0, 1}) {
            INFO("M " << M << ", N " << N << ", K " << K << ", row padding " << pad);
            const auto x = random_matrix<X>(M, K + pad, 100 + static_cast<std::uint64_t>(M * K));
            const auto w = random_matrix<W>(N, K + pad, 200 + static_cast<std::uint64_t>(N * K));
            dsk::tensor<float, 2> xf(M, K);
            for (index_t m = 0; m < M; ++m)
              for (index_t k = 0; k < K; ++k) xf(m, k) = static_cast<float>(x(m, k));
            dsk::tensor<double, 2> want(M, N);
            gemm::ref::matmul<W>(xf.cview(), dsk::as_const(w.view().slice(1, 0, K)), want.view());

            const auto bx = put<B>(x);
            const auto bw = put<B>(w);
            auto by = put<B>(dsk::tensor<Y, 2>(M, N));
            const auto xs = dsk::as_const(bx.view().slice(1, 0, K));
            const auto ws = dsk::as_const(bw.view().slice(1, 0, K));
            if constexpr (is_host<B>) {
              DSK_TEST_HOST_ONLY(gemm::matmul(xs, ws, by.view());)
            } else {
              if (!DSK_SIMT_EMULATION && M > 8 && !std::is_same_v<X, W>) {
                // Natively, M > 8 goes to cuBLASLt, which needs x and w of one type.
                CHECK_THROWS_AS((gemm::matmul<gemm::matmul_config{}, B>(xs, ws, by.view())),
                                dsk::unsupported);
                continue;
              }
              gemm::matmul<gemm::matmul_config{}, B>(xs, ws, by.view());
            }
            const auto y = get(by);
            CHECK(nmse_of(want, y) < (std::is_same_v<Y, float> ? kF32Nmse : kHalfOutNmse));
          }
  }
}

}  // namespace

TEST_CASE("gemm kernels: matmul f32 / bf16 / f16 weights on every backend vs ref", "[gemm][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_matmul<B, float, float, float>(true);
    check_matmul<B, float, dsk::bf16, float>(true);
    check_matmul<B, float, dsk::f16, float>(false);
    check_matmul<B, dsk::bf16, dsk::bf16, float>(false);
    check_matmul<B, dsk::f16, dsk::f16, dsk::f16>(false);
    check_matmul<B, float, dsk::bf16, dsk::bf16>(false);
  });
}

TEST_CASE("gemm kernels: cuda contracts and configuration", "[gemm][cuda]") {
  using B = dsk::cuda;
  const auto x = put<B>(dsk::tensor<float, 2>(2, 8));
  const auto w = put<B>(dsk::tensor<float, 2>(3, 7));
  auto y = put<B>(dsk::tensor<float, 2>(2, 3));
  CHECK_THROWS_WITH((gemm::matmul<gemm::matmul_config{}, B>(x.cview(), w.cview(), y.view())),
                    Catch::Contains("gemm::matmul<cuda>") && Catch::Contains("argument 'w'"));
  // The GEMV path forced for a large M gives the same answer as the reference.
  const auto xh = random_matrix<float>(40, 33, 7), wh = random_matrix<float>(5, 33, 8);
  dsk::tensor<double, 2> want(40, 5);
  gemm::ref::matmul<float>(xh.cview(), wh.cview(), want.view());
  const auto bx = put<B>(xh), bw = put<B>(wh);
  auto by = put<B>(dsk::tensor<float, 2>(40, 5));
  gemm::matmul<gemm::matmul_config{.algo = gemm::algorithm::gemv}, B>(bx.cview(), bw.cview(), by.view());
  CHECK(nmse_of(want, get(by)) < kF32Nmse);
  // Empty shapes launch nothing.
  const auto x0 = put<B>(dsk::tensor<float, 2>(0, 8));
  const auto w8 = put<B>(dsk::tensor<float, 2>(3, 8));
  auto y0 = put<B>(dsk::tensor<float, 2>(0, 3));
  CHECK_NOTHROW((gemm::matmul<gemm::matmul_config{}, B>(x0.cview(), w8.cview(), y0.view())));
}
