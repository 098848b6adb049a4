// MoE router (DeepSeekMoE gate): gate logits, softmax/sigmoid scores, greedy / group-limited top-k with an
// optional selection-only bias, weight normalisation/scaling; orthogonal gate init, progressive top-k.
// Host: route<router_config, Exec = dsk::host>(..., router_options = {}) (simd::scalar gives the same bits);
// checked against dsk/moe/ref.hpp in tests/moe/router.cpp and exec.cpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/moe/host/expert_ffn_avx2.hpp"
#include "dsk/moe/host/router_avx2.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::moe {

// Expert index type of topk_idx and of the dispatch handle; -1 means "no expert".
using expert_id = std::int32_t;

enum class scoring : std::uint8_t { softmax, sigmoid };
// greedy: top-k of all experts. group_limited_greedy (DeepSeek-V2): keep the topk_group groups with the best
// per-group maximum, then top-k among their experts. noaux_tc (DeepSeek-V3, "no auxiliary loss, top-k
// choice"): the same with the group score = the sum of the group's two best selection scores (scores + bias).
enum class topk_method : std::uint8_t { greedy, group_limited_greedy, noaux_tc };

// Compile-time router configuration: only the choices that change the generated code (the scoring function
// and the top-k method). The number of experts E and the number of slots K come from the shapes of the
// arguments; the hyperparameters read from config.json are router_options. Structural, comparable and
// printable, so dsk::dispatch can map a runtime choice onto a compiled list of router_configs.
struct router_config {
  scoring score = scoring::softmax;
  topk_method method = topk_method::greedy;
  friend constexpr bool operator==(const router_config&, const router_config&) = default;
};

// DeepSeek-V3's router (also R1, Moonlight, Kimi K2): sigmoid scores, noaux_tc selection.
inline constexpr router_config deepseek_v3_router{.score = scoring::sigmoid, .method = topk_method::noaux_tc};

// Runtime router hyperparameters (DeepSeek-V2 config.json names). They size loops and scale weights, so they
// are plain values: n_group / topk_group only bound the group loops, which run over runtime-sized buffers.
struct router_options {
  int n_group = 1;     // group_limited_greedy: experts form n_group contiguous groups of E / n_group
  int topk_group = 1;  // group_limited_greedy: groups kept per token
  // DeepSeek-V2 modeling code: if K > 1 and norm_topk_prob, w /= (sum w + 1e-20); otherwise w *=
  // routed_scaling_factor. scale_normalised (DeepSeek-V3's code): the normalised weights are multiplied by
  // routed_scaling_factor too.
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
  bool scale_normalised = false;
  // In [1, K]: route to the first k_active slots only (progressive activation, topk_schedule); -1 = all K.
  index_t k_active = -1;
};

namespace detail {
DSK_ISA_BEGIN
inline void require_finite_rows(const contract& c, std::string_view arg, view<const float, 2> v) {
  for (index_t t = 0; t < v.extent(0); ++t)
    for (index_t e = 0; e < v.extent(1); ++e)
      if (!std::isfinite(v(t, e)))
        c.require(false, arg, "finite values",
                  dsk::detail::concat("a non-finite value at (", t, ", ", e, ")"));
}

// y[M, N] = x[M, K] w[N, K]^T by dsk::gemm on the packet layer S (the same kernel for every S: scalar and
// native give the same bits). Shapes are checked by the caller.
template <class S, class W>
void gemm_product(view<const float, 2> x, view<const W, 2> w, view<float, 2> y) {
  gemm::matmul<gemm::matmul_config{}, S>(x, w, y);
}
// h[M, N] = silu(x g^T) * (x u^T), likewise.
template <class S, class W>
void gemm_swiglu(view<const float, 2> x, view<const W, 2> g, view<const W, 2> u, view<float, 2> h) {
  gemm::swiglu<gemm::matmul_config{}, S>(x, g, u, h);
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// "softmax/greedy" style names, for dsk::dispatch's unsupported-choice message (found by ADL).
inline std::string to_string(const router_config& c) {
  return std::string(c.score == scoring::softmax ? "softmax" : "sigmoid") + "/" +
         (c.method == topk_method::greedy                 ? "greedy"
          : c.method == topk_method::group_limited_greedy ? "group_limited_greedy"
                                                          : "noaux_tc");
}

// logits[T, E] = x[T, H] * w[E, H]^T in fp32 (the gate is a bias-free linear layer kept in fp32); dsk::gemm
// above 4 tokens. Exec: dsk::host or a packet layer (dsk::simd::scalar gives the same bits as dsk::host).
// logits must not overlap x or w (checked).
template <host_exec Exec = host>
void gate_logits(view<const float, 2> x, view<const float, 2> w, view<float, 2> logits) {
  using S = exec_packet_t<Exec>;
  contract c{"moe::gate_logits"};
  c.extent("w", w, 1, x.extent(1), "x.extent(1) (hidden)")
      .extent("logits", logits, 0, x.extent(0), "x.extent(0) (tokens)")
      .extent("logits", logits, 1, w.extent(0), "w.extent(0) (experts)")
      .unit_inner_stride("x", x)
      .unit_inner_stride("w", w)
      .unit_inner_stride("logits", logits)
      .disjoint("logits", logits, "x", x)
      .disjoint("logits", logits, "w", w);
  const index_t T = x.extent(0), E = w.extent(0), H = x.extent(1);
  if (T <= 4) {
    // Decode: the product is ~E * H MACs per token, less than a fork/join costs; stay on this thread.
    for (index_t t = 0; t < T; ++t)
      for (index_t e = 0; e < E; ++e) logits(t, e) = detail::dot_row<S>(row_ptr(x, t), row_ptr(w, e), H);
    return;
  }
  detail::gemm_product<S>(x, w, logits);
}

DSK_ISA_END
namespace detail {
DSK_ISA_BEGIN
// route's shape, aliasing and option checks (shared by the host and the CUDA route); returns k_active.
template <router_config C>
index_t check_route(const contract& c, view<const float, 2> logits, view<const float, 1> bias,
                    view<float, 2> scores, view<expert_id, 2> topk_idx, view<float, 2> topk_w,
                    const router_options& opt) {
  const index_t T = logits.extent(0), E = logits.extent(1), K = topk_idx.extent(1);
  c.require(opt.n_group >= 1, "opt.n_group", ">= 1", opt.n_group)
      .require(opt.topk_group >= 1 && opt.topk_group <= opt.n_group, "opt.topk_group",
               dsk::detail::concat("topk_group in [1, n_group = ", opt.n_group, "]"), opt.topk_group)
      .require(std::isfinite(opt.routed_scaling_factor) && opt.routed_scaling_factor > 0.0f,
               "opt.routed_scaling_factor", "a finite value > 0", opt.routed_scaling_factor);
  c.require(E >= 1, "logits", "at least one expert (extent(1) >= 1)", E)
      .extent("scores", scores, 0, T, "tokens")
      .extent("scores", scores, 1, E, "experts")
      .extent("topk_idx", topk_idx, 0, T, "tokens")
      .extent("topk_w", topk_w, 0, T, "tokens")
      .extent("topk_w", topk_w, 1, K, "topk_idx.extent(1) (K)")
      .require(K >= 1 && K <= E, "topk_idx", "K = extent(1) in [1, E]", K)
      .unit_inner_stride("logits", logits)
      .unit_inner_stride("scores", scores);
  if (bias.extent(0) != 0) c.extent("bias", bias, 0, E, "experts (or empty for no bias)");
  // Row t reads logits row t, then writes scores row t (in place is exact: softmax / sigmoid read the row
  // before writing it) and the top-k of that row; bias is read for every row.
  c.disjoint_or_same("scores", scores, "logits", logits)
      .disjoint("scores", scores, "bias", bias)
      .disjoint("topk_idx", topk_idx, "logits", logits)
      .disjoint("topk_idx", topk_idx, "bias", bias)
      .disjoint("topk_idx", topk_idx, "scores", scores)
      .disjoint("topk_w", topk_w, "logits", logits)
      .disjoint("topk_w", topk_w, "bias", bias)
      .disjoint("topk_w", topk_w, "scores", scores)
      .disjoint("topk_w", topk_w, "topk_idx", topk_idx);
  const index_t k_active = opt.k_active < 0 ? K : opt.k_active;
  c.in_range<index_t>("k_active", k_active, 1, K);
  constexpr bool grouped = C.method != topk_method::greedy;
  const int n_group = grouped ? opt.n_group : 1;
  const int topk_group = grouped ? opt.topk_group : 1;
  index_t group_size = E;
  if constexpr (grouped) {
    c.require(E % n_group == 0, "logits", dsk::detail::concat("E divisible by n_group = ", n_group), E);
    group_size = E / n_group;
    c.require(k_active <= topk_group * group_size, "topk_idx",
              dsk::detail::concat("k <= topk_group * E / n_group = ", topk_group * group_size), k_active);
    if constexpr (C.method == topk_method::noaux_tc)
      c.require(
          group_size >= 2, "logits",
          dsk::detail::concat(
              "noaux_tc scores a group by its two best experts: E / n_group >= 2 (n_group = ", n_group, ")"),
          E);
  }
  return k_active;
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// Routes T tokens to K of E experts (DeepSeek-V2 MoEGate, arXiv 2405.04434 and modeling_deepseek.py):
//   scores[T, E]   = softmax(logits) or sigmoid(logits) (fp32)
//   selection      = top-K of scores + bias (bias [E] or empty: auxiliary-loss-free balancing, DeepSeek-V3;
//                    it steers the choice only); group_limited_greedy and noaux_tc first keep the
//                    opt.topk_group groups (of opt.n_group) with the highest group score (the group's max
//                    selection score, resp. the sum of its two highest: DeepSeek-V3) and drop the others.
//   topk_idx[T, K] = chosen experts, best first; ties go to the lower expert (and group) index (torch.topk
//                    leaves the order of ties unspecified; the published models' float scores rarely tie).
//   topk_w[T, K]   = unbiased scores of the chosen experts, normalised (opt.norm_topk_prob, k > 1) or times
//                    opt.routed_scaling_factor (both with opt.scale_normalised): the weights combine uses.
// opt.k_active in [1, K] (default K) routes to the first k_active slots only (progressive activation); the
// other slots are written -1 / 0. Logits and bias must be finite. scores may be exactly logits (in place);
// no other output may overlap an input or another output (checked).
template <router_config C, host_exec Exec = host>
void route(view<const float, 2> logits, view<const float, 1> bias, view<float, 2> scores,
           view<expert_id, 2> topk_idx, view<float, 2> topk_w, const router_options& opt = {}) {
  using S = exec_packet_t<Exec>;
  contract c{"moe::route"};
  const index_t T = logits.extent(0), E = logits.extent(1), K = topk_idx.extent(1);
  const index_t k_active = detail::check_route<C>(c, logits, bias, scores, topk_idx, topk_w, opt);
  constexpr bool grouped = C.method != topk_method::greedy;
  const int n_group = grouped ? opt.n_group : 1;
  const int topk_group = grouped ? opt.topk_group : 1;
  const index_t group_size = E / n_group;
  detail::require_finite_rows(c, "logits", logits);
  for (index_t e = 0; e < bias.extent(0); ++e)
    if (!std::isfinite(bias(e)))
      c.require(false, "bias", "finite values", dsk::detail::concat("a non-finite value at ", e));

  const bool normalise = opt.norm_topk_prob && k_active > 1;
  const float scale_after = opt.scale_normalised ? opt.routed_scaling_factor : 1.0f;
  // About a microsecond per token and 64 experts: fork only when each thread gets ~64K scores to route.
  parallel_for_chunks(0, T, std::max<index_t>(1, (index_t{1} << 16) / E), [&](index_t lo, index_t hi) {
    std::vector<float> sel(static_cast<std::size_t>(E));
    std::vector<expert_id> order(static_cast<std::size_t>(E));
    std::vector<float> gmax(static_cast<std::size_t>(n_group));
    std::vector<int> gorder(static_cast<std::size_t>(n_group));
    for (index_t t = lo; t < hi; ++t) {
      float* s = row_ptr(scores, t);
      if constexpr (C.score == scoring::softmax)
        detail::softmax_row<S>(row_ptr(logits, t), s, E);
      else
        detail::sigmoid_row<S>(row_ptr(logits, t), s, E);
      for (index_t e = 0; e < E; ++e) sel[e] = bias.extent(0) ? s[e] + bias(e) : s[e];
      // Better first, then lower index: a strict total order, so the choice never depends on the sort.
      auto better = [&](expert_id a, expert_id b) { return sel[a] > sel[b] || (sel[a] == sel[b] && a < b); };
      index_t candidates = E;
      std::iota(order.begin(), order.end(), expert_id{0});
      if constexpr (grouped) {
        for (int g = 0; g < n_group; ++g) {
          const auto first = sel.begin() + g * group_size, last = first + group_size;
          if constexpr (C.method == topk_method::noaux_tc) {  // the two highest, in order: a fixed sum
            float a = -INFINITY, b = -INFINITY;
            for (auto it = first; it != last; ++it)
              if (*it > a)
                b = a, a = *it;
              else if (*it > b)
                b = *it;
            gmax[g] = a + b;
          } else {
            gmax[g] = *std::max_element(first, last);
          }
        }
        std::iota(gorder.begin(), gorder.end(), 0);
        std::partial_sort(gorder.begin(), gorder.begin() + topk_group, gorder.end(),
                          [&](int a, int b) { return gmax[a] > gmax[b] || (gmax[a] == gmax[b] && a < b); });
        candidates = 0;
        for (int gi = 0; gi < topk_group; ++gi)
          for (index_t e = 0; e < group_size; ++e)
            order[candidates++] = static_cast<expert_id>(gorder[gi] * group_size + e);
      }
      std::partial_sort(order.begin(), order.begin() + k_active, order.begin() + candidates, better);
      float sum = 0.0f;
      for (index_t j = 0; j < k_active; ++j) sum += s[order[j]];
      // Divide, then scale, in torch's order (w / (sum + 1e-20) * factor).
      const float denom = sum + 1e-20f;
      for (index_t j = 0; j < K; ++j) {
        topk_idx(t, j) = j < k_active ? order[j] : expert_id{-1};
        topk_w(t, j) = j >= k_active ? 0.0f
                       : normalise   ? s[order[j]] / denom * scale_after
                                     : s[order[j]] * opt.routed_scaling_factor;
      }
    }
  });
}

// The same without a selection bias.
template <router_config C, host_exec Exec = host>
void route(view<const float, 2> logits, view<float, 2> scores, view<expert_id, 2> topk_idx,
           view<float, 2> topk_w, const router_options& opt = {}) {
  route<C, Exec>(logits, view<const float, 1>{}, scores, topk_idx, topk_w, opt);
}

// Orthogonal initialisation of a gate weight w[E, H] (Saxe et al., arXiv 1312.6120): the rows are orthonormal
// (times `gain`) when E <= H, the columns when E > H, so experts start from maximally different directions.
// Gaussian draws from a fixed generator (splitmix64 + Box-Muller, the same on every platform), then modified
// Gram-Schmidt in double.
inline void orthogonal_init(view<float, 2> w, std::uint64_t seed, float gain = 1.0f) {
  contract c{"moe::orthogonal_init"};
  c.require(std::isfinite(gain), "gain", "a finite value", gain);
  const index_t R = w.extent(0), Cn = w.extent(1);
  if (R == 0 || Cn == 0) return;
  const bool rows = R <= Cn;  // orthonormalise the shorter side's vectors
  const index_t nv = rows ? R : Cn, len = rows ? Cn : R;
  std::vector<double> a(static_cast<std::size_t>(nv * len));
  std::uint64_t state = seed;
  auto next = [&] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  };
  for (std::size_t i = 0; i < a.size(); i += 2) {
    const double u1 = 1.0 - next(), u2 = next();  // u1 in (0, 1]
    const double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
    a[i] = r * std::cos(th);
    if (i + 1 < a.size()) a[i + 1] = r * std::sin(th);
  }
  for (index_t v = 0; v < nv; ++v) {
    double* p = a.data() + v * len;
    for (int pass = 0; pass < 2; ++pass)  // twice is enough (Giraud et al.): orthogonal to working precision
      for (index_t u = 0; u < v; ++u) {
        const double* q = a.data() + u * len;
        double d = 0;
        for (index_t i = 0; i < len; ++i) d += p[i] * q[i];
        for (index_t i = 0; i < len; ++i) p[i] -= d * q[i];
      }
    double n2 = 0;
    for (index_t i = 0; i < len; ++i) n2 += p[i] * p[i];
    const double inv = 1.0 / std::sqrt(n2);
    for (index_t i = 0; i < len; ++i) p[i] *= inv;
  }
  for (index_t i = 0; i < R; ++i)
    for (index_t j = 0; j < Cn; ++j)
      w(i, j) = static_cast<float>(gain * (rows ? a[i * len + j] : a[j * len + i]));
}

// Progressive expert activation: training starts with k_start experts per token and raises k linearly to
// k_final over warmup_steps steps: k(step) = k_start + floor((k_final - k_start) * step / warmup_steps), then
// k_final. Pass k(step) as route()'s k_active with K = k_final slots.
struct topk_schedule {
  int k_start = 1;
  int k_final = 1;
  std::int64_t warmup_steps = 0;

  int k_at(std::int64_t step) const {
    contract c{"moe::topk_schedule::k_at"};
    c.require(k_start >= 1 && k_start <= k_final, "k_start", "1 <= k_start <= k_final", k_start)
        .require(warmup_steps >= 0, "warmup_steps", ">= 0", warmup_steps)
        .require(step >= 0, "step", ">= 0", step);
    if (step >= warmup_steps) return k_final;
    return k_start + static_cast<int>(static_cast<std::int64_t>(k_final - k_start) * step / warmup_steps);
  }
};

DSK_ISA_END

}  // namespace dsk::moe
