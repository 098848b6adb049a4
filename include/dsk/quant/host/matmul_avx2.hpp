// Host kernels of the quantized products y[M, N] = x[M, K] * W[N, K]^T, templated on the packet layer
// (simd::scalar, simd::avx2 or simd::neon, bit-identical): weight-only (codes dequantized in registers, fp32
// FMA) and W8A8/W4A8 (per-token int8 activations, exact int32 dot products per group, in one canonical
// rescaling order for every path: u8 x s8 multiply-adds on the stored codes for decode, M < 16; an int16
// weight panel per 64-row block from 16 tokens on). Checked against quant/ref.hpp in tests/quant/matmul.cpp.
//
// int4 codes stay in the canonical int4x2 layout; the kernels decode a run of bytes into the even codes (low
// nibbles) and the odd codes (high nibbles) of a block of elements, so the activations are permuted once per
// call into that order: each full block (16 elements weight-only, 32 for the int16 panel, 64 for the int8
// decode) as its even elements then its odd elements. The K % block tail keeps natural order and goes
// through a scalar loop shared by all packet layers.
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
// The result does not depend on the path, the tile or the packet layer (the canonical order):
//   y[m, n] = sx[m] * t,  t = 0, then for each chunk c in order  t = fma(float(dot_c), scale(n, c), t),
// where dot_c is the exact int32 dot product of token m's codes and row n's codes over chunk c: a group, or
// with per-channel scales a run of a8_chunk columns (all with the row's one scale). Every kernel sums a chunk
// exactly in integers, however its lanes split it, and then applies this order; tests/quant/matmul.cpp checks
// it bit for bit against the formula evaluated on quant/ref.hpp's codes.
//
// Two paths. Decode (M < 16): int8 token codes against the weight codes as stored, u8 x s8 multiply-adds
// (int4: offset codes code + 8 from a mask and a shift, the offset removed per chunk with the token's code
// sums; int8: |w| x sign-adjusted x), 32 (int8) or 64 (int4) columns per step, a 1 x 8 or 2 x 4 tile of
// outputs folded into one packet of 8 lanes per chunk. Panel (M >= 16): int16 token codes against 64-row
// blocks of weights widened once to int16 (L2-resident), reused by every group of 4 tokens.

// Columns per int32 dot product with per-channel scales: |dot| <= 2^16 * 127 * 127 < 2^31.
inline constexpr index_t a8_chunk = index_t{1} << 16;
template <format F>
constexpr index_t a8_span(index_t K) {
  return F.group != 0 ? F.group : std::min(K, a8_chunk);
}
template <format F>
constexpr index_t a8_chunks(index_t K) {
  return K == 0 ? 0 : (K + a8_span<F>(K) - 1) / a8_span<F>(K);
}

// Scales of chunks [c0, c0 + count) for a tile's lanes: out[j][m * NR + n] = scale(n0 + n, c0 + j), the
// other lanes zero. Group formats: 8 scales of each row per load, transposed to 8 chunk packets.
template <class S, format F, int MR, int NR>
void tile_scales(const qweight_view<F>& q, index_t n0, index_t c0, index_t count,
                 float (&out)[scale_chunk][8]) {
  if constexpr (F.group == 0) {
    for (index_t j = 0; j < count; ++j)
      for (int l = 0; l < 8; ++l) out[j][l] = l < MR * NR ? q.scale(n0 + l % NR, 0) : 0.0f;
  } else {
    for (index_t j = 0; j < count; j += 8) {
      const int n = static_cast<int>(std::min<index_t>(8, count - j));
      typename S::f32 rows[NR], r[8];
      for (int i = 0; i < NR; ++i) {
        const scale_t<F>* p = q.scales + (n0 + i) * q.scale_stride + c0 + j;
        rows[i] = n == 8 ? S::load(p) : S::load_partial(p, n);
      }
      for (int l = 0; l < 8; ++l) r[l] = l < MR * NR ? rows[l % NR] : S::zero();
      S::transpose8(r);
      for (int i = 0; i < n; ++i) S::store(out[j + i], r[i]);
    }
  }
}

// d + the exact dot products over columns [kt0, kt1) (past the vector part: natural order in xq).
template <class S, format F, int MR, int NR, class X>
typename S::i32 add_tail(typename S::i32 d, const X* xq, index_t ldx, const qweight_view<F>& q, index_t n0,
                         index_t kt0, index_t kt1) {
  alignas(32) std::int32_t t[8] = {};
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NR; ++n) {
      std::int32_t s = 0;
      for (index_t k = kt0; k < kt1; ++k) s += std::int32_t{xq[m * ldx + k]} * q.code(n0 + n, k);
      t[m * NR + n] = s;
    }
  return S::add_i32(d, S::load_i32(t));
}

// y[m * ldy + n] = sx[m] * lane m * NR + n of tot.
template <class S, int MR, int NR>
void store_tile(typename S::f32 tot, const float* sx, float* y, index_t ldy) {
  alignas(32) float t[8];
  S::store(t, tot);
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NR; ++n) y[m * ldy + n] = sx[m] * t[m * NR + n];
}

// acc[m * NR + n] += the dot products of rows n in [N0, N0 + 4) of the tile over columns [k0, k0 + len), with
// len = Len when Len > 0 (a full step of a group format: a constant trip count, unrolled).
template <class S, format F, int MR, int NR, int N0, index_t Len>
DSK_ALWAYS_INLINE void a8_decode_pass(typename S::i32 (&acc)[8], const std::int8_t* xq, index_t ldx,
                                      const std::uint8_t* const (&c)[NR], index_t k0, index_t len) {
  using B8 = typename S::i8;
  constexpr int N1 = NR < N0 + 4 ? NR : N0 + 4;
  if constexpr (Len > 0) len = Len;
  if constexpr (F.type == qtype::int4) {
    for (index_t j = 0; j < len; j += 64)
      for (int n = N0; n < N1; ++n) {
        const index_t k = k0 + j;
        B8 lo, hi;
        S::load_u4(c[n] + k / 2, lo, hi);
        for (int m = 0; m < MR; ++m)
          acc[m * NR + n] = S::dot_u4s8(acc[m * NR + n], lo, S::load_i8(xq + m * ldx + k), hi,
                                        S::load_i8(xq + m * ldx + k + 32));
      }
  } else {
    for (index_t j = 0; j < len; j += 32)
      for (int n = N0; n < N1; ++n) {
        const index_t k = k0 + j;
        const B8 w = S::load_i8(reinterpret_cast<const std::int8_t*>(c[n] + k));
        for (int m = 0; m < MR; ++m)
          acc[m * NR + n] = S::dot_i8(acc[m * NR + n], w, S::load_i8(xq + m * ldx + k));
      }
  }
}

// Decode tile: MR tokens x NR rows (lane m * NR + n of each chunk's packet; MR * NR <= 8, the other lanes
// zero). xq: int8 codes, each full 64-block permuted to its 32 even then 32 odd elements for int4 weights.
// corr (int4): per chunk, 8 lanes of -8 * the sum of the token's codes over the chunk's vector part, in the
// tile's lane order. With groups of 32, int4 steps cover two chunks, one per 128-bit half (lanes 0-3, 4-7).
template <class S, format F, int MR, int NR>
void a8_decode_tile(const std::int8_t* xq, index_t ldx, const float* sx, const std::int32_t* corr,
                    const qweight_view<F>& q, index_t n0, float* y, index_t ldy) {
  static_assert(MR * NR <= 8);
  using P = typename S::f32;
  using I = typename S::i32;
  constexpr bool int4 = F.type == qtype::int4;
  constexpr index_t blk = int4 ? 64 : 32;
  constexpr int step = int4 && F.group == 32 ? 2 : 1;  // chunks per vector step
  constexpr index_t full = step * F.group;             // columns of a full step (group formats)
  const index_t K = q.cols, span = a8_span<F>(K), C = a8_chunks<F>(K), Kb = K / blk * blk;
  alignas(32) float sc[scale_chunk][8];
  P tot = S::zero();
  const std::uint8_t* c[NR];
  for (int n = 0; n < NR; ++n) c[n] = q.code_row(n0 + n);
  for (index_t ch = 0; ch < C; ch += step) {
    const index_t k0 = ch * span, kv1 = std::min(std::min(K, k0 + step * span), Kb);
    I acc[8];
    for (auto& e : acc) e = S::zero_i32();
    // At most 4 rows per pass over the chunk: 8 accumulators next to the two token vectors, three constants
    // and the decoded codes do not fit 16 registers (GCC kept 7 of them on the stack).
    if (full > 0 && kv1 - k0 == full) {
      a8_decode_pass<S, F, MR, NR, 0, full>(acc, xq, ldx, c, k0, full);
      if constexpr (NR > 4) a8_decode_pass<S, F, MR, NR, 4, full>(acc, xq, ldx, c, k0, full);
    } else if (k0 < kv1) {
      a8_decode_pass<S, F, MR, NR, 0, 0>(acc, xq, ldx, c, k0, kv1 - k0);
      if constexpr (NR > 4) a8_decode_pass<S, F, MR, NR, 4, 0>(acc, xq, ldx, c, k0, kv1 - k0);
    }
    if (ch % scale_chunk == 0) tile_scales<S, F, MR, NR>(q, n0, ch, std::min(scale_chunk, C - ch), sc);
    I d[2];
    if constexpr (step == 2)
      S::reduce_add8_halves(acc, d[0], d[1]);
    else
      d[0] = S::reduce_add8(acc);
    for (int h = 0; h < step && ch + h < C; ++h) {
      const index_t cc = ch + h, kt0 = std::max(cc * span, Kb), kt1 = std::min(K, (cc + 1) * span);
      I dd = d[h];
      if constexpr (int4) dd = S::add_i32(dd, S::load_i32(corr + cc * 8));
      if (kt0 < kt1) dd = add_tail<S, F, MR, NR>(dd, xq, ldx, q, n0, kt0, kt1);
      tot = S::fma(S::to_f32(dd), S::load(sc[cc % scale_chunk]), tot);
    }
  }
  store_tile<S, MR, NR>(tot, sx, y, ldy);
}

// Panel tile: MR tokens x NR rows from int16 token codes (int4: each full 32-block as its 16 even then 16 odd
// elements) and the rows' full 32-blocks widened to int16 in the same order (row n0 + n at pw + n * ldp).
template <class S, format F, int MR, int NR>
void a8_panel_tile(const std::int16_t* xq, index_t ldx, const float* sx, const qweight_view<F>& q, index_t n0,
                   const std::int16_t* pw, index_t ldp, float* y, index_t ldy) {
  static_assert(MR * NR <= 8);
  using P = typename S::f32;
  using I = typename S::i32;
  using H = typename S::i16;
  const index_t K = q.cols, span = a8_span<F>(K), C = a8_chunks<F>(K), Kb = K / 32 * 32;
  alignas(32) float sc[scale_chunk][8];
  P tot = S::zero();
  for (index_t ch = 0; ch < C; ++ch) {
    const index_t k0 = ch * span, k1 = std::min(K, k0 + span), kv1 = std::min(k1, Kb);
    I acc[8];
    for (auto& e : acc) e = S::zero_i32();
    for (index_t k = k0; k < kv1; k += 32) {
      // One 16-column half at a time: NR weight vectors and one token vector live, each loaded once (the
      // 4 x 2 tile otherwise ran out of registers and re-loaded every token vector per row, 20 loads per 16
      // vpmaddwd, which made it load-bound).
      for (int h = 0; h < 2; ++h) {
        H w[NR];
        for (int n = 0; n < NR; ++n) w[n] = S::load_i16(pw + n * ldp + k + 16 * h);
        for (int m = 0; m < MR; ++m) {
          H xv = S::load_i16(xq + m * ldx + k + 16 * h);
          S::pin(xv);
          for (int n = 0; n < NR; ++n) acc[m * NR + n] = S::madd_i16(acc[m * NR + n], xv, w[n]);
        }
      }
    }
    if (ch % scale_chunk == 0) tile_scales<S, F, MR, NR>(q, n0, ch, std::min(scale_chunk, C - ch), sc);
    I d = S::reduce_add8(acc);
    if (std::max(k0, Kb) < k1) d = add_tail<S, F, MR, NR>(d, xq, ldx, q, n0, std::max(k0, Kb), k1);
    tot = S::fma(S::to_f32(d), S::load(sc[ch % scale_chunk]), tot);
  }
  store_tile<S, MR, NR>(tot, sx, y, ldy);
}

// Row n's full 32-blocks [0, Kb) as int16 in the panel kernel's order.
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

// Position p of a 64-block permuted to evens then odds -> its natural offset in the block.
constexpr index_t unpermute64(index_t p) { return p < 32 ? 2 * p : 2 * (p - 32) + 1; }

template <class S, format F>
void matmul_a8_decode(view<const float, 2> x, const qweight_view<F>& q, view<float, 2> y, const char* where) {
  constexpr bool int4 = F.type == qtype::int4;
  const index_t M = x.extent(0), K = x.extent(1), N = q.rows;
  tensor<std::int8_t, 2> xq({M, K}, uninitialized);
  std::vector<float> sx(static_cast<std::size_t>(M));
  quantize_tokens_rows<S, std::int8_t, int4 ? 64 : 0>(x.data(), x.stride(0), 0, M, K, xq.data(), K, sx.data(),
                                                      where);
  const index_t span = a8_span<F>(K), C = a8_chunks<F>(K), Kb = K / 64 * 64;
  // int4: -8 * the code sums per (token, chunk) over [0, Kb), as 8-lane packets in the lane order of the
  // 1 x 8 / 1 x 1 tiles (corr1: every lane token m) and of the 2 x 4 tiles (corr2: lanes 0-3 token m, 4-7
  // token m + 1).
  std::vector<std::int32_t> corr1, corr2;
  if constexpr (int4) {
    std::vector<std::int32_t> xs(static_cast<std::size_t>(M * C), 0);
    for (index_t m = 0; m < M; ++m)
      for (index_t k = 0; k < Kb; ++k)
        xs[static_cast<std::size_t>(m * C + (k / 64 * 64 + unpermute64(k % 64)) / span)] += xq(m, k);
    corr1.resize(static_cast<std::size_t>(M * C * 8));
    corr2.resize(static_cast<std::size_t>(M * C * 8));
    for (index_t m = 0; m < M; ++m)
      for (index_t ch = 0; ch < C; ++ch)
        for (int l = 0; l < 8; ++l) {
          const index_t m2 = std::min(M - 1, m + l / 4);
          corr1[static_cast<std::size_t>((m * C + ch) * 8 + l)] =
              -8 * xs[static_cast<std::size_t>(m * C + ch)];
          corr2[static_cast<std::size_t>((m * C + ch) * 8 + l)] =
              -8 * xs[static_cast<std::size_t>(m2 * C + ch)];
        }
  }
  auto c1 = [&](index_t m) { return corr1.empty() ? nullptr : corr1.data() + m * C * 8; };
  auto c2 = [&](index_t m) { return corr2.empty() ? nullptr : corr2.data() + m * C * 8; };
  const std::int8_t* xp = xq.data();
  float* yp = y.data();
  const index_t ldy = y.stride(0);
  const index_t blocks = (N + rows_per_block - 1) / rows_per_block;
  parallel_for(0, blocks, [&](index_t b) {
    const index_t n_lo = b * rows_per_block, n_hi = std::min(N, n_lo + rows_per_block);
    index_t n = n_lo;
    for (; n + 8 <= n_hi; n += 8) {
      index_t m = 0;
      for (; m + 2 <= M; m += 2)
        for (index_t j = 0; j < 8; j += 4)
          a8_decode_tile<S, F, 2, 4>(xp + m * K, K, sx.data() + m, c2(m), q, n + j, yp + m * ldy + n + j,
                                     ldy);
      if (m < M) a8_decode_tile<S, F, 1, 8>(xp + m * K, K, sx.data() + m, c1(m), q, n, yp + m * ldy + n, 0);
    }
    for (; n < n_hi; ++n)
      for (index_t m = 0; m < M; ++m)
        a8_decode_tile<S, F, 1, 1>(xp + m * K, K, sx.data() + m, c1(m), q, n, yp + m * ldy + n, 0);
  });
}

template <class S, format F>
void matmul_a8_panel(view<const float, 2> x, const qweight_view<F>& q, view<float, 2> y, const char* where) {
  const index_t M = x.extent(0), K = x.extent(1), N = q.rows;
  tensor<std::int16_t, 2> xq({M, K}, uninitialized);
  std::vector<float> sx(static_cast<std::size_t>(M));
  parallel_for_chunks(0, M, 16, [&](index_t lo, index_t hi) {
    quantize_tokens_rows<S, std::int16_t, F.type == qtype::int4 ? 32 : 0>(x.data(), x.stride(0), lo, hi, K,
                                                                          xq.data(), K, sx.data(), where);
  });
  const std::int16_t* xp = xq.data();
  float* yp = y.data();
  const index_t ldy = y.stride(0), Kb = K / 32 * 32;
  // Each block of weight rows is widened to int16 once (a 64 x K panel, 256 KiB for K = 2048, L2-resident)
  // and reused by every group of 4 tokens, which takes the decode (byte->int16 shuffles competing with the
  // adds for two FP pipes) out of the inner loop.
  const index_t blocks = (N + rows_per_block - 1) / rows_per_block;
  parallel_for_chunks(0, blocks, 1, [&](index_t b_lo, index_t b_hi) {
    std::vector<std::int16_t> panel(static_cast<std::size_t>(rows_per_block * Kb));
    for (index_t b = b_lo; b < b_hi; ++b) {
      const index_t n_lo = b * rows_per_block, n_hi = std::min(N, n_lo + rows_per_block);
      for (index_t n = n_lo; n < n_hi; ++n) decode_row_i16<S>(q, n, Kb, panel.data() + (n - n_lo) * Kb);
      auto pw = [&](index_t n) { return panel.data() + (n - n_lo) * Kb; };
      index_t m = 0;
      for (; m + 4 <= M; m += 4) {
        index_t n = n_lo;
        for (; n + 2 <= n_hi; n += 2)
          a8_panel_tile<S, F, 4, 2>(xp + m * K, K, sx.data() + m, q, n, pw(n), Kb, yp + m * ldy + n, ldy);
        for (; n < n_hi; ++n)
          a8_panel_tile<S, F, 4, 1>(xp + m * K, K, sx.data() + m, q, n, pw(n), Kb, yp + m * ldy + n, ldy);
      }
      for (; m < M; ++m) {
        index_t n = n_lo;
        for (; n + 4 <= n_hi; n += 4)
          a8_panel_tile<S, F, 1, 4>(xp + m * K, K, sx.data() + m, q, n, pw(n), Kb, yp + m * ldy + n, 0);
        for (; n < n_hi; ++n)
          a8_panel_tile<S, F, 1, 1>(xp + m * K, K, sx.data() + m, q, n, pw(n), Kb, yp + m * ldy + n, 0);
      }
    }
  });
}

// From 16 tokens on (and K >= 32) the panel path; below, the decode path.
template <class S, format F>
void matmul_a8(view<const float, 2> x, const qweight_view<F>& q, view<float, 2> y, const char* where) {
  if (x.extent(0) >= 16 && x.extent(1) >= 32)
    matmul_a8_panel<S>(x, q, y, where);
  else
    matmul_a8_decode<S>(x, q, y, where);
}

DSK_ISA_END
}  // namespace dsk::quant::detail
