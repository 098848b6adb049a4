// gemm::matmul and gemm::swiglu against gemm::ref (double accumulation) over a grid of shapes (M in
// {1, 2, 3, 7, 16, 33, 128}, K and N off the vector width and the tile), every weight dtype, packed and
// row-major weights, both algorithms, 1 and 2 threads, strided x and y, bias and bf16 output; the scalar
// packet layer against the native one bit for bit; argument errors.
#include "dsk/gemm/matmul.hpp"

#include <cmath>
#include <cstring>

#include <catch2/catch.hpp>

#include "dsk/gemm/ref.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;
namespace gemm = dsk::gemm;

// Error bound of an fp32 sum of K products in any order, with or without FMA: |err| <= gamma_K * sum |x_k
// w_k| with gamma_K = K u / (1 - K u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). We allow K + 2 terms
// for the bias add and the block-wise partial sums.
double gamma(index_t k) {
  const double u = std::ldexp(1.0, -24), n = double(k + 2);
  return n * u / (1 - n * u);
}
// bf16 output: one more rounding of the result, relative u = 2^-8 (round to nearest, 8 significant bits).
constexpr double kBf16Rel = 1.0 / 256;
// SwiGLU: silu uses the packet exp (a few ulp) and a division: relative 1e-6 on silu(g) plus the bounds on g,
// u.
constexpr double kSiluRel = 1e-6;

template <class W>
dsk::tensor<W, 2> random_matrix(index_t r, index_t c, std::uint64_t seed) {
  dsk::tensor<W, 2> t(r, c);
  auto v = dsk::test::random_floats(static_cast<std::size_t>(r * c), seed);
  for (index_t i = 0; i < r * c; ++i) t.data()[i] = dsk::from_float<W>(v[static_cast<std::size_t>(i)]);
  return t;
}

// x as a strided view: [M, K] inside a [M, K + 3] buffer, starting at column 1.
struct strided_input {
  dsk::tensor<float, 2> buf;
  dsk::view<const float, 2> x;
  dsk::tensor<float, 2> abs;  // |x|, dense, for the error bound
  strided_input(index_t m, index_t k, std::uint64_t seed)
      : buf(random_matrix<float>(m, k + 3, seed)), abs(m, k) {
    x = dsk::view<const float, 2>(buf.cview()).slice(1, 1, 1 + k);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < k; ++j) abs(i, j) = std::abs(x(i, j));
  }
};

template <class W>
dsk::tensor<W, 2> abs_of(const dsk::tensor<W, 2>& w) {
  dsk::tensor<W, 2> a(w.extent(0), w.extent(1));
  for (index_t i = 0; i < w.size(); ++i)
    a.data()[i] = dsk::from_float<W>(std::abs(dsk::to_float(w.data()[i])));
  return a;
}

// Output [M, N] inside [M, N + 5] (column 2 on), pre-filled with a sentinel to catch writes outside the view.
template <class Out>
struct strided_output {
  dsk::tensor<Out, 2> buf;
  dsk::view<Out, 2> y;
  strided_output(index_t m, index_t n) : buf(m, n + 5) {
    buf.fill(dsk::from_float<Out>(1024.0f));
    y = buf.view().slice(1, 2, 2 + n);
  }
  bool border_untouched() const {
    for (index_t i = 0; i < buf.extent(0); ++i)
      for (index_t j : {index_t(0), index_t(1), buf.extent(1) - 3, buf.extent(1) - 2, buf.extent(1) - 1})
        if (dsk::to_float(buf(i, j)) != 1024.0f) return false;
    return true;
  }
};

template <class Out>
bool same_bits(const dsk::view<Out, 2>& a, const dsk::view<Out, 2>& b) {
  for (index_t i = 0; i < a.extent(0); ++i)
    if (std::memcmp(&a(i, 0), &b(i, 0), sizeof(Out) * std::size_t(a.extent(1))) != 0) return false;
  return true;
}

// Checks y against the double reference `want` with the bound gamma_K * absref (+ output rounding).
template <class Out>
void check_bound(const dsk::view<Out, 2>& y, const dsk::tensor<double, 2>& want,
                 const dsk::tensor<double, 2>& absref, index_t K, double rel) {
  for (index_t i = 0; i < want.extent(0); ++i)
    for (index_t j = 0; j < want.extent(1); ++j) {
      const double got = dsk::to_float(y(i, j)), w = want(i, j);
      const double tol = gamma(K) * absref(i, j) * (1 + rel) + rel * std::abs(w) + 1e-30;
      INFO("y(" << i << ", " << j << ") = " << got << ", reference " << w << ", bound " << tol);
      REQUIRE(std::abs(got - w) <= tol);
    }
}

template <class W, class Out, gemm::algorithm A>
void run_matmul_case(index_t M, index_t N, index_t K, bool with_bias) {
  constexpr gemm::matmul_config C{.algo = A};
  const strided_input in(M, K, 100 + std::uint64_t(M * 7 + N * 3 + K));
  const auto w = random_matrix<W>(N, K, 200 + std::uint64_t(N + K));
  const auto wabs = abs_of(w);
  const auto bias = random_matrix<float>(1, N, 300);
  const dsk::view<const float, 1> bv = with_bias ? bias.cview()[0] : dsk::view<const float, 1>{};
  dsk::tensor<double, 2> want(M, N), absref(M, N);
  gemm::ref::matmul<W>(in.x, w.cview(), want.view(), bv);
  gemm::ref::matmul<W>(in.abs.cview(), wabs.cview(), absref.view());
  if (with_bias)
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) absref(i, j) += std::abs(bias(0, j));
  const double rel = std::is_same_v<Out, float> ? 0.0 : kBf16Rel;
  const gemm::packed_weights<W> packed(w.cview());

  dsk::tensor<Out, 2> first(M, N);
  for (int threads : {1, 2}) {
    const dsk::thread_count_scope scope(threads);
    strided_output<Out> y1(M, N), y2(M, N);
    gemm::matmul<C>(in.x, packed, bv, y1.y);  // pre-packed
    gemm::matmul<C>(in.x, w, bv, y2.y);       // row-major
    check_bound(y1.y, want, absref, K, rel);
    check_bound(y2.y, want, absref, K, rel);
    REQUIRE(y1.border_untouched());
    REQUIRE(y2.border_untouched());
    // The scalar packet layer runs the same operations in the same order: identical bits.
    strided_output<Out> ys(M, N);
    gemm::matmul<C, dsk::simd::scalar>(in.x, packed, bv, ys.y);
    REQUIRE(same_bits(ys.y, y1.y));
    strided_output<Out> ysr(M, N);  // and from row-major weights, against the same call on dsk::host
    gemm::matmul<C, dsk::simd::scalar>(in.x, w, bv, ysr.y);
    REQUIRE(same_bits(ysr.y, y2.y));
    // The split over threads never splits a dot product: identical bits for 1 and 2 threads.
    if (threads == 1) {
      for (index_t i = 0; i < M; ++i)
        for (index_t j = 0; j < N; ++j) first(i, j) = y1.y(i, j);
    } else {
      REQUIRE(same_bits(dsk::view<Out, 2>(first.view()), y1.y));
    }
  }
}

template <class W, class Out, gemm::algorithm A>
void run_swiglu_case(index_t M, index_t N, index_t K) {
  constexpr gemm::matmul_config C{.algo = A};
  const strided_input in(M, K, 500 + std::uint64_t(M + N + K));
  const auto wg = random_matrix<W>(N, K, 600 + std::uint64_t(N)),
             wu = random_matrix<W>(N, K, 700 + std::uint64_t(K));
  dsk::tensor<double, 2> want(M, N), g(M, N), u(M, N), gabs(M, N), uabs(M, N);
  gemm::ref::swiglu<W>(in.x, wg.cview(), wu.cview(), want.view());
  gemm::ref::matmul<W>(in.x, wg.cview(), g.view());
  gemm::ref::matmul<W>(in.x, wu.cview(), u.view());
  gemm::ref::matmul<W>(in.abs.cview(), abs_of(wg).cview(), gabs.view());
  gemm::ref::matmul<W>(in.abs.cview(), abs_of(wu).cview(), uabs.view());
  // |d(silu(g) u)| <= |silu'(g)| |dg| |u| + |silu(g)| |du| + rounding; |silu'| <= 1.1.
  dsk::tensor<double, 2> absref(M, N);
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j)
      absref(i, j) = 1.1 * gabs(i, j) * (std::abs(u(i, j)) + gamma(K) * uabs(i, j)) +
                     std::abs(gemm::ref::silu(g(i, j))) * uabs(i, j) +
                     kSiluRel / gamma(K) * std::abs(want(i, j));
  const double rel = std::is_same_v<Out, float> ? 0.0 : kBf16Rel;
  const auto packed = gemm::packed_weights<W>::swiglu(wg.cview(), wu.cview());
  for (int threads : {1, 2}) {
    const dsk::thread_count_scope scope(threads);
    strided_output<Out> y1(M, N), y2(M, N), ys(M, N);
    gemm::swiglu<C>(in.x, packed, y1.y);
    gemm::swiglu<C>(in.x, wg, wu, y2.y);
    check_bound(y1.y, want, absref, K, rel);
    check_bound(y2.y, want, absref, K, rel);
    REQUIRE(y1.border_untouched());
    REQUIRE(y2.border_untouched());
    gemm::swiglu<C, dsk::simd::scalar>(in.x, packed, ys.y);
    REQUIRE(same_bits(ys.y, y1.y));
  }
}

constexpr index_t kMs[] = {1, 2, 3, 7, 16, 33, 128};

// The weight operands matmul accepts, by name; a double matrix is not one (matmul then stops at one
// static_assert: "gemm: double is not a weight type (float, bf16, f16 or gemm::packed_weights)").
static_assert(gemm::weight_operand<dsk::tensor<float, 2>>);
static_assert(gemm::weight_operand<dsk::view<const dsk::bf16, 2>>);
static_assert(gemm::weight_operand<dsk::tensor<dsk::f16, 2>>);
static_assert(gemm::weight_operand<gemm::packed_weights<dsk::bf16>>);
static_assert(!gemm::weight_operand<dsk::tensor<double, 2>>);
static_assert(!gemm::weight_operand<dsk::view<const double, 2>>);
static_assert(!gemm::weight_operand<dsk::tensor<float, 3>>);
static_assert(!gemm::weight_operand<float>);
// The execution tag must be dsk::host or a packet layer (dsk::cuda is the .cuh overload's).
template <class E>
concept matmul_runs_on = requires(dsk::view<const float, 2> x, dsk::tensor<float, 2> w,
                                  dsk::view<float, 2> y) {
  gemm::matmul<gemm::matmul_config{}, E>(x, w, y);
};
static_assert(!matmul_runs_on<int>);
static_assert(matmul_runs_on<dsk::simd::scalar> && matmul_runs_on<dsk::host>);
}  // namespace

TEMPLATE_TEST_CASE("matmul matches the double reference over the shape grid", "[gemm][matmul]", float,
                   dsk::bf16, dsk::f16) {
  using W = TestType;
  for (index_t M : kMs)
    for (index_t N : {1, 17, 40})
      for (index_t K : {1, 13, 300}) {
        CAPTURE(M, N, K);
        run_matmul_case<W, float, gemm::algorithm::automatic>(M, N, K, (M + N) % 2 == 0);
      }
}

TEMPLATE_TEST_CASE("both algorithms are correct at every M", "[gemm][matmul]", float, dsk::bf16) {
  using W = TestType;
  for (index_t M : {1, 3, 7, 9, 16})
    for (index_t N : {5, 33}) {
      CAPTURE(M, N);
      run_matmul_case<W, float, gemm::algorithm::gemv>(M, N, 37, true);
      run_matmul_case<W, float, gemm::algorithm::blocked>(M, N, 37, false);
    }
}

TEST_CASE("matmul crosses every cache block boundary (K > KC, M > MC, N > NC)", "[gemm][matmul]") {
  run_matmul_case<float, float, gemm::algorithm::blocked>(150, 1100, 20, true);
  run_matmul_case<dsk::bf16, float, gemm::algorithm::blocked>(20, 40, 600, true);
  run_matmul_case<float, float, gemm::algorithm::gemv>(5, 40, 600, false);
}

TEMPLATE_TEST_CASE("matmul stores bf16 output rounded from the f32 result", "[gemm][matmul]", float,
                   dsk::bf16) {
  using W = TestType;
  for (index_t M : {1, 5, 33}) {
    CAPTURE(M);
    run_matmul_case<W, dsk::bf16, gemm::algorithm::automatic>(M, 23, 70, true);
  }
}

TEST_CASE("matmul with K = 0 writes the bias (or zeros); M = 0 and N = 0 are no-ops", "[gemm][matmul]") {
  dsk::tensor<float, 2> x(3, 0), w(5, 0), y(3, 5);
  dsk::tensor<float, 1> bias(5);
  for (index_t j = 0; j < 5; ++j) bias(j) = float(j) + 0.5f;
  y.fill(9.0f);
  gemm::matmul(x, w, bias, y);
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 5; ++j) REQUIRE(y(i, j) == float(j) + 0.5f);
  gemm::matmul(x, gemm::packed_weights<float>(w.cview()), y);
  for (index_t i = 0; i < 3; ++i)
    for (index_t j = 0; j < 5; ++j) REQUIRE(y(i, j) == 0.0f);
  dsk::tensor<float, 2> x0(0, 4), w4(5, 4), y0(0, 5), wn(0, 4), yn(3, 0), x3(3, 4);
  gemm::matmul(x0, w4, y0);
  gemm::matmul(x3, wn, yn);
  gemm::matmul(x0, gemm::packed_weights<float>(w4.cview()), y0);
}

TEMPLATE_TEST_CASE("swiglu matches silu(x Wg^T) * (x Wu^T)", "[gemm][swiglu]", float, dsk::bf16, dsk::f16) {
  using W = TestType;
  for (index_t M : kMs)
    for (index_t N : {1, 9, 40}) {
      CAPTURE(M, N);
      run_swiglu_case<W, float, gemm::algorithm::automatic>(M, N, 45);
    }
  run_swiglu_case<W, float, gemm::algorithm::gemv>(12, 20, 300);
  run_swiglu_case<W, float, gemm::algorithm::blocked>(3, 20, 300);
  run_swiglu_case<W, dsk::bf16, gemm::algorithm::automatic>(33, 17, 64);
  run_swiglu_case<W, dsk::bf16, gemm::algorithm::automatic>(2, 17, 64);
}

TEST_CASE("matmul and swiglu reject mismatched arguments with a clear error", "[gemm][errors]") {
  dsk::tensor<float, 2> x(4, 8), w(6, 8), wk(6, 7), y(4, 6), ybad(4, 5), ybadm(3, 6);
  dsk::tensor<float, 1> bias(5);
  const gemm::packed_weights<float> pw(w.cview());
  REQUIRE_THROWS_WITH(gemm::matmul(x, wk, y), Catch::Contains("gemm::matmul") && Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(gemm::matmul(x, w, ybad),
                      Catch::Contains("'y'") && Catch::Contains("extent(1) must be 6"));
  REQUIRE_THROWS_WITH(gemm::matmul(x, pw, ybadm),
                      Catch::Contains("'y'") && Catch::Contains("extent(0) must be 4"));
  REQUIRE_THROWS_WITH(gemm::matmul(x, w, bias, y), Catch::Contains("'bias'"));
  const auto xs = dsk::view<const float, 2>(x.data(), dsk::dims<2>(4, 4), std::array<index_t, 2>{8, 2});
  REQUIRE_THROWS_WITH(gemm::matmul(xs, w, y), Catch::Contains("unit inner stride"));
  const auto sw = gemm::packed_weights<float>::swiglu(w.cview(), w.cview());
  REQUIRE_THROWS_WITH(gemm::matmul(x, sw, y), Catch::Contains("not for swiglu"));
  REQUIRE_THROWS_WITH(gemm::swiglu(x, pw, y), Catch::Contains("packed_weights::swiglu"));
  REQUIRE_THROWS_WITH(gemm::swiglu(x, w, wk, y), Catch::Contains("'w_up'"));
  REQUIRE_THROWS_AS(gemm::matmul(x, w, ybad), dsk::error);
  // y overlapping x (an in-place projection) is rejected rather than computed from half-overwritten input.
  dsk::tensor<float, 2> sq(4, 8), wsq(8, 8);
  REQUIRE_THROWS_WITH(gemm::matmul(sq, wsq, sq), Catch::Contains("does not overlap x"));
  REQUIRE_THROWS_WITH(gemm::swiglu(sq, wsq, wsq, sq), Catch::Contains("does not overlap x"));
}

TEST_CASE("matmul and swiglu reject outputs that overlap the weights or the bias", "[gemm][errors]") {
  // One buffer [N + M - 1, K]: w = rows [0, N), y = rows [N - 1, N - 1 + M) (K == N), so y's first row is
  // w's last: the kernels would read that weight row after writing it.
  const index_t M = 12, N = 16, K = 16;  // M > 8: the blocked GEMM; also M = 2 (the GEMV) below
  dsk::tensor<float, 2> buf(N + M - 1, K), x(M, K);
  const dsk::view<const float, 2> w = buf.cview().slice(0, 0, N);
  const dsk::view<float, 2> y = buf.view().slice(0, N - 1, N - 1 + M);
  REQUIRE_THROWS_WITH(gemm::matmul(x, w, y),
                      Catch::Contains("gemm::matmul: argument 'y'") && Catch::Contains("does not overlap w"));
  REQUIRE_THROWS_WITH(gemm::matmul(x.cview().slice(0, 0, 2), w, y.slice(0, 0, 2)),
                      Catch::Contains("does not overlap w"));
  // A bias inside y.
  dsk::tensor<float, 2> w2(N, K), y2(M, N);
  const dsk::view<const float, 1> bias_in_y = dsk::as_const(y2.view()[3]);
  REQUIRE_THROWS_WITH(gemm::matmul(x, w2, bias_in_y, y2),
                      Catch::Contains("argument 'y'") && Catch::Contains("does not overlap bias"));
  // Packed weights: y over the panels.
  const gemm::packed_weights<float> pw(w2.cview());
  const dsk::view<float, 2> y_on_panels(const_cast<float*>(pw.panel(0)), dsk::dims<2>(M, N),
                                        std::array<index_t, 2>{N, 1});
  REQUIRE_THROWS_WITH(gemm::matmul(x, pw, y_on_panels), Catch::Contains("does not overlap w"));
  const auto psw = gemm::packed_weights<float>::swiglu(w2.cview(), w2.cview());
  const dsk::view<float, 2> y_on_swiglu(const_cast<float*>(psw.panel(0)), dsk::dims<2>(M, N),
                                        std::array<index_t, 2>{N, 1});
  REQUIRE_THROWS_WITH(gemm::swiglu(x, psw, y_on_swiglu), Catch::Contains("does not overlap gate_up"));
  // Row-major swiglu: y over w_gate or w_up.
  REQUIRE_THROWS_WITH(gemm::swiglu(x, w, w2.cview(), y), Catch::Contains("does not overlap w_gate"));
  REQUIRE_THROWS_WITH(gemm::swiglu(x, w2.cview(), w, y), Catch::Contains("does not overlap w_up"));
}

TEST_CASE("matmul writes into a column slice of the buffer its input is another slice of", "[gemm][matmul]") {
  // x = columns [0, K), y = columns [K, K + N) of the same rows: interleaved but disjoint, so allowed.
  const index_t M = 20, N = 24, K = 40;
  dsk::tensor<float, 2> buf(M, K + N), w(N, K);
  auto g = dsk::test::rng(7);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (float& v : buf.span()) v = d(g);
  for (float& v : w.span()) v = d(g);
  dsk::tensor<float, 2> x(M, K), want(M, N);
  for (index_t m = 0; m < M; ++m)
    for (index_t k = 0; k < K; ++k) x(m, k) = buf(m, k);
  gemm::matmul(x, w, want);
  gemm::matmul(dsk::as_const(buf.view().slice(1, 0, K)), w, buf.view().slice(1, K, K + N));
  for (index_t m = 0; m < M; ++m)
    for (index_t n = 0; n < N; ++n) REQUIRE(buf(m, K + n) == want(m, n));
  // The same buffer with y shifted one column left overlaps x's last column: rejected.
  REQUIRE_THROWS_WITH(
      gemm::matmul(dsk::as_const(buf.view().slice(1, 0, K)), w, buf.view().slice(1, K - 1, K - 1 + N)),
      Catch::Contains("does not overlap x"));
}
