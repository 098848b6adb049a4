// nn::linear and nn::swiglu_mlp against gemm::ref (double): with and without bias, every weight dtype, decode
// and prefill token counts; shape errors at construction and in forward.
#include "dsk/nn/linear.hpp"

#include <cmath>

#include <catch2/catch.hpp>

#include "dsk/gemm/ref.hpp"
#include "support/compare.hpp"

namespace {
using dsk::index_t;

template <class W>
dsk::tensor<W, 2> random_matrix(index_t r, index_t c, std::uint64_t seed) {
  dsk::tensor<W, 2> t(r, c);
  auto v = dsk::test::random_floats(static_cast<std::size_t>(r * c), seed);
  for (index_t i = 0; i < r * c; ++i) t.data()[i] = dsk::from_float<W>(v[static_cast<std::size_t>(i)]);
  return t;
}

std::vector<double> flat(const dsk::tensor<double, 2>& t) { return {t.data(), t.data() + t.size()}; }
std::vector<float> flat(const dsk::tensor<float, 2>& t) { return {t.data(), t.data() + t.size()}; }

// fp32 accumulation over K <= 200 uniform products against double: relative error ~ sqrt(K) 2^-24 per output,
// NMSE far below 1e-10; an indexing or packing bug gives NMSE ~ 1.
constexpr double kNmseF32 = 1e-10;
// The MLP's second GEMM consumes the f32 SwiGLU output (exp within a few ulp): the same order of magnitude.
constexpr double kNmseMlp = 1e-10;
}  // namespace

TEMPLATE_TEST_CASE("linear computes x W^T (+ b)", "[nn][linear]", float, dsk::bf16, dsk::f16) {
  using W = TestType;
  const index_t in = 70, out = 37;
  const auto w = random_matrix<W>(out, in, 1);
  const auto b = random_matrix<float>(1, out, 2);
  const dsk::nn::linear<W> plain(w.cview()), biased(w.cview(), b.cview()[0]);
  REQUIRE(plain.in_features() == in);
  REQUIRE(plain.out_features() == out);
  REQUIRE(!plain.has_bias());
  REQUIRE(biased.has_bias());
  for (index_t tokens : {1, 4, 33}) {
    CAPTURE(tokens);
    const auto x = random_matrix<float>(tokens, in, 3);
    dsk::tensor<double, 2> want(tokens, out), want_b(tokens, out);
    dsk::gemm::ref::matmul<W>(x.cview(), w.cview(), want.view());
    dsk::gemm::ref::matmul<W>(x.cview(), w.cview(), want_b.view(), b.cview()[0]);
    dsk::tensor<float, 2> y(tokens, out), yb(tokens, out);
    plain.forward(x, y);
    biased.forward(x, yb);
    REQUIRE(dsk::test::nmse<double, float>(flat(want), flat(y)) < kNmseF32);
    REQUIRE(dsk::test::nmse<double, float>(flat(want_b), flat(yb)) < kNmseF32);
  }
}

TEMPLATE_TEST_CASE("swiglu_mlp computes down(silu(x Wg^T) * (x Wu^T))", "[nn][mlp]", float, dsk::bf16) {
  using W = TestType;
  const index_t hidden = 48, inter = 40;
  const auto g = random_matrix<W>(inter, hidden, 4), u = random_matrix<W>(inter, hidden, 5);
  const auto d = random_matrix<W>(hidden, inter, 6);
  const dsk::nn::swiglu_mlp<W> mlp(g.cview(), u.cview(), d.cview());
  REQUIRE(mlp.hidden() == hidden);
  REQUIRE(mlp.intermediate() == inter);
  for (index_t tokens : {1, 3, 20}) {
    CAPTURE(tokens);
    const auto x = random_matrix<float>(tokens, hidden, 7);
    dsk::tensor<double, 2> h(tokens, inter), want(tokens, hidden);
    dsk::gemm::ref::swiglu<W>(x.cview(), g.cview(), u.cview(), h.view());
    for (index_t t = 0; t < tokens; ++t)
      for (index_t j = 0; j < hidden; ++j) {
        double s = 0;
        for (index_t k = 0; k < inter; ++k) s += h(t, k) * double(dsk::to_float(d(j, k)));
        want(t, j) = s;
      }
    dsk::tensor<float, 2> y(tokens, hidden);
    mlp.forward(x, y);
    REQUIRE(dsk::test::nmse<double, float>(flat(want), flat(y)) < kNmseMlp);
  }
}

TEST_CASE("linear and swiglu_mlp reject mismatched shapes", "[nn][linear][errors]") {
  const auto w = random_matrix<float>(6, 8, 1);
  const auto b = random_matrix<float>(1, 5, 2);
  REQUIRE_THROWS_WITH(dsk::nn::linear<float>(w.cview(), b.cview()[0]), Catch::Contains("'bias'"));
  const dsk::nn::linear<float> l(w.cview());
  dsk::tensor<float, 2> x(2, 7), y(2, 6);
  REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("gemm::matmul"));
  const auto d = random_matrix<float>(8, 5, 3);
  REQUIRE_THROWS_WITH(dsk::nn::swiglu_mlp<float>(w.cview(), w.cview(), d.cview()), Catch::Contains("'down'"));
  const auto sw = dsk::gemm::packed_weights<float>::swiglu(w.cview(), w.cview());
  REQUIRE_THROWS_WITH(dsk::nn::linear<float>(sw), Catch::Contains("plain packed weights"));
}
