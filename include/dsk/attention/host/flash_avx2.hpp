// Host engine behind every attention kernel of dsk::attention: online-softmax ("flash") attention of a set of
// query rows that share one KV head, against a list of key ranges, on the packet layer S (simd::scalar or
// simd::avx2). Checked against dsk/attention/ref.hpp through the public entry points (tests/attention/*).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "dsk/core/config.hpp"
#include "dsk/core/view.hpp"
#include "dsk/simd/simd.hpp"

#if defined(DSK_HOST_ISA_AVX2)
#include <immintrin.h>
#endif

namespace dsk::attention {

// Keys [begin, end) of one KV head: the unit in which callers tell the engine what to visit.
struct key_range {
  index_t begin = 0;
  index_t end = 0;
};

namespace detail {
DSK_ISA_BEGIN

inline constexpr int tile_keys = 64;  // keys per tile: a 64 x 576 float K tile still fits L2 next to V
inline constexpr int row_block = 6;   // rows per P.V register block (6 x 2 packets of accumulators)
inline constexpr float neg_inf = -std::numeric_limits<float>::infinity();

// Query rows that share one KV head, with their running softmax state. Row r sees the keys in [lo[r], hi[r])
// (the causal / window / compression mask); acc holds the unnormalised output sum_j e^(s_j - m) v_j.
struct row_set {
  index_t n = 0;
  const float* const* q = nullptr;  // [n] query rows (head_dim floats each)
  const index_t* lo = nullptr;      // [n]
  const index_t* hi = nullptr;      // [n]
  float* acc = nullptr;             // [n, value_dim], row stride value_dim
  float* m = nullptr;               // [n] running max of the scaled scores (-inf: nothing seen yet)
  float* l = nullptr;               // [n] running sum of e^(s - m)
};

// Fresh state: acc = 0, m = -inf, l = 0.
inline void reset_state(index_t n, int value_dim, float* acc, float* m, float* l) {
  std::fill(acc, acc + n * value_dim, 0.0f);
  std::fill(m, m + n, neg_inf);
  std::fill(l, l + n, 0.0f);
}

// s[i][c] = q_i . k_c for R rows and nk4 keys (a multiple of 4). Dot products along head_dim, four keys at a
// time, reduced together: no transposed copy of K, so the same code serves one decode row and a prefill tile.
// K: the key element type (float, or bf16 for a bf16 latent cache: widened exactly on load).
template <class S, int D, int R, class K>
DSK_ALWAYS_INLINE void qk_rows(const float* const* q, const K* const* kp, int nk4, float (*s)[tile_keys]) {
  using P = typename S::f32;
  for (int c = 0; c < nk4; c += 4) {
    P acc[R][4];
    for (int i = 0; i < R; ++i)
      for (int k = 0; k < 4; ++k) acc[i][k] = S::zero();
    const K *k0 = kp[c], *k1 = kp[c + 1], *k2 = kp[c + 2], *k3 = kp[c + 3];
    for (int d = 0; d < D; d += S::width) {
      const P b0 = S::load(k0 + d), b1 = S::load(k1 + d), b2 = S::load(k2 + d), b3 = S::load(k3 + d);
      for (int i = 0; i < R; ++i) {
        const P a = S::load(q[i] + d);
        acc[i][0] = S::fma(a, b0, acc[i][0]);
        acc[i][1] = S::fma(a, b1, acc[i][1]);
        acc[i][2] = S::fma(a, b2, acc[i][2]);
        acc[i][3] = S::fma(a, b3, acc[i][3]);
      }
    }
    for (int i = 0; i < R; ++i) S::reduce_add4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], &s[i][c]);
  }
}

template <class S, int D, class K>
void qk_block(const float* const* q, int rows, const K* const* kp, int nk4, float (*s)[tile_keys]) {
  for (int i = 0; i < rows; i += 3) {
    switch (std::min(3, rows - i)) {
      case 3:
        qk_rows<S, D, 3>(q + i, kp, nk4, s + i);
        break;
      case 2:
        qk_rows<S, D, 2>(q + i, kp, nk4, s + i);
        break;
      default:
        qk_rows<S, D, 1>(q + i, kp, nk4, s + i);
        break;
    }
  }
}

// acc_i[c0 .. c0 + NV*w) += sum_j p[i][j] v_j[...] for R rows; NV packets of columns per pass keep R*NV
// independent FMA chains in flight.
template <class S, int R, int NV, class V>
DSK_ALWAYS_INLINE void pv_cols(float* const* acc, const float (*p)[tile_keys], const V* const* vp, int n,
                               int c0) {
  using P = typename S::f32;
  P a[R][NV];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) a[i][v] = S::load(acc[i] + c0 + v * S::width);
  for (int j = 0; j < n; ++j) {
    P b[NV];
    for (int v = 0; v < NV; ++v) b[v] = S::load(vp[j] + c0 + v * S::width);
    for (int i = 0; i < R; ++i) {
      const P w = S::broadcast(p[i][j]);
      for (int v = 0; v < NV; ++v) a[i][v] = S::fma(w, b[v], a[i][v]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) S::store(acc[i] + c0 + v * S::width, a[i][v]);
}

template <class S, int Dv, int R, class V>
void pv_rows(float* const* acc, const float (*p)[tile_keys], const V* const* vp, int n) {
  constexpr int nv_max = std::max(1, std::min(8, 12 / R));
  constexpr int NV = std::min(nv_max, Dv / S::width);
  constexpr int step = NV * S::width;
  int c0 = 0;
  for (; c0 + step <= Dv; c0 += step) pv_cols<S, R, NV>(acc, p, vp, n, c0);
  for (; c0 < Dv; c0 += S::width) pv_cols<S, R, 1>(acc, p, vp, n, c0);
}

template <class S, int Dv, class V>
void pv_block(float* const* acc, int rows, const float (*p)[tile_keys], const V* const* vp, int n) {
  switch (rows) {
    case 6:
      pv_rows<S, Dv, 6>(acc, p, vp, n);
      break;
    case 5:
      pv_rows<S, Dv, 5>(acc, p, vp, n);
      break;
    case 4:
      pv_rows<S, Dv, 4>(acc, p, vp, n);
      break;
    case 3:
      pv_rows<S, Dv, 3>(acc, p, vp, n);
      break;
    case 2:
      pv_rows<S, Dv, 2>(acc, p, vp, n);
      break;
    default:
      pv_rows<S, Dv, 1>(acc, p, vp, n);
      break;
  }
}

// One online-softmax step of one row over a tile of scores s[0 .. n) whose visible columns are [clo, chi):
// masks and scales the scores, turns them into e^(s - m_new) in place, rescales the running state.
// Returns false when the row sees nothing in the tile (its probabilities are then all zero).
template <class S, int Dv>
bool softmax_step(float* s, int n, int clo, int chi, float scale, float& m, float& l, float* acc) {
  using P = typename S::f32;
  const int npad = (n + S::width - 1) / S::width * S::width;
  if (clo >= chi) {
    std::fill(s, s + npad, 0.0f);
    return false;
  }
  const P vs = S::broadcast(scale);
  P vmax = S::broadcast(neg_inf);
  for (int c = 0; c < npad; c += S::width) S::store(s + c, S::mul(S::load(s + c), vs));
  for (int c = 0; c < clo; ++c) s[c] = neg_inf;
  for (int c = chi; c < npad; ++c) s[c] = neg_inf;
  for (int c = 0; c < npad; c += S::width) vmax = S::max(vmax, S::load(s + c));
  const float tile_max = S::reduce_max(vmax);
  // NaN scores propagate: a NaN input gives a NaN row, never a silently finite one.
  const float m_new = std::isnan(tile_max) ? tile_max : std::max(m, tile_max);
  const P vm = S::broadcast(m_new);
  P vsum = S::zero();
  for (int c = 0; c < npad; c += S::width) {
    const P e = S::exp(S::sub(S::load(s + c), vm));
    S::store(s + c, e);
    vsum = S::add(vsum, e);
  }
  const float alpha = m == neg_inf ? 0.0f : std::exp(m - m_new);
  l = l * alpha + S::reduce_add(vsum);
  if (alpha != 1.0f) {
    const P va = S::broadcast(alpha);
    for (int c = 0; c < Dv; c += S::width) S::store(acc + c, S::mul(S::load(acc + c), va));
  }
  m = m_new;
  return true;
}

// Attends the rows of `st` to the keys listed in `ranges` of KV head `kvh`, updating their running state.
// KV provides key(j, h) and value(j, h): pointers to head_dim / value_dim contiguous elements (float or
// bf16).
template <class S, int D, int Dv, class KV>
void attend(const KV& kv, index_t kvh, std::span<const key_range> ranges, const row_set& st, float scale) {
  static_assert(D % S::width == 0 && Dv % S::width == 0,
                "attention engine: head dims must be multiples of 8");
  using K = std::remove_cvref_t<decltype(*kv.key(0, 0))>;
  using V = std::remove_cvref_t<decltype(*kv.value(0, 0))>;
  alignas(64) float s[row_block][tile_keys];
  const K* kp[tile_keys + 4];
  const V* vp[tile_keys];
  const float* qb[row_block];
  float* ab[row_block];
  for (const key_range& r : ranges) {
    for (index_t j0 = r.begin; j0 < r.end; j0 += tile_keys) {
      const int n = static_cast<int>(std::min<index_t>(tile_keys, r.end - j0));
      bool any = false;
      for (index_t i = 0; i < st.n && !any; ++i)
        any = st.lo[i] < j0 + n && st.hi[i] > j0 && st.lo[i] < st.hi[i];
      if (!any) continue;
      for (int c = 0; c < n; ++c) {
        kp[c] = kv.key(j0 + c, kvh);
        vp[c] = kv.value(j0 + c, kvh);
      }
      const int nk4 = (n + 3) / 4 * 4;
      for (int c = n; c < nk4; ++c) kp[c] = kp[n - 1];  // padding keys: computed, then masked
      for (index_t rb = 0; rb < st.n; rb += row_block) {
        const int rows = static_cast<int>(std::min<index_t>(row_block, st.n - rb));
        bool block_any = false;
        for (int i = 0; i < rows; ++i) {
          const index_t row = rb + i;
          block_any |= st.lo[row] < j0 + n && st.hi[row] > j0 && st.lo[row] < st.hi[row];
          qb[i] = st.q[row];
          ab[i] = st.acc + row * Dv;
        }
        if (!block_any) continue;
        qk_block<S, D>(qb, rows, kp, nk4, s);
        for (int i = 0; i < rows; ++i) {
          const index_t row = rb + i;
          const int clo = static_cast<int>(std::clamp<index_t>(st.lo[row] - j0, 0, n));
          const int chi = static_cast<int>(std::clamp<index_t>(st.hi[row] - j0, 0, n));
          softmax_step<S, Dv>(s[i], n, clo, std::max(clo, chi), scale, st.m[row], st.l[row], ab[i]);
        }
        pv_block<S, Dv>(ab, rows, s, vp, n);
      }
    }
  }
}

// out = acc / l (zeros for a row that saw no key); lse = m + ln l (-inf for such a row).
template <class S, int Dv>
void finalize_row(const float* acc, float m, float l, float* out, float* lse) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const typename S::f32 vi = S::broadcast(inv);
  for (int c = 0; c < Dv; c += S::width) S::store(out + c, S::mul(S::load(acc + c), vi));
  if (lse) *lse = l > 0.0f ? m + std::log(l) : neg_inf;
}

// Combines partial state b into a (both unnormalised: acc, m, l).
template <class S, int Dv>
void combine_state(float* acc_a, float& m_a, float& l_a, const float* acc_b, float m_b, float l_b) {
  if (m_b == neg_inf || l_b == 0.0f) return;
  const float m = std::max(m_a, m_b);
  const float wa = m_a == neg_inf ? 0.0f : std::exp(m_a - m), wb = std::exp(m_b - m);
  const typename S::f32 va = S::broadcast(wa), vb = S::broadcast(wb);
  for (int c = 0; c < Dv; c += S::width)
    S::store(acc_a + c, S::fma(S::load(acc_b + c), vb, S::mul(S::load(acc_a + c), va)));
  l_a = l_a * wa + l_b * wb;
  m_a = m;
}

// Key/value access of a contiguous cache: k [keys, kv_heads, head_dim], v [keys, kv_heads, value_dim] of T
// (float, or bf16 for MLA's bf16 latent cache).
template <class T>
struct contiguous_kv_of {
  const T* k;
  index_t k_s0, k_s1;
  const T* v;
  index_t v_s0, v_s1;
  const T* key(index_t j, index_t h) const { return k + j * k_s0 + h * k_s1; }
  const T* value(index_t j, index_t h) const { return v + j * v_s0 + h * v_s1; }
};
using contiguous_kv = contiguous_kv_of<float>;

// Key/value access of a paged cache: pages [num_pages, page_size, kv_heads, dim], key j lives in page
// table[j / page_size], slot j % page_size.
struct paged_kv {
  const float* k;
  index_t k_sp, k_ss, k_sh;
  const float* v;
  index_t v_sp, v_ss, v_sh;
  const std::int32_t* table;
  index_t page_size;
  const float* key(index_t j, index_t h) const {
    return k + table[j / page_size] * k_sp + (j % page_size) * k_ss + h * k_sh;
  }
  const float* value(index_t j, index_t h) const {
    return v + table[j / page_size] * v_sp + (j % page_size) * v_ss + h * v_sh;
  }
};

DSK_ISA_END
}  // namespace detail
}  // namespace dsk::attention
