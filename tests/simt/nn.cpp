// nn kernels on every backend (host; CUDA under the SIMT emulation; CUDA natively when built by nvcc for
// tests/cuda) against nn/ref.hpp (double): RMSNorm, softmax / log-softmax, argmax, embedding, RoPE/YaRN,
// SiLU/SwiGLU. Shapes include 1, sizes that are not multiples of the warp or block, padded row strides,
// empty.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dsk/gemm/ref.hpp"
#include "dsk/nn/cuda/nn.cuh"
#include "dsk/nn/ref.hpp"
#include "simt/harness.hpp"
#include "support/compare.hpp"
#if !defined(__CUDACC__)
#include "dsk/nn/argmax.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "dsk/nn/softmax.hpp"
#endif

using dsk::index_t;
using namespace dsk::test;
namespace nn = dsk::nn;

namespace {

// fp32 reductions over at most ~2^11 terms: relative error ~1e-6 per element, NMSE well below 1e-10.
constexpr double kRowNmse = 1e-10;
// RoPE tables use the f32 inv_freq of nn::rope_cache: the angle differs from the double reference by up to
// pos * 2^-24 rad (pos < 2048 here), i.e. relative ~1e-4 on the rotated part at worst: NMSE < 1e-8.
constexpr double kRopeNmse = 1e-8;

dsk::tensor<float, 2> random_matrix(index_t rows, index_t cols, std::uint64_t seed, float lo = -2.0f,
                                    float hi = 2.0f) {
  dsk::tensor<float, 2> t(rows, cols);
  const auto v = random_floats(static_cast<std::size_t>(rows * cols), seed, lo, hi);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

// Row r of a double matrix vs row r of a float matrix (NMSE).
double row_nmse(const dsk::tensor<double, 2>& want, const dsk::tensor<float, 2>& got, index_t r) {
  const auto n = static_cast<std::size_t>(want.extent(1));
  return nmse(std::span<const double>(want.data() + r * want.extent(1), n),
              std::span<const float>(got.data() + r * got.extent(1), n));
}

template <class B, class W>
void check_rmsnorm() {
  INFO("backend " << backend_name<B>() << ", weights " << dsk::name(dsk::dtype_of<W>));
  for (const index_t rows : {1, 3, 17})
    for (const index_t n : {1, 7, 64, 300, 1025}) {
      INFO("rows " << rows << ", hidden " << n);
      const auto x =
          random_matrix(rows, n + 3, 11 + static_cast<std::uint64_t>(n));  // padded rows: stride n + 3
      dsk::tensor<W, 1> w(n);
      const auto wf = random_floats(static_cast<std::size_t>(n), 5, 0.5f, 1.5f);
      for (index_t i = 0; i < n; ++i) w(i) = dsk::from_float<W>(wf[static_cast<std::size_t>(i)]);
      const auto xs = dsk::as_const(x.view().slice(1, 0, n));
      dsk::tensor<double, 2> want(rows, n);
      nn::ref::rmsnorm<W>(xs, w.cview(), 1e-6, want.view());

      const auto bx = put<B>(x);
      const auto bw = put<B>(w);
      auto by = put<B>(dsk::tensor<float, 2>(rows, n));
      const auto bxs = dsk::as_const(bx.view().slice(1, 0, n));
      if constexpr (is_host<B>) {
        DSK_TEST_HOST_ONLY(nn::rmsnorm(bxs, bw.cview(), 1e-6f, by.view());)
      } else {
        nn::rmsnorm<B>(bxs, bw.cview(), 1e-6f, by.view());
      }
      const auto y = get(by);
      for (index_t r = 0; r < rows; ++r) CHECK(row_nmse(want, y, r) < kRowNmse);

      // In place (y = x).
      auto bx2 = put<B>(x);
      const auto v = bx2.view().slice(1, 0, n);
      if constexpr (is_host<B>) {
        DSK_TEST_HOST_ONLY(nn::rmsnorm(dsk::as_const(v), bw.cview(), 1e-6f, v);)
      } else {
        nn::rmsnorm<B>(dsk::as_const(v), bw.cview(), 1e-6f, v);
      }
      const auto y2 = get(bx2);
      dsk::tensor<float, 2> y2d(rows, n);
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = 0; i < n; ++i) y2d(r, i) = y2(r, i);
      for (index_t r = 0; r < rows; ++r) CHECK(row_nmse(want, y2d, r) < kRowNmse);
    }
}

template <class B>
void check_softmax(bool log) {
  INFO("backend " << backend_name<B>() << (log ? ", log_softmax" : ", softmax"));
  constexpr float inf = std::numeric_limits<float>::infinity();
  for (const index_t rows : {1, 5})
    for (const index_t n : {1, 31, 257, 2000}) {
      INFO("rows " << rows << ", n " << n);
      auto x = random_matrix(rows + 3, n, 23 + static_cast<std::uint64_t>(n), -8.0f, 8.0f);
      // Special rows: all -inf, one NaN, one +inf.
      const index_t all = rows + 3;
      for (index_t i = 0; i < n; ++i) x(rows, i) = -inf;
      x(rows + 1, n / 2) = std::numeric_limits<float>::quiet_NaN();
      x(rows + 2, n - 1) = inf;
      dsk::tensor<double, 2> want(all, n);
      nn::ref::softmax(x.cview(), want.view(), log);
      const auto bx = put<B>(x);
      auto by = put<B>(dsk::tensor<float, 2>(all, n));
      if constexpr (is_host<B>) {
        DSK_TEST_HOST_ONLY(if (log) nn::log_softmax(bx.cview(), by.view());
                           else nn::softmax(bx.cview(), by.view());)
      } else {
        if (log)
          nn::log_softmax<B>(bx.cview(), by.view());
        else
          nn::softmax<B>(bx.cview(), by.view());
      }
      const auto y = get(by);
      for (index_t r = 0; r < rows; ++r) CHECK(row_nmse(want, y, r) < kRowNmse);
      for (index_t i = 0; i < n; ++i) {
        CHECK(y(rows, i) == (log ? -inf : 0.0f));
        CHECK(std::isnan(y(rows + 1, i)));
        CHECK(std::isnan(y(rows + 2, i)));
      }
    }
}

template <class B>
void check_argmax() {
  INFO("backend " << backend_name<B>());
  for (const index_t n : {1, 2, 33, 1000, 5000}) {
    INFO("n " << n);
    const index_t rows = 6;
    auto x = random_matrix(rows, 2 * n, 31 + static_cast<std::uint64_t>(n));
    // Row 1: ties (the first maximum wins); row 2: a NaN (wins); row 3: all -inf; row 4: max in the last
    // column.
    for (index_t i = 0; i < 2 * n; ++i) x(1, i) = static_cast<float>(i % 3);
    x(2, 2 * (n - 1)) = std::numeric_limits<float>::quiet_NaN();
    for (index_t i = 0; i < 2 * n; ++i) x(3, i) = -std::numeric_limits<float>::infinity();
    x(4, 2 * (n - 1)) = 100.0f;
    // Every other column: a view with stride(1) = 2.
    const auto bx = put<B>(x);
    const dsk::view<const float, 2> xv(bx.cview().data(), dsk::dims<2>(rows, n), {2 * n, 2});
    auto bout = put<B>(dsk::tensor<index_t, 1>(rows));
    if constexpr (is_host<B>) {
      DSK_TEST_HOST_ONLY(nn::argmax(xv, bout.view());)
    } else {
      nn::argmax<B>(xv, bout.view());
    }
    const auto out = get(bout);
    for (index_t r = 0; r < rows; ++r) {
      std::vector<float> row(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) row[static_cast<std::size_t>(i)] = x(r, 2 * i);
      CHECK(out(r) == nn::ref::argmax(row.data(), n));
    }
  }
}

template <class B, class W, class Id>
void check_embedding() {
  INFO("backend " << backend_name<B>() << ", table " << dsk::name(dsk::dtype_of<W>));
  const index_t vocab = 50, dim = 37, tokens = 9;
  dsk::tensor<W, 2> table(vocab, dim);
  const auto v = random_floats(static_cast<std::size_t>(vocab * dim), 41);
  for (index_t i = 0; i < vocab * dim; ++i)
    table.data()[i] = dsk::from_float<W>(v[static_cast<std::size_t>(i)]);
  dsk::tensor<Id, 1> ids(tokens);
  for (index_t t = 0; t < tokens; ++t) ids(t) = static_cast<Id>((t * 17 + 3) % vocab);
  ids(tokens - 1) = static_cast<Id>(vocab - 1);
  const auto bt = put<B>(table);
  const auto bids = put<B>(ids);
  auto by = put<B>(dsk::tensor<float, 2>(tokens, dim));
  if constexpr (is_host<B>) {
    DSK_TEST_HOST_ONLY(nn::embedding(bt.cview(), std::span<const Id>(bids.data(), tokens), by.view());)
  } else {
    nn::embedding<B>(bt.cview(), bids.cview(), by.view());
  }
  const auto y = get(by);
  for (index_t t = 0; t < tokens; ++t)
    for (index_t i = 0; i < dim; ++i)
      REQUIRE(y(t, i) == static_cast<float>(table(ids(t), i)));  // exact widening
  if constexpr (!is_host<B>) {
    ids(4) = static_cast<Id>(vocab);
    ids(6) = -1;
    const auto bad = put<B>(ids);
    CHECK_THROWS_WITH(nn::embedding<B>(bt.cview(), bad.cview(), by.view()),
                      Catch::Contains("nn::embedding<cuda>") && Catch::Contains("ids[4]"));
    const auto empty = put<B>(dsk::tensor<Id, 1>(0));
    auto y0 = put<B>(dsk::tensor<float, 2>(0, dim));
    CHECK_NOTHROW(nn::embedding<B>(bt.cview(), empty.cview(), y0.view()));
  }
}

template <class B>
void check_rope(nn::rope_layout layout) {
  INFO("backend " << backend_name<B>() << ", layout "
                  << (layout == nn::rope_layout::interleaved ? "interleaved" : "half_split"));
  // DeepSeek-V2-Lite's rope_scaling (YaRN, factor 40) and a plain RoPE.
  for (const double factor : {1.0, 40.0}) {
    nn::rope_params p;
    p.dim = 64;
    p.layout = layout;
    p.yarn = {factor, 4096, 32.0, 1.0, 0.707, 0.707};
    const index_t max_pos = 2048, tokens = 5, heads = 3;
    const nn::rope_cache cache(p, max_pos);
    const std::vector<double> inv = nn::ref::yarn_inv_freq(64, p.base, factor, 4096, 32.0, 1.0);
    const double cs = nn::rope_cos_sin_scale(p);
    dsk::tensor<index_t, 1> pos(tokens);
    const index_t positions[] = {0, 1, 77, 1000, max_pos - 1};
    for (index_t t = 0; t < tokens; ++t) pos(t) = positions[t];
    const auto x = random_matrix(tokens, heads * p.dim, 51);
    auto bx = put<B>(x);
    const dsk::view<float, 3> xv(bx.view().data(), dsk::dims<3>(tokens, heads, p.dim),
                                 {heads * p.dim, p.dim, 1});
    if constexpr (is_host<B>) {
      DSK_TEST_HOST_ONLY(nn::apply_rope(cache, std::span<const index_t>(pos.data(), tokens), xv);)
    } else {
      const nn::device_rope_cache dcache(cache);
      const auto bpos = put<B>(pos);
      nn::apply_rope<B>(dcache, bpos.cview(), xv);
      dsk::tensor<index_t, 1> bad = pos;
      bad(2) = max_pos;
      const auto bbad = put<B>(bad);
      auto scratch = put<B>(x);  // the tokens with good positions are rotated: not the tensor checked below
      const dsk::view<float, 3> sv(scratch.view().data(), dsk::dims<3>(tokens, heads, p.dim),
                                   {heads * p.dim, p.dim, 1});
      CHECK_THROWS_WITH(nn::apply_rope<B>(dcache, bbad.cview(), sv), Catch::Contains("positions[2]"));
    }
    const auto y = get(bx);
    std::vector<double> want, got;
    for (index_t t = 0; t < tokens; ++t)
      for (index_t h = 0; h < heads; ++h) {
        std::vector<double> v(static_cast<std::size_t>(p.dim));
        for (index_t i = 0; i < p.dim; ++i) v[static_cast<std::size_t>(i)] = x(t, h * p.dim + i);
        nn::ref::rope(v, static_cast<double>(pos(t)), inv, layout == nn::rope_layout::interleaved, cs);
        want.insert(want.end(), v.begin(), v.end());
        for (index_t i = 0; i < p.dim; ++i) got.push_back(y(t, h * p.dim + i));
      }
    CHECK(nmse(std::span<const double>(want), std::span<const double>(got)) < kRopeNmse);
  }
}

template <class B>
void check_swiglu() {
  if constexpr (!is_host<B>) {  // the host's SwiGLU is fused into gemm::swiglu (tests/gemm)
    INFO("backend " << backend_name<B>());
    for (const auto& [rows, n] :
         std::vector<std::pair<index_t, index_t>>{{1, 1}, {3, 300}, {70, 33}, {0, 5}}) {
      INFO("rows " << rows << ", n " << n);
      const auto g = random_matrix(rows, n, 61, -10.0f, 10.0f), u = random_matrix(rows, n, 62);
      const auto bg = put<B>(g), bu = put<B>(u);
      auto by = put<B>(dsk::tensor<float, 2>(rows, n));
      auto bs = put<B>(dsk::tensor<float, 2>(rows, n));
      nn::swiglu<B>(bg.cview(), bu.cview(), by.view());
      nn::silu<B>(bg.cview(), bs.view());
      const auto y = get(by), s = get(bs);
      std::vector<double> want_y, want_s;
      for (index_t i = 0; i < rows * n; ++i) {
        want_s.push_back(dsk::gemm::ref::silu(g.data()[i]));
        want_y.push_back(want_s.back() * u.data()[i]);
      }
      CHECK(nmse(std::span<const double>(want_y), y.span()) < kRowNmse);
      CHECK(nmse(std::span<const double>(want_s), s.span()) < kRowNmse);
    }
  }
}

}  // namespace

TEST_CASE("nn kernels: rmsnorm on every backend vs ref", "[nn][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_rmsnorm<B, float>();
    check_rmsnorm<B, dsk::bf16>();
    check_rmsnorm<B, dsk::f16>();
  });
}

TEST_CASE("nn kernels: softmax and log_softmax on every backend vs ref", "[nn][cuda]") {
  for_each_backend([](auto b) {
    check_softmax<decltype(b)>(false);
    check_softmax<decltype(b)>(true);
  });
}

TEST_CASE("nn kernels: argmax on every backend vs ref", "[nn][cuda]") {
  for_each_backend([](auto b) { check_argmax<decltype(b)>(); });
}

TEST_CASE("nn kernels: embedding on every backend", "[nn][cuda]") {
  for_each_backend([](auto b) {
    using B = decltype(b);
    check_embedding<B, float, std::int32_t>();
    check_embedding<B, dsk::bf16, std::int64_t>();
    check_embedding<B, dsk::f16, std::int32_t>();
  });
}

TEST_CASE("nn kernels: rope / yarn on every backend vs ref", "[nn][cuda]") {
  for_each_backend([](auto b) {
    check_rope<decltype(b)>(nn::rope_layout::interleaved);
    check_rope<decltype(b)>(nn::rope_layout::half_split);
  });
}

TEST_CASE("nn kernels: silu and swiglu on cuda vs the double formula", "[nn][cuda]") {
  for_each_backend([](auto b) { check_swiglu<decltype(b)>(); });
}

TEST_CASE("nn kernels: cuda contracts", "[nn][cuda]") {
  const auto x = put<dsk::cuda>(dsk::tensor<float, 2>(2, 8));
  const auto w = put<dsk::cuda>(dsk::tensor<float, 1>(7));
  auto y = put<dsk::cuda>(dsk::tensor<float, 2>(2, 8));
  CHECK_THROWS_WITH(nn::rmsnorm<dsk::cuda>(x.cview(), w.cview(), 1e-6f, y.view()),
                    Catch::Contains("nn::rmsnorm<cuda>") && Catch::Contains("argument 'w'"));
  auto y3 = put<dsk::cuda>(dsk::tensor<float, 2>(3, 8));
  CHECK_THROWS_WITH(nn::softmax<dsk::cuda>(x.cview(), y3.view()), Catch::Contains("argument 'y'"));
  auto empty = put<dsk::cuda>(dsk::tensor<float, 2>(0, 8));
  CHECK_NOTHROW(nn::softmax<dsk::cuda>(empty.cview(), empty.view()));
}
