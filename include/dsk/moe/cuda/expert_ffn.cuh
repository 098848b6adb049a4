// CUDA grouped expert FFN: moe::grouped_swiglu<cuda> runs ys[r] = down_e(silu(gate_e xs[r]) * up_e xs[r])
// for every expert's rows of a dispatch in two launches (gate/up, then down) over a list of 32 x 32 output
// tiles of all experts, so one launch covers every expert whatever its row count (a grouped GEMM; SIMT, fp32
// accumulation; no tensor cores yet). Weights: moe::device_dense_experts<W> over [E, I, H] / [E, H, I] device
// tensors of f32, bf16 or f16. Padding rows of ys are zero. The host's grouped_swiglu contract; results agree
// with it to fp32 rounding (another summation order). Backend dsk::cuda. Checked in
// tests/simt/moe_ffn.cpp (emulation; natively in test_cuda) against ref::swiglu in double.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <vector>

#include "dsk/core/backend.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/view.hpp"
#include "dsk/cuda.cuh"
#include "dsk/moe/cuda/dispatch.cuh"
#include "dsk/quant/cuda/weight.cuh"
#include "dsk/quant/format.hpp"
#include "dsk/simd/exp_lane.hpp"

namespace dsk::moe {
DSK_CUDA_MODE_BEGIN

// Experts in device memory, non-owning: gate, up [E, I, H] and down [E, H, I] of one float storage type, each
// with unit inner stride and contiguous experts (the layout of a [E, I, H] checkpoint tensor uploaded as is).
template <class W>
class device_dense_experts {
  static_assert(float_storage<W>, "dsk::moe::device_dense_experts<W>: W must be float, bf16 or f16");

 public:
  using weight_type = W;
  device_dense_experts(view<const W, 3> gate, view<const W, 3> up, view<const W, 3> down)
      : gate_(gate), up_(up), down_(down) {
    contract c{"moe::device_dense_experts"};
    const index_t E = gate.extent(0), I = gate.extent(1), H = gate.extent(2);
    c.require(E >= 1, "gate", "at least one expert", E)
        .extent("up", up, 0, E, "gate.extent(0) (experts)")
        .extent("up", up, 1, I, "gate.extent(1) (intermediate)")
        .extent("up", up, 2, H, "gate.extent(2) (hidden)")
        .extent("down", down, 0, E, "gate.extent(0) (experts)")
        .extent("down", down, 1, H, "gate.extent(2) (hidden)")
        .extent("down", down, 2, I, "gate.extent(1) (intermediate)");
    for (const auto* v : {&gate, &up}) {
      c.require(v->stride(2) == 1 && v->stride(1) >= H && v->stride(0) >= I * v->stride(1), "gate / up",
                "unit inner stride and rows of >= H elements", dsk::detail::concat(v->stride(1)));
    }
    c.require(down.stride(2) == 1 && down.stride(1) >= I && down.stride(0) >= H * down.stride(1), "down",
              "unit inner stride and rows of >= I elements", dsk::detail::concat(down.stride(1)));
  }
  index_t experts() const { return gate_.extent(0); }
  index_t inter() const { return gate_.extent(1); }
  index_t hidden() const { return gate_.extent(2); }
  view<const W, 3> gate() const { return gate_; }
  view<const W, 3> up() const { return up_; }
  view<const W, 3> down() const { return down_; }

 private:
  view<const W, 3> gate_, up_, down_;
};

// Quantized experts in device memory, non-owning: gate, up [E * I, H] and down [E * H, I] as one quantized
// weight each (expert e's rows are rows [e * I, (e + 1) * I) resp. [e * H, (e + 1) * H): the experts'
// matrices quantized as one stacked matrix, per-channel or per-group scales along the rows,
// quant/format.hpp's layout).
template <quant::format F>
class device_quantized_experts {
 public:
  static constexpr quant::format fmt = F;
  device_quantized_experts(index_t experts, quant::qweight_view<F> gate, quant::qweight_view<F> up,
                           quant::qweight_view<F> down)
      : experts_(experts), gate_(gate), up_(up), down_(down) {
    contract c{"moe::device_quantized_experts"};
    c.require(experts >= 1 && gate.rows % experts == 0, "gate",
              dsk::detail::concat("experts * I rows for ", experts, " experts"), gate.rows);
    const index_t I = gate.rows / std::max<index_t>(experts, 1), H = gate.cols;
    c.require(up.rows == gate.rows && up.cols == H, "up",
              dsk::detail::concat("[", gate.rows, ", ", H, "] (gate's shape)"),
              dsk::detail::concat("[", up.rows, ", ", up.cols, "]"))
        .require(up.code_stride == gate.code_stride && up.scale_stride == gate.scale_stride, "up",
                 "gate's code and scale strides",
                 dsk::detail::concat(up.code_stride, " and ", up.scale_stride))
        .require(down.rows == experts * H && down.cols == I, "down",
                 dsk::detail::concat("[", experts * H, ", ", I, "] (experts * H, I)"),
                 dsk::detail::concat("[", down.rows, ", ", down.cols, "]"));
  }
  index_t experts() const { return experts_; }
  index_t inter() const { return gate_.rows / experts_; }
  index_t hidden() const { return gate_.cols; }
  const quant::qweight_view<F>& gate() const { return gate_; }
  const quant::qweight_view<F>& up() const { return up_; }
  const quant::qweight_view<F>& down() const { return down_; }

 private:
  index_t experts_;
  quant::qweight_view<F> gate_, up_, down_;
};

namespace cuda_detail {
inline constexpr int ffn_tile = 32;  // rows and columns of an output tile
// One output tile: expert e, rows [m0, m1), columns [n0, n1) (at most ffn_tile each).
struct ffn_tile_item {
  index_t e, m0, m1, n0, n1;
};
static_assert(sizeof(ffn_tile_item) == 5 * sizeof(index_t),
              "ffn_tile_item is uploaded as plain index_t data");
}  // namespace cuda_detail

namespace cuda_detail {
// Weight element (row r of expert e, column k) as f32, for the tile loop: a float-storage bank ...
template <class W>
struct dense_rows {
  const W* p;
  index_t ld, estride;
  DSK_DEVICE_INLINE float at(index_t e, index_t r, index_t k) const {
    return device::to_f32(p[e * estride + r * ld + k]);
  }
};
// ... or a quantized one (code times its group's scale: quant::dequantize's value).
template <quant::format F>
struct quantized_rows {
  quant::qweight_view<F> w;
  index_t rows_per_expert, span;
  DSK_DEVICE_INLINE float at(index_t e, index_t r, index_t k) const {
    const index_t row = e * rows_per_expert + r;
    return static_cast<float>(w.code(row, k)) * device::to_f32(w.scales[row * w.scale_stride + k / span]);
  }
};

// C tile = A[m0:m1, :K] * B_e[n0:n1, :K]^T (fp32), 32 x 32 outputs per block of 32 x 8 threads, K in steps of
// 32 through shared memory. GateUp: two B matrices and out = silu(A Bg^T) * (A Bu^T) (the host's silu formula
// with the lane exp); otherwise out = A B^T.
template <bool GateUp, class Rows>
DSK_DEVICE void ffn_tile_run(const ffn_tile_item& it, const float* a, index_t lda, const Rows& b0,
                             const Rows& b1, index_t K, float* out, index_t ldo) {
  constexpr int T = ffn_tile;
  DSK_SHARED(float[T][T + 1], as);
  DSK_SHARED(float[T][T + 1], bs0);
  DSK_SHARED(float[T][T + 1], bs1);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);  // 32 x 8
  float acc0[4] = {0, 0, 0, 0}, acc1[4] = {0, 0, 0, 0};
  for (index_t k0 = 0; k0 < K; k0 += T) {
    for (int r = ty; r < T; r += 8) {
      const index_t row = it.m0 + r, col = it.n0 + r, k = k0 + tx;
      const bool in_k = k < K, in_col = col < it.n1;
      as[r][tx] = row < it.m1 && in_k ? a[row * lda + k] : 0.0f;
      bs0[r][tx] = in_col && in_k ? b0.at(it.e, col, k) : 0.0f;
      if constexpr (GateUp) bs1[r][tx] = in_col && in_k ? b1.at(it.e, col, k) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < T; ++kk) {
      const float bv0 = bs0[tx][kk];
      const float bv1 = GateUp ? bs1[tx][kk] : 0.0f;
      for (int i = 0; i < 4; ++i) {
        const float av = as[ty + 8 * i][kk];
        acc0[i] = fmaf(av, bv0, acc0[i]);
        if constexpr (GateUp) acc1[i] = fmaf(av, bv1, acc1[i]);
      }
    }
    __syncthreads();
  }
  const index_t col = it.n0 + tx;
  if (col >= it.n1) return;
  for (int i = 0; i < 4; ++i) {
    const index_t row = it.m0 + ty + 8 * i;
    if (row >= it.m1) continue;
    if constexpr (GateUp) {
      const float gv = acc0[i];
      out[row * ldo + col] = gv / (1.0f + simd::exp_lane(-gv)) * acc1[i];
    } else {
      out[row * ldo + col] = acc0[i];
    }
  }
}
}  // namespace cuda_detail

namespace kernels {
// One block per tile item, float-storage weights W.
template <class W, bool GateUp>
__global__ void moe_ffn_tiles(const cuda_detail::ffn_tile_item* items, const float* a, index_t lda,
                              const W* b0, const W* b1, index_t ldb, index_t estride, index_t K, float* out,
                              index_t ldo) {
  const cuda_detail::dense_rows<W> r0{b0, ldb, estride}, r1{b1, ldb, estride};
  cuda_detail::ffn_tile_run<GateUp>(items[blockIdx.x], a, lda, r0, r1, K, out, ldo);
}

// The same over quantized weights (format F spelled as its fields: nvcc's kernel stubs do not take
// class-type template arguments). b0, b1: codes; s0, s1: scales; rows_per_expert rows per expert.
template <quant::qtype Q, int G, quant::scale_type S, quant::int4_range R, bool GateUp>
__global__ void moe_ffn_tiles_q(const cuda_detail::ffn_tile_item* items, const float* a, index_t lda,
                                const std::uint8_t* b0, const typename quant::scale_storage<S>::type* s0,
                                const std::uint8_t* b1, const typename quant::scale_storage<S>::type* s1,
                                index_t code_stride, index_t scale_stride, index_t rows,
                                index_t rows_per_expert, index_t K, float* out, index_t ldo) {
  constexpr quant::format F{Q, G, S, R};
  using C = quant::code_t<F>;
  const index_t span = quant::group_span(F, K);
  const cuda_detail::quantized_rows<F> r0{
      {reinterpret_cast<const C*>(b0), s0, rows, K, code_stride, scale_stride}, rows_per_expert, span};
  const cuda_detail::quantized_rows<F> r1{
      {reinterpret_cast<const C*>(b1), s1, rows, K, code_stride, scale_stride}, rows_per_expert, span};
  cuda_detail::ffn_tile_run<GateUp>(items[blockIdx.x], a, lda, r0, r1, K, out, ldo);
}

// Zeroes rows [first[i], first[i] + n[i]) of y (the padding rows), one block per padded segment.
template <int = 0>  // a template: defined in a header, included by many TUs (ODR)
__global__ void moe_zero_rows(const index_t* first, const index_t* n, float* y, index_t ldy, index_t H) {
  const index_t r0 = first[blockIdx.x], rows = n[blockIdx.x];
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = threadIdx.x; j < H; j += blockDim.x) y[(r0 + r) * ldy + j] = 0.0f;
}
}  // namespace kernels

namespace cuda_detail {
// The shared part of grouped_swiglu<cuda>: checks, the tile lists, the padding; launch(up_items, n,
// down_items, m) runs the two tile kernels of the bank.
template <class Bank, class Launch>
void grouped_swiglu_impl(view<const float, 2> xs, const device_dispatch_handle& h, const Bank& w,
                         view<float, 2> h_buf, view<float, 2> ys, const device::stream& s, Launch&& launch) {
  contract c{"moe::grouped_swiglu<cuda>"};
  const index_t E = w.experts(), H = w.hidden(), I = w.inter(), rows = xs.extent(0);
  c.require(h.experts() == E, "handle", dsk::detail::concat("a dispatch over ", E, " experts"), h.experts())
      .extent("xs", xs, 0, h.rows(), "handle.rows()")
      .extent("xs", xs, 1, H, "the experts' hidden size")
      .extent("ys", ys, 0, rows, "xs.extent(0) (rows)")
      .extent("ys", ys, 1, H, "the experts' hidden size")
      .extent("h", h_buf, 0, rows, "xs.extent(0) (rows)")
      .extent("h", h_buf, 1, I, "the experts' intermediate size")
      .unit_inner_stride("xs", xs)
      .unit_inner_stride("ys", ys)
      .unit_inner_stride("h", h_buf)
      .disjoint("h", h_buf, "xs", xs)
      .disjoint("ys", ys, "h", h_buf);
  std::vector<ffn_tile_item> up_items, down_items;
  std::vector<index_t> pad_first, pad_rows;
  for (index_t e = 0; e < E; ++e) {
    const index_t o = h.offset()[e], n = h.count()[e];
    for (index_t m0 = o; m0 < o + n; m0 += ffn_tile) {
      const index_t m1 = std::min(m0 + ffn_tile, o + n);
      for (index_t n0 = 0; n0 < I; n0 += ffn_tile)
        up_items.push_back({e, m0, m1, n0, std::min(I, n0 + ffn_tile)});
      for (index_t n0 = 0; n0 < H; n0 += ffn_tile)
        down_items.push_back({e, m0, m1, n0, std::min(H, n0 + ffn_tile)});
    }
    if (h.offset()[e + 1] > o + n) {
      pad_first.push_back(o + n);
      pad_rows.push_back(h.offset()[e + 1] - o - n);
    }
  }
  c.in_range("output tiles", static_cast<index_t>(std::max(up_items.size(), down_items.size())), index_t{0},
             index_t{device::max_grid_x()});
  const auto upload = [&](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    device::buffer<T> d(static_cast<index_t>(v.size()));
    device::copy(d.data(), v.data(), static_cast<index_t>(v.size()), device::copy_kind::host_to_device, s);
    return d;
  };
  const auto up_d = upload(up_items), down_d = upload(down_items);
  const auto pf_d = upload(pad_first), pr_d = upload(pad_rows);
  if (!up_items.empty())
    launch(up_d.data(), static_cast<unsigned>(up_items.size()), down_d.data(),
           static_cast<unsigned>(down_items.size()));
  if (!pad_first.empty())
    device::launch(kernels::moe_zero_rows<>, {dim3(static_cast<unsigned>(pad_first.size())), dim3(128)}, s)(
        pf_d.data(), pr_d.data(), ys.data(), ys.stride(0), H);
  s.synchronize();  // the tile lists (device buffers above) are freed on return
}
}  // namespace cuda_detail

// ys[r] = down_e(silu(gate_e xs[r]) * up_e xs[r]) for the kept rows of every expert of the plan h (the rows
// [offset[e], offset[e] + count[e])), 0 on padding rows. xs, ys: [rows, H]; scratch h_buf [rows, I]; all in
// device memory, unit inner strides; h_buf must not overlap xs or ys; ys may be xs. Synchronises s before
// returning (the tile lists live in temporary device buffers).
template <std::same_as<dsk::cuda> B, class W>
void grouped_swiglu(view<const float, 2> xs, const device_dispatch_handle& h,
                    const device_dense_experts<W>& w, view<float, 2> h_buf, view<float, 2> ys,
                    const device::stream& s = device::stream::default_stream()) {
  const index_t H = w.hidden(), I = w.inter();
  cuda_detail::grouped_swiglu_impl(
      xs, h, w, h_buf, ys, s,
      [&](const cuda_detail::ffn_tile_item* up, unsigned nu, const cuda_detail::ffn_tile_item* dn,
          unsigned nd) {
        device::launch(kernels::moe_ffn_tiles<W, true>, {dim3(nu), dim3(32, 8)}, s)(
            up, xs.data(), xs.stride(0), w.gate().data(), w.up().data(), w.gate().stride(1),
            w.gate().stride(0), H, h_buf.data(), h_buf.stride(0));
        device::launch(kernels::moe_ffn_tiles<W, false>, {dim3(nd), dim3(32, 8)}, s)(
            dn, h_buf.data(), h_buf.stride(0), w.down().data(), w.down().data(), w.down().stride(1),
            w.down().stride(0), I, ys.data(), ys.stride(0));
      });
}

// The same over int8 / int4 experts (weights dequantized in the tile loads: code times its group's scale).
template <std::same_as<dsk::cuda> B, quant::format F>
void grouped_swiglu(view<const float, 2> xs, const device_dispatch_handle& h,
                    const device_quantized_experts<F>& w, view<float, 2> h_buf, view<float, 2> ys,
                    const device::stream& s = device::stream::default_stream()) {
  const index_t H = w.hidden(), I = w.inter();
  cuda_detail::grouped_swiglu_impl(
      xs, h, w, h_buf, ys, s,
      [&](const cuda_detail::ffn_tile_item* up, unsigned nu, const cuda_detail::ffn_tile_item* dn,
          unsigned nd) {
        const auto codes = [](const quant::qweight_view<F>& q) {
          return reinterpret_cast<const std::uint8_t*>(q.codes);
        };
        const auto& g = w.gate();
        const auto& u = w.up();
        const auto& d = w.down();
        device::launch(kernels::moe_ffn_tiles_q<F.type, F.group, F.scale, F.range, true>,
                       {dim3(nu), dim3(32, 8)}, s)(up, xs.data(), xs.stride(0), codes(g), g.scales, codes(u),
                                                   u.scales, g.code_stride, g.scale_stride, g.rows, I, H,
                                                   h_buf.data(), h_buf.stride(0));
        device::launch(kernels::moe_ffn_tiles_q<F.type, F.group, F.scale, F.range, false>,
                       {dim3(nd), dim3(32, 8)}, s)(dn, h_buf.data(), h_buf.stride(0), codes(d), d.scales,
                                                   codes(d), d.scales, d.code_stride, d.scale_stride, d.rows,
                                                   H, I, ys.data(), ys.stride(0));
      });
}

DSK_CUDA_MODE_END
}  // namespace dsk::moe
