// A whole DeepSeekMoE layer on the host (arXiv 2401.06066, 2405.04434): gate -> route -> dispatch -> grouped
// routed + shared experts -> combine, from the family's public parts, each stage callable on its own.
// deepseek_moe<R, Routed, Shared, Exec = dsk::host>. Checked against ref::moe_layer (every expert on every
// token, masked) in tests/moe/layer.cpp; simd::scalar vs host bit for bit in tests/moe/exec.cpp.
#pragma once

#include <optional>

#include "dsk/core.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/moe/dispatch.hpp"
#include "dsk/moe/expert_ffn.hpp"
#include "dsk/moe/router.hpp"

namespace dsk::moe {

DSK_ISA_BEGIN

// Buffers of one forward pass, reused between calls (reallocated only when a shape changes). After forward():
// logits, scores [T, E], topk_idx, topk_w [T, K] and handle describe the routing (inputs of the balance
// losses).
struct moe_workspace {
  tensor<float, 2> logits, scores, topk_w, xs, h, ys, shared_h, shared_y;
  tensor<expert_id, 2> topk_idx;
  dispatch_handle handle;
};

DSK_ISA_END

// Runtime options of a deepseek_moe layer: the router's hyperparameters (config.json's n_group, topk_group,
// norm_topk_prob, routed_scaling_factor) and the dispatch's padding / capacity.
struct moe_options {
  router_options route{};
  dispatch_options dispatch{};
};

namespace detail {
DSK_ISA_BEGIN
template <class T>
void ensure_shape(tensor<T, 2>& t, index_t r, index_t c) {
  if (t.extent(0) != r || t.extent(1) != c) t = tensor<T, 2>({r, c}, uninitialized);
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// y[T, H] = shared(x) + sum_k w[t, k] * expert_{idx[t, k]}(x[t]). The router config R is compile time, the
// router hyperparameters and dispatch options are runtime (moe_options); the gate weight [E, H] (fp32), the
// selection bias [E] (or empty) and the weights behind the expert banks are non-owning references the caller
// keeps alive. Routed: E experts of width I; Shared: one expert of width n_shared * I (DeepSeek stores the
// shared experts as one MLP), or std::nullopt. Exec: dsk::host or a packet layer (simd::scalar: same bits).
template <router_config R, class Routed, class Shared = Routed, host_exec Exec = host>
class deepseek_moe {
  static_assert(expert_bank<Routed>,
                "dsk::moe::deepseek_moe<R, Routed, Shared>: Routed is not a moe::expert_bank (use "
                "moe::dense_experts<W> or moe::quantized_experts<F>)");
  static_assert(expert_bank<Shared>,
                "dsk::moe::deepseek_moe<R, Routed, Shared>: Shared is not a moe::expert_bank (use "
                "moe::dense_experts<W> or moe::quantized_experts<F>)");

 public:
  deepseek_moe(view<const float, 2> gate, Routed routed, std::optional<Shared> shared, index_t top_k,
               moe_options opt = {}, view<const float, 1> bias = {})
      : gate_(gate),
        bias_(bias),
        routed_(std::move(routed)),
        shared_(std::move(shared)),
        top_k_(top_k),
        opt_(opt) {
    contract c{"moe::deepseek_moe"};
    c.extent("gate", gate_, 0, routed_.experts(), "routed.experts() (E)")
        .extent("gate", gate_, 1, routed_.hidden(), "routed.hidden() (H)");
    c.in_range<index_t>("top_k", top_k, 1, routed_.experts());
    if (shared_) {
      c.require(shared_->experts() == 1, "shared", "one (merged) shared expert", shared_->experts())
          .require(shared_->hidden() == routed_.hidden(), "shared", "the routed experts' hidden size",
                   shared_->hidden());
    }
  }

  index_t experts() const { return routed_.experts(); }
  index_t hidden() const { return routed_.hidden(); }
  index_t top_k() const { return top_k_; }
  const Routed& routed() const { return routed_; }
  const std::optional<Shared>& shared() const { return shared_; }
  const moe_options& options() const { return opt_; }

  // Stage 1: logits, scores, topk_idx, topk_w. k_active < top_k routes to fewer experts (topk_schedule).
  void route(view<const float, 2> x, moe_workspace& ws, index_t k_active = -1) const {
    contract c{"moe::deepseek_moe::route"};
    c.extent("x", x, 1, hidden(), "hidden size");
    const index_t T = x.extent(0), E = experts();
    detail::ensure_shape(ws.logits, T, E);
    detail::ensure_shape(ws.scores, T, E);
    detail::ensure_shape(ws.topk_idx, T, top_k_);
    detail::ensure_shape(ws.topk_w, T, top_k_);
    gate_logits<Exec>(x, gate_, ws.logits);
    router_options ro = opt_.route;
    if (k_active >= 0) ro.k_active = k_active;
    moe::route<R, Exec>(ws.logits, bias_, ws.scores, ws.topk_idx, ws.topk_w, ro);
  }
  // Stage 2: plan the dispatch and gather the rows of every expert.
  void dispatch(view<const float, 2> x, moe_workspace& ws) const {
    ws.handle = plan_dispatch(ws.topk_idx, experts(), opt_.dispatch);
    detail::ensure_shape(ws.xs, ws.handle.rows(), hidden());
    dispatch_tokens<Exec>(x, ws.handle, ws.xs);
  }
  // Stage 3: routed experts over their segments, shared experts over all tokens.
  void experts(view<const float, 2> x, moe_workspace& ws) const {
    detail::ensure_shape(ws.h, ws.handle.rows(), routed_.inter());
    detail::ensure_shape(ws.ys, ws.handle.rows(), hidden());
    grouped_swiglu<Exec>(ws.xs, ws.handle, routed_, ws.h, ws.ys);
    if (shared_) {
      const index_t T = x.extent(0);
      const index_t off[2] = {0, T}, cnt[1] = {T};
      detail::ensure_shape(ws.shared_h, T, shared_->inter());
      detail::ensure_shape(ws.shared_y, T, hidden());
      grouped_swiglu<Exec>(x, std::span<const index_t>(off), std::span<const index_t>(cnt), *shared_,
                           ws.shared_h, ws.shared_y);
    }
  }
  // Stage 4: weighted sum into token order plus the shared output.
  void combine(moe_workspace& ws, view<float, 2> y) const {
    combine_tokens<Exec>(ws.ys, ws.handle, ws.topk_w, y,
                         shared_ ? view<const float, 2>(ws.shared_y) : view<const float, 2>{});
  }

  // x [T, H] -> y [T, H]. Returns the (token, slot) pairs dropped by the capacity limit (0 when dropless).
  // y is written last (by combine, from the workspace only), so y may be x (an in-place layer); y must not
  // overlap the workspace buffers (checked by combine_tokens).
  index_t forward(view<const float, 2> x, view<float, 2> y, moe_workspace& ws, index_t k_active = -1) const {
    contract c{"moe::deepseek_moe::forward"};
    c.extent("x", x, 1, hidden(), "hidden size")
        .extent("y", y, 0, x.extent(0), "x.extent(0) (tokens)")
        .extent("y", y, 1, hidden(), "hidden size");
    route(x, ws, k_active);
    dispatch(x, ws);
    experts(x, ws);
    combine(ws, y);
    return ws.handle.dropped;
  }

 private:
  view<const float, 2> gate_;
  view<const float, 1> bias_;
  Routed routed_;
  std::optional<Shared> shared_;
  index_t top_k_;
  moe_options opt_;
};

DSK_ISA_END

}  // namespace dsk::moe
