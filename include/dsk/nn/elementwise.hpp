// Elementwise host ops over the rows of f32 matrices: silu, sigmoid, swiglu (separate, or fused gate/up as
// halves or interleaved), add, residual add and scale. Host backend on the packet layer of Exec (dsk::host or
// dsk::simd::scalar / avx2 / neon, bit-identical); the SiLU and sigmoid are nn/host/activation.hpp's, the
// same the gemm and moe kernels use. Checked against double formulas in tests/nn/elementwise.cpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"
#include "dsk/nn/host/activation.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::nn {

// How a fused gate/up activation [rows, 2n] holds its two halves.
//  halves:      gate in columns [0, n), up in [n, 2n) (one GEMM over the concatenated [gate; up] weight).
//  interleaved: gate in even columns, up in odd columns (g0, u0, g1, u1, ...).
enum class gate_up_layout : std::uint8_t { halves, interleaved };

namespace detail {
DSK_ISA_BEGIN
inline void same_shape(const contract& c, const char* name, view<const float, 2> a, const char* ref,
                       view<const float, 2> b) {
  c.unit_inner_stride(name, a);
  c.extent(name, a, 0, b.extent(0), dsk::detail::concat(ref, ".extent(0) (rows)").c_str())
      .extent(name, a, 1, b.extent(1), dsk::detail::concat(ref, ".extent(1) (columns)").c_str());
}
// f(r) for every row, in chunks of ~64K elements per task.
template <class F>
void for_rows(index_t rows, index_t n, F&& f) {
  if (rows == 0 || n == 0) return;
  parallel_for_chunks(0, rows, std::max<index_t>(1, 65536 / n), [&](index_t lo, index_t hi) {
    for (index_t r = lo; r < hi; ++r) f(r);
  });
}
template <class S, class Op>
void binary_rows(const float* a, index_t lda, const float* b, index_t ldb, float* y, index_t ldy,
                 index_t rows, index_t n, Op op) {
  for_rows(rows, n, [&](index_t r) {
    const float *ar = a + r * lda, *br = b + r * ldb;
    float* yr = y + r * ldy;
    index_t i = 0;
    for (; i + S::width <= n; i += S::width) S::store(yr + i, op(S::load(ar + i), S::load(br + i)));
    if (i < n) {
      const int t = static_cast<int>(n - i);
      S::store_partial(yr + i, op(S::load_partial(ar + i, t), S::load_partial(br + i, t)), t);
    }
  });
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// y = silu(x) = x / (1 + e^-x); x, y: [rows, n], unit inner stride; y may be x.
template <host_exec Exec = host>
void silu(view<const float, 2> x, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::silu"};
  c.unit_inner_stride("x", x);
  detail::same_shape(c, "y", y, "x", x);
  detail::for_rows(x.extent(0), x.extent(1),
                   [&](index_t r) { packet::silu_row<S>(row_ptr(x, r), x.extent(1), row_ptr(y, r)); });
}

// y = sigmoid(x) = 1 / (1 + e^-x); x, y: [rows, n]; y may be x.
template <host_exec Exec = host>
void sigmoid(view<const float, 2> x, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::sigmoid"};
  c.unit_inner_stride("x", x);
  detail::same_shape(c, "y", y, "x", x);
  detail::for_rows(x.extent(0), x.extent(1),
                   [&](index_t r) { packet::sigmoid_row<S>(row_ptr(x, r), x.extent(1), row_ptr(y, r)); });
}

// SwiGLU (Shazeer 2020, DeepSeek's MLP): y = silu(gate) * up; gate, up, y: [rows, n]; y may be gate or up.
template <host_exec Exec = host>
void swiglu(view<const float, 2> gate, view<const float, 2> up, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::swiglu"};
  c.unit_inner_stride("gate", gate);
  detail::same_shape(c, "up", up, "gate", gate);
  detail::same_shape(c, "y", y, "gate", gate);
  detail::for_rows(gate.extent(0), gate.extent(1), [&](index_t r) {
    packet::swiglu_row<S>(row_ptr(gate, r), row_ptr(up, r), gate.extent(1), row_ptr(y, r));
  });
}

// The same from one fused activation gate_up: [rows, 2n] (layout says where gate and up sit) -> y: [rows, n].
// y must not overlap gate_up.
template <host_exec Exec = host>
void swiglu(view<const float, 2> gate_up, view<float, 2> y, gate_up_layout layout = gate_up_layout::halves) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::swiglu"};
  c.unit_inner_stride("gate_up", gate_up).unit_inner_stride("y", y);
  c.require(gate_up.extent(1) % 2 == 0, "gate_up", "an even number of columns (gate and up halves)",
            gate_up.extent(1));
  const index_t n = gate_up.extent(1) / 2;
  c.extent("y", y, 0, gate_up.extent(0), "gate_up.extent(0) (rows)")
      .extent("y", y, 1, n, "gate_up.extent(1) / 2 (columns)");
  detail::for_rows(y.extent(0), n, [&](index_t r) {
    const float* gu = row_ptr(gate_up, r);
    float* yr = row_ptr(y, r);
    if (layout == gate_up_layout::halves)
      packet::swiglu_row<S>(gu, gu + n, n, yr);
    else  // one lane of the packet form per element: the same bits as swiglu(gate, up, y)
      for (index_t i = 0; i < n; ++i) yr[i] = packet::silu1(gu[2 * i]) * gu[2 * i + 1];
  });
}

// y = a + b; a, b, y: [rows, n]; y may be a or b.
template <host_exec Exec = host>
void add(view<const float, 2> a, view<const float, 2> b, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::add"};
  c.unit_inner_stride("a", a);
  detail::same_shape(c, "b", b, "a", a);
  detail::same_shape(c, "y", y, "a", a);
  detail::binary_rows<S>(a.data(), a.stride(0), b.data(), b.stride(0), y.data(), y.stride(0), a.extent(0),
                         a.extent(1), [](auto u, auto v) { return S::add(u, v); });
}

// Residual add, y += x; x, y: [rows, n].
template <host_exec Exec = host>
void residual_add(view<const float, 2> x, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::residual_add"};
  c.unit_inner_stride("x", x);
  detail::same_shape(c, "y", y, "x", x);
  detail::binary_rows<S>(y.data(), y.stride(0), x.data(), x.stride(0), y.data(), y.stride(0), x.extent(0),
                         x.extent(1), [](auto u, auto v) { return S::add(u, v); });
}

// y = a * x; x, y: [rows, n]; y may be x.
template <host_exec Exec = host>
void scale(view<const float, 2> x, float a, view<float, 2> y) {
  using S = exec_packet_t<Exec>;
  const contract c{"nn::scale"};
  c.unit_inner_stride("x", x);
  detail::same_shape(c, "y", y, "x", x);
  const auto av = S::broadcast(a);
  detail::binary_rows<S>(x.data(), x.stride(0), x.data(), x.stride(0), y.data(), y.stride(0), x.extent(0),
                         x.extent(1), [&](auto u, auto) { return S::mul(av, u); });
}

// y *= a; y: [rows, n].
template <host_exec Exec = host>
void scale(view<float, 2> y, float a) {
  scale<Exec>(view<const float, 2>(y), a, y);
}

DSK_ISA_END

}  // namespace dsk::nn
