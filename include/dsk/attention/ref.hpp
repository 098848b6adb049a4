// Plain scalar references of dsk::attention, written from the formulas in double precision: softmax attention
// under an explicit visibility predicate, and the block-sparse, NSA (causal and bidirectional) and MLA forms
// built on it. The oracle of tests/attention/*; shares no code with the optimised paths (host/*). Host only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "dsk/core/tensor.hpp"
#include "dsk/core/view.hpp"

namespace dsk::attention::ref {

// o[t, h] = sum_{j visible} softmax_j(scale * q[t, h] . k[j, h / G]) v[j, h / G], G = heads / kv_heads;
// lse[t, h] = ln sum_{j visible} e^(scale q.k_j). A row with no visible key gets o = 0, lse = -inf.
// visible(t, h, j) -> bool. q: [T, H, D], k: [L, Hkv, D], v: [L, Hkv, Dv], o: [T, H, Dv], lse: [T, H].
template <class Visible>
void attention(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<double, 3> o,
               view<double, 2> lse, double scale, Visible&& visible) {
  const index_t T = q.extent(0), H = q.extent(1), D = q.extent(2), L = k.extent(0), Dv = v.extent(2);
  const index_t G = H / k.extent(1);
  std::vector<double> s(static_cast<std::size_t>(L));
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h) {
      const index_t kh = h / G;
      double mx = -std::numeric_limits<double>::infinity();
      for (index_t j = 0; j < L; ++j) {
        if (!visible(t, h, j)) {
          s[j] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double dot = 0;
        for (index_t d = 0; d < D; ++d) dot += double(q(t, h, d)) * double(k(j, kh, d));
        s[j] = scale * dot;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (index_t d = 0; d < Dv; ++d) o(t, h, d) = 0;
      if (mx == -std::numeric_limits<double>::infinity()) {
        if (lse.data()) lse(t, h) = mx;
        continue;
      }
      for (index_t j = 0; j < L; ++j) {
        if (s[j] == -std::numeric_limits<double>::infinity()) continue;
        const double p = std::exp(s[j] - mx);
        sum += p;
        for (index_t d = 0; d < Dv; ++d) o(t, h, d) += p * double(v(j, kh, d));
      }
      for (index_t d = 0; d < Dv; ++d) o(t, h, d) /= sum;
      if (lse.data()) lse(t, h) = mx + std::log(sum);
    }
}

// Dense attention: query t at position offset + t; causal: keys j <= position; window w > 0: also j > pos -
// w.
inline void dense(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<double, 3> o,
                  view<double, 2> lse, double scale, bool causal, index_t window = 0, index_t offset = -1) {
  if (offset < 0) offset = k.extent(0) - q.extent(0);
  attention(q, k, v, o, lse, scale, [&](index_t t, index_t, index_t j) {
    const index_t p = offset + t;
    if (causal && j > p) return false;
    if (window > 0 && j <= p - window) return false;
    return true;
  });
}

// Block-sparse attention: query block i = t / block sees key block b = j / block iff b is listed in
// col_idx[row_ptr[i] .. row_ptr[i + 1]); causal additionally masks j > offset + t.
inline void bsr(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<double, 3> o,
                view<double, 2> lse, double scale, std::span<const std::int32_t> row_ptr,
                std::span<const std::int32_t> col_idx, index_t block, bool causal, index_t offset = -1) {
  if (offset < 0) offset = k.extent(0) - q.extent(0);
  attention(q, k, v, o, lse, scale, [&](index_t t, index_t, index_t j) {
    if (causal && j > offset + t) return false;
    const index_t i = t / block, b = j / block;
    for (auto e = row_ptr[static_cast<std::size_t>(i)]; e < row_ptr[static_cast<std::size_t>(i) + 1]; ++e)
      if (col_idx[static_cast<std::size_t>(e)] == b) return true;
    return false;
  });
}

// ---- NSA (arXiv 2502.11089), written from the paper's formulas ------------------------------------------
struct nsa_params {
  index_t cmp_block, cmp_stride, sel_block, sel_count, init_blocks, local_blocks, window;
  bool cmp = true, sel = true, win = true;
  double scale;
};

// NSA's block choice among blocks [0, count): the forced ones (initial and local), then the most important
// of the rest (ties: lower index) up to `limit` in all; returned in ascending order.
template <class Forced>
std::vector<index_t> select_blocks(const std::vector<double>& imp, index_t count, index_t limit,
                                   Forced forced) {
  std::vector<index_t> chosen, rest;
  for (index_t b = 0; b < count; ++b) (forced(b) ? chosen : rest).push_back(b);
  std::stable_sort(rest.begin(), rest.end(), [&](index_t a, index_t b) { return imp[a] > imp[b]; });
  for (index_t b : rest)
    if (static_cast<index_t>(chosen.size()) < limit) chosen.push_back(b);
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Compressed block i = phi(x[i*d .. i*d + l)): the mean, or (w given) w . vec(block + pe).
inline tensor<double, 3> nsa_compress(view<const float, 3> x, index_t l, index_t d,
                                      view<const float, 2> w = {}, view<const float, 2> pe = {}) {
  const index_t T = x.extent(0), H = x.extent(1), D = x.extent(2);
  const index_t nc = T >= l ? (T - l) / d + 1 : 0;
  tensor<double, 3> out(nc, H, D);
  for (index_t i = 0; i < nc; ++i)
    for (index_t h = 0; h < H; ++h)
      for (index_t r = 0; r < D; ++r) {
        double acc = 0;
        if (!w.data()) {
          for (index_t j = 0; j < l; ++j) acc += x(i * d + j, h, r);
          acc /= double(l);
        } else {
          for (index_t j = 0; j < l; ++j)
            for (index_t c = 0; c < D; ++c)
              acc += double(w(r, j * D + c)) * (double(x(i * d + j, h, c)) + pe(j, c));
        }
        out(i, h, r) = acc;
      }
  return out;
}

struct nsa_result {
  tensor<double, 3> o, o_cmp, o_sel, o_win;     // [T, H, Dv]
  std::vector<std::vector<index_t>> selected;   // [t * kv_heads + kvh]: ascending block indices
  std::vector<std::vector<double>> importance;  // [t * kv_heads + kvh]: per selection block
};

// o[t, h] = sum over enabled branches of gates[t, h, branch] * attention of that branch (causal, t =
// position).
inline nsa_result nsa(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v,
                      view<const float, 3> gates, const nsa_params& P, view<const float, 2> w_k = {},
                      view<const float, 2> pe_k = {}, view<const float, 2> w_v = {},
                      view<const float, 2> pe_v = {}) {
  const index_t T = q.extent(0), H = q.extent(1), D = q.extent(2), Hkv = k.extent(1), Dv = v.extent(2);
  const index_t G = H / Hkv;
  const tensor<double, 3> kc = nsa_compress(k, P.cmp_block, P.cmp_stride, w_k, pe_k);
  const tensor<double, 3> vc = nsa_compress(v, P.cmp_block, P.cmp_stride, w_v, pe_v);
  const index_t NC = kc.extent(0);
  nsa_result res{tensor<double, 3>(T, H, Dv),
                 tensor<double, 3>(T, H, Dv),
                 tensor<double, 3>(T, H, Dv),
                 tensor<double, 3>(T, H, Dv),
                 {},
                 {}};
  res.selected.resize(static_cast<std::size_t>(T * Hkv));
  res.importance.resize(static_cast<std::size_t>(T * Hkv));
  // softmax attention of head h at time t over the keys in `keys` (raw tokens) -> out
  auto raw_attention = [&](index_t t, index_t h, const std::vector<index_t>& keys, tensor<double, 3>& out) {
    const index_t kh = h / G;
    std::vector<double> s;
    double mx = -std::numeric_limits<double>::infinity();
    for (index_t j : keys) {
      double dot = 0;
      for (index_t x = 0; x < D; ++x) dot += double(q(t, h, x)) * k(j, kh, x);
      s.push_back(P.scale * dot);
      mx = std::max(mx, s.back());
    }
    double sum = 0;
    for (double& e : s) sum += (e = std::exp(e - mx));
    for (index_t c = 0; c < Dv; ++c) {
      double acc = 0;
      for (std::size_t x = 0; x < keys.size(); ++x) acc += s[x] * v(keys[x], kh, c);
      out(t, h, c) = keys.empty() ? 0.0 : acc / sum;
    }
  };
  for (index_t t = 0; t < T; ++t)
    for (index_t kvh = 0; kvh < Hkv; ++kvh) {
      // compressed keys visible at t: blocks ending at or before t
      index_t nc = 0;
      while (nc < NC && nc * P.cmp_stride + P.cmp_block - 1 <= t) ++nc;
      const index_t nsel = t / P.sel_block + 1;
      std::vector<double> imp(static_cast<std::size_t>(nsel), 0.0);
      for (index_t g = 0; g < G; ++g) {
        const index_t h = kvh * G + g;
        std::vector<double> s(static_cast<std::size_t>(nc));
        double mx = -std::numeric_limits<double>::infinity();
        for (index_t i = 0; i < nc; ++i) {
          double dot = 0;
          for (index_t x = 0; x < D; ++x) dot += double(q(t, h, x)) * kc(i, kvh, x);
          s[i] = P.scale * dot;
          mx = std::max(mx, s[i]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (index_t c = 0; c < Dv; ++c) {
          double acc = 0;
          for (index_t i = 0; i < nc; ++i) acc += s[i] / sum * vc(i, kvh, c);
          res.o_cmp(t, h, c) = acc;
        }
        // importance: p_cmp of compressed block i counts for every selection block its tokens overlap
        for (index_t i = 0; i < nc; ++i)
          for (index_t b = 0; b < nsel; ++b) {
            const index_t a0 = i * P.cmp_stride, a1 = a0 + P.cmp_block, b0 = b * P.sel_block,
                          b1 = b0 + P.sel_block;
            if (a0 < b1 && b0 < a1) imp[b] += s[i] / sum;
          }
      }
      // selection: initial and local blocks forced, then the most important (ties: lower index)
      const index_t last = t / P.sel_block;
      const auto chosen = select_blocks(imp, last + 1, P.sel_count, [&](index_t b) {
        return b < P.init_blocks || b > last - P.local_blocks;
      });
      res.selected[t * Hkv + kvh] = chosen;
      res.importance[t * Hkv + kvh] = imp;
      std::vector<index_t> sel_keys, win_keys;
      for (index_t j = 0; j <= t; ++j) {
        if (std::find(chosen.begin(), chosen.end(), j / P.sel_block) != chosen.end()) sel_keys.push_back(j);
        if (j > t - P.window) win_keys.push_back(j);
      }
      for (index_t g = 0; g < G; ++g) {
        const index_t h = kvh * G + g;
        raw_attention(t, h, sel_keys, res.o_sel);
        raw_attention(t, h, win_keys, res.o_win);
        for (index_t c = 0; c < Dv; ++c)
          res.o(t, h, c) = (P.cmp ? gates(t, h, 0) * res.o_cmp(t, h, c) : 0.0) +
                           (P.sel ? gates(t, h, 1) * res.o_sel(t, h, c) : 0.0) +
                           (P.win ? gates(t, h, 2) * res.o_win(t, h, c) : 0.0);
      }
    }
  return res;
}

// ---- Bidirectional NSA (encoder prefill), from the formulas with explicit masks ---------------------------
// Compressed blocks cover the whole sequence: block i spans tokens [i d, i d + l) clipped to [0, T), and
// blocks are added while the previous one ends before T (so every token is in one). phi: the mean of the
// tokens present, or (w given) w . vec(rows + pe) with zero rows for the missing tokens.
inline tensor<double, 3> nsa_compress_bidir(view<const float, 3> x, index_t l, index_t d,
                                            view<const float, 2> w = {}, view<const float, 2> pe = {}) {
  const index_t T = x.extent(0), H = x.extent(1), D = x.extent(2);
  index_t nc = 0;
  while (T > 0 && (nc == 0 || (nc - 1) * d + l < T)) ++nc;
  tensor<double, 3> out(nc, H, D);
  for (index_t i = 0; i < nc; ++i)
    for (index_t h = 0; h < H; ++h)
      for (index_t r = 0; r < D; ++r) {
        double acc = 0;
        index_t present = 0;
        for (index_t j = 0; j < l; ++j) {
          const index_t tok = i * d + j;
          if (tok >= T) continue;
          ++present;
          if (!w.data())
            acc += x(tok, h, r);
          else
            for (index_t c = 0; c < D; ++c)
              acc += double(w(r, j * D + c)) * (double(x(tok, h, c)) + pe(j, c));
        }
        out(i, h, r) = w.data() ? acc : acc / double(present);
      }
  return out;
}

struct nsa_bidir_result {
  tensor<double, 3> o, o_cmp, o_sel, o_win;     // [T, H, Dv]
  std::vector<std::vector<index_t>> selected;   // [query block * kv_heads + kvh]: ascending block indices
  std::vector<std::vector<double>> importance;  // [query block * kv_heads + kvh]: per selection block
};

// Bidirectional NSA: the score matrix of each branch under an explicit mask, softmax over the unmasked
// entries, then o = sum of gates * branch outputs. Compressed: every query sees every compressed block.
// Selection: per query block qb (tokens [qb l', (qb + 1) l')) and KV head, importance of selection block b =
// sum over the block's queries and the group's heads of p_cmp over the compressed blocks whose (clipped) span
// overlaps b; blocks b < init_blocks and |b - qb| < local_blocks forced, then the most important (ties:
// lower index) up to sel_count; query t sees the tokens of its block's chosen blocks. Window: |t - j| <= w.
inline nsa_bidir_result nsa_bidir(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v,
                                  view<const float, 3> gates, const nsa_params& P,
                                  view<const float, 2> w_k = {}, view<const float, 2> pe_k = {},
                                  view<const float, 2> w_v = {}, view<const float, 2> pe_v = {}) {
  const index_t T = q.extent(0), H = q.extent(1), D = q.extent(2), Hkv = k.extent(1), Dv = v.extent(2);
  const index_t G = H / Hkv;
  const tensor<double, 3> kc = nsa_compress_bidir(k, P.cmp_block, P.cmp_stride, w_k, pe_k);
  const tensor<double, 3> vc = nsa_compress_bidir(v, P.cmp_block, P.cmp_stride, w_v, pe_v);
  const index_t NC = kc.extent(0);
  const index_t NB = (T + P.sel_block - 1) / P.sel_block;
  nsa_bidir_result res{tensor<double, 3>(T, H, Dv),
                       tensor<double, 3>(T, H, Dv),
                       tensor<double, 3>(T, H, Dv),
                       tensor<double, 3>(T, H, Dv),
                       {},
                       {}};
  // Compressed branch: full score matrix [T, NC] per head, no mask.
  tensor<double, 3> p_cmp(T, H, NC);
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h) {
      double mx = -std::numeric_limits<double>::infinity();
      for (index_t i = 0; i < NC; ++i) {
        double dot = 0;
        for (index_t x = 0; x < D; ++x) dot += double(q(t, h, x)) * kc(i, h / G, x);
        p_cmp(t, h, i) = P.scale * dot;
        mx = std::max(mx, p_cmp(t, h, i));
      }
      double sum = 0;
      for (index_t i = 0; i < NC; ++i) sum += (p_cmp(t, h, i) = std::exp(p_cmp(t, h, i) - mx));
      for (index_t i = 0; i < NC; ++i) p_cmp(t, h, i) /= sum;
      for (index_t c = 0; c < Dv; ++c) {
        double acc = 0;
        for (index_t i = 0; i < NC; ++i) acc += p_cmp(t, h, i) * vc(i, h / G, c);
        res.o_cmp(t, h, c) = acc;
      }
    }
  // Selection per (query block, KV head).
  res.selected.resize(static_cast<std::size_t>(NB * Hkv));
  res.importance.resize(static_cast<std::size_t>(NB * Hkv));
  for (index_t qb = 0; qb < NB; ++qb)
    for (index_t kvh = 0; kvh < Hkv; ++kvh) {
      // sum of p_cmp over the block's queries and the group's heads, then spread over the overlapped blocks
      std::vector<double> psum(static_cast<std::size_t>(NC), 0.0), imp(static_cast<std::size_t>(NB), 0.0);
      for (index_t t = qb * P.sel_block; t < std::min(T, (qb + 1) * P.sel_block); ++t)
        for (index_t g = 0; g < G; ++g)
          for (index_t i = 0; i < NC; ++i) psum[i] += p_cmp(t, kvh * G + g, i);
      for (index_t i = 0; i < NC; ++i)
        for (index_t b = 0; b < NB; ++b) {
          const index_t a0 = i * P.cmp_stride, a1 = std::min(T, a0 + P.cmp_block), b0 = b * P.sel_block,
                        b1 = b0 + P.sel_block;
          if (a0 < b1 && b0 < a1) imp[b] += psum[i];
        }
      const auto chosen = select_blocks(imp, NB, P.sel_count, [&](index_t b) {
        return b < P.init_blocks || std::abs(b - qb) < P.local_blocks;
      });
      res.selected[qb * Hkv + kvh] = chosen;
      res.importance[qb * Hkv + kvh] = imp;
    }
  // chosen[(qb * Hkv + kvh) * NB + b]: block b is selected for query block qb and KV head kvh
  std::vector<char> chosen(static_cast<std::size_t>(NB * Hkv * NB), 0);
  for (index_t x = 0; x < NB * Hkv; ++x)
    for (index_t b : res.selected[x]) chosen[x * NB + b] = 1;
  attention(q, k, v, res.o_sel.view(), {}, P.scale, [&](index_t t, index_t h, index_t j) {
    return chosen[((t / P.sel_block) * Hkv + h / G) * NB + j / P.sel_block] != 0;
  });
  attention(q, k, v, res.o_win.view(), {}, P.scale,
            [&](index_t t, index_t, index_t j) { return std::abs(t - j) <= P.window; });
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h)
      for (index_t c = 0; c < Dv; ++c)
        res.o(t, h, c) = (P.cmp ? gates(t, h, 0) * res.o_cmp(t, h, c) : 0.0) +
                         (P.sel ? gates(t, h, 1) * res.o_sel(t, h, c) : 0.0) +
                         (P.win ? gates(t, h, 2) * res.o_win(t, h, c) : 0.0);
  return res;
}

// ---- MLA (DeepSeek-V2), the expanded formula -------------------------------------------------------------
// k_h,j = [W_UK_h c_j ; k_pe_j], v_h,j = W_UV_h c_j with W_UK_h / W_UV_h the rows [h (nope + v), + nope) /
// [h (nope + v) + nope, (h + 1)(nope + v)) of w_kv_b; q_h = [q_nope ; q_pe]; softmax(scale q.k) v.
inline void mla(view<const float, 3> q_nope, view<const float, 3> q_pe, view<const float, 2> cache,
                view<const float, 2> w_kv_b, index_t v_dim, bool causal, double scale, view<double, 3> o,
                index_t offset = -1) {
  const index_t T = q_nope.extent(0), H = q_nope.extent(1), Dn = q_nope.extent(2), Dr = q_pe.extent(2);
  const index_t L = cache.extent(0), R = w_kv_b.extent(1), per = Dn + v_dim;
  if (offset < 0) offset = L - T;
  std::vector<double> kn(static_cast<std::size_t>(L * H * Dn)), vv(static_cast<std::size_t>(L * H * v_dim));
  for (index_t j = 0; j < L; ++j)
    for (index_t h = 0; h < H; ++h)
      for (index_t r = 0; r < per; ++r) {
        double acc = 0;
        for (index_t c = 0; c < R; ++c) acc += double(w_kv_b(h * per + r, c)) * cache(j, c);
        if (r < Dn)
          kn[static_cast<std::size_t>((j * H + h) * Dn + r)] = acc;
        else
          vv[static_cast<std::size_t>((j * H + h) * v_dim + r - Dn)] = acc;
      }
  for (index_t t = 0; t < T; ++t)
    for (index_t h = 0; h < H; ++h) {
      std::vector<double> s;
      double mx = -std::numeric_limits<double>::infinity();
      const index_t visible = causal ? std::clamp<index_t>(offset + t + 1, 0, L) : L;
      for (index_t j = 0; j < visible; ++j) {
        double dot = 0;
        for (index_t r = 0; r < Dn; ++r)
          dot += double(q_nope(t, h, r)) * kn[static_cast<std::size_t>((j * H + h) * Dn + r)];
        for (index_t r = 0; r < Dr; ++r) dot += double(q_pe(t, h, r)) * cache(j, R + r);
        s.push_back(scale * dot);
        mx = std::max(mx, s.back());
      }
      double sum = 0;
      for (double& e : s) sum += (e = std::exp(e - mx));
      for (index_t c = 0; c < v_dim; ++c) {
        double acc = 0;
        for (index_t j = 0; j < visible; ++j)
          acc += s[j] * vv[static_cast<std::size_t>((j * H + h) * v_dim + c)];
        o(t, h, c) = visible ? acc / sum : 0.0;
      }
    }
}

}  // namespace dsk::attention::ref
