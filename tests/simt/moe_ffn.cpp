// moe::grouped_swiglu on the CUDA backend (under the SIMT emulation in test_simt; natively when nvcc builds
// this file into test_cuda) against moe::ref::swiglu in double, row by row (NMSE < 1e-10: fp32 sums of at
// most ~100 terms), for f32, bf16 and f16 weights (the reference uses the same rounded weights); padding rows
// exactly zero; rows of experts left empty and dropped pairs; ys in place of xs; bad shapes rejected.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "dsk/moe/cuda/dispatch.cuh"
#include "dsk/moe/cuda/expert_ffn.cuh"
#include "dsk/moe/ref.hpp"
#include "dsk/quant/cuda/quant.cuh"
#include "simt/harness.hpp"
#include "support/compare.hpp"

using dsk::index_t;
using namespace dsk::test;
namespace moe = dsk::moe;

namespace {

template <class W>
dsk::tensor<W, 3> random_bank(index_t E, index_t R, index_t C, std::uint64_t seed, float scale) {
  dsk::tensor<W, 3> t(E, R, C);
  const auto v = random_floats(static_cast<std::size_t>(E * R * C), seed, -scale, scale);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = dsk::from_float<W>(v[static_cast<std::size_t>(i)]);
  return t;
}

template <class W>
moe::ref::mat matrix_of(const dsk::tensor<W, 3>& t, index_t e) {
  moe::ref::mat m(t.extent(1), t.extent(2));
  for (index_t i = 0; i < t.extent(1); ++i)
    for (index_t j = 0; j < t.extent(2); ++j) m(i, j) = dsk::to_float(t(e, i, j));
  return m;
}

template <class W>
void run_case(index_t T, index_t K, index_t E, index_t H, index_t I, moe::dispatch_options opt, bool in_place,
              std::uint64_t seed) {
  using B = dsk::cuda;
  INFO("W=" << dsk::name(dsk::dtype_of<W>) << " T=" << T << " K=" << K << " E=" << E << " H=" << H << " I="
            << I << " block=" << opt.block << " capacity=" << opt.capacity << " in_place=" << in_place);
  dsk::tensor<moe::expert_id, 2> idx(T, K);
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> any(-1, static_cast<int>(E) - 1);
  for (index_t i = 0; i < idx.size(); ++i) {
    const int v = any(g);
    idx.data()[i] = E > 2 && v > 0 ? v & ~1 : v;  // E > 2: the odd experts stay empty
  }
  dsk::tensor<float, 2> x(T, H);
  const auto xv = random_floats(static_cast<std::size_t>(T * H), seed + 1, -1.0f, 1.0f);
  std::copy(xv.begin(), xv.end(), x.data());
  const auto gate = random_bank<W>(E, I, H, seed + 2, 0.3f), up = random_bank<W>(E, I, H, seed + 3, 0.3f);
  const auto down = random_bank<W>(E, H, I, seed + 4, 0.3f);

  const auto idx_d = put<B>(idx);
  const auto plan = moe::plan_dispatch<B>(idx_d.cview(), E, opt);
  const moe::dispatch_handle hh = plan.to_host();
  const index_t rows = plan.rows();
  const auto x_d = put<B>(x);
  auto xs_d = put<B>(dsk::tensor<float, 2>(rows, H));
  moe::dispatch_tokens<B>(x_d.cview(), plan, xs_d.view());
  const auto gate_d = put<B>(gate), up_d = put<B>(up), down_d = put<B>(down);
  const moe::device_dense_experts<W> bank(gate_d.cview(), up_d.cview(), down_d.cview());
  auto h_d = put<B>(dsk::tensor<float, 2>(rows, I));
  auto ys_sep = put<B>(dsk::tensor<float, 2>(rows, H));
  auto& ys_d = in_place ? xs_d : ys_sep;
  moe::grouped_swiglu<B>(xs_d.cview(), plan, bank, h_d.view(), ys_d.view());
  const auto ys = get(ys_d);

  for (index_t e = 0; e < E; ++e) {
    const auto ge = matrix_of(gate, e), ue = matrix_of(up, e), de = matrix_of(down, e);
    for (index_t r = hh.offset[e]; r < hh.offset[e + 1]; ++r) {
      const std::span<const float> got(ys.data() + r * H, static_cast<std::size_t>(H));
      if (r >= hh.offset[e] + hh.count[e]) {
        for (const float v : got) CHECK(v == 0.0f);  // padding
        continue;
      }
      const index_t t = hh.row_token[r];
      std::vector<double> xt(x.data() + t * H, x.data() + (t + 1) * H);
      const auto want = moe::ref::swiglu(xt, ge, ue, de);
      CHECK(nmse(std::span<const double>(want), got) < 1e-10);
    }
  }
}

// int8 / int4 experts: the stacked [E * I, H] / [E * H, I] matrices quantized on the device (C), the
// reference on their dequantized values.
template <auto C>
void run_quantized(index_t T, index_t K, index_t E, index_t H, index_t I, std::uint64_t seed) {
  using B = dsk::cuda;
  constexpr auto F = dsk::quant::spec_v<C>.fmt;
  INFO("int" << (F.type == dsk::quant::qtype::int8 ? 8 : 4) << " group " << F.group << " T=" << T
             << " E=" << E << " H=" << H << " I=" << I);
  dsk::tensor<moe::expert_id, 2> idx(T, K);
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> any(-1, static_cast<int>(E) - 1);
  for (index_t i = 0; i < idx.size(); ++i) idx.data()[i] = any(g);
  dsk::tensor<float, 2> x(T, H);
  const auto xv = random_floats(static_cast<std::size_t>(T * H), seed + 1, -1.0f, 1.0f);
  std::copy(xv.begin(), xv.end(), x.data());
  const auto stacked = [&](index_t R, index_t Cc, std::uint64_t s) {
    dsk::tensor<float, 2> m(R, Cc);
    const auto v = random_floats(static_cast<std::size_t>(R * Cc), s, -0.3f, 0.3f);
    std::copy(v.begin(), v.end(), m.data());
    return dsk::quant::quantize<C, B>(put<B>(m).cview());
  };
  const auto qg = stacked(E * I, H, seed + 2), qu = stacked(E * I, H, seed + 3),
             qd = stacked(E * H, I, seed + 4);
  const auto deq = [&](const auto& q) {
    auto out = put<B>(dsk::tensor<float, 2>(q.rows(), q.cols()));
    dsk::quant::dequantize<B>(q, out.view());
    return get(out);
  };
  const auto dg = deq(qg), du = deq(qu), dd = deq(qd);
  const moe::device_quantized_experts<F> bank(E, qg.view(), qu.view(), qd.view());

  const auto idx_d = put<B>(idx);
  const auto plan = moe::plan_dispatch<B>(idx_d.cview(), E, {2, 0.0, -1});
  const moe::dispatch_handle hh = plan.to_host();
  const index_t rows = plan.rows();
  const auto x_d = put<B>(x);
  auto xs_d = put<B>(dsk::tensor<float, 2>(rows, H));
  moe::dispatch_tokens<B>(x_d.cview(), plan, xs_d.view());
  auto h_d = put<B>(dsk::tensor<float, 2>(rows, I));
  auto ys_d = put<B>(dsk::tensor<float, 2>(rows, H));
  moe::grouped_swiglu<B>(xs_d.cview(), plan, bank, h_d.view(), ys_d.view());
  const auto ys = get(ys_d);
  const auto mat = [](const dsk::tensor<float, 2>& m, index_t r0, index_t R) {
    moe::ref::mat out(R, m.extent(1));
    for (index_t i = 0; i < R; ++i)
      for (index_t j = 0; j < m.extent(1); ++j) out(i, j) = m(r0 + i, j);
    return out;
  };
  for (index_t e = 0; e < E; ++e) {
    const auto ge = mat(dg, e * I, I), ue = mat(du, e * I, I), de = mat(dd, e * H, H);
    for (index_t r = hh.offset[e]; r < hh.offset[e] + hh.count[e]; ++r) {
      const index_t t = hh.row_token[r];
      std::vector<double> xt(x.data() + t * H, x.data() + (t + 1) * H);
      const auto want = moe::ref::swiglu(xt, ge, ue, de);
      CHECK(nmse(std::span<const double>(want),
                 std::span<const float>(ys.data() + r * H, static_cast<std::size_t>(H))) < 1e-10);
    }
  }
}

}  // namespace

TEST_CASE("moe grouped_swiglu on CUDA over int8 / int4 experts vs ref::swiglu", "[moe][cuda][ffn]") {
  run_quantized<dsk::quant::int8_per_channel>(20, 2, 4, 33, 40, 4300);
  run_quantized<dsk::quant::int4_per_channel>(20, 2, 4, 64, 48, 4310);
  run_quantized<dsk::quant::int4_g128_f16>(9, 1, 2, 256, 130, 4320);  // groups of 128, the last one short
}

TEST_CASE("moe grouped_swiglu on CUDA vs ref::swiglu", "[moe][cuda][ffn]") {
  std::uint64_t seed = 4100;
  run_case<float>(0, 2, 4, 8, 16, {}, false, seed += 10);
  run_case<float>(1, 1, 1, 1, 1, {}, false, seed += 10);
  run_case<float>(7, 2, 4, 33, 40, {4, 0.0, -1}, false, seed += 10);
  run_case<float>(100, 2, 16, 64, 48, {1, 0.0, 9}, true, seed += 10);  // capacity drops, in place
  run_case<dsk::bf16>(40, 2, 4, 33, 70, {8, 0.0, -1}, false, seed += 10);
  run_case<dsk::f16>(40, 6, 8, 65, 32, {}, true, seed += 10);
}

TEST_CASE("moe grouped_swiglu on CUDA rejects bad shapes", "[moe][cuda][ffn]") {
  using B = dsk::cuda;
  dsk::tensor<moe::expert_id, 2> idx(3, 1);
  const auto idx_d = put<B>(idx);
  const auto plan = moe::plan_dispatch<B>(idx_d.cview(), 2);
  const auto gate = put<B>(dsk::tensor<float, 3>(2, 4, 8)), up = put<B>(dsk::tensor<float, 3>(2, 4, 8));
  const auto down_bad = put<B>(dsk::tensor<float, 3>(2, 8, 5));
  CHECK_THROWS_WITH(moe::device_dense_experts<float>(gate.cview(), up.cview(), down_bad.cview()),
                    Catch::Matchers::Contains("'down'"));
  const auto down = put<B>(dsk::tensor<float, 3>(2, 8, 4));
  const moe::device_dense_experts<float> bank(gate.cview(), up.cview(), down.cview());
  auto xs = put<B>(dsk::tensor<float, 2>(plan.rows(), 8));
  auto h = put<B>(dsk::tensor<float, 2>(plan.rows(), 5));  // I = 4 expected
  auto ys = put<B>(dsk::tensor<float, 2>(plan.rows(), 8));
  CHECK_THROWS_WITH(moe::grouped_swiglu<B>(xs.cview(), plan, bank, h.view(), ys.view()),
                    Catch::Matchers::Contains("'h'"));
  const auto plan3 = moe::plan_dispatch<B>(idx_d.cview(), 3);
  auto h_ok = put<B>(dsk::tensor<float, 2>(plan.rows(), 4));
  CHECK_THROWS_WITH(moe::grouped_swiglu<B>(xs.cview(), plan3, bank, h_ok.view(), ys.view()),
                    Catch::Matchers::Contains("'handle'"));
}
