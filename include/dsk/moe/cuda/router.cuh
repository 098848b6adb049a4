// CUDA MoE router: moe::route<C, dsk::cuda>, the host route's contract (dsk/moe/router.hpp) on device memory,
// one warp per token. Bit-identical to the host (any 8-lane packet layer): the scores follow the packet
// layers' lane structure (lane l of 8 reduces the elements l, l + 8, ... in order, then the fixed reduction
// tree) with the shared lane exp (simd/exp_lane.hpp); the top-k is k rounds of a warp argmax under the host's
// strict order (higher selection score, then lower expert index; groups likewise), so ties choose the same
// experts; the weights are summed in slot order. Backend dsk::cuda. Checked in tests/simt/moe_router.cpp
// (emulation; natively in test_cuda) against route<C, simd::scalar>.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>

#include "dsk/core/backend.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/moe/router.hpp"
#include "dsk/simd/exp_lane.hpp"

namespace dsk::moe {
DSK_CUDA_MODE_BEGIN

namespace cuda_detail {
// Experts per lane of the warp: E <= 32 * max_router_slots; groups: n_group <= 64.
inline constexpr int max_router_slots = 64;
inline constexpr int max_router_groups = 64;

// The host's order of candidates: higher value, then lower index.
DSK_DEVICE_INLINE bool router_better(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

// The best (value, index) over the warp under router_better; every lane gets it. Lanes without a candidate
// pass index -1 (value ignored).
DSK_DEVICE void router_warp_best(float& v, int& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (oi >= 0 && (i < 0 || router_better(ov, oi, v, i))) v = ov, i = oi;
  }
}

// The packet layers' 8-lane reductions, lanes 0-7 holding the accumulators: (t0 + t2) + (t1 + t3) with t_i =
// v_i + v_{i+4} (reduce_add), and the same tree of `a > b ? a : b` (reduce_max). Lane 0 gets the result.
DSK_DEVICE float lanes8_sum(float v) {
  const unsigned lane = threadIdx.x & 31u;
  const float t = v + __shfl_sync(0xffffffffu, v, (lane + 4) & 31u);
  const float u = t + __shfl_sync(0xffffffffu, t, (lane + 2) & 31u);
  return u + __shfl_sync(0xffffffffu, u, (lane + 1) & 31u);
}
DSK_DEVICE float lanes8_max(float v) {
  const unsigned lane = threadIdx.x & 31u;
  const float v4 = __shfl_sync(0xffffffffu, v, (lane + 4) & 31u);
  const float t = v > v4 ? v : v4;
  const float t2 = __shfl_sync(0xffffffffu, t, (lane + 2) & 31u);
  const float u = t > t2 ? t : t2;
  const float u1 = __shfl_sync(0xffffffffu, u, (lane + 1) & 31u);
  return u > u1 ? u : u1;
}
}  // namespace cuda_detail

namespace kernels {
// Reports the first non-finite value of v[n] (one block).
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_check_finite(const float* v, index_t n, long long* bad) {
  for (index_t i = threadIdx.x; i < n; i += blockDim.x)
    if (!(v[i] - v[i] == 0.0f)) device::report_index(bad, i);
}

// One warp (the block) per token. Writes scores[t], topk_idx[t], topk_w[t]; bad (non-finite) logits are
// reported by index. Templated on the config's two enums, not on router_config itself: nvcc's kernel stubs do
// not handle class-type template arguments.
template <scoring Score, topk_method Method>
__global__ void moe_route(const float* logits, index_t ldl, const float* bias, float* scores, index_t lds,
                          expert_id* topk_idx, index_t ldi, float* topk_w, index_t ldw, index_t E, index_t K,
                          index_t k_active, int n_group, int topk_group, bool normalise, float scale_after,
                          float routed_scaling_factor, long long* bad) {
  using namespace cuda_detail;
  const index_t t = blockIdx.x;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  const float* x = logits + t * ldl;
  float* s = scores + t * lds;
  bool finite = true;  // x - x is 0 for finite x, NaN for NaN and +-inf
  for (index_t e = lane; e < E; e += 32) finite = finite && x[e] - x[e] == 0.0f;
  if (__any_sync(0xffffffffu, !finite)) {
    if (lane == 0) device::report_index(bad, t);
    return;
  }
  // Scores: softmax as nn's softmax_row (max, sum of exp, times 1 / sum) or sigmoid, lane l of 8 reducing
  // the elements l, l + 8, ...
  if constexpr (Score == scoring::softmax) {
    float m = -INFINITY;
    if (lane < 8)
      for (index_t e = lane; e < E; e += 8) m = x[e] > m ? x[e] : m;  // S::max(v, m) on finite values
    const float mx = __shfl_sync(0xffffffffu, lanes8_max(m), 0);
    float sum = 0.0f;
    if (lane < 8)
      for (index_t e = lane; e < E; e += 8) sum = sum + simd::exp_lane(x[e] - mx);
    const float inv = 1.0f / __shfl_sync(0xffffffffu, lanes8_sum(sum), 0);
    __syncwarp();  // every lane has read its logits before scores (maybe the same row) are written
    for (index_t e = lane; e < E; e += 32) s[e] = simd::exp_lane(x[e] - mx) * inv;
  } else {
    for (index_t e = lane; e < E; e += 32) s[e] = 1.0f / (1.0f + simd::exp_lane(0.0f - x[e]));
  }
  __syncwarp();
  // Selection scores of this lane's experts e = lane + 32 j, and which of them are still candidates.
  float sel[max_router_slots];
  unsigned long long open = 0;
  const int mine = static_cast<int>((E - lane + 31) / 32);
  for (int j = 0; j < mine; ++j) {
    const index_t e = lane + 32 * j;
    sel[j] = bias ? s[e] + bias[e] : s[e];
    open |= 1ull << j;
  }
  constexpr bool grouped = Method != topk_method::greedy;
  if constexpr (grouped) {
    // Group scores (group g on lane g % 32, its experts scanned in order as the host does), then the
    // topk_group best groups by (score, lower index) in rounds of a warp argmax. n_group <= 64, so the kept
    // groups fit one warp-uniform mask.
    const index_t gsize = E / n_group;
    float gscore[2] = {0.0f, 0.0f};
    const int my_groups = (n_group - lane + 31) / 32;
    for (int j = 0; j < my_groups; ++j) {
      const index_t g = lane + 32 * j;
      float a = -INFINITY, b = -INFINITY;
      for (index_t e = g * gsize; e < (g + 1) * gsize; ++e) {
        const float v = bias ? s[e] + bias[e] : s[e];
        if constexpr (Method == topk_method::noaux_tc) {
          if (v > a)
            b = a, a = v;
          else if (v > b)
            b = v;
        } else {
          a = v > a ? v : a;
        }
      }
      gscore[j] = Method == topk_method::noaux_tc ? a + b : a;
    }
    unsigned long long kept = 0;  // the same in every lane
    for (int round = 0; round < topk_group; ++round) {
      float v = 0.0f;
      int i = -1;
      for (int j = 0; j < my_groups; ++j) {
        const int g = lane + 32 * j;
        if (!((kept >> g) & 1ull) && (i < 0 || router_better(gscore[j], g, v, i))) v = gscore[j], i = g;
      }
      router_warp_best(v, i);
      kept |= 1ull << i;
    }
    for (int j = 0; j < mine; ++j)
      if (!((kept >> ((lane + 32 * j) / gsize)) & 1ull)) open &= ~(1ull << j);
  }
  // Top-k_active in k rounds of a warp argmax; lane 0 writes the slots in order.
  float wsum = 0.0f;
  for (index_t k = 0; k < k_active; ++k) {
    float v = 0.0f;
    int i = -1;
    for (int j = 0; j < mine; ++j)
      if ((open >> j) & 1ull) {
        const int e = lane + 32 * j;
        if (i < 0 || router_better(sel[j], e, v, i)) v = sel[j], i = e;
      }
    router_warp_best(v, i);
    if (i % 32 == lane) open &= ~(1ull << (i / 32));
    if (lane == 0) {
      topk_idx[t * ldi + k] = static_cast<expert_id>(i);
      wsum += s[i];
    }
  }
  if (lane == 0) {
    const float denom = wsum + 1e-20f;
    for (index_t k = 0; k < K; ++k) {
      if (k >= k_active) {
        topk_idx[t * ldi + k] = -1;
        topk_w[t * ldw + k] = 0.0f;
        continue;
      }
      const float sk = s[topk_idx[t * ldi + k]];
      topk_w[t * ldw + k] = normalise ? sk / denom * scale_after : sk * routed_scaling_factor;
    }
  }
}
}  // namespace kernels

// route<C, dsk::cuda>: logits [T, E], bias [E] or empty, scores [T, E] (may be logits), topk_idx / topk_w
// [T, K], all in device memory; the host route's contract and results. Logits and bias are checked for
// finite values on the device (synchronises s to read the report). Limits of this path: E <= 2048,
// n_group <= 64.
template <router_config C, std::same_as<dsk::cuda> B>
void route(view<const float, 2> logits, view<const float, 1> bias, view<float, 2> scores,
           view<expert_id, 2> topk_idx, view<float, 2> topk_w, const router_options& opt = {},
           const device::stream& s = device::stream::default_stream()) {
  contract c{"moe::route<cuda>"};
  const index_t T = logits.extent(0), E = logits.extent(1), K = topk_idx.extent(1);
  const index_t k_active = detail::check_route<C>(c, logits, bias, scores, topk_idx, topk_w, opt);
  c.in_range("logits.extent(1) (experts)", E, index_t{1}, index_t{32 * cuda_detail::max_router_slots})
      .in_range("tokens", T, index_t{0}, index_t{device::max_grid_x()})
      .unit_inner_stride("topk_idx", topk_idx)
      .unit_inner_stride("topk_w", topk_w);
  if (bias.extent(0) != 0) c.require(bias.stride(0) == 1 || E == 1, "bias", "a unit stride", bias.stride(0));
  constexpr bool grouped = C.method != topk_method::greedy;
  if constexpr (grouped) c.in_range("opt.n_group", opt.n_group, 1, cuda_detail::max_router_groups);
  if (bias.extent(0) != 0) {
    // Bias: one finiteness pass (it steers every token's choice).
    const device::index_report bad(s);
    device::launch(kernels::moe_check_finite<>, {dim3(1), dim3(256)}, s)(bias.data(), E, bad.slot());
    if (const auto e = bad.first(s))
      fail("moe::route<cuda>: argument 'bias': expected finite values, got a non-finite value at ", *e);
  }
  if (T == 0) return;
  const device::index_report bad(s);
  device::launch(kernels::moe_route<C.score, C.method>, {dim3(static_cast<unsigned>(T)), dim3(32)}, s)(
      logits.data(), logits.stride(0), bias.extent(0) ? bias.data() : nullptr, scores.data(),
      scores.stride(0), topk_idx.data(), topk_idx.stride(0), topk_w.data(), topk_w.stride(0), E, K, k_active,
      grouped ? opt.n_group : 1, grouped ? opt.topk_group : 1, opt.norm_topk_prob && k_active > 1,
      opt.scale_normalised ? opt.routed_scaling_factor : 1.0f, opt.routed_scaling_factor, bad.slot());
  if (const auto t = bad.first(s))
    fail("moe::route<cuda>: argument 'logits': expected finite values, got a non-finite value in row ", *t);
}

// The same without a selection bias.
template <router_config C, std::same_as<dsk::cuda> B>
void route(view<const float, 2> logits, view<float, 2> scores, view<expert_id, 2> topk_idx,
           view<float, 2> topk_w, const router_options& opt = {},
           const device::stream& s = device::stream::default_stream()) {
  route<C, B>(logits, view<const float, 1>{}, scores, topk_idx, topk_w, opt, s);
}

DSK_CUDA_MODE_END
}  // namespace dsk::moe
