// Host kernels of y = x * W^T: a 6x16 register-tiled microkernel with packed A/B panels and KC/MC/NC cache
// blocking (the BLIS/GotoBLAS loop structure), and bandwidth-bound GEMV kernels for a few rows of x.
// Templates on the packet layer S (simd::scalar mirrors simd::avx2, so both give the same bits).
// Checked against gemm/ref.hpp in tests/gemm/matmul.cpp.
#pragma once

#include <algorithm>
#include <type_traits>

#include "dsk/core/config.hpp"
#include "dsk/core/dtype.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/tensor.hpp"
#include "dsk/gemm/packed.hpp"
#include "dsk/nn/host/activation.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::gemm::detail {
DSK_ISA_BEGIN

inline constexpr int MR = 6;  // rows of x per microkernel tile (6 x 2 accumulators)
inline constexpr int NR = static_cast<int>(panel_width);
// Cache blocking for 32 KiB L1d / 512 KiB L2 (Zen 3): a KC x 16 B micro-panel (16 KiB) stays in L1 while the
// microkernel sweeps the MC x KC A block (144 KiB) held in L2; NC_PANELS x 16 columns of B (1 MiB at KC =
// 256) are reused across the MC blocks from L2/L3.
inline constexpr index_t KC = 256;
inline constexpr index_t MC = 144;
inline constexpr index_t NC_PANELS = 64;

// ---- blocked GEMM ------------------------------------------------------------------------------------

// tile[6][16] = A micro-panel [kc][6] * B micro-panel [kc][16].
template <class S>
DSK_ALWAYS_INLINE void micro_kernel(index_t kc, const float* DSK_RESTRICT a, const float* DSK_RESTRICT b,
                                    float* DSK_RESTRICT tile) {
  using V = typename S::f32;
  V c00 = S::zero(), c01 = S::zero(), c10 = S::zero(), c11 = S::zero(), c20 = S::zero(), c21 = S::zero();
  V c30 = S::zero(), c31 = S::zero(), c40 = S::zero(), c41 = S::zero(), c50 = S::zero(), c51 = S::zero();
  // Unrolled so that the pointer increments and the loop branch are amortised over 48 FMAs.
  DSK_GCC_UNROLL(4)
  for (index_t k = 0; k < kc; ++k) {
    const V b0 = S::load(b), b1 = S::load(b + 8);
    V a0 = S::broadcast(a[0]);
    c00 = S::fma(a0, b0, c00);
    c01 = S::fma(a0, b1, c01);
    a0 = S::broadcast(a[1]);
    c10 = S::fma(a0, b0, c10);
    c11 = S::fma(a0, b1, c11);
    a0 = S::broadcast(a[2]);
    c20 = S::fma(a0, b0, c20);
    c21 = S::fma(a0, b1, c21);
    a0 = S::broadcast(a[3]);
    c30 = S::fma(a0, b0, c30);
    c31 = S::fma(a0, b1, c31);
    a0 = S::broadcast(a[4]);
    c40 = S::fma(a0, b0, c40);
    c41 = S::fma(a0, b1, c41);
    a0 = S::broadcast(a[5]);
    c50 = S::fma(a0, b0, c50);
    c51 = S::fma(a0, b1, c51);
    a += MR;
    b += NR;
  }
  S::store(tile + 0, c00), S::store(tile + 8, c01), S::store(tile + 16, c10), S::store(tile + 24, c11);
  S::store(tile + 32, c20), S::store(tile + 40, c21), S::store(tile + 48, c30), S::store(tile + 56, c31);
  S::store(tile + 64, c40), S::store(tile + 72, c41), S::store(tile + 80, c50), S::store(tile + 88, c51);
}

// c[0:mr, 0:nr] (=|+=) tile (+ bias at the last K block).
template <class S>
DSK_ALWAYS_INLINE void update_tile(const float* tile, float* c, index_t ldc, int mr, int nr, bool first,
                                   const float* bias) {
  using V = typename S::f32;
  const int n0 = std::min(nr, 8), n1 = nr - n0;
  V b0 = S::zero(), b1 = S::zero();
  if (bias) b0 = S::load_partial(bias, n0), b1 = S::load_partial(bias + 8, n1);
  for (int i = 0; i < mr; ++i, c += ldc, tile += NR) {
    V t0 = S::add(S::load(tile), b0), t1 = S::add(S::load(tile + 8), b1);
    if (nr == NR) {
      if (!first) t0 = S::add(t0, S::load(c)), t1 = S::add(t1, S::load(c + 8));
      S::store(c, t0), S::store(c + 8, t1);
    } else {
      if (!first) t0 = S::add(t0, S::load_partial(c, n0)), t1 = S::add(t1, S::load_partial(c + 8, n1));
      S::store_partial(c, t0, n0), S::store_partial(c + 8, t1, n1);
    }
  }
}

// A block [mc, kc] of x (row stride ldx) -> micro-panels [ceil(mc/6)][kc][6], rows past mc zero.
inline void pack_a(const float* x, index_t ldx, index_t mc, index_t kc, float* ap) {
  for (index_t i0 = 0; i0 < mc; i0 += MR, ap += kc * MR) {
    const index_t rows = std::min<index_t>(MR, mc - i0);
    for (index_t i = 0; i < MR; ++i) {
      if (i < rows) {
        const float* src = x + (i0 + i) * ldx;
        for (index_t k = 0; k < kc; ++k) ap[k * MR + i] = src[k];
      } else {
        for (index_t k = 0; k < kc; ++k) ap[k * MR + i] = 0.0f;
      }
    }
  }
}

// B from pre-packed panels. f32 panels are used in place; bf16/f16 panels are widened once per (NC, KC) block
// into scratch, which the MC loop then reuses, so the conversion costs O(K N) against O(M K N) FMAs.
template <class S, class W>
struct packed_source {
  const packed_weights<W>* w;
  const float* block(index_t p0, index_t np, index_t pc, index_t kc, float* scratch, index_t& stride) const {
    if constexpr (std::is_same_v<W, float>) {
      stride = w->in_features() * NR;
      return w->panel(p0) + pc * NR;
    } else {
      stride = kc * NR;
      for (index_t q = 0; q < np; ++q) {
        const W* src = w->panel(p0 + q) + pc * NR;
        float* dst = scratch + q * stride;
        for (index_t e = 0; e < kc * NR; e += 8) S::store(dst + e, S::load(src + e));
      }
      return scratch;
    }
  }
};

// B from row-major weights: panel column col comes from row row_of(col) (nullptr: zero), transposed and
// widened per block, so an unpacked weight matrix costs one extra pass over B per call.
template <class W, class RowOf>
struct rows_source {
  RowOf row_of;
  const float* block(index_t p0, index_t np, index_t pc, index_t kc, float* scratch, index_t& stride) const {
    stride = kc * NR;
    for (index_t q = 0; q < np; ++q) {
      float* dst = scratch + q * stride;
      for (index_t j = 0; j < NR; ++j) {
        const W* src = row_of((p0 + q) * NR + j);
        if (src) {
          src += pc;
          for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = to_float(src[k]);
        } else {
          for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
        }
      }
    }
    return scratch;
  }
};

inline float* scratch_buffer(aligned_buffer<float>& buf, index_t n) {
  if (buf.size() < n) buf = aligned_buffer<float>(n);
  return buf.data();
}

// y[m0:m1, panel columns of p0:p1] for one thread. Column col = 16 p + j of y is written when col < ncols.
template <class S, class Src>
void gemm_serial(index_t m0, index_t m1, index_t p0, index_t p1, index_t K, const float* x, index_t ldx,
                 const Src& src, float* y, index_t ldy, index_t ncols, const float* bias) {
  thread_local aligned_buffer<float> abuf, bbuf;
  float* ap = scratch_buffer(abuf, (MC + MR) * KC);
  float* bp = scratch_buffer(bbuf, NC_PANELS * NR * KC);
  alignas(64) float tile[MR * NR];
  for (index_t jp = p0; jp < p1; jp += NC_PANELS) {
    const index_t np = std::min(NC_PANELS, p1 - jp);
    for (index_t pc = 0; pc < K; pc += KC) {
      const index_t kc = std::min(KC, K - pc);
      const bool first = pc == 0, last = pc + kc == K;
      index_t bstride = 0;
      const float* bb = src.block(jp, np, pc, kc, bp, bstride);
      for (index_t ic = m0; ic < m1; ic += MC) {
        const index_t mc = std::min(MC, m1 - ic);
        pack_a(x + ic * ldx + pc, ldx, mc, kc, ap);
        for (index_t q = 0; q < np; ++q) {
          const index_t col0 = (jp + q) * NR;
          const int nr = static_cast<int>(std::min<index_t>(NR, ncols - col0));
          if (nr <= 0) continue;
          const float* bq = bb + q * bstride;
          const float* bias_q = (last && bias) ? bias + col0 : nullptr;
          for (index_t ir = 0; ir < mc; ir += MR) {
            float* ct = y + (ic + ir) * ldy + col0;
            const int mr = static_cast<int>(std::min<index_t>(MR, mc - ir));
            // The C tile is read back after the microkernel for every K block but the first: fetch its rows
            // (up to 2 cache lines each, ldy apart) while the FMAs run.
            if (!first)
              for (int i = 0; i < mr; ++i)
                __builtin_prefetch(ct + i * ldy), __builtin_prefetch(ct + i * ldy + nr - 1);
            micro_kernel<S>(kc, ap + ir * kc, bq, tile);
            update_tile<S>(tile, ct, ldy, mr, nr, first, bias_q);
          }
        }
      }
    }
  }
}

// Splits the output over the threads: by panels when there are enough of them (each thread streams its own
// part of B and packs its own copy of A), else by rows of x.
template <class S, class Src>
void gemm_blocked(index_t M, index_t K, index_t panels, const float* x, index_t ldx, const Src& src, float* y,
                  index_t ldy, index_t ncols, const float* bias) {
  const double flops = 2.0 * double(M) * double(K) * double(panels * NR);
  const index_t T = flops < 4e6 ? 1 : std::max(1, num_threads());
  if (T == 1) return gemm_serial<S>(0, M, 0, panels, K, x, ldx, src, y, ldy, ncols, bias);
  const bool by_panels = panels >= 4 * T || M < 2 * MR * T;
  parallel_for_chunks(0, T, 1, [&](index_t lo, index_t hi) {
    for (index_t t = lo; t < hi; ++t) {
      if (by_panels) {
        gemm_serial<S>(0, M, panels * t / T, panels * (t + 1) / T, K, x, ldx, src, y, ldy, ncols, bias);
      } else {
        const index_t blocks = (M + MR - 1) / MR;
        const index_t r0 = std::min(M, blocks * t / T * MR), r1 = std::min(M, blocks * (t + 1) / T * MR);
        gemm_serial<S>(r0, r1, 0, panels, K, x, ldx, src, y, ldy, ncols, bias);
      }
    }
  });
}

// ---- GEMV: a few rows of x against packed panels ---------------------------------------------------------

// out[m][0:16] = x[m] . panel for MB rows of x; KU independent accumulator sets hide the FMA latency when MB
// is small. Every weight element is loaded once for all MB rows.
template <class S, int MB, int KU, class W>
DSK_ALWAYS_INLINE void panel_dot(const float* const* xr, index_t K, const W* DSK_RESTRICT panel,
                                 typename S::f32 (&out)[MB][2]) {
  using V = typename S::f32;
  V acc[KU][MB][2];
  for (int u = 0; u < KU; ++u)
    for (int m = 0; m < MB; ++m) acc[u][m][0] = acc[u][m][1] = S::zero();
  index_t k = 0;
  for (; k + KU <= K; k += KU) {
    for (int u = 0; u < KU; ++u) {
      const W* b = panel + (k + u) * NR;
      const V b0 = S::load(b), b1 = S::load(b + 8);
      for (int m = 0; m < MB; ++m) {
        const V a = S::broadcast(xr[m][k + u]);
        acc[u][m][0] = S::fma(a, b0, acc[u][m][0]);
        acc[u][m][1] = S::fma(a, b1, acc[u][m][1]);
      }
    }
  }
  for (; k < K; ++k) {
    const W* b = panel + k * NR;
    const V b0 = S::load(b), b1 = S::load(b + 8);
    for (int m = 0; m < MB; ++m) {
      const V a = S::broadcast(xr[m][k]);
      acc[0][m][0] = S::fma(a, b0, acc[0][m][0]);
      acc[0][m][1] = S::fma(a, b1, acc[0][m][1]);
    }
  }
  for (int m = 0; m < MB; ++m) {
    out[m][0] = acc[0][m][0], out[m][1] = acc[0][m][1];
    for (int u = 1; u < KU; ++u)
      out[m][0] = S::add(out[m][0], acc[u][m][0]), out[m][1] = S::add(out[m][1], acc[u][m][1]);
  }
}

// Writes the finished outputs of one panel for MB rows: plain (+ bias) or silu(g) * u.
template <class S, int MB, class Out>
DSK_ALWAYS_INLINE void panel_store(typename S::f32 (&acc)[MB][2], panel_kind kind, index_t p, index_t n_out,
                                   const float* bias, Out* const* yr) {
  using V = typename S::f32;
  if (kind == panel_kind::plain) {
    const index_t col0 = p * NR;
    const int nr = static_cast<int>(std::min<index_t>(NR, n_out - col0));
    const int n0 = std::min(nr, 8), n1 = nr - n0;
    V b0 = S::zero(), b1 = S::zero();
    if (bias) b0 = S::load_partial(bias + col0, n0), b1 = S::load_partial(bias + col0 + 8, n1);
    for (int m = 0; m < MB; ++m) {
      S::store_partial(yr[m] + col0, S::add(acc[m][0], b0), n0);
      if (n1 > 0) S::store_partial(yr[m] + col0 + 8, S::add(acc[m][1], b1), n1);
    }
  } else {
    const index_t col0 = p * (NR / 2);
    const int nr = static_cast<int>(std::min<index_t>(NR / 2, n_out - col0));
    for (int m = 0; m < MB; ++m)
      S::store_partial(yr[m] + col0, S::mul(nn::packet::silu<S>(acc[m][0]), acc[m][1]), nr);
  }
}

template <class S, int MB, int KU, class W, class Out>
void gemv_panels_rows(const float* const* xr, const packed_weights<W>& w, index_t p0, index_t p1,
                      const float* bias, Out* const* yr) {
  for (index_t p = p0; p < p1; ++p) {
    typename S::f32 acc[MB][2];
    panel_dot<S, MB, KU>(xr, w.in_features(), w.panel(p), acc);
    panel_store<S, MB>(acc, w.kind(), p, w.out_features(), bias, yr);
  }
}

// y[0:M] = x[0:M] * W^T for M <= 8 from packed panels: each panel is streamed from memory once for all rows
// (rows 5..8 re-read it from L1/L2). Parallel over panels.
template <class S, class W, class Out>
void gemv_packed(index_t M, const float* x, index_t ldx, const packed_weights<W>& w, const float* bias,
                 Out* y, index_t ldy) {
  const index_t panels = w.panels();
  const index_t panel_bytes = std::max<index_t>(1, w.in_features() * NR * index_t(sizeof(W)));
  const index_t grain = std::max<index_t>(1, (index_t(1) << 17) / panel_bytes);  // >= 128 KiB per chunk
  parallel_for_chunks(0, panels, grain, [&](index_t lo, index_t hi) {
    for (index_t m0 = 0; m0 < M; m0 += 4) {
      const float* xr[4];
      Out* yr[4];
      const index_t mb = std::min<index_t>(4, M - m0);
      for (index_t m = 0; m < mb; ++m) xr[m] = x + (m0 + m) * ldx, yr[m] = y + (m0 + m) * ldy;
      switch (mb) {
        case 1:
          gemv_panels_rows<S, 1, 4>(xr, w, lo, hi, bias, yr);
          break;
        case 2:
          gemv_panels_rows<S, 2, 2>(xr, w, lo, hi, bias, yr);
          break;
        case 3:
          gemv_panels_rows<S, 3, 2>(xr, w, lo, hi, bias, yr);
          break;
        default:
          gemv_panels_rows<S, 4, 1>(xr, w, lo, hi, bias, yr);
          break;
      }
    }
  });
}

// ---- GEMV: a few rows of x against row-major weights -----------------------------------------------------

// out[n][m] = w_row[n] . x_row[m] over K for NB weight rows and MB rows of x; each weight vector is loaded
// once.
template <class S, int NB, int MB, class W>
DSK_ALWAYS_INLINE void rows_dot(const W* const* wr, const float* const* xr, index_t K, float (&out)[NB][MB]) {
  using V = typename S::f32;
  V acc[NB][MB];
  for (int n = 0; n < NB; ++n)
    for (int m = 0; m < MB; ++m) acc[n][m] = S::zero();
  index_t k = 0;
  for (; k + 8 <= K; k += 8) {
    V xv[MB];
    for (int m = 0; m < MB; ++m) xv[m] = S::load(xr[m] + k);
    for (int n = 0; n < NB; ++n) {
      const V wv = S::load(wr[n] + k);
      for (int m = 0; m < MB; ++m) acc[n][m] = S::fma(wv, xv[m], acc[n][m]);
    }
  }
  if (k < K) {
    const int t = static_cast<int>(K - k);
    V xv[MB];
    for (int m = 0; m < MB; ++m) xv[m] = S::load_partial(xr[m] + k, t);
    for (int n = 0; n < NB; ++n) {
      const V wv = S::load_partial(wr[n] + k, t);
      for (int m = 0; m < MB; ++m) acc[n][m] = S::fma(wv, xv[m], acc[n][m]);
    }
  }
  for (int n = 0; n < NB; ++n)
    for (int m = 0; m < MB; ++m) out[n][m] = S::reduce_add(acc[n][m]);
}

// Rows [lo, hi) of the output (plain: weight rows; swiglu: gate/up row pairs) for MB rows of x.
template <class S, int NB, int MB, class W, class Out>
void gemv_rows_block(const float* const* xr, view<const W, 2> w, view<const W, 2> w_up, bool swiglu,
                     index_t lo, index_t hi, const float* bias, Out* const* yr) {
  const index_t K = w.extent(1);
  constexpr int OUT = NB / 2;  // swiglu outputs per step
  index_t n = lo;
  if (!swiglu) {
    for (; n + NB <= hi; n += NB) {
      const W* wr[NB];
      for (int j = 0; j < NB; ++j) wr[j] = row_ptr(w, n + j);
      float d[NB][MB];
      rows_dot<S, NB, MB>(wr, xr, K, d);
      for (int j = 0; j < NB; ++j)
        for (int m = 0; m < MB; ++m) yr[m][n + j] = from_float<Out>(d[j][m] + (bias ? bias[n + j] : 0.0f));
    }
    for (; n < hi; ++n) {
      const W* wr[1] = {row_ptr(w, n)};
      float d[1][MB];
      rows_dot<S, 1, MB>(wr, xr, K, d);
      for (int m = 0; m < MB; ++m) yr[m][n] = from_float<Out>(d[0][m] + (bias ? bias[n] : 0.0f));
    }
  } else {
    for (; n + OUT <= hi; n += OUT) {
      const W* wr[NB];
      for (int j = 0; j < OUT; ++j) wr[2 * j] = row_ptr(w, n + j), wr[2 * j + 1] = row_ptr(w_up, n + j);
      float d[NB][MB];
      rows_dot<S, NB, MB>(wr, xr, K, d);
      for (int j = 0; j < OUT; ++j)
        for (int m = 0; m < MB; ++m)
          yr[m][n + j] = from_float<Out>(nn::packet::silu1(d[2 * j][m]) * d[2 * j + 1][m]);
    }
    for (; n < hi; ++n) {
      const W* wr[2] = {row_ptr(w, n), row_ptr(w_up, n)};
      float d[2][MB];
      rows_dot<S, 2, MB>(wr, xr, K, d);
      for (int m = 0; m < MB; ++m) yr[m][n] = from_float<Out>(nn::packet::silu1(d[0][m]) * d[1][m]);
    }
  }
}

// y[0:M] = x[0:M] * W^T (or the SwiGLU of gate/up) for M <= 8 from row-major weights; parallel over rows of
// W.
template <class S, class W, class Out>
void gemv_rows(index_t M, const float* x, index_t ldx, view<const W, 2> w, view<const W, 2> w_up, bool swiglu,
               const float* bias, Out* y, index_t ldy) {
  const index_t N = w.extent(0);
  const index_t row_bytes = std::max<index_t>(1, w.extent(1) * index_t(sizeof(W)) * (swiglu ? 2 : 1));
  const index_t grain = std::max<index_t>(4, (index_t(1) << 17) / row_bytes);
  parallel_for_chunks(0, N, grain, [&](index_t lo, index_t hi) {
    for (index_t m0 = 0; m0 < M; m0 += 4) {
      const float* xr[4];
      Out* yr[4];
      const index_t mb = std::min<index_t>(4, M - m0);
      for (index_t m = 0; m < mb; ++m) xr[m] = x + (m0 + m) * ldx, yr[m] = y + (m0 + m) * ldy;
      switch (mb) {
        case 1:
          gemv_rows_block<S, 4, 1>(xr, w, w_up, swiglu, lo, hi, bias, yr);
          break;
        case 2:
          gemv_rows_block<S, 4, 2>(xr, w, w_up, swiglu, lo, hi, bias, yr);
          break;
        case 3:
          gemv_rows_block<S, 2, 3>(xr, w, w_up, swiglu, lo, hi, bias, yr);
          break;
        default:
          gemv_rows_block<S, 2, 4>(xr, w, w_up, swiglu, lo, hi, bias, yr);
          break;
      }
    }
  });
}

DSK_ISA_END
}  // namespace dsk::gemm::detail
