// Grouped expert FFN: SwiGLU down(silu(gate x) * up x) per expert over its segment of dispatched rows, f32/
// bf16/f16 banks (dsk::gemm; [E, I, H] or per-expert matrices) or int8/int4 banks (dsk::quant), balanced over
// threads. Host: grouped_swiglu<Exec = dsk::host> (simd::scalar gives the same bits). Checked against
// ref::swiglu in tests/moe/expert_ffn.cpp and exec.cpp.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "dsk/core.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/moe/dispatch.hpp"
#include "dsk/moe/host/expert_ffn_avx2.hpp"
#include "dsk/moe/router.hpp"
#include "dsk/quant/matmul.hpp"
#include "dsk/quant/quantize.hpp"

namespace dsk::moe {

// Weight storage types of dense_experts: float, bf16, f16 (int8/int4 weights go through
// quantized_expert_store / quantized_experts).
template <class W>
concept expert_weight = float_storage<W>;

DSK_ISA_BEGIN

// Experts with float-storage weights, non-owning: per expert gate, up [I, H] and down [H, I] (unit inner
// stride, any row stride). Built from one [E, I, H] / [E, H, I] tensor per projection, or from E separate
// per-expert matrices (the checkpoint's experts.{e}.{gate,up,down}_proj tensors, mapped or loaded one at a
// time: no [E, I, H] copy). Both give the same products, bit for bit.
template <class W>
class dense_experts {
  static_assert(expert_weight<W>,
                "dsk::moe::dense_experts<W>: W must be float, bf16 or f16; int8/int4 experts are "
                "moe::quantized_experts (built by moe::quantized_expert_store)");

 public:
  using weight_type = W;
  using matrix = view<const W, 2>;

  // gate, up [E, I, H], down [E, H, I].
  dense_experts(view<const W, 3> gate, view<const W, 3> up, view<const W, 3> down)
      : inter_(gate.extent(1)), hidden_(gate.extent(2)) {
    contract c{"moe::dense_experts"};
    const index_t E = gate.extent(0), I = gate.extent(1), H = gate.extent(2);
    c.extent("up", up, 0, E, "gate.extent(0) (experts)")
        .extent("up", up, 1, I, "gate.extent(1) (intermediate)")
        .extent("up", up, 2, H, "gate.extent(2) (hidden)")
        .extent("down", down, 0, E, "gate.extent(0) (experts)")
        .extent("down", down, 1, H, "gate.extent(2) (hidden)")
        .extent("down", down, 2, I, "gate.extent(1) (intermediate)")
        .unit_inner_stride("gate", gate)
        .unit_inner_stride("up", up)
        .unit_inner_stride("down", down);
    for (index_t e = 0; e < E; ++e) {
      gate_.push_back(gate[e]);
      up_.push_back(up[e]);
      down_.push_back(down[e]);
    }
  }
  // Per-expert matrices: gate[e], up[e] [I, H], down[e] [H, I], the same I and H for every expert, E >= 1.
  dense_experts(std::vector<matrix> gate, std::vector<matrix> up, std::vector<matrix> down)
      : gate_(std::move(gate)), up_(std::move(up)), down_(std::move(down)) {
    contract c{"moe::dense_experts"};
    const index_t E = static_cast<index_t>(gate_.size());
    c.require(E >= 1, "gate", "at least one expert", E)
        .require(static_cast<index_t>(up_.size()) == E, "up",
                 dsk::detail::concat(E, " matrices (one per expert)"), up_.size())
        .require(static_cast<index_t>(down_.size()) == E, "down",
                 dsk::detail::concat(E, " matrices (one per expert)"), down_.size());
    inter_ = gate_[0].extent(0);
    hidden_ = gate_[0].extent(1);
    for (index_t e = 0; e < E; ++e) {
      // The messages are built only for an expert that fails (a bank is made per MoE call: E can be 244).
      if (gate_[e].extent(0) == inter_ && gate_[e].extent(1) == hidden_ && up_[e].extent(0) == inter_ &&
          up_[e].extent(1) == hidden_ && down_[e].extent(0) == hidden_ && down_[e].extent(1) == inter_ &&
          gate_[e].stride(1) == 1 && up_[e].stride(1) == 1 && down_[e].stride(1) == 1)
        continue;
      const auto at = [&](const char* what) { return dsk::detail::concat(what, "[", e, "]"); };
      c.require(gate_[e].extent(0) == inter_ && gate_[e].extent(1) == hidden_, at("gate"),
                dsk::detail::concat("[", inter_, ", ", hidden_, "] (the shape of gate[0])"),
                dsk::detail::concat("[", gate_[e].extent(0), ", ", gate_[e].extent(1), "]"))
          .require(up_[e].extent(0) == inter_ && up_[e].extent(1) == hidden_, at("up"),
                   dsk::detail::concat("[", inter_, ", ", hidden_, "] (the shape of gate[0])"),
                   dsk::detail::concat("[", up_[e].extent(0), ", ", up_[e].extent(1), "]"))
          .require(down_[e].extent(0) == hidden_ && down_[e].extent(1) == inter_, at("down"),
                   dsk::detail::concat("[", hidden_, ", ", inter_, "] (gate[0] transposed)"),
                   dsk::detail::concat("[", down_[e].extent(0), ", ", down_[e].extent(1), "]"))
          .unit_inner_stride(at("gate"), gate_[e])
          .unit_inner_stride(at("up"), up_[e])
          .unit_inner_stride(at("down"), down_[e]);
    }
  }
  index_t experts() const { return static_cast<index_t>(gate_.size()); }
  index_t hidden() const { return hidden_; }
  index_t inter() const { return inter_; }
  // Weight bytes of one expert (what a decode step streams per activated expert).
  index_t expert_bytes() const { return 3 * inter() * hidden() * index_t(sizeof(W)); }
  // f(name, byte_range) for every weight matrix: grouped_swiglu checks its outputs against them.
  template <class F>
  void for_each_weight(F&& f) const {
    for (std::size_t e = 0; e < gate_.size(); ++e) {
      f("gate", bytes_of(gate_[e]));
      f("up", bytes_of(up_[e]));
      f("down", bytes_of(down_[e]));
    }
  }

  // h[m, 0 : n1 - n0] = silu(x g[n0:n1]^T) * (x u[n0:n1]^T) for expert e, on the packet layer S.
  // One row (decode) reads the weights in address order (detail::gemv_row_swiglu); more rows use dsk::gemm.
  template <class S>
  void gate_up(index_t e, view<const float, 2> x, index_t n0, index_t n1, view<float, 2> h) const {
    const auto g = gate_[e].slice(0, n0, n1), u = up_[e].slice(0, n0, n1);
    if (x.extent(0) == 1)
      detail::gemv_row_swiglu<S>(x.data(), g.data(), g.stride(0), u.data(), u.stride(0), n1 - n0, hidden(),
                                 h.data());
    else
      detail::gemm_swiglu<S>(x, matrix(g), matrix(u), h);
  }
  // y = h down[n0:n1]^T for expert e.
  template <class S>
  void down(index_t e, view<const float, 2> h, index_t n0, index_t n1, view<float, 2> y) const {
    const auto d = down_[e].slice(0, n0, n1);
    if (h.extent(0) == 1)
      detail::gemv_row<S>(h.data(), d.data(), d.stride(0), n1 - n0, inter(), y.data());
    else
      detail::gemm_product<S>(h, matrix(d), y);
  }

 private:
  std::vector<matrix> gate_, up_, down_;
  index_t inter_ = 0, hidden_ = 0;
};

// Experts with quantized weights (dsk::quant format F, e.g. quant::int8_per_channel,
// quant::int4_per_channel): per expert gate, up [I, H] and down [H, I]. Non-owning views;
// quantized_expert_store owns the storage.
template <quant::format F>
class quantized_experts {
 public:
  using view_type = quant::qweight_view<F>;
  quantized_experts(std::vector<view_type> gate, std::vector<view_type> up, std::vector<view_type> down,
                    bool int8_activations = false)
      : gate_(std::move(gate)), up_(std::move(up)), down_(std::move(down)), a8_(int8_activations) {
    contract c{"moe::quantized_experts"};
    const index_t E = static_cast<index_t>(gate_.size());
    c.require(E >= 1, "gate", "at least one expert", E)
        .require(static_cast<index_t>(up_.size()) == E, "up", "one weight per expert", up_.size())
        .require(static_cast<index_t>(down_.size()) == E, "down", "one weight per expert", down_.size());
    const index_t I = gate_[0].rows, H = gate_[0].cols;
    for (index_t e = 0; e < E; ++e) {
      if (gate_[e].rows == I && gate_[e].cols == H && up_[e].rows == I && up_[e].cols == H && down_[e].rows == H &&
          down_[e].cols == I)
        continue;  // the messages are built only for an expert that fails
      c.require(gate_[e].rows == I && gate_[e].cols == H && up_[e].rows == I && up_[e].cols == H, "gate/up",
                dsk::detail::concat("[", I, ", ", H, "] for every expert"),
                dsk::detail::concat("expert ", e));
      c.require(down_[e].rows == H && down_[e].cols == I, "down",
                dsk::detail::concat("[", H, ", ", I, "] for every expert"),
                dsk::detail::concat("expert ", e));
    }
  }
  index_t experts() const { return static_cast<index_t>(gate_.size()); }
  index_t hidden() const { return gate_[0].cols; }
  index_t inter() const { return gate_[0].rows; }
  index_t expert_bytes() const {
    return 2 * inter() *
               (quant::code_row_bytes(F, hidden()) + index_t(sizeof(quant::scale_t<F>)) * gate_[0].groups()) +
           hidden() *
               (quant::code_row_bytes(F, inter()) + index_t(sizeof(quant::scale_t<F>)) * down_[0].groups());
  }

  template <class S>
  void gate_up(index_t e, view<const float, 2> x, index_t n0, index_t n1, view<float, 2> h) const {
    const index_t M = x.extent(0), N = n1 - n0;
    thread_local std::vector<float> tmp;
    tmp.resize(static_cast<std::size_t>(2 * M * N));
    dense_view<float, 2> g(tmp.data(), M, N), u(tmp.data() + M * N, M, N);
    product<S>(x, rows(gate_[e], n0, n1), g);
    product<S>(x, rows(up_[e], n0, n1), u);
    detail::swiglu_rows<S>(g.data(), N, u.data(), N, M, N, h.data(), h.stride(0));
  }
  template <class S>
  void down(index_t e, view<const float, 2> h, index_t n0, index_t n1, view<float, 2> y) const {
    product<S>(h, rows(down_[e], n0, n1), y);
  }
  bool int8_activations() const { return a8_; }
  // f(name, byte_range) for the codes and scales of every weight (as dense_experts::for_each_weight).
  template <class Fn>
  void for_each_weight(Fn&& f) const {
    for (const auto* set : {&gate_, &up_, &down_}) {
      const char* name = set == &gate_ ? "gate" : set == &up_ ? "up" : "down";
      for (const view_type& w : *set) {
        f(name, quant::contracts::code_bytes_of(w));
        f(name, quant::contracts::scale_bytes_of(w));
      }
    }
  }

 private:
  template <class S>
  void product(view<const float, 2> x, const view_type& w, view<float, 2> y) const {
    if (a8_)
      quant::matmul_a8<F, S>(x, w, y);
    else
      quant::matmul<F, S>(x, w, y);
  }
  static view_type rows(const view_type& w, index_t n0, index_t n1) {
    view_type r = w;
    r.codes = reinterpret_cast<const quant::code_t<F>*>(w.code_row(n0));
    r.scales = w.scales + n0 * w.scale_stride;
    r.rows = n1 - n0;
    return r;
  }
  std::vector<view_type> gate_, up_, down_;
  bool a8_ = false;
};

// Owning quantized expert weights (quantized with C, e.g. quant::quantize_config{quant::int4_per_channel}),
// filled one expert (or one tensor) at a time, so a loader never holds more than one full-precision expert
// matrix: add(gate_e, up_e, down_e) quantizes three float/bf16/f16 matrices, add_quantized() takes weights
// quantized by the caller (one checkpoint tensor at a time). bank() gives the quantized_experts view.
template <quant::quantize_config C>
class quantized_expert_store {
 public:
  using weight = quant::quantized_weight<C.fmt>;

  quantized_expert_store() = default;
  // All experts of gate, up [E, I, H], down [E, H, I] (quantized one expert matrix at a time).
  template <expert_weight W>
  quantized_expert_store(view<const W, 3> gate, view<const W, 3> up, view<const W, 3> down) {
    contract c{"moe::quantized_expert_store"};
    c.extent("up", up, 0, gate.extent(0), "gate.extent(0) (experts)")
        .extent("down", down, 0, gate.extent(0), "gate.extent(0) (experts)");
    for (index_t e = 0; e < gate.extent(0); ++e)
      add(view<const W, 2>(gate[e]), view<const W, 2>(up[e]), view<const W, 2>(down[e]));
  }

  // Appends one expert: gate, up [I, H], down [H, I] (float, bf16 or f16; the same I, H as the first expert).
  template <expert_weight W>
  void add(view<const W, 2> gate, view<const W, 2> up, view<const W, 2> down) {
    check_shapes(gate.extent(0), gate.extent(1), up.extent(0), up.extent(1), down.extent(0), down.extent(1));
    gate_.push_back(quant::quantize<C>(gate));
    up_.push_back(quant::quantize<C>(up));
    down_.push_back(quant::quantize<C>(down));
  }
  // Appends one expert quantized by the caller (quant::quantize<C>(tensor) as each tensor is read).
  void add_quantized(weight gate, weight up, weight down) {
    check_shapes(gate.rows(), gate.cols(), up.rows(), up.cols(), down.rows(), down.cols());
    gate_.push_back(std::move(gate));
    up_.push_back(std::move(up));
    down_.push_back(std::move(down));
  }

  index_t experts() const { return static_cast<index_t>(gate_.size()); }
  bool empty() const { return gate_.empty(); }
  // Bytes held (codes and scales).
  std::int64_t bytes() const {
    std::int64_t b = 0;
    for (const auto* v : {&gate_, &up_, &down_})
      for (const auto& w : *v) b += w.bytes();
    return b;
  }

  quantized_experts<C.fmt> bank(bool int8_activations = false) const {
    std::vector<quant::qweight_view<C.fmt>> g, u, d;
    for (std::size_t e = 0; e < gate_.size(); ++e) {
      g.push_back(gate_[e].view());
      u.push_back(up_[e].view());
      d.push_back(down_[e].view());
    }
    return {std::move(g), std::move(u), std::move(d), int8_activations};
  }
  const std::vector<weight>& gate() const { return gate_; }
  const std::vector<weight>& up() const { return up_; }
  const std::vector<weight>& down() const { return down_; }

 private:
  void check_shapes(index_t gr, index_t gc, index_t ur, index_t uc, index_t dr, index_t dc) const {
    contract c{"moe::quantized_expert_store::add"};
    const index_t e = experts();
    const index_t I = e ? gate_[0].rows() : gr, H = e ? gate_[0].cols() : gc;
    const auto at = dsk::detail::concat("expert ", e, ": ");
    c.require(gr == I && gc == H, "gate",
              dsk::detail::concat("[", I, ", ", H, "] (the first expert's shape)"),
              dsk::detail::concat(at, "[", gr, ", ", gc, "]"))
        .require(ur == I && uc == H, "up", dsk::detail::concat("[", I, ", ", H, "] (the shape of gate)"),
                 dsk::detail::concat(at, "[", ur, ", ", uc, "]"))
        .require(dr == H && dc == I, "down", dsk::detail::concat("[", H, ", ", I, "] (gate transposed)"),
                 dsk::detail::concat(at, "[", dr, ", ", dc, "]"));
  }
  std::vector<weight> gate_, up_, down_;
};

DSK_ISA_END

// What grouped_swiglu needs of a set of experts: sizes, and the two products of expert e over a column range
// on a packet layer S (dense_experts, quantized_experts, or a type of yours with the same members).
template <class B>
concept expert_bank = requires(const B& b, index_t i, view<const float, 2> x, view<float, 2> y) {
  { b.experts() } -> std::convertible_to<index_t>;
  { b.hidden() } -> std::convertible_to<index_t>;
  { b.inter() } -> std::convertible_to<index_t>;
  b.template gate_up<simd::scalar>(i, x, i, i, y);
  b.template down<simd::scalar>(i, x, i, i, y);
};

namespace detail {
template <class B>
constexpr void check_expert_bank() {
  static_assert(expert_bank<B>,
                "dsk::moe: this type is not an expert bank (moe::expert_bank needs experts(), hidden(), "
                "inter(), template <class S> gate_up(e, x, n0, n1, h) and down(e, h, n0, n1, y)); use "
                "moe::dense_experts<W> or moe::quantized_experts<F>");
}
}  // namespace detail

namespace detail {
struct ffn_item {
  index_t e, m0, m1, n0, n1;
};
// Rows of one item: enough to amortise the weight block, small enough to keep x and h in L2.
inline constexpr index_t ffn_rows = 64;
inline constexpr index_t ffn_cols_gate_up = 128, ffn_cols_down = 256;

// Splits the items into one contiguous run per thread of about equal cost (rows + a constant for streaming
// the weight block, times columns), so one hot expert spreads over all threads instead of stalling one.
DSK_ISA_BEGIN
template <class F>
void run_balanced(const std::vector<ffn_item>& items, F&& f) {
  if (items.empty()) return;
  std::vector<double> end(items.size());
  double total = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& it = items[i];
    total += double(it.m1 - it.m0 + 8) * double(it.n1 - it.n0);
    end[i] = total;
  }
  const index_t nt = std::min<index_t>(num_threads(), static_cast<index_t>(items.size()));
  parallel_for_chunks(0, nt, 1, [&](index_t lo, index_t hi) {
    // Thread t takes the items whose cost midpoint falls in [t, t + 1) * total / nt.
    for (std::size_t i = 0; i < items.size(); ++i) {
      const double mid = end[i] - 0.5 * (end[i] - (i ? end[i - 1] : 0.0));
      const index_t owner = std::min<index_t>(nt - 1, static_cast<index_t>(mid / total * double(nt)));
      if (owner >= lo && owner < hi) f(items[i]);
    }
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// ys[r] = down_e(silu(gate_e xs[r]) * up_e xs[r]) for the rows r in [offset[e], offset[e] + count[e]) of
// every expert e; the other rows of ys (padding) are set to zero. xs, ys: [rows, H]; h: scratch [rows, I].
// offset: E + 1 entries, non-decreasing, offset[E] = rows; count[e] <= offset[e + 1] - offset[e].
// Each output is computed by one work item in a fixed order: the result does not depend on the thread count.
// h must not overlap xs or the weights; ys must not overlap h or the weights; ys may overlap (or be) xs
// (checked; the weights of banks that list them with for_each_weight, as dense_experts and
// quantized_experts do). Exec: dsk::host or a packet layer (dsk::simd::scalar gives the same bits as
// dsk::host).
template <host_exec Exec = host, class B>
void grouped_swiglu(view<const float, 2> xs, std::span<const index_t> offset, std::span<const index_t> count,
                    const B& w, view<float, 2> h, view<float, 2> ys) {
  detail::check_expert_bank<B>();
  using S = exec_packet_t<Exec>;
  contract c{"moe::grouped_swiglu"};
  const index_t E = w.experts(), H = w.hidden(), I = w.inter(), rows = xs.extent(0);
  c.require(static_cast<index_t>(offset.size()) == E + 1, "offset",
            dsk::detail::concat(E + 1, " entries (experts + 1)"), offset.size())
      .require(static_cast<index_t>(count.size()) == E, "count", dsk::detail::concat(E, " entries (experts)"),
               count.size())
      .extent("xs", xs, 1, H, "the experts' hidden size")
      .extent("ys", ys, 0, rows, "xs.extent(0) (rows)")
      .extent("ys", ys, 1, H, "the experts' hidden size")
      .extent("h", h, 0, rows, "xs.extent(0) (rows)")
      .extent("h", h, 1, I, "the experts' intermediate size")
      .unit_inner_stride("xs", xs)
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("h", h);
  // The gate/up pass reads xs and writes h; the down pass (after it) reads h and writes ys. So h must not
  // overlap xs, ys must not overlap h, and ys MAY overlap xs (all of xs is read before ys is written).
  c.disjoint("h", h, "xs", xs).disjoint("ys", ys, "h", h);
  if constexpr (requires { w.for_each_weight([](const char*, const byte_range&) {}); }) {
    // One check per weight (E can be 244); the message names the weight only when one overlaps.
    const byte_range hr = bytes_of(h), yr = bytes_of(ys);
    w.for_each_weight([&](const char* name, const byte_range& wr) {
      if (!overlap(hr, wr) && !overlap(yr, wr)) return;
      const std::string what = dsk::detail::concat("the experts' ", name, " weights");
      c.disjoint("h", h, what, wr).disjoint("ys", ys, what, wr);
    });
  }
  c.require(offset[0] == 0 && offset[E] == rows, "offset",
            dsk::detail::concat("offset[0] = 0 and offset[E] = ", rows),
            dsk::detail::concat(offset[0], " and ", offset[E]));
  for (index_t e = 0; e < E; ++e)
    if (!(count[e] >= 0 && offset[e + 1] >= offset[e] && count[e] <= offset[e + 1] - offset[e]))
      c.require(false, "count", "0 <= count[e] <= offset[e + 1] - offset[e]",
                dsk::detail::concat("count[", e, "] = ", count[e]));
  std::vector<detail::ffn_item> up_items, down_items;
  for (index_t e = 0; e < E; ++e)
    for (index_t m0 = offset[e]; m0 < offset[e] + count[e]; m0 += detail::ffn_rows) {
      const index_t m1 = std::min(m0 + detail::ffn_rows, offset[e] + count[e]);
      for (index_t n0 = 0; n0 < I; n0 += detail::ffn_cols_gate_up)
        up_items.push_back({e, m0, m1, n0, std::min(I, n0 + detail::ffn_cols_gate_up)});
      for (index_t n0 = 0; n0 < H; n0 += detail::ffn_cols_down)
        down_items.push_back({e, m0, m1, n0, std::min(H, n0 + detail::ffn_cols_down)});
    }
  detail::run_balanced(up_items, [&](const detail::ffn_item& it) {
    w.template gate_up<S>(it.e, xs.slice(0, it.m0, it.m1), it.n0, it.n1,
                          h.slice(0, it.m0, it.m1).slice(1, it.n0, it.n1));
  });
  detail::run_balanced(down_items, [&](const detail::ffn_item& it) {
    w.template down<S>(it.e, h.slice(0, it.m0, it.m1), it.n0, it.n1,
                       ys.slice(0, it.m0, it.m1).slice(1, it.n0, it.n1));
  });
  for (index_t e = 0; e < E; ++e)
    for (index_t r = offset[e] + count[e]; r < offset[e + 1]; ++r) std::fill_n(row_ptr(ys, r), H, 0.0f);
}

// The same over the segments of a dispatch: ys rows follow xs = dispatch_tokens(x, handle).
template <host_exec Exec = host, class B>
void grouped_swiglu(view<const float, 2> xs, const dispatch_handle& hd, const B& w, view<float, 2> h,
                    view<float, 2> ys) {
  detail::check_expert_bank<B>();
  contract c{"moe::grouped_swiglu"};
  c.require(hd.experts == w.experts(), "handle",
            dsk::detail::concat("a dispatch over ", w.experts(), " experts"), hd.experts);
  grouped_swiglu<Exec>(xs, std::span<const index_t>(hd.offset), std::span<const index_t>(hd.count), w, h, ys);
}

DSK_ISA_END

}  // namespace dsk::moe
