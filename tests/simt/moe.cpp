// moe dispatch and combine on the CUDA backend (under the SIMT emulation in test_simt; natively when nvcc
// builds this file into test_cuda) against the host functions of dsk/moe/dispatch.hpp run with the 8-lane
// scalar packet layer, bit for bit: the plan (offset, count, routed, dropped, row_token, row_slot, pair_row),
// dispatch_tokens, combine_tokens (with shared experts, also in place), dispatch_tokens_backward and
// combine_tokens_backward (dys and dtopk_w). Grid: E in {1, 4, 64, 160}, K from 1 to E, T in {0, 1, 7, 512},
// ids with -1 holes and repeats, all tokens to one expert, half the experts empty, capacity drops, padding,
// padded row strides; bad ids and shapes rejected.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "dsk/moe/cuda/dispatch.cuh"
#include "dsk/moe/dispatch.hpp"
#include "simt/harness.hpp"

using dsk::index_t;
using namespace dsk::test;
namespace moe = dsk::moe;

namespace {

enum class routing { random_with_holes, one_expert, even_experts_only };

struct moe_case {
  index_t T, K, E, H;
  routing route;
  moe::dispatch_options opt;
};

dsk::tensor<float, 2> random_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  dsk::tensor<float, 2> t(rows, cols);
  const auto v = random_floats(static_cast<std::size_t>(rows * cols), seed, -1.0f, 1.0f);
  std::copy(v.begin(), v.end(), t.data());
  return t;
}

dsk::tensor<moe::expert_id, 2> make_routing(const moe_case& c, std::uint64_t seed) {
  dsk::tensor<moe::expert_id, 2> idx(c.T, c.K);
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> any(-1, static_cast<int>(c.E) - 1);
  for (index_t t = 0; t < c.T; ++t)
    for (index_t k = 0; k < c.K; ++k) switch (c.route) {
        case routing::random_with_holes:
          idx(t, k) = any(g);  // -1 and repeated experts included
          break;
        case routing::one_expert:
          idx(t, k) = static_cast<moe::expert_id>(c.E - 1);
          break;
        case routing::even_experts_only:
          idx(t, k) = static_cast<moe::expert_id>((t + 2 * k) % c.E & ~index_t{1});
          break;
      }
  return idx;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
bool same_bits(const dsk::tensor<float, 2>& a, const dsk::tensor<float, 2>& b) {
  return a.extent(0) == b.extent(0) && a.extent(1) == b.extent(1) &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * 4) == 0);
}
// The [rows, H] columns of a [rows, H + pad] tensor, as an owning tensor.
dsk::tensor<float, 2> first_cols(const dsk::tensor<float, 2>& t, index_t H) {
  dsk::tensor<float, 2> out(t.extent(0), H);
  for (index_t r = 0; r < t.extent(0); ++r) std::copy_n(t.data() + r * t.extent(1), H, out.data() + r * H);
  return out;
}

void run_case(const moe_case& c, std::uint64_t seed) {
  using S = dsk::simd::scalar;
  using B = dsk::cuda;
  INFO("T=" << c.T << " K=" << c.K << " E=" << c.E << " H=" << c.H << " routing=" << static_cast<int>(c.route)
            << " block=" << c.opt.block << " capacity=" << c.opt.capacity
            << " factor=" << c.opt.capacity_factor << " backend " << backend_name<B>());
  const index_t T = c.T, K = c.K, H = c.H, pad = 3;
  const auto idx = make_routing(c, seed);
  const auto xp = random_matrix(T, H + pad, seed + 1);  // padded rows: stride H + 3
  const auto x = first_cols(xp, H);
  const auto w = random_matrix(T, K, seed + 2);

  // Host oracle.
  const moe::dispatch_handle g = moe::plan_dispatch(idx, c.E, c.opt);
  const index_t rows = g.rows();
  dsk::tensor<float, 2> xs_h(rows, H), y_h(T, H), ysh_h(T, H), dx_h(T, H), dys_h(rows, H), dw_h(T, K);
  moe::dispatch_tokens<S>(x, g, xs_h);
  const auto ys = random_matrix(rows, H, seed + 3);
  const auto shared = random_matrix(T, H, seed + 4);
  const auto dxs = random_matrix(rows, H, seed + 5);
  const auto dy = random_matrix(T, H, seed + 6);
  moe::combine_tokens<S>(ys, g, w, y_h);
  moe::combine_tokens<S>(ys, g, w, ysh_h, shared);
  moe::dispatch_tokens_backward<S>(dxs, g, dx_h);
  moe::combine_tokens_backward<S>(dy, ys, g, w, dys_h, dw_h);

  // Device.
  const auto idx_d = put<B>(idx);
  const auto h = moe::plan_dispatch<B>(idx_d, c.E, c.opt);
  const moe::dispatch_handle hh = h.to_host();
  CHECK(hh.capacity == g.capacity);
  CHECK(hh.dropped == g.dropped);
  CHECK(hh.offset == g.offset);
  CHECK(hh.count == g.count);
  CHECK(hh.routed == g.routed);
  CHECK(hh.row_token == g.row_token);
  CHECK(hh.row_slot == g.row_slot);
  CHECK(hh.pair_row == g.pair_row);
  if (h.rows() != rows) return;

  const auto xp_d = put<B>(xp);
  auto xs_d = put<B>(dsk::tensor<float, 2>(rows, H));
  moe::dispatch_tokens<B>(dsk::as_const(xp_d.view().slice(1, 0, H)), h, xs_d.view());
  CHECK(same_bits(xs_h, get(xs_d)));

  const auto ys_d = put<B>(ys), w_d = put<B>(w);
  auto y_d = put<B>(dsk::tensor<float, 2>(T, H));
  moe::combine_tokens<B>(ys_d.cview(), h, w_d.cview(), y_d.view());
  CHECK(same_bits(y_h, get(y_d)));
  auto ysh_d = put<B>(shared);  // shared experts' output, summed into in place
  moe::combine_tokens<B>(ys_d.cview(), h, w_d.cview(), ysh_d.view(), ysh_d.cview());
  CHECK(same_bits(ysh_h, get(ysh_d)));

  const auto dxs_d = put<B>(dxs), dy_d = put<B>(dy);
  auto dx_d = put<B>(dsk::tensor<float, 2>(T, H));
  moe::dispatch_tokens_backward<B>(dxs_d.cview(), h, dx_d.view());
  CHECK(same_bits(dx_h, get(dx_d)));
  auto dys_d = put<B>(dsk::tensor<float, 2>(rows, H));
  auto dw_d = put<B>(dsk::tensor<float, 2>(T, K));
  moe::combine_tokens_backward<B>(dy_d.cview(), ys_d.cview(), h, w_d.cview(), dys_d.view(), dw_d.view());
  CHECK(same_bits(dys_h, get(dys_d)));
  CHECK(same_bits(dw_h, get(dw_d)));
}

}  // namespace

TEST_CASE("moe dispatch and combine on CUDA equal the host's bit for bit", "[moe][cuda]") {
  const std::vector<moe_case> cases = {
      {0, 2, 4, 8, routing::random_with_holes, {}},
      {1, 1, 1, 1, routing::random_with_holes, {}},
      {7, 2, 4, 33, routing::random_with_holes, {}},
      {7, 4, 4, 33, routing::random_with_holes, {4, 0.0, -1}},  // K = E, padding
      {7, 3, 64, 300, routing::one_expert, {1, 0.0, 5}},        // capacity drops, one non-empty expert
      {512, 6, 64, 24, routing::random_with_holes, {}},
      {512, 6, 160, 17, routing::random_with_holes, {8, 1.25, -1}},  // DeepSeek-V2's E and K, factor
      {512, 2, 160, 5, routing::even_experts_only, {1, 0.0, 3}},     // half the experts empty, capacity
      {300, 1, 4, 257, routing::one_expert, {16, 0.0, -1}},          // every token to one expert
      {33, 0, 4, 8, routing::random_with_holes, {}},                 // K = 0
  };
  std::uint64_t seed = 1300;
  for (const auto& c : cases) run_case(c, seed += 10);
}

TEST_CASE("moe dispatch on CUDA rejects bad ids and shapes", "[moe][cuda]") {
  using B = dsk::cuda;
  dsk::tensor<moe::expert_id, 2> idx(3, 2);
  for (index_t t = 0; t < 3; ++t)
    for (index_t k = 0; k < 2; ++k) idx(t, k) = static_cast<moe::expert_id>(t);
  idx(2, 1) = 4;  // E = 4: out of range
  const auto idx_d = put<B>(idx);
  CHECK_THROWS_WITH(moe::plan_dispatch<B>(idx_d.cview(), 4),
                    Catch::Matchers::Contains("'topk_idx'") && Catch::Matchers::Contains("(2, 1)"));
  idx(2, 1) = -2;
  const auto idx_d2 = put<B>(idx);
  CHECK_THROWS_WITH(moe::plan_dispatch<B>(idx_d2.cview(), 4), Catch::Matchers::Contains("'topk_idx'"));
  idx(2, 1) = 3;
  const auto idx_d3 = put<B>(idx);
  const auto h = moe::plan_dispatch<B>(idx_d3.cview(), 4);
  const auto x = put<B>(dsk::tensor<float, 2>(3, 8));
  auto xs_bad = put<B>(dsk::tensor<float, 2>(h.rows() + 1, 8));
  CHECK_THROWS_WITH(moe::dispatch_tokens<B>(x.cview(), h, xs_bad.view()), Catch::Matchers::Contains("'xs'"));
  const auto w = put<B>(dsk::tensor<float, 2>(3, 1));  // K = 2 expected
  const auto ys = put<B>(dsk::tensor<float, 2>(h.rows(), 8));
  auto y = put<B>(dsk::tensor<float, 2>(3, 8));
  CHECK_THROWS_WITH(moe::combine_tokens<B>(ys.cview(), h, w.cview(), y.view()),
                    Catch::Matchers::Contains("'topk_w'"));
  CHECK_THROWS_WITH(moe::plan_dispatch<B>(idx_d3.cview(), 0), Catch::Matchers::Contains("'E'"));
}
