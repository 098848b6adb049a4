// nn::linear and nn::swiglu_mlp against gemm::ref (double): with and without bias, every weight dtype, decode
// and prefill token counts; every run-time format (float and quantized, weight-only and int8 activations)
// against the quant path it selects (bit for bit) and the double product (quantization NMSE); format
// parsing; shape and format errors at construction and in forward.
#include "dsk/nn/linear.hpp"

#include <cmath>

#include <catch2/catch.hpp>

#include "dsk/gemm/ref.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"
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
  const dsk::nn::linear plain(w.cview()), biased(w.cview(), b.cview()[0]);
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
  const dsk::nn::swiglu_mlp mlp(g.cview(), u.cview(), d.cview());
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
  REQUIRE_THROWS_WITH(dsk::nn::linear(w.cview(), b.cview()[0]), Catch::Contains("'bias'"));
  const dsk::nn::linear l(w.cview());
  dsk::tensor<float, 2> x(2, 7), y(2, 6);
  REQUIRE_THROWS_WITH(l.forward(x, y), Catch::Contains("gemm::matmul"));
  const auto d = random_matrix<float>(8, 5, 3);
  REQUIRE_THROWS_WITH(dsk::nn::swiglu_mlp(w.cview(), w.cview(), d.cview()), Catch::Contains("'down'"));
  const auto sw = dsk::gemm::packed_weights<float>::swiglu(w.cview(), w.cview());
  REQUIRE_THROWS_WITH(dsk::nn::linear(sw), Catch::Contains("plain packed weights"));
}

namespace {
using dsk::nn::linear_format;
using dsk::nn::weight_type;

// NMSE of the quantized product against the f32 product over uniform weights: int8 step amax/127 gives
// ~1.5e-5 (x2 with int8 activations), int4 step amax/7 ~5e-3; grouped scales only shrink it. A wrong format
// or a gate/up swap gives NMSE ~ 1.
constexpr double kNmseInt8 = 1e-4;
constexpr double kNmseInt4 = 1.5e-2;

const char* const kQuantFormats[] = {"int8",          "int8-g32",      "int8-g64",    "int8-g128",
                                     "int8-g128-f16", "int4",          "int4-g32",    "int4-g64",
                                     "int4-g128",     "int4-g128-f16", "int4-f16",    "int4-f16-a8",
                                     "int8-a8",       "int4-a8",       "int8-g32-a8", "int4-g128-f16-a8"};

// y = x W^T through the quant entry point the format names (the oracle of the routing).
template <class T>
dsk::tensor<float, 2> quant_product(const linear_format& f, const dsk::tensor<float, 2>& x,
                                    const dsk::tensor<T, 2>& w) {
  dsk::tensor<float, 2> y(x.extent(0), w.extent(0));
  const dsk::quant::format q{f.type == weight_type::int8 ? dsk::quant::qtype::int8 : dsk::quant::qtype::int4,
                             f.group, f.scale};
  bool found = false;
  auto run = [&]<dsk::quant::format F>() {
    if (!(q == F)) return;
    found = true;
    const auto qw = dsk::quant::quantize<dsk::quant::quantize_config{F}>(w.cview());
    if (f.act == dsk::quant::activations::int8)
      dsk::quant::matmul_a8(x.cview(), qw, y.view());
    else
      dsk::quant::matmul(x.cview(), qw, y.view());
  };
  using dsk::quant::format;
  using dsk::quant::qtype;
  using dsk::quant::scale_type;
  run.template operator()<format{qtype::int8, 0}>();
  run.template operator()<format{qtype::int8, 32}>();
  run.template operator()<format{qtype::int8, 64}>();
  run.template operator()<format{qtype::int8, 128}>();
  run.template operator()<format{qtype::int8, 128, scale_type::f16}>();
  run.template operator()<format{qtype::int4, 0}>();
  run.template operator()<format{qtype::int4, 32}>();
  run.template operator()<format{qtype::int4, 0, scale_type::f16}>();
  run.template operator()<format{qtype::int4, 64}>();
  run.template operator()<format{qtype::int4, 128}>();
  run.template operator()<format{qtype::int4, 128, scale_type::f16}>();
  REQUIRE(found);
  return y;
}
}  // namespace

TEST_CASE("linear_format: parse and to_string round trip; bad names", "[nn][linear]") {
  for (const char* s : {"f32", "bf16", "f16", "source"})
    REQUIRE(to_string(dsk::nn::parse_linear_format(s)) == s);
  for (const char* s : kQuantFormats) REQUIRE(to_string(dsk::nn::parse_linear_format(s)) == s);
  REQUIRE(dsk::nn::parse_linear_format("checkpoint") == linear_format{});
  REQUIRE(to_string(dsk::nn::parse_linear_format("int8-g64-bf16")) == "int8-g64-bf16");
  REQUIRE(dsk::nn::parse_linear_format("int4-g128-f16") ==
          linear_format{weight_type::int4, 128, dsk::quant::scale_type::f16});
  for (const char* s : {"", "int2", "f64", "int4-g16", "int4-g256", "int8-a8-g32", "bf16-a8", "int4-"})
    REQUIRE_THROWS_AS(dsk::nn::parse_linear_format(s), dsk::unsupported);
  REQUIRE_THROWS_WITH(dsk::nn::parse_linear_format("int3"),
                      Catch::Contains("'int3'") && Catch::Contains("int4"));
}

TEMPLATE_TEST_CASE("linear: every run-time format from every source dtype", "[nn][linear]", float, dsk::bf16,
                   dsk::f16) {
  using T = TestType;
  struct shape {
    index_t out, in;
  };
  for (const shape sh : {shape{37, 70}, shape{1, 1}, shape{5, 130}, shape{16, 257}}) {
    const auto w = random_matrix<T>(sh.out, sh.in, 11 + std::uint64_t(sh.in));
    const auto b = random_matrix<float>(1, sh.out, 12);
    dsk::tensor<float, 2> wf(sh.out, sh.in);
    for (index_t i = 0; i < wf.size(); ++i) wf.data()[i] = dsk::to_float(w.data()[i]);
    for (index_t tokens : {1, 3, 17}) {
      CAPTURE(sh.out, sh.in, tokens);
      const auto x = random_matrix<float>(tokens, sh.in, 13);
      dsk::tensor<double, 2> exact(tokens, sh.out);
      dsk::gemm::ref::matmul<float>(x.cview(), wf.cview(), exact.view());
      // Float formats: the double product of the weights rounded to the format.
      for (const char* name : {"source", "f32", "bf16", "f16"}) {
        CAPTURE(name);
        const auto f = dsk::nn::parse_linear_format(name);
        const dsk::nn::linear l(w.cview(), f), lb(w.cview(), f, b.cview()[0]);
        REQUIRE(l.in_features() == sh.in);
        REQUIRE(l.out_features() == sh.out);
        REQUIRE(l.format().type != weight_type::source);
        dsk::tensor<double, 2> want(tokens, sh.out), want_b(tokens, sh.out);
        auto ref = [&]<class W>() {
          dsk::tensor<W, 2> wr(sh.out, sh.in);
          for (index_t i = 0; i < wr.size(); ++i) wr.data()[i] = dsk::from_float<W>(wf.data()[i]);
          dsk::gemm::ref::matmul<W>(x.cview(), wr.cview(), want.view());
          dsk::gemm::ref::matmul<W>(x.cview(), wr.cview(), want_b.view(), b.cview()[0]);
          REQUIRE(l.bytes() >= sh.out * sh.in * index_t(sizeof(W)));
        };
        switch (l.format().type) {
          case weight_type::f32:
            ref.template operator()<float>();
            break;
          case weight_type::bf16:
            ref.template operator()<dsk::bf16>();
            break;
          default:
            ref.template operator()<dsk::f16>();
            break;
        }
        dsk::tensor<float, 2> y(tokens, sh.out), yb(tokens, sh.out);
        l.forward(x, y);
        lb.forward(x, yb);
        REQUIRE(dsk::test::nmse<double, float>(flat(want), flat(y)) < kNmseF32);
        REQUIRE(dsk::test::nmse<double, float>(flat(want_b), flat(yb)) < kNmseF32);
      }
      // Quantized formats: bit for bit the quant product they name, close to the exact one; bias added.
      for (const char* name : kQuantFormats) {
        CAPTURE(name);
        const auto f = dsk::nn::parse_linear_format(name);
        const dsk::nn::linear l(w.cview(), f), lb(w.cview(), f, b.cview()[0]);
        REQUIRE(l.format() == f);
        REQUIRE(l.in_features() == sh.in);
        dsk::tensor<float, 2> y(tokens, sh.out), yb(tokens, sh.out);
        l.forward(x, y);
        lb.forward(x, yb);
        const auto want = quant_product(f, x, w);
        REQUIRE(flat(y) == flat(want));
        for (index_t t = 0; t < tokens; ++t)
          for (index_t n = 0; n < sh.out; ++n) REQUIRE(yb(t, n) == y(t, n) + b(0, n));
        if (sh.in > 1)
          REQUIRE(dsk::test::nmse<double, float>(flat(exact), flat(y)) <
                  (f.type == weight_type::int8 ? kNmseInt8 : kNmseInt4));
      }
    }
  }
}

TEMPLATE_TEST_CASE("swiglu_mlp: every run-time format", "[nn][mlp]", float, dsk::bf16) {
  using T = TestType;
  const index_t hidden = 96, inter = 40;
  const auto g = random_matrix<T>(inter, hidden, 21), u = random_matrix<T>(inter, hidden, 22);
  const auto d = random_matrix<T>(hidden, inter, 23);
  auto widen = [](const dsk::tensor<T, 2>& m) {
    dsk::tensor<float, 2> r(m.extent(0), m.extent(1));
    for (index_t i = 0; i < m.size(); ++i) r.data()[i] = dsk::to_float(m.data()[i]);
    return r;
  };
  const auto gf = widen(g), uf = widen(u), df = widen(d);
  std::vector<const char*> names = {"source", "f32", "bf16", "f16"};
  for (const char* s : kQuantFormats) names.push_back(s);
  for (index_t tokens : {1, 5, 19}) {
    const auto x = random_matrix<float>(tokens, hidden, 24);
    // Exact: down(silu(x g^T) * (x u^T)) in double from the source weights.
    dsk::tensor<double, 2> h(tokens, inter), exact(tokens, hidden);
    dsk::gemm::ref::swiglu<float>(x.cview(), gf.cview(), uf.cview(), h.view());
    for (index_t t = 0; t < tokens; ++t)
      for (index_t j = 0; j < hidden; ++j) {
        double s = 0;
        for (index_t k = 0; k < inter; ++k) s += h(t, k) * double(df(j, k));
        exact(t, j) = s;
      }
    for (const char* name : names) {
      CAPTURE(tokens, name);
      const auto f = dsk::nn::parse_linear_format(name);
      const dsk::nn::swiglu_mlp mlp(g.cview(), u.cview(), d.cview(), f);
      REQUIRE(mlp.hidden() == hidden);
      REQUIRE(mlp.intermediate() == inter);
      REQUIRE(mlp.bytes() > 0);
      dsk::tensor<float, 2> y(tokens, hidden), y2(tokens, hidden), hb(tokens, inter);
      mlp.forward(x, y);
      mlp.forward(x, y2, hb);
      REQUIRE(flat(y) == flat(y2));
      const double nm = dsk::test::nmse<double, float>(flat(exact), flat(y));
      CAPTURE(nm);
      if (!dsk::nn::is_quantized(f.type)) {
        // bf16 / f16 storage rounds float weights: compare with the rounded product where it differs.
        if (f.type == weight_type::f32 || (f.type == weight_type::source && std::is_same_v<T, float>) ||
            (std::is_same_v<T, dsk::bf16> && f.type != weight_type::f16))
          REQUIRE(nm < kNmseMlp);
        else
          REQUIRE(nm < 1e-5);  // f16 / bf16 rounding of the weights (2^-11 / 2^-8 relative, averaged)
      } else {
        // Against the composite of the library pieces with separately quantized gate, up and down.
        const dsk::nn::linear lg(g.cview(), f), lu2(u.cview(), f), ld(d.cview(), f);
        dsk::tensor<float, 2> hg(tokens, inter), hu(tokens, inter), yc(tokens, hidden);
        lg.forward(x, hg);
        lu2.forward(x, hu);
        dsk::nn::swiglu(hg, hu, hg);
        ld.forward(hg, yc);
        const auto ycf = flat(yc);
        const std::vector<double> ycd(ycf.begin(), ycf.end());
        REQUIRE(dsk::test::nmse<double, float>(ycd, flat(y)) < 1e-10);
        REQUIRE(nm < (f.type == weight_type::int8 ? 3 * kNmseInt8 : 3 * kNmseInt4));
      }
    }
  }
}

TEST_CASE("linear and swiglu_mlp reject bad formats and shapes", "[nn][linear][errors]") {
  const auto w = random_matrix<float>(6, 8, 1);
  using dsk::quant::activations;
  REQUIRE_THROWS_WITH(dsk::nn::linear(w.cview(), linear_format{weight_type::int4, 256}),
                      Catch::Contains("'format'") && Catch::Contains("128"));
  REQUIRE_THROWS_WITH(dsk::nn::linear(w.cview(), linear_format{weight_type::bf16, 32}),
                      Catch::Contains("'format'"));
  REQUIRE_THROWS_WITH(
      dsk::nn::linear(w.cview(),
                      linear_format{weight_type::f16, 0, dsk::quant::scale_type::f32, activations::int8}),
      Catch::Contains("'format'"));
  // Valid but not compiled in: dsk::unsupported listing the choices.
  REQUIRE_THROWS_AS(
      dsk::nn::linear(w.cview(), linear_format{weight_type::int8, 32, dsk::quant::scale_type::f16}),
      dsk::unsupported);
  REQUIRE_THROWS_WITH(
      dsk::nn::linear(w.cview(), linear_format{weight_type::int8, 32, dsk::quant::scale_type::f16}),
      Catch::Contains("int8-g32-f16") && Catch::Contains("int4-g128-f16"));
  const dsk::nn::linear q(w.cview(), dsk::nn::parse_linear_format("int4-g32"));
  dsk::tensor<float, 2> x(2, 7), y(2, 6), x8(2, 8), y5(2, 5);
  REQUIRE_THROWS_WITH(q.forward(x, y), Catch::Contains("quant::matmul") && Catch::Contains("'x'"));
  REQUIRE_THROWS_WITH(q.forward(x8, y5), Catch::Contains("'y'"));
  const dsk::nn::linear empty;
  REQUIRE_THROWS_WITH(empty.forward(x8, y), Catch::Contains("empty"));
  const auto d = random_matrix<float>(8, 6, 3), up_bad = random_matrix<float>(5, 8, 4);
  REQUIRE_THROWS_WITH(dsk::nn::swiglu_mlp(w.cview(), up_bad.cview(), d.cview(), {}), Catch::Contains("'up'"));
  const dsk::nn::swiglu_mlp m(w.cview(), w.cview(), d.cview(), dsk::nn::parse_linear_format("int8"));
  dsk::tensor<float, 2> hx(2, 9), hy(2, 9), h(2, 6), hbad(2, 5);
  REQUIRE_THROWS_WITH(m.forward(hx, hy, h), Catch::Contains("hidden()"));
  REQUIRE_THROWS_WITH(m.forward(x8, y, hbad), Catch::Contains("'h'"));
  // Adopting quantized weights keeps their format.
  const dsk::nn::linear adopted(
      dsk::quant::quantize<dsk::quant::quantize_config{dsk::quant::int4_g128_f16}>(w.cview()),
      activations::int8);
  REQUIRE(to_string(adopted.format()) == "int4-g128-f16-a8");
}

TEST_CASE("quant::linear takes f16 weights", "[nn][linear][quant]") {
  constexpr dsk::quant::linear_config c4{dsk::quant::quantize_config{dsk::quant::int4_g128_f16}};
  const auto w = random_matrix<dsk::f16>(9, 200, 31);
  const auto x = random_matrix<float>(3, 200, 32);
  const dsk::quant::linear<c4> l(w.cview());
  dsk::tensor<float, 2> y(3, 9), want(3, 9);
  l.forward(x, y);
  dsk::quant::matmul(x.cview(), dsk::quant::quantize<c4.quant>(w.cview()), want.view());
  REQUIRE(flat(y) == flat(want));
}

// A linear over quantized weights held elsewhere (a mapped checkpoint's codes and scales) reads them in
// place: the same bits as the owning layer, the same byte count, no copy; malformed views are refused.
TEST_CASE("linear: adopting a qweight_view reads the weights in place", "[nn][linear][quant]") {
  namespace q = dsk::quant;
  constexpr q::format F{q::qtype::int4, 0, q::scale_type::f16};
  for (const index_t in : {1, 7, 64, 257}) {
    CAPTURE(in);
    const auto w = random_matrix<float>(11, in, 40 + std::uint64_t(in));
    const auto x = random_matrix<float>(5, in, 41);
    const auto qw = q::quantize<F>(w.cview());
    for (const auto act : {q::activations::f32, q::activations::int8}) {
      const dsk::nn::linear owning(qw, act), viewing(qw.view(), act);
      const auto* held = std::get_if<q::qweight_view<F>>(&viewing.weights());
      REQUIRE(held != nullptr);
      CHECK(static_cast<const void*>(held->codes) == static_cast<const void*>(qw.codes()));
      CHECK(viewing.bytes() == owning.bytes());
      CHECK(viewing.format() == owning.format());
      REQUIRE(viewing.out_features() == 11);
      REQUIRE(viewing.in_features() == in);
      dsk::tensor<float, 2> y(5, 11), want(5, 11);
      viewing.forward(x, y);
      owning.forward(x, want);
      REQUIRE(flat(y) == flat(want));
    }
  }
  const auto qw = q::quantize<F>(random_matrix<float>(4, 10, 42).cview());
  auto v = qw.view();
  v.codes = nullptr;
  REQUIRE_THROWS_WITH(dsk::nn::linear(v), Catch::Contains("'w'") && Catch::Contains("null"));
  v = qw.view();
  v.code_stride = 2;
  REQUIRE_THROWS_WITH(dsk::nn::linear(v), Catch::Contains("code row stride >= 5"));
}

// The three-layer form (gate, up, down as separate layers, e.g. int4 views of a mapped checkpoint) against
// the double SwiGLU of the dequantized weights, and against the stacked int4 form, whose rows carry the same
// codes and scales (row-wise quantization), so the two agree to fp32 summation order.
TEST_CASE("swiglu_mlp from three linears (mapped int4 weights)", "[nn][mlp][quant]") {
  namespace q = dsk::quant;
  constexpr q::format F{q::qtype::int4, 0, q::scale_type::f16};
  const index_t hidden = 48, inter = 40;
  const auto g = random_matrix<float>(inter, hidden, 54), u = random_matrix<float>(inter, hidden, 55);
  const auto d = random_matrix<float>(hidden, inter, 56);
  const auto gq = q::quantize<F>(g.cview()), uq = q::quantize<F>(u.cview()), dq = q::quantize<F>(d.cview());
  const dsk::nn::swiglu_mlp split(dsk::nn::linear(gq.view()), dsk::nn::linear(uq.view()),
                                  dsk::nn::linear(dq.view()));
  REQUIRE(split.hidden() == hidden);
  REQUIRE(split.intermediate() == inter);
  CHECK(split.bytes() == 2 * inter * (hidden / 2 + 2) + hidden * (inter / 2 + 2));
  dsk::tensor<float, 2> gd(inter, hidden), ud(inter, hidden), dd(hidden, inter);
  q::dequantize(gq, gd.view()), q::dequantize(uq, ud.view()), q::dequantize(dq, dd.view());
  const dsk::nn::swiglu_mlp stacked(gd.cview(), ud.cview(), dd.cview(),
                                    dsk::nn::parse_linear_format("int4-f16"));
  for (index_t tokens : {1, 3, 20}) {
    CAPTURE(tokens);
    const auto x = random_matrix<float>(tokens, hidden, 57);
    dsk::tensor<double, 2> h(tokens, inter), want(tokens, hidden);
    dsk::gemm::ref::swiglu<float>(x.cview(), gd.cview(), ud.cview(), h.view());
    for (index_t t = 0; t < tokens; ++t)
      for (index_t j = 0; j < hidden; ++j) {
        double s = 0;
        for (index_t k = 0; k < inter; ++k) s += h(t, k) * double(dd(j, k));
        want(t, j) = s;
      }
    dsk::tensor<float, 2> y(tokens, hidden), ys(tokens, hidden);
    split.forward(x, y);
    stacked.forward(x, ys);
    REQUIRE(dsk::test::nmse<double, float>(flat(want), flat(y)) < kNmseMlp);
    REQUIRE(dsk::test::nmse<double, float>(flat(want), flat(ys)) < kNmseMlp);
  }
  REQUIRE_THROWS_WITH(
      dsk::nn::swiglu_mlp(dsk::nn::linear(gq.view()), dsk::nn::linear(dq.view()), dsk::nn::linear(dq.view())),
      Catch::Contains("'up'"));
}

namespace {
// A rank-r adapter with values ~ U(-1, 1) / 4 (so that the adapter term is comparable to the base).
dsk::nn::lora_adapter random_adapter(index_t out, index_t in, index_t r, float scale, std::uint64_t seed) {
  dsk::nn::lora_adapter l{random_matrix<float>(r, in, seed), random_matrix<float>(out, r, seed + 1), scale};
  for (auto* t : {&l.a, &l.b})
    for (index_t i = 0; i < t->size(); ++i) t->data()[i] *= 0.25f;
  return l;
}
}  // namespace

TEST_CASE("linear with a LoRA adapter: base + scale (x A^T) B^T in every format, awkward shapes",
          "[nn][linear][lora]") {
  // Oracle: the base layer's own output (the format's product, checked above) plus the adapter term in
  // double. The adapter term is f32 GEMMs over K <= 70 against double: NMSE far below 1e-10.
  std::uint64_t seed = 500;
  for (const char* fmt : {"f32", "bf16", "int8", "int4", "int4-g32", "int8-a8"})
    for (auto [out, in, r] : {std::tuple<index_t, index_t, index_t>{37, 70, 16}, {7, 13, 1}, {64, 64, 3}}) {
      CAPTURE(fmt, out, in, r);
      const auto w = random_matrix<float>(out, in, ++seed);
      if (std::string_view(fmt) == "int4-g32" && in % 32 != 0) continue;  // groups must divide in_features
      const dsk::nn::linear base(w.cview(), dsk::nn::parse_linear_format(fmt));
      dsk::nn::linear adapted = base;
      const auto l = random_adapter(out, in, r, 2.0f, ++seed);
      adapted.set_adapter(l);
      REQUIRE(adapted.adapter() != nullptr);
      CHECK(base.adapter() == nullptr);  // a copy made before set_adapter keeps no adapter
      CHECK(adapted.adapter_bytes() == 4 * r * (in + out));
      CHECK(adapted.bytes() == base.bytes() + adapted.adapter_bytes());
      for (index_t tokens : {1, 5, 33}) {
        CAPTURE(tokens);
        const auto x = random_matrix<float>(tokens, in, ++seed);
        dsk::tensor<float, 2> yb(tokens, out), ya(tokens, out);
        base.forward(x, yb);
        adapted.forward(x, ya);
        std::vector<double> want(static_cast<std::size_t>(tokens * out)), got(want.size());
        for (index_t t = 0; t < tokens; ++t)
          for (index_t o = 0; o < out; ++o) {
            double s = 0;
            for (index_t k = 0; k < r; ++k) {
              double xa = 0;
              for (index_t i = 0; i < in; ++i) xa += double(x(t, i)) * l.a(k, i);
              s += xa * l.b(o, k);
            }
            want[static_cast<std::size_t>(t * out + o)] = s * l.scale;
            got[static_cast<std::size_t>(t * out + o)] = double(ya(t, o)) - double(yb(t, o));
          }
        REQUIRE(dsk::test::nmse<double, double>(want, got) < kNmseF32);
      }
    }
}

TEST_CASE("merge_lora: W + scale B A gives the adapted layer's outputs", "[nn][linear][lora]") {
  std::uint64_t seed = 900;
  for (auto [out, in, r] : {std::tuple<index_t, index_t, index_t>{37, 70, 16}, {7, 13, 1}, {130, 96, 8}}) {
    CAPTURE(out, in, r);
    auto w = random_matrix<float>(out, in, ++seed);
    const auto l = random_adapter(out, in, r, 0.5f, ++seed);
    // The merged weight against double, element by element.
    auto merged = w;
    dsk::nn::merge_lora(merged.view(), l);
    double worst = 0;
    for (index_t o = 0; o < out; ++o)
      for (index_t i = 0; i < in; ++i) {
        double d = 0;
        for (index_t k = 0; k < r; ++k) d += double(l.b(o, k)) * l.a(k, i);
        worst = std::max(worst, std::abs(double(merged(o, i)) - (double(w(o, i)) + d * l.scale)));
      }
    CHECK(worst < 1e-6);  // |w| <= 1, |delta| <= r / 32: a few f32 ulps
    // f32 layers: merged == base + adapter up to f32 rounding.
    dsk::nn::linear fused(w.cview());
    fused.set_adapter(l);
    const dsk::nn::linear m(merged.cview());
    const auto x = random_matrix<float>(9, in, ++seed);
    dsk::tensor<float, 2> yf(9, out), ym(9, out);
    fused.forward(x, yf);
    m.forward(x, ym);
    CHECK(dsk::test::nmse<float, float>(flat(yf), flat(ym)) < kNmseF32);
  }
}

TEST_CASE("LoRA adapters with the wrong shapes or values are named errors", "[nn][linear][lora][errors]") {
  using Catch::Matchers::Contains;
  const auto w = random_matrix<float>(8, 12, 1);
  dsk::nn::linear l(w.cview());
  CHECK_THROWS_WITH(l.set_adapter(random_adapter(8, 11, 4, 1.0f, 2)),
                    Contains("adapter.a") && Contains("in_features"));
  CHECK_THROWS_WITH(l.set_adapter(random_adapter(9, 12, 4, 1.0f, 2)),
                    Contains("adapter.b") && Contains("out_features"));
  auto bad_rank = random_adapter(8, 12, 4, 1.0f, 2);
  bad_rank.b = random_matrix<float>(8, 3, 3);
  CHECK_THROWS_WITH(l.set_adapter(bad_rank), Contains("adapter.b") && Contains("the rank"));
  auto nan = random_adapter(8, 12, 4, 1.0f, 2);
  nan.b(2, 1) = NAN;
  CHECK_THROWS_WITH(l.set_adapter(nan), Contains("adapter.b") && Contains("non-finite"));
  CHECK_THROWS_WITH(l.set_adapter(random_adapter(8, 12, 4, INFINITY, 2)), Contains("adapter.scale"));
  CHECK_THROWS_WITH(l.set_adapter(dsk::nn::lora_adapter{}), Contains("rank r"));
  auto merged = w;
  CHECK_THROWS_WITH(dsk::nn::merge_lora(merged.view(), random_adapter(8, 13, 4, 1.0f, 2)),
                    Contains("nn::merge_lora") && Contains("adapter.a"));
}
