// Host kernels of the quantized products y[M, N] = x[M, K] * W[N, K]^T, templated on the packet layer
// (simd::scalar or simd::avx2, bit-identical): weight-only (codes dequantized in registers, fp32 FMA) and
// W8A8/W4A8 (per-token int8 activations widened to int16, integer multiply-add of pairs, exact int32 per
// group). Checked against quant/ref.hpp in tests/quant/matmul.cpp.
//
// int4 codes stay in the canonical int4x2 layout; the kernels decode 8 (16) bytes into the even codes (low
// nibbles) and the odd codes (high nibbles) of a 16- (32-) element block, so the activations are permuted
// once per call into that order: each full block as its even elements then its odd elements. The K % block
// tail keeps natural order and goes through a scalar loop shared by both packet layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/quant/format.hpp"
#include "dsk/quant/host/quantize_avx2.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::quant::detail {
DSK_ISA_BEGIN

// Scales [g0, g0 + count) of row i widened to float through the packet layer: f16/bf16 scales widened one at
// a time through the portable conversion cost more than the dot products of a 128-element group.
inline constexpr index_t scale_chunk = 32;
template <class S, format F>
void load_scales(const qweight_view<F>& q, index_t i, index_t g0, index_t count, float* out) {
  const scale_t<F>* p = q.scales + i * q.scale_stride + g0;
  for (index_t j = 0; j < count; j += S::width) {
    const int n = static_cast<int>(std::min<index_t>(S::width, count - j));
    S::store_partial(out + j, S::load_partial(p + j, n), n);
  }
}

// Rows of W per parallel work item: 64 int8 rows of K = 2048 are 128 KiB, so a block stays in L2 while every
// group of 4 tokens streams over it.
inline constexpr index_t rows_per_block = 64;

// ---- weight-only ---------------------------------------------------------------------------------------
// MR tokens x NR weight rows over all of K. For the int8 GEMV (MR == 1) each (m, n) keeps two accumulators: 8
// independent FMA chains for NR = 4 cover the FMA latency, as the decode is cheap. The int4 decode costs more
// ops than the chains' latency, and its 4 constants plus 8 accumulators plus the per-group totals would not
// fit the 16 ymm registers (the compiler spilled accumulators), so int4 and MR == 4 use one accumulator per
// (m, n).
template <class S, format F, int MR, int NR>
void wo_tile(const float* xp, index_t ldx, const qweight_view<F>& q, index_t n0, float* y, index_t ldy) {
  using P = typename S::f32;
  using X = S;
  constexpr bool split = MR == 1 && F.type == qtype::int8;
  const index_t K = q.cols, span = group_span(F, K), G = q.groups(), Kb = K / 16 * 16;
  P tot[MR][NR];
  float tail[MR][NR] = {};
  float sc[NR][scale_chunk];
  for (auto& r : tot)
    for (auto& e : r) e = S::zero();
  const std::uint8_t* c[NR];
  for (int n = 0; n < NR; ++n) c[n] = q.code_row(n0 + n);
  for (index_t g = 0; g < G; ++g) {
    const index_t k0 = g * span, k1 = std::min(K, k0 + span), kb1 = std::min(k1, Kb);
    P a0[MR][NR], a1[MR][NR];
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NR; ++n) a0[m][n] = a1[m][n] = S::zero();
    for (index_t k = k0; k < kb1; k += 16) {
      P w0[NR], w1[NR];
      for (int n = 0; n < NR; ++n) {
        if constexpr (F.type == qtype::int8) {
          w0[n] = X::load_i8_f32(reinterpret_cast<const std::int8_t*>(c[n] + k));
          w1[n] = X::load_i8_f32(reinterpret_cast<const std::int8_t*>(c[n] + k + 8));
        } else {
          X::load_i4_f32(c[n] + k / 2, w0[n], w1[n]);
        }
      }
      for (int m = 0; m < MR; ++m) {
        const P x0 = S::load(xp + m * ldx + k), x1 = S::load(xp + m * ldx + k + 8);
        for (int n = 0; n < NR; ++n) {
          if constexpr (split) {
            a0[m][n] = S::fma(x0, w0[n], a0[m][n]);
            a1[m][n] = S::fma(x1, w1[n], a1[m][n]);
          } else {
            a0[m][n] = S::fma(x1, w1[n], S::fma(x0, w0[n], a0[m][n]));
          }
        }
      }
    }
    if (g % scale_chunk == 0)
      for (int n = 0; n < NR; ++n) load_scales<S>(q, n0 + n, g, std::min(scale_chunk, G - g), sc[n]);
    for (int n = 0; n < NR; ++n) {
      const float s = sc[n][g % scale_chunk];
      const P sv = S::broadcast(s);
      for (int m = 0; m < MR; ++m) {
        tot[m][n] = S::fma(split ? S::add(a0[m][n], a1[m][n]) : a0[m][n], sv, tot[m][n]);
        if (kb1 < k1) {
          float t = 0.0f;
          for (index_t k = kb1; k < k1; ++k)
            t = std::fma(xp[m * ldx + k], static_cast<float>(q.code(n0 + n, k)), t);
          tail[m][n] += t * s;
        }
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NR; ++n) y[m * ldy + n] = S::reduce_add(tot[m][n]) + tail[m][n];
}

// x rows into the int4 kernel order (each full 16-block as 8 even then 8 odd elements).
inline void permute16(const float* x, float* out, index_t K) {
  index_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int j = 0; j < 8; ++j) {
      out[k + j] = x[k + 2 * j];
      out[k + 8 + j] = x[k + 2 * j + 1];
    }
  for (; k < K; ++k) out[k] = x[k];
}

// Runs tile(m, n, mr, nr) over [M] x [N] with parallelism over blocks of rows_per_block weight rows.
template <class Tile4, class Tile1>
void for_tiles(index_t M, index_t N, int nr_big, Tile4&& tile4, Tile1&& tile1) {
  const index_t blocks = (N + rows_per_block - 1) / rows_per_block;
  parallel_for(0, blocks, [&](index_t b) {
    const index_t n_lo = b * rows_per_block, n_hi = std::min(N, n_lo + rows_per_block);
    index_t m = 0;
    for (; m + 4 <= M; m += 4) tile4(m, n_lo, n_hi);
    for (; m < M; ++m) tile1(m, n_lo, n_hi);
  });
  (void)nr_big;
}

// y = x * dequantize(W)^T. x [M, K], y [M, N], unit inner strides (checked by the caller).
template <class S, format F>
void matmul_wo(view<const float, 2> x, const qweight_view<F>& q, view<float, 2> y) {
  const index_t M = x.extent(0), K = x.extent(1), N = q.rows;
  const float* xp = x.data();
  index_t ldx = x.stride(0);
  std::vector<float> perm;
  if constexpr (F.type == qtype::int4) {
    perm.resize(static_cast<std::size_t>(M * K));
    for (index_t m = 0; m < M; ++m) permute16(x.data() + m * x.stride(0), perm.data() + m * K, K);
    xp = perm.data();
    ldx = K;
  }
  float* yp = y.data();
  const index_t ldy = y.stride(0);
  auto tile4 = [&](index_t m, index_t n_lo, index_t n_hi) {
    float out[4][2];
    index_t n = n_lo;
    for (; n + 2 <= n_hi; n += 2) {
      wo_tile<S, F, 4, 2>(xp + m * ldx, ldx, q, n, &out[0][0], 2);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 2; ++j) yp[(m + i) * ldy + n + j] = out[i][j];
    }
    for (; n < n_hi; ++n) {
      wo_tile<S, F, 4, 1>(xp + m * ldx, ldx, q, n, &out[0][0], 2);
      for (int i = 0; i < 4; ++i) yp[(m + i) * ldy + n] = out[i][0];
    }
  };
  auto tile1 = [&](index_t m, index_t n_lo, index_t n_hi) {
    index_t n = n_lo;
    for (; n + 4 <= n_hi; n += 4) wo_tile<S, F, 1, 4>(xp + m * ldx, ldx, q, n, yp + m * ldy + n, 0);
    for (; n < n_hi; ++n) wo_tile<S, F, 1, 1>(xp + m * ldx, ldx, q, n, yp + m * ldy + n, 0);
  };
  for_tiles(M, N, 2, tile4, tile1);
}

// ---- W8A8 / W4A8 ---------------------------------------------------------------------------------------
// xq: int16 codes of MR tokens (int4 weights: 32-blocks permuted), sx their scales. With MR * NR == 8 the
// per-group int32 accumulators are folded into one vector (lane m * NR + n) by a transpose-and-add, so a
// single f32 total stays live across the K loop; 8 f32 totals next to 8 accumulators and the decoded weights
// made the compiler spill accumulators inside the loop.
// With Panel, the weights of rows n0.. come pre-widened to int16 (row n0 + n at pw + n * ldp, the full
// 32-blocks in the order the decoder produces) instead of being decoded from the codes.
template <class S, format F, int MR, int NR, bool Panel = false>
void a8_tile(const std::int16_t* xq, index_t ldx, const float* sx, const qweight_view<F>& q, index_t n0,
             float* y, index_t ldy, const std::int16_t* pw = nullptr, index_t ldp = 0) {
  (void)pw;
  (void)ldp;
  using P = typename S::f32;
  using X = S;
  using I = typename S::i32;
  using H = typename X::i16;
  constexpr bool folded = MR * NR == 8;
  const index_t K = q.cols, span = group_span(F, K), G = q.groups(), Kb = K / 32 * 32;
  P tot[folded ? 1 : MR][folded ? 1 : NR];
  float tail[MR][NR] = {};
  float sc[NR][scale_chunk];
  for (auto& r : tot)
    for (auto& e : r) e = S::zero();
  const std::uint8_t* c[NR];
  for (int n = 0; n < NR; ++n) c[n] = q.code_row(n0 + n);
  for (index_t g = 0; g < G; ++g) {
    const index_t k0 = g * span, k1 = std::min(K, k0 + span), kb1 = std::min(k1, Kb);
    I acc[MR * NR];
    for (auto& e : acc) e = S::zero_i32();
    for (index_t k = k0; k < kb1; k += 32) {
      if constexpr (Panel || F.type == qtype::int8) {
        // One 16-column half at a time: NR weight vectors and one token vector live, each loaded once (the
        // 4 x 2 tile otherwise ran out of registers and re-loaded every token vector per row, 20 loads per 16
        // vpmaddwd, which made it load-bound).
        for (int h = 0; h < 2; ++h) {
          H w[NR];
          for (int n = 0; n < NR; ++n) {
            if constexpr (Panel)
              w[n] = X::load_i16(pw + n * ldp + k + 16 * h);
            else
              w[n] = X::load_i8_i16(reinterpret_cast<const std::int8_t*>(c[n] + k + 16 * h));
          }
          for (int m = 0; m < MR; ++m) {
            H xv = X::load_i16(xq + m * ldx + k + 16 * h);
            X::pin(xv);
            for (int n = 0; n < NR; ++n) acc[m * NR + n] = X::madd_i16(acc[m * NR + n], xv, w[n]);
          }
        }
      } else {
        H w0[NR], w1[NR];
        for (int n = 0; n < NR; ++n) X::load_i4_i16(c[n] + k / 2, w0[n], w1[n]);
        for (int m = 0; m < MR; ++m) {
          const H x0 = X::load_i16(xq + m * ldx + k), x1 = X::load_i16(xq + m * ldx + k + 16);
          for (int n = 0; n < NR; ++n)
            acc[m * NR + n] = X::madd_i16(X::madd_i16(acc[m * NR + n], x0, w0[n]), x1, w1[n]);
        }
      }
    }
    if (g % scale_chunk == 0)
      for (int n = 0; n < NR; ++n) load_scales<S>(q, n0 + n, g, std::min(scale_chunk, G - g), sc[n]);
    if constexpr (folded) {
      alignas(32) float sv[8];
      for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n) sv[m * NR + n] = sc[n][g % scale_chunk];
      tot[0][0] = S::fma(S::to_f32(X::reduce_add8(acc)), S::load(sv), tot[0][0]);
    } else {
      for (int n = 0; n < NR; ++n) {
        const P s = S::broadcast(sc[n][g % scale_chunk]);
        for (int m = 0; m < MR; ++m) tot[m][n] = S::fma(S::to_f32(acc[m * NR + n]), s, tot[m][n]);
      }
    }
    if (kb1 < k1)
      for (int m = 0; m < MR; ++m)
        for (int n = 0; n < NR; ++n) {
          std::int32_t t = 0;
          for (index_t k = kb1; k < k1; ++k) t += std::int32_t{xq[m * ldx + k]} * q.code(n0 + n, k);
          tail[m][n] += static_cast<float>(t) * sc[n][g % scale_chunk];
        }
  }
  if constexpr (folded) {
    alignas(32) float t[8];
    S::store(t, tot[0][0]);
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NR; ++n) y[m * ldy + n] = sx[m] * (t[m * NR + n] + tail[m][n]);
  } else {
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NR; ++n) y[m * ldy + n] = sx[m] * (S::reduce_add(tot[m][n]) + tail[m][n]);
  }
}

// Row n's full 32-blocks [0, Kb) as int16 in the a8 kernel's order.
template <class S, format F>
void decode_row_i16(const qweight_view<F>& q, index_t n, index_t Kb, std::int16_t* out) {
  using X = S;
  const std::uint8_t* c = q.code_row(n);
  for (index_t k = 0; k < Kb; k += 32) {
    typename X::i16 w0, w1;
    if constexpr (F.type == qtype::int8) {
      w0 = X::load_i8_i16(reinterpret_cast<const std::int8_t*>(c + k));
      w1 = X::load_i8_i16(reinterpret_cast<const std::int8_t*>(c + k + 16));
    } else {
      X::load_i4_i16(c + k / 2, w0, w1);
    }
    X::store_i16(out + k, w0);
    X::store_i16(out + k + 16, w1);
  }
}

template <class S, format F>
void matmul_a8(view<const float, 2> x, const qweight_view<F>& q, view<float, 2> y, const char* where) {
  const index_t M = x.extent(0), K = x.extent(1), N = q.rows;
  tensor<std::int16_t, 2> xq({M, K}, uninitialized);
  std::vector<float> sx(static_cast<std::size_t>(M));
  parallel_for_chunks(0, M, 16, [&](index_t lo, index_t hi) {
    quantize_tokens_rows<S, std::int16_t, F.type == qtype::int4>(x.data(), x.stride(0), lo, hi, K, xq.data(),
                                                                 K, sx.data(), where);
  });
  const std::int16_t* xp = xq.data();
  float* yp = y.data();
  const index_t ldy = y.stride(0), Kb = K / 32 * 32;
  // From 16 tokens on, each block of weight rows is widened to int16 once (a 64 x K panel, 256 KiB for
  // K = 2048, L2-resident) and reused by every group of 4 tokens, which takes the decode (byte->int16
  // shuffles competing with the adds for two FP pipes) out of the inner loop.
  const bool use_panel = M >= 16 && Kb > 0;
  const index_t blocks = (N + rows_per_block - 1) / rows_per_block;
  parallel_for_chunks(0, blocks, 1, [&](index_t b_lo, index_t b_hi) {
    std::vector<std::int16_t> panel(use_panel ? static_cast<std::size_t>(rows_per_block * Kb) : 0);
    for (index_t b = b_lo; b < b_hi; ++b) {
      const index_t n_lo = b * rows_per_block, n_hi = std::min(N, n_lo + rows_per_block);
      if (use_panel)
        for (index_t n = n_lo; n < n_hi; ++n) decode_row_i16<S>(q, n, Kb, panel.data() + (n - n_lo) * Kb);
      const std::int16_t* pw = panel.data();
      index_t m = 0;
      for (; m + 4 <= M; m += 4) {
        float out[4][2];
        index_t n = n_lo;
        for (; n + 2 <= n_hi; n += 2) {
          if (use_panel)
            a8_tile<S, F, 4, 2, true>(xp + m * K, K, sx.data() + m, q, n, &out[0][0], 2, pw + (n - n_lo) * Kb,
                                      Kb);
          else
            a8_tile<S, F, 4, 2>(xp + m * K, K, sx.data() + m, q, n, &out[0][0], 2);
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 2; ++j) yp[(m + i) * ldy + n + j] = out[i][j];
        }
        for (; n < n_hi; ++n) {
          a8_tile<S, F, 4, 1>(xp + m * K, K, sx.data() + m, q, n, &out[0][0], 2);
          for (int i = 0; i < 4; ++i) yp[(m + i) * ldy + n] = out[i][0];
        }
      }
      for (; m < M; ++m) {
        index_t n = n_lo;
        for (; n + 4 <= n_hi; n += 4)
          a8_tile<S, F, 1, 4>(xp + m * K, K, sx.data() + m, q, n, yp + m * ldy + n, 0);
        for (; n < n_hi; ++n) a8_tile<S, F, 1, 1>(xp + m * K, K, sx.data() + m, q, n, yp + m * ldy + n, 0);
      }
    }
  });
}

DSK_ISA_END
}  // namespace dsk::quant::detail
