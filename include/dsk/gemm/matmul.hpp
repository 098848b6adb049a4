// Dense y = x * W^T (+ bias) and the fused SwiGLU silu(x Wg^T) * (x Wu^T), fp32 accumulation, f32/bf16/f16
// weights, f32 or bf16 output: matmul<matmul_config C = {}, Exec = dsk::host>(...). Host backend (Exec =
// dsk::host or a packet layer): blocked GEMM (M > 8) and a bandwidth-bound GEMV (M <= 8), both in
// gemm/host/matmul_avx2.hpp; CUDA: gemm/cuda/matmul.cuh (matmul<C, dsk::cuda>). Checked against gemm/ref.hpp
// (double accumulation) in tests/gemm/matmul.cpp.
#pragma once

#include <concepts>
#include <functional>
#include <string>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"
#include "dsk/gemm/config.hpp"
#include "dsk/gemm/host/matmul_avx2.hpp"
#include "dsk/gemm/packed.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::gemm {

// A weight argument given as a matrix [N, K] (an mdview or an owning tensor of float, bf16 or f16).
template <class Wt>
concept weight_matrix = requires {
  typename std::remove_cvref_t<Wt>::value_type;
}
&&std::remove_cvref_t<Wt>::rank() == 2 &&
    float_storage<typename std::remove_cvref_t<Wt>::value_type>&& std::is_convertible_v<
        const std::remove_cvref_t<Wt>&, view<const typename std::remove_cvref_t<Wt>::value_type, 2>>;

template <class Wt>
inline constexpr bool is_packed_weights = false;
template <float_storage W>
inline constexpr bool is_packed_weights<packed_weights<W>> = true;

// What matmul / swiglu accept as weights: a float/bf16/f16 matrix [N, K] or gemm::packed_weights.
template <class Wt>
concept weight_operand = weight_matrix<Wt> || is_packed_weights<std::remove_cvref_t<Wt>>;

// An output [M, N] of float or bf16.
template <class Y>
concept output_matrix = std::is_convertible_v<Y, view<float, 2>> || std::is_convertible_v<Y, view<bf16, 2>>;

namespace detail {
template <class Wt>
struct weight_element {
  using type = void;
};
template <class Wt>
requires requires { typename std::remove_cvref_t<Wt>::value_type; }
struct weight_element<Wt> {
  using type = std::remove_cv_t<typename std::remove_cvref_t<Wt>::value_type>;
};

// One readable line instead of the unsatisfied disjunctions of a constraint (the instantiation context names
// Wt).
template <class Wt>
constexpr bool check_weight() {
  using E = typename weight_element<Wt>::type;
  static_assert(!std::is_same_v<E, double>,
                "gemm: double is not a weight type (float, bf16, f16 or gemm::packed_weights)");
  static_assert(weight_operand<Wt> || std::is_same_v<E, double>,
                "gemm: not a weight type (a rank-2 view or tensor of float, bf16 or f16, or "
                "gemm::packed_weights)");
  return weight_operand<Wt>;
}

DSK_ISA_BEGIN

template <class Y>
auto as_output(Y&& y) {
  if constexpr (std::is_convertible_v<Y, view<float, 2>>)
    return view<float, 2>(std::forward<Y>(y));
  else
    return view<bf16, 2>(std::forward<Y>(y));
}

template <class Wt>
auto as_weights(const Wt& w) {
  return view<const typename std::remove_cvref_t<Wt>::value_type, 2>(w);
}

// f32 GEMM result t [M, 16 * panels] -> y: narrowing (plain) or silu(g) * u (swiglu panels).
template <class S, class Out>
void finish(const tensor<float, 2>& t, panel_kind kind, view<Out, 2> y) {
  using V = typename S::f32;
  const index_t M = y.extent(0), N = y.extent(1);
  parallel_for(0, M, [&](index_t m) {
    const float* src = t.data() + m * t.extent(1);
    Out* dst = row_ptr(y, m);
    if (kind == panel_kind::plain) {
      for (index_t n = 0; n < N; n += 8)
        S::store_partial(dst + n, S::load_partial(src + n, int(std::min<index_t>(8, N - n))),
                         int(std::min<index_t>(8, N - n)));
    } else {
      for (index_t n = 0; n < N; n += 8) {
        const index_t p = n / 8;
        const V g = S::load(src + p * panel_width), u = S::load(src + p * panel_width + 8);
        S::store_partial(dst + n, S::mul(nn::packet::silu<S>(g), u), int(std::min<index_t>(8, N - n)));
      }
    }
  });
}

template <class S, class Src, class Out>
void blocked(view<const float, 2> x, index_t panels, panel_kind kind, const Src& src, const float* bias,
             view<Out, 2> y) {
  const index_t M = x.extent(0), K = x.extent(1);
  if (std::is_same_v<Out, float> && kind == panel_kind::plain) {
    gemm_blocked<S>(M, K, panels, x.data(), x.stride(0), src, reinterpret_cast<float*>(y.data()), y.stride(0),
                    y.extent(1), bias);
  } else {
    tensor<float, 2> t({M, panels * panel_width}, uninitialized);
    gemm_blocked<S>(M, K, panels, x.data(), x.stride(0), src, t.data(), t.extent(1), t.extent(1), bias);
    finish<S>(t, kind, y);
  }
}

inline bool use_gemv(const matmul_config& c, index_t M, index_t K) {
  return K == 0 || c.algo == algorithm::gemv || (c.algo == algorithm::automatic && M <= c.gemv_max_rows);
}

// Unchecked kernels (arguments validated by the public entry points), templates on the packet layer S.
template <class S, matmul_config C, class W, class Out>
void run_packed(view<const float, 2> x, const packed_weights<W>& w, const float* bias, view<Out, 2> y) {
  static_assert(C.gemv_max_rows >= 0, "gemm::matmul_config: gemv_max_rows must be >= 0");
  const index_t M = x.extent(0);
  if (M == 0 || w.out_features() == 0) return;
  if (use_gemv(C, M, x.extent(1)))
    return gemv_packed<S>(M, x.data(), x.stride(0), w, bias, y.data(), y.stride(0));
  blocked<S>(x, w.panels(), w.kind(), packed_source<S, W>{&w}, bias, y);
}

template <class S, matmul_config C, class W, class Out>
void run_rows(view<const float, 2> x, view<const W, 2> w, view<const W, 2> w_up, bool swiglu,
              const float* bias, view<Out, 2> y) {
  static_assert(C.gemv_max_rows >= 0, "gemm::matmul_config: gemv_max_rows must be >= 0");
  const index_t M = x.extent(0), N = w.extent(0);
  if (M == 0 || N == 0) return;
  if (use_gemv(C, M, x.extent(1)))
    return gemv_rows<S>(M, x.data(), x.stride(0), w, w_up, swiglu, bias, y.data(), y.stride(0));
  if (!swiglu) {
    auto row_of = [&](index_t col) -> const W* { return col < N ? row_ptr(w, col) : nullptr; };
    blocked<S>(x, (N + panel_width - 1) / panel_width, panel_kind::plain,
               rows_source<W, decltype(row_of)>{row_of}, bias, y);
  } else {
    constexpr index_t half = panel_width / 2;
    auto row_of = [&](index_t col) -> const W* {
      const index_t j = col % panel_width, row = col / panel_width * half + j % half;
      if (row >= N) return nullptr;
      return j < half ? row_ptr(w, row) : row_ptr(w_up, row);
    };
    blocked<S>(x, (N + half - 1) / half, panel_kind::swiglu, rows_source<W, decltype(row_of)>{row_of},
               nullptr, y);
  }
}

template <class Wv, class Y>
void check_common(const contract& c, view<const float, 2> x, index_t N, index_t K, const Y& y) {
  c.unit_inner_stride("x", x).unit_inner_stride("y", y);
  c.require(K == x.extent(1), "x", "extent(1) == the weights' in_features (K = " + std::to_string(K) + ")",
            x.extent(1));
  c.extent("y", y, 0, x.extent(0), "x.extent(0) (M)");
  c.extent("y", y, 1, N, "the weights' out_features (N)");
  // The kernels read x while they write y (the blocked path packs x per block): overlapping memory would be
  // silently wrong, so it is an error (no in-place form: every output reads a whole row of x).
  c.disjoint("y", y, "x", x);
}

// Weights (and bias) are read while y is written: y over the last rows of w, or a bias inside y, would be
// computed from overwritten values.
template <class Y>
void check_weight_alias(const contract& c, const Y& y, std::string_view arg, const byte_range& w) {
  c.disjoint("y", y, arg, w);
}
template <float_storage W>
byte_range bytes_of_packed(const packed_weights<W>& w) {
  return w.panels() == 0 || w.in_features() == 0
             ? byte_range{}
             : bytes_of(w.panel(0), static_cast<std::uintptr_t>(w.bytes()));
}

DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// y = x * W^T (+ bias): x [M, K] f32, W [N, K] (pre-packed, or a row-major float/bf16/f16 matrix), bias [N],
// y [M, N] f32 or bf16. fp32 accumulation. Unit inner stride everywhere, any row stride; y must not overlap
// x, w or bias (checked: dsk::error naming both arguments; column slices of one buffer are fine). M > 8 runs
// the blocked GEMM (Goto & van de Geijn, "Anatomy of high-performance matrix multiplication", TOMS 2008; the
// BLIS 5-loop structure); M <= 8 streams W once for all rows. Pre-pack weights that are used more than once:
// an unpacked W is transposed into panels on every blocked call.
template <matmul_config C = matmul_config{}, host_exec Exec = host, class Wt, class Y>
requires output_matrix<Y>
void matmul(view<const float, 2> x, const Wt& w, view<const float, 1> bias, Y&& y) {
  using S = exec_packet_t<Exec>;
  const contract c{"gemm::matmul"};
  auto yv = detail::as_output(std::forward<Y>(y));
  const float* b = bias.data();
  if constexpr (!detail::check_weight<Wt>()) {
    return;  // check_weight has said what is wrong
  } else if constexpr (weight_matrix<Wt>) {
    auto wv = detail::as_weights(w);
    c.unit_inner_stride("w", wv);
    detail::check_common<decltype(wv)>(c, x, wv.extent(0), wv.extent(1), yv);
    if (b) c.extent("bias", bias, 0, wv.extent(0), "w.extent(0) (N)").unit_inner_stride("bias", bias);
    detail::check_weight_alias(c, yv, "w", bytes_of(wv));
    detail::check_weight_alias(c, yv, "bias", bytes_of(bias));
    detail::run_rows<S, C>(x, wv, wv, false, b, yv);
  } else {
    c.require(w.kind() == panel_kind::plain, "w",
              "weights packed for matmul (packed_weights(w)), not for swiglu");
    detail::check_common<Wt>(c, x, w.out_features(), w.in_features(), yv);
    if (b)
      c.extent("bias", bias, 0, w.out_features(), "w.out_features() (N)").unit_inner_stride("bias", bias);
    detail::check_weight_alias(c, yv, "w", detail::bytes_of_packed(w));
    detail::check_weight_alias(c, yv, "bias", bytes_of(bias));
    detail::run_packed<S, C>(x, w, b, yv);
  }
}

// y = x * W^T without bias.
template <matmul_config C = matmul_config{}, host_exec Exec = host, class Wt, class Y>
requires output_matrix<Y>
void matmul(view<const float, 2> x, const Wt& w, Y&& y) {
  matmul<C, Exec>(x, w, view<const float, 1>{}, std::forward<Y>(y));
}

// y = silu(x W_gate^T) * (x W_up^T), the SwiGLU of DeepSeek's MLP and experts (Shazeer, "GLU Variants Improve
// Transformer", 2020), x read once for both projections. x [M, K]; gate_up packed with packed_weights::swiglu
// (N outputs); y [M, N] f32 or bf16.
template <matmul_config C = matmul_config{}, host_exec Exec = host, float_storage W, class Y>
requires output_matrix<Y>
void swiglu(view<const float, 2> x, const packed_weights<W>& gate_up, Y&& y) {
  using S = exec_packet_t<Exec>;
  const contract c{"gemm::swiglu"};
  auto yv = detail::as_output(std::forward<Y>(y));
  c.require(gate_up.kind() == panel_kind::swiglu, "gate_up",
            "weights packed with packed_weights::swiglu(w_gate, w_up)");
  detail::check_common<packed_weights<W>>(c, x, gate_up.out_features(), gate_up.in_features(), yv);
  detail::check_weight_alias(c, yv, "gate_up", detail::bytes_of_packed(gate_up));
  detail::run_packed<S, C>(x, gate_up, nullptr, yv);
}

// The same from row-major w_gate, w_up [N, K] of the same dtype.
template <matmul_config C = matmul_config{}, host_exec Exec = host, class Wt, class Y>
requires(!is_packed_weights<std::remove_cvref_t<Wt>>) && output_matrix<Y> void swiglu(view<const float, 2> x,
                                                                                      const Wt& w_gate,
                                                                                      const Wt& w_up, Y&& y) {
  using S = exec_packet_t<Exec>;
  if constexpr (detail::check_weight<Wt>()) {
    const contract c{"gemm::swiglu"};
    auto yv = detail::as_output(std::forward<Y>(y));
    auto g = detail::as_weights(w_gate), u = detail::as_weights(w_up);
    c.unit_inner_stride("w_gate", g).unit_inner_stride("w_up", u);
    c.extent("w_up", u, 0, g.extent(0), "w_gate.extent(0)")
        .extent("w_up", u, 1, g.extent(1), "w_gate.extent(1)");
    detail::check_common<decltype(g)>(c, x, g.extent(0), g.extent(1), yv);
    detail::check_weight_alias(c, yv, "w_gate", bytes_of(g));
    detail::check_weight_alias(c, yv, "w_up", bytes_of(u));
    detail::run_rows<S, C>(x, g, u, true, nullptr, yv);
  }
}

DSK_ISA_END

}  // namespace dsk::gemm
