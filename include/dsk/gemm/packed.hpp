// Pre-packed weights of the dense kernels: W [N, K] (row-major, as checkpoints store it) rearranged once into
// panels of 16 output columns, k-major inside a panel, so that the GEMM microkernel and the GEMV stream read
// each panel sequentially. ISA-independent format; checked in tests/gemm/matmul.cpp through the kernels and
// against gemm/ref.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"

namespace dsk::gemm {
DSK_ISA_BEGIN  // compiled with the TU's -march: ISA-specific names (tests/isa)

// Columns per panel (the N side of the 6x16 microkernel: two 8-lane registers).
inline constexpr index_t panel_width = 16;

// What the panels hold. plain: panel p = output columns 16p .. 16p+15. swiglu: panel p = gate rows 8p .. 8p+7
// followed by up rows 8p .. 8p+7, so that one panel yields 8 finished outputs silu(g) * u.
enum class panel_kind : std::uint8_t { plain, swiglu };

// Layout: element (column j of panel p, k) at data()[(p * K + k) * 16 + j]; missing columns (N not a multiple
// of the panel's column count) are zero. Weights stay in their storage type (bf16/f16 panels are half the
// size of f32 ones, which is what a bandwidth-bound decode step wants); kernels widen them in registers.
template <float_storage W>
class packed_weights {
 public:
  using weight_type = W;

  packed_weights() = default;

  // Packs w: [N, K], unit inner stride, any row stride.
  explicit packed_weights(view<const W, 2> w) : packed_weights(panel_kind::plain, w.extent(0), w.extent(1)) {
    contract c{"gemm::packed_weights"};
    c.unit_inner_stride("w", w);
    fill([&](index_t col) -> const W* { return col < n_ ? row_ptr(w, col) : nullptr; });
  }

  // Packs the gate and up projections of a SwiGLU block: w_gate, w_up: [N, K] each.
  static packed_weights swiglu(view<const W, 2> w_gate, view<const W, 2> w_up) {
    contract c{"gemm::packed_weights::swiglu"};
    c.unit_inner_stride("w_gate", w_gate).unit_inner_stride("w_up", w_up);
    c.extent("w_up", w_up, 0, w_gate.extent(0), "w_gate.extent(0)");
    c.extent("w_up", w_up, 1, w_gate.extent(1), "w_gate.extent(1)");
    packed_weights p(panel_kind::swiglu, w_gate.extent(0), w_gate.extent(1));
    p.fill([&](index_t col) -> const W* {
      const index_t panel = col / panel_width, j = col % panel_width, half = panel_width / 2;
      const index_t row = panel * half + (j % half);
      if (row >= p.n_) return nullptr;
      return j < half ? row_ptr(w_gate, row) : row_ptr(w_up, row);
    });
    return p;
  }

  panel_kind kind() const { return kind_; }
  // Output features N (for swiglu: the width of silu(g) * u) and input features K.
  index_t out_features() const { return n_; }
  index_t in_features() const { return k_; }
  index_t panels() const { return panels_; }
  // Output columns one panel produces: 16 (plain) or 8 (swiglu).
  index_t outputs_per_panel() const { return kind_ == panel_kind::plain ? panel_width : panel_width / 2; }
  const W* panel(index_t p) const { return data_.data() + p * k_ * panel_width; }
  // Bytes of weights a pass over all panels reads.
  index_t bytes() const { return panels_ * k_ * panel_width * index_t(sizeof(W)); }

 private:
  packed_weights(panel_kind kind, index_t n, index_t k)
      : kind_(kind),
        n_(n),
        k_(k),
        panels_(kind == panel_kind::plain ? (n + panel_width - 1) / panel_width
                                          : (n + panel_width / 2 - 1) / (panel_width / 2)),
        data_(panels_ * k_ * panel_width) {}

  // Column col of the packed matrix comes from the row that row_of(col) points to (nullptr: zero padding).
  template <class RowOf>
  void fill(RowOf row_of) {
    const index_t K = k_;
    W* out = data_.data();
    parallel_for_chunks(0, panels_, 16, [&](index_t lo, index_t hi) {
      for (index_t p = lo; p < hi; ++p) {
        W* dst = out + p * K * panel_width;
        for (index_t j = 0; j < panel_width; ++j) {
          const W* src = row_of(p * panel_width + j);
          if (src)
            for (index_t k = 0; k < K; ++k) dst[k * panel_width + j] = src[k];
          else
            for (index_t k = 0; k < K; ++k) dst[k * panel_width + j] = W{};
        }
      }
    });
  }

  panel_kind kind_ = panel_kind::plain;
  index_t n_ = 0, k_ = 0, panels_ = 0;
  aligned_buffer<W> data_;
};

DSK_ISA_END
}  // namespace dsk::gemm
