// Dynamic block attention as Native Sparse Attention (DeepSeek, arXiv 2502.11089): compressed, selected
// (blocks chosen from the compressed probabilities, shared per GQA group) and sliding-window branches mixed
// by sigmoid gates; causal prefill and incremental decode over a cache whose compressed keys grow every
// cmp_stride tokens, or (causal = false) bidirectional prefill for encoders. Backends: host (simd::native or
// an explicit packet layer) on the flash engine. Oracles: ref::nsa, ref::nsa_bidir (ref.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dsk/attention/flash.hpp"
#include "dsk/gemm/matmul.hpp"
#include "dsk/nn/host/activation.hpp"

namespace dsk::attention {

enum class nsa_pooling : std::uint8_t {
  mean,    // compressed key/value = mean of the block's keys/values
  linear,  // compressed key = W_k vec(k_block + pe_k), value = W_v vec(v_block + pe_v) (learned, nsa_weights)
};

// Compile-time configuration (paper defaults). Lengths in tokens.
//   cmp_block l, cmp_stride d: compressed block i covers tokens [i*d, i*d + l); l % d == 0
//   sel_block l', sel_count n: n selection blocks of l' tokens per query and GQA group (l' % d == 0), of
//     which init_blocks (the first) and local_blocks (the block holding the query and those before it) are
//     always taken; window w: the sliding-window branch sees the last w tokens (including the query)
//   cmp / sel / win: which branches are present (a disabled branch contributes nothing; its gate is ignored)
//   causal: true = decoder (the above); false = encoder prefill (bidirectional, nsa() only): every query sees
//     every compressed block (a partial last block is pooled from the tokens it has); the n blocks are chosen
//     once per query block of l' tokens and GQA group, among all blocks, forcing the init_blocks first ones
//     and the query's block with local_blocks - 1 neighbours on each side; the window is |i - j| <= w
struct nsa_config {
  int head_dim = 128;
  int value_dim = 0;  // 0 = head_dim
  int cmp_block = 32;
  int cmp_stride = 16;
  int sel_block = 64;
  int sel_count = 16;
  int init_blocks = 1;
  int local_blocks = 2;
  int window = 512;
  nsa_pooling pooling = nsa_pooling::mean;
  bool cmp = true;
  bool sel = true;
  bool win = true;
  bool causal = true;
  constexpr int v_dim() const { return value_dim == 0 ? head_dim : value_dim; }
};

// Learned compression (nsa_pooling::linear), shared by all KV heads:
//   w_k: [head_dim, cmp_block * head_dim], pe_k: [cmp_block, head_dim],
//   w_v: [value_dim, cmp_block * value_dim], pe_v: [cmp_block, value_dim].
struct nsa_weights {
  view<const float, 2> w_k, pe_k, w_v, pe_v;
};

// Compressed keys visible at position p (inclusive): blocks that end at or before p.
inline index_t nsa_compressed_count(index_t tokens, index_t l, index_t d) {
  return tokens >= l ? (tokens - l) / d + 1 : 0;
}

// Compressed keys of a bidirectional (causal = false) sequence of `tokens`: the fewest blocks starting at
// multiples of d that cover every token; block i spans [i d, min(i d + l, tokens)), so the last one may be
// partial (and with tokens < l the only block is).
inline index_t nsa_compressed_count_bidir(index_t tokens, index_t l, index_t d) {
  return tokens <= 0 ? 0 : tokens <= l ? 1 : (tokens - l + d - 1) / d + 1;
}

// KV cache of one sequence for NSA: raw keys/values plus the compressed keys/values, both growing. In the ISA
// namespace, as mla_cache: its constructor and growth are compiled code (ymm stores at -march=x86-64-v3).
DSK_ISA_BEGIN
class nsa_cache {
 public:
  nsa_cache(index_t kv_heads, int head_dim, int value_dim) : hkv_(kv_heads), d_(head_dim), dv_(value_dim) {
    if (kv_heads < 1 || head_dim < 1 || value_dim < 1)
      fail("attention::nsa_cache: arguments 'kv_heads, head_dim, value_dim': expected >= 1, got ", kv_heads,
           ", ", head_dim, ", ", value_dim);
    if (kv_heads > max_kv_heads)
      fail("attention::nsa_cache: argument 'kv_heads': expected at most ", max_kv_heads, ", got ", kv_heads);
  }
  // Bounds that keep every size product of the cache exact: kv_heads <= 2^20 (head dims are int), and at
  // most 2^48 bytes of raw keys and values (check_tokens).
  static constexpr index_t max_kv_heads = index_t{1} << 20;
  void check_tokens(const char* where, index_t tokens) const {
    const index_t per_token = hkv_ * (index_t{d_} + dv_) * index_t(sizeof(float));
    if (tokens < 0 || tokens > (index_t{1} << 48) / per_token)
      fail(where, ": argument 'tokens': expected a count in [0, 2^48 bytes / ", per_token,
           " bytes per token], got ", tokens);
  }
  index_t size() const { return len_; }
  index_t compressed_size() const { return nc_; }
  index_t kv_heads() const { return hkv_; }
  int head_dim() const { return d_; }
  int value_dim() const { return dv_; }
  view<const float, 3> k() const { return dense_view<const float, 3>(k_.data(), len_, hkv_, index_t{d_}); }
  view<const float, 3> v() const { return dense_view<const float, 3>(v_.data(), len_, hkv_, index_t{dv_}); }
  view<const float, 3> k_cmp() const {
    return dense_view<const float, 3>(kc_.data(), nc_, hkv_, index_t{d_});
  }
  view<const float, 3> v_cmp() const {
    return dense_view<const float, 3>(vc_.data(), nc_, hkv_, index_t{dv_});
  }
  void reserve(index_t tokens) {
    check_tokens("attention::nsa_cache::reserve", tokens);
    k_.reserve(static_cast<std::size_t>(tokens * hkv_ * d_));
    v_.reserve(static_cast<std::size_t>(tokens * hkv_ * dv_));
  }

  // Internal (used by nsa_step): storage that the step appends to.
  std::vector<float> k_, v_, kc_, vc_;
  index_t len_ = 0, nc_ = 0;

 private:
  index_t hkv_;
  int d_, dv_;
};
DSK_ISA_END

namespace detail {
DSK_ISA_BEGIN

template <nsa_config C>
consteval void check_nsa_config() {
  static_assert(C.head_dim > 0 && C.head_dim % 8 == 0 && C.v_dim() % 8 == 0,
                "dsk::attention::nsa_config: head_dim and value_dim must be positive multiples of 8");
  static_assert(C.cmp_stride > 0 && C.cmp_block >= C.cmp_stride && C.cmp_block % C.cmp_stride == 0,
                "dsk::attention::nsa_config: cmp_block must be a positive multiple of cmp_stride");
  static_assert(C.sel_block > 0 && C.sel_block % C.cmp_stride == 0,
                "dsk::attention::nsa_config: sel_block must be a positive multiple of cmp_stride");
  static_assert(
      C.init_blocks >= 0 && C.local_blocks >= 1 && C.sel_count >= C.init_blocks + C.local_blocks,
      "dsk::attention::nsa_config: need local_blocks >= 1 and sel_count >= init_blocks + local_blocks");
  static_assert(
      C.causal || C.sel_count >= C.init_blocks + 2 * C.local_blocks - 1,
      "dsk::attention::nsa_config: a bidirectional config (causal = false) forces local_blocks - 1 "
      "blocks on each side of the query's block: need sel_count >= init_blocks + 2 local_blocks - 1");
  static_assert(C.window >= 1, "dsk::attention::nsa_config: window must be >= 1");
  static_assert(C.cmp || C.sel || C.win, "dsk::attention::nsa_config: enable at least one branch");
}

// Compressed keys/values [first, last) of every KV head from the raw keys/values of `tokens` tokens, written
// into kc / vc. Block i pools tokens [i d, min(i d + l, tokens)): all l of them except for the partial last
// block of a bidirectional sequence, whose mean is over the tokens it has and whose linear map sees zeros for
// the missing rows (k + pe of an absent token is 0).
template <class S, nsa_config C>
void nsa_compress_range(const contiguous_kv& raw, index_t H, index_t tokens, index_t first, index_t last,
                        const nsa_weights* w, float* kc, float* vc) {
  constexpr int D = C.head_dim, Dv = C.v_dim(), l = C.cmp_block, d = C.cmp_stride;
  auto pool = [&](const float* src, index_t src_stride, int have, int dim, const view<const float, 2>& wm,
                  const view<const float, 2>& pe, float* dst, std::vector<float>& tmp) {
    if constexpr (C.pooling == nsa_pooling::mean) {
      (void)wm, (void)pe, (void)tmp;
      const typename S::f32 inv = S::broadcast(1.0f / static_cast<float>(have));
      for (int c = 0; c < dim; c += S::width) {
        typename S::f32 acc = S::zero();
        for (int j = 0; j < have; ++j) acc = S::add(acc, S::load(src + j * src_stride + c));
        S::store(dst + c, S::mul(acc, inv));
      }
    } else {
      tmp.assign(static_cast<std::size_t>(l * dim), 0.0f);
      for (int j = 0; j < have; ++j)
        for (int c = 0; c < dim; ++c)
          tmp[static_cast<std::size_t>(j * dim + c)] = src[j * src_stride + c] + pe(j, c);
      for (int r = 0; r < dim; ++r) {
        const float* wr = &wm(r, index_t{0});
        typename S::f32 acc = S::zero();
        for (int c = 0; c < l * dim; c += S::width)
          acc = S::fma(S::load(wr + c), S::load(tmp.data() + c), acc);
        dst[r] = S::reduce_add(acc);
      }
    }
  };
  parallel_for_chunks(0, (last - first) * H, 1, [&](index_t lo, index_t hi) {
    std::vector<float> tmp;
    for (index_t x = lo; x < hi; ++x) {
      const index_t i = first + x / H, h = x % H;
      const index_t t0 = i * d;
      const int have = static_cast<int>(std::min<index_t>(l, tokens - t0));
      pool(raw.key(t0, h), raw.k_s0, have, D, w ? w->w_k : view<const float, 2>{},
           w ? w->pe_k : view<const float, 2>{}, kc + (i * H + h) * D, tmp);
      pool(raw.value(t0, h), raw.v_s0, have, Dv, w ? w->w_v : view<const float, 2>{},
           w ? w->pe_v : view<const float, 2>{}, vc + (i * H + h) * Dv, tmp);
    }
  });
}

// Top-n selection among the selection blocks [0, nsel) given their importance imp[0 .. nsel), for queries in
// block qb. Forced blocks first (the initial ones, then the local ones: qb and the local_blocks - 1 before
// it, and when bidirectional as many after it), then the most important others (ties: lower index first).
// Returns the blocks sorted ascending.
template <nsa_config C>
void nsa_select(index_t nsel, index_t qb, const float* imp, std::vector<std::pair<float, index_t>>& cand,
                std::vector<index_t>& out) {
  out.clear();
  cand.clear();
  const index_t after = C.causal ? 0 : C.local_blocks - 1;
  auto forced = [&](index_t b) { return b < C.init_blocks || (b > qb - C.local_blocks && b <= qb + after); };
  for (index_t b = 0; b < nsel; ++b) {
    if (forced(b))
      out.push_back(b);
    else
      cand.push_back({imp[b], b});
  }
  const auto take = std::min<std::size_t>(
      cand.size(),
      static_cast<std::size_t>(std::max<index_t>(0, C.sel_count - static_cast<index_t>(out.size()))));
  auto better = [](const std::pair<float, index_t>& a, const std::pair<float, index_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(take), cand.end(), better);
  for (std::size_t i = 0; i < take; ++i) out.push_back(cand[i].second);
  std::sort(out.begin(), out.end());
}

// Attention of queries at positions p0 .. p0 + T - 1 over kv_len raw keys/values (which include them) and the
// nc_all compressed ones. Causal: one task per (query token, KV head), each token seeing the compressed keys
// whose block has ended, its own block choice, keys j <= p. Bidirectional (p0 = 0, kv_len = T): one task per
// (query block of sel_block tokens, KV head), all rows of a task sharing every compressed key and one block
// choice (the importance summed over the block's tokens and the group's heads); window |p - j| <= w.
// selected (optional): [T, kv_heads, sel_count] block indices, -1 padded.
template <class S, nsa_config C>
void nsa_attend(const contiguous_kv& raw, const contiguous_kv& cmp, index_t Hkv, index_t kv_len,
                index_t nc_all, index_t p0, view<const float, 3> q, view<const float, 3> gates,
                view<float, 3> o, float scale, std::int32_t* selected) {
  constexpr int D = C.head_dim, Dv = C.v_dim();
  constexpr index_t chunk = C.causal ? 1 : C.sel_block;  // query tokens per task
  const index_t T = q.extent(0), H = q.extent(1), G = H / Hkv, nq = (T + chunk - 1) / chunk;
  const index_t rows_max = std::min(T, chunk) * G;
  // Later tokens cost more when causal (more compressed keys): hand out small chunks of tasks dynamically,
  // latest first.
  const index_t ntasks = nq * Hkv,
                per = std::max<index_t>(1, std::min<index_t>(16, ntasks / (8 * num_threads())));
  const index_t nchunks = (ntasks + per - 1) / per;
  parallel_tasks(nchunks, [&](index_t task_chunk) {
    const index_t task_hi = ntasks - task_chunk * per, task_lo = std::max<index_t>(0, task_hi - per);
    const auto R = static_cast<std::size_t>(rows_max);
    std::vector<const float*> qp(R);
    std::vector<index_t> lo(R), hi(R), pos(R);
    std::vector<float> acc(R * Dv), m(R), l(R), out(R * Dv), row(static_cast<std::size_t>(Dv));
    std::vector<float> imp_cmp, imp_sel;
    std::vector<std::pair<float, index_t>> cand;
    std::vector<index_t> blocks;
    std::vector<key_range> ranges;
    alignas(64) float s[row_block][tile_keys];
    const float* kp[tile_keys + 4];

    for (index_t task = task_lo; task < task_hi; ++task) {
      const index_t qc = task / Hkv, kvh = task % Hkv, t0 = qc * chunk, t1 = std::min(T, t0 + chunk);
      const index_t rows = (t1 - t0) * G;
      for (index_t t = t0; t < t1; ++t)
        for (index_t g = 0; g < G; ++g) {
          qp[(t - t0) * G + g] = &q(t, kvh * G + g, index_t{0});
          pos[(t - t0) * G + g] = p0 + t;
        }
      std::fill(out.begin(), out.begin() + rows * Dv, 0.0f);
      // Adds gate * (branch output) into out for every row.
      auto accumulate = [&](int branch) {
        for (index_t r = 0; r < rows; ++r) {
          finalize_row<S, Dv>(acc.data() + r * Dv, m[r], l[r], row.data(), nullptr);
          const float gate = gates(t0 + r / G, kvh * G + r % G, index_t{branch});
          for (int c = 0; c < Dv; ++c) out[r * Dv + c] += gate * row[c];
        }
      };
      // Attends every row to `ranges`, row r seeing keys vis(position of r).
      auto run = [&](const contiguous_kv& kv, auto&& vis) {
        for (index_t r = 0; r < rows; ++r) {
          const key_range kr = vis(pos[r]);
          lo[r] = kr.begin;
          hi[r] = kr.end;
        }
        reset_state(rows, Dv, acc.data(), m.data(), l.data());
        const row_set st{rows, qp.data(), lo.data(), hi.data(), acc.data(), m.data(), l.data()};
        attend<S, D, Dv>(kv, kvh, ranges, st, scale);
      };
      const index_t p_last = p0 + t1 - 1;

      // Compressed branch; its probabilities p_cmp (recomputed from the final lse) give block importance.
      auto cmp_visible = [&](index_t p) -> key_range {
        if constexpr (C.causal)
          return {0, nsa_compressed_count(p + 1, C.cmp_block, C.cmp_stride)};
        else
          return (void)p, key_range{0, nc_all};
      };
      const index_t nc = cmp_visible(p_last).end;
      if constexpr (C.cmp || C.sel) {
        ranges.assign(1, {0, nc});
        run(cmp, cmp_visible);
        if constexpr (C.cmp) accumulate(0);
      }
      if constexpr (C.sel) {
        const index_t nsel = C.causal ? p_last / C.sel_block + 1 : (kv_len + C.sel_block - 1) / C.sel_block;
        imp_cmp.assign(static_cast<std::size_t>(nc), 0.0f);
        for (index_t j0 = 0; j0 < nc; j0 += tile_keys) {
          const int n = static_cast<int>(std::min<index_t>(tile_keys, nc - j0));
          for (int c = 0; c < n; ++c) kp[c] = cmp.key(j0 + c, kvh);
          const int nk4 = (n + 3) / 4 * 4;
          for (int c = n; c < nk4; ++c) kp[c] = kp[n - 1];
          for (index_t g0 = 0; g0 < rows; g0 += row_block) {
            const int rb = static_cast<int>(std::min<index_t>(row_block, rows - g0));
            qk_block<S, D>(qp.data() + g0, rb, kp, nk4, s);
            for (int i = 0; i < rb; ++i) {
              // p = e^(scale s - lse), lse = m + ln l
              const float shift = m[g0 + i] + std::log(l[g0 + i]);
              const typename S::f32 vs = S::broadcast(scale), vm = S::broadcast(shift);
              for (int c = 0; c < nk4; c += S::width)
                S::store(s[i] + c, S::exp(S::sub(S::mul(S::load(s[i] + c), vs), vm)));
              const int seen = static_cast<int>(std::clamp<index_t>(hi[g0 + i] - j0, 0, n));
              for (int c = 0; c < seen; ++c) imp_cmp[static_cast<std::size_t>(j0 + c)] += s[i][c];
            }
          }
        }
        // Compressed block i (tokens [i d, i d + l)) adds its importance to every selection block it
        // overlaps.
        imp_sel.assign(static_cast<std::size_t>(nsel), 0.0f);
        for (index_t i = 0; i < nc; ++i) {
          const index_t b0 = i * C.cmp_stride / C.sel_block,
                        b1 = (i * C.cmp_stride + C.cmp_block - 1) / C.sel_block;
          for (index_t b = b0; b <= std::min(b1, nsel - 1); ++b)
            imp_sel[static_cast<std::size_t>(b)] += imp_cmp[i];
        }
        nsa_select<C>(nsel, p_last / C.sel_block, imp_sel.data(), cand, blocks);
        if (selected)
          for (index_t t = t0; t < t1; ++t) {
            std::int32_t* sel_out = selected + (t * Hkv + kvh) * C.sel_count;
            for (index_t x = 0; x < C.sel_count; ++x)
              sel_out[x] =
                  x < static_cast<index_t>(blocks.size()) ? static_cast<std::int32_t>(blocks[x]) : -1;
          }
        const index_t end = C.causal ? p_last + 1 : kv_len;
        ranges.clear();
        for (index_t b : blocks) {
          const index_t b_lo = b * C.sel_block, b_hi = std::min(end, (b + 1) * C.sel_block);
          if (!ranges.empty() && ranges.back().end == b_lo)
            ranges.back().end = b_hi;  // adjacent blocks: one range, fewer partial tiles
          else
            ranges.push_back({b_lo, b_hi});
        }
        run(raw, [&](index_t p) { return key_range{0, C.causal ? p + 1 : kv_len}; });
        accumulate(1);
      }
      if constexpr (C.win) {
        auto win_visible = [&](index_t p) -> key_range {
          if constexpr (C.causal)
            return {std::max<index_t>(0, p + 1 - C.window), p + 1};
          else
            return {std::max<index_t>(0, p - C.window), std::min<index_t>(kv_len, p + C.window + 1)};
        };
        ranges.assign(1, {win_visible(p0 + t0).begin, win_visible(p_last).end});
        run(raw, win_visible);
        accumulate(2);
      }
      for (index_t r = 0; r < rows; ++r)
        std::copy_n(out.data() + r * Dv, Dv, &o(t0 + r / G, kvh * G + r % G, index_t{0}));
    }
  });
}

// Argument checks shared by nsa_step (causal; keys k_new / v_new) and the bidirectional nsa() (k / v): n = q
// tokens, Hkv KV heads (`kv_what` says where that count comes from in the message).
template <nsa_config C>
void check_nsa_args(const contract& c, view<const float, 3> q, std::string_view k_name,
                    view<const float, 3> k, std::string_view v_name, view<const float, 3> v,
                    view<const float, 3> gates, view<float, 3> o, const nsa_weights* weights,
                    view<std::int32_t, 3> selected, index_t Hkv, std::string_view kv_what) {
  constexpr int D = C.head_dim, Dv = C.v_dim();
  const index_t n = q.extent(0), H = q.extent(1);
  c.extent("q", q, 2, D, "head_dim").unit_inner_stride("q", q);
  c.require(H % Hkv == 0, "q", dsk::detail::concat("a head count that is a multiple of ", kv_what), H);
  c.extent(k_name, k, 0, n, "q tokens").extent(k_name, k, 1, Hkv, kv_what);
  c.extent(k_name, k, 2, D, "head_dim");
  c.extent(v_name, v, 0, n, "q tokens").extent(v_name, v, 1, Hkv, kv_what);
  c.extent(v_name, v, 2, Dv, "value_dim");
  c.extent("gates", gates, 0, n, "q tokens")
      .extent("gates", gates, 1, H, "q heads")
      .extent("gates", gates, 2, 3, "3 branches");
  c.extent("o", o, 0, n, "q tokens").extent("o", o, 1, H, "q heads").extent("o", o, 2, Dv, "value_dim");
  c.unit_inner_stride("o", o);
  if (selected.data())
    c.extent("selected", selected, 0, n, "q tokens")
        .extent("selected", selected, 1, Hkv, "kv heads")
        .extent("selected", selected, 2, C.sel_count, "sel_count")
        .require(selected.is_contiguous(), "selected", "a contiguous tensor");
  if constexpr (C.pooling == nsa_pooling::linear) {
    c.require(weights != nullptr, "weights", "compression weights for nsa_pooling::linear");
    c.extent("weights.w_k", weights->w_k, 0, D, "head_dim")
        .extent("weights.w_k", weights->w_k, 1, C.cmp_block * D, "cmp_block * head_dim");
    c.extent("weights.pe_k", weights->pe_k, 0, C.cmp_block, "cmp_block")
        .extent("weights.pe_k", weights->pe_k, 1, D, "head_dim");
    c.extent("weights.w_v", weights->w_v, 0, Dv, "value_dim")
        .extent("weights.w_v", weights->w_v, 1, C.cmp_block * Dv, "cmp_block * value_dim");
    c.extent("weights.pe_v", weights->pe_v, 0, C.cmp_block, "cmp_block")
        .extent("weights.pe_v", weights->pe_v, 1, Dv, "value_dim");
    c.unit_inner_stride("weights.w_k", weights->w_k).unit_inner_stride("weights.w_v", weights->w_v);
  }
  // o and selected are written while q and gates are read.
  c.disjoint("o", o, "q", q)
      .disjoint("o", o, "gates", gates)
      .disjoint("selected", selected, "q", q)
      .disjoint("selected", selected, "gates", gates)
      .disjoint("selected", selected, "o", o);
}
DSK_ISA_END
}  // namespace detail

DSK_ISA_BEGIN

// One NSA step: appends n new tokens to the cache (growing the compressed keys for every block of cmp_block
// tokens completed at a multiple of cmp_stride) and attends the n queries, which sit at positions
// cache.size() .. cache.size() + n - 1 (causal). n = 1 is decode; n = the prompt on an empty cache is
// prefill.
//   q: [n, heads, head_dim], k_new: [n, kv_heads, head_dim], v_new: [n, kv_heads, value_dim],
//   gates: [n, heads, 3] gate values (g_cmp, g_sel, g_win), e.g. from nsa_gates(); o: [n, heads, value_dim];
//   weights: required for nsa_pooling::linear, ignored for mean; selected (optional): [n, kv_heads,
//   sel_count] receives the chosen selection blocks per query and group (ascending, -1 padded).
// heads % kv_heads == 0 (any group size); opts.scale as dense() (query_offset is not used). o and selected
// must not overlap q, gates or each other, and k_new / v_new not the cache's own storage (checked).
template <nsa_config C, host_exec Exec = host>
void nsa_step(nsa_cache& cache, view<const float, 3> q, view<const float, 3> k_new,
              view<const float, 3> v_new, view<const float, 3> gates, view<float, 3> o,
              const nsa_weights* weights = nullptr, view<std::int32_t, 3> selected = {},
              const options& opts = {}) {
  static_assert(C.causal,
                "dsk::attention::nsa_step appends tokens to a causal cache (decode or chunked prefill): a "
                "bidirectional config (causal = false) is prefill only, call nsa()");
  detail::check_nsa_config<C>();
  constexpr int D = C.head_dim, Dv = C.v_dim();
  const contract c{"attention::nsa_step"};
  c.require(cache.head_dim() == D && cache.value_dim() == Dv, "cache", "head_dim and value_dim of the config",
            cache.head_dim());
  const index_t n = q.extent(0), Hkv = cache.kv_heads();
  detail::check_nsa_args<C>(c, q, "k_new", k_new, "v_new", v_new, gates, o, weights, selected, Hkv,
                            "cache.kv_heads()");
  const float scale = detail::resolve_scale(opts.scale, D, c);
  using S = exec_packet_t<Exec>;
  // k_new / v_new are copied into the cache, whose storage may move as it grows: they must not be views of
  // the cache itself.
  const byte_range ck = bytes_of(cache.k_.data(), cache.k_.size() * sizeof(float)),
                   cv = bytes_of(cache.v_.data(), cache.v_.size() * sizeof(float));
  c.disjoint("k_new", k_new, "the cache's keys", ck).disjoint("v_new", v_new, "the cache's values", cv);
  cache.check_tokens("attention::nsa_step", cache.len_ + n);

  // Append the raw keys/values.
  const index_t p0 = cache.len_;
  cache.k_.resize(static_cast<std::size_t>((p0 + n) * Hkv * D));
  cache.v_.resize(static_cast<std::size_t>((p0 + n) * Hkv * Dv));
  for (index_t t = 0; t < n; ++t)
    for (index_t h = 0; h < Hkv; ++h) {
      for (int x = 0; x < D; ++x)
        cache.k_[static_cast<std::size_t>(((p0 + t) * Hkv + h) * D + x)] = k_new(t, h, index_t{x});
      for (int x = 0; x < Dv; ++x)
        cache.v_[static_cast<std::size_t>(((p0 + t) * Hkv + h) * Dv + x)] = v_new(t, h, index_t{x});
    }
  cache.len_ = p0 + n;
  // Grow the compressed keys: block i is complete once i d + l tokens are in.
  const index_t nc_old = cache.nc_, nc_new = nsa_compressed_count(cache.len_, C.cmp_block, C.cmp_stride);
  if (nc_new > nc_old) {
    cache.kc_.resize(static_cast<std::size_t>(nc_new * Hkv * D));
    cache.vc_.resize(static_cast<std::size_t>(nc_new * Hkv * Dv));
    const detail::contiguous_kv raw{cache.k_.data(), Hkv * D, D, cache.v_.data(), Hkv * Dv, Dv};
    detail::nsa_compress_range<S, C>(raw, Hkv, cache.len_, nc_old, nc_new, weights, cache.kc_.data(),
                                     cache.vc_.data());
    cache.nc_ = nc_new;
  }
  const detail::contiguous_kv raw{cache.k_.data(), Hkv * D, D, cache.v_.data(), Hkv * Dv, Dv};
  const detail::contiguous_kv cmp{cache.kc_.data(), Hkv * D, D, cache.vc_.data(), Hkv * Dv, Dv};
  detail::nsa_attend<S, C>(raw, cmp, Hkv, cache.len_, cache.nc_, p0, q, gates, o, scale, selected.data());
}

// NSA prefill of a whole sequence: q [T, heads, D], k [T, kv_heads, D], v [T, kv_heads, Dv],
// gates [T, heads, 3], o [T, heads, Dv]; weights, selected and opts as nsa_step.
//   causal (C.causal): a prompt, equivalent to nsa_step on an empty cache.
//   bidirectional (!C.causal, encoders): every query sees all nsa_compressed_count_bidir(T, l, d) compressed
//   blocks (block i = tokens [i d, min(i d + l, T)), the last one possibly partial: the mean of the tokens it
//   has, or for nsa_pooling::linear the map applied with zeros in place of the missing tokens); the sel_count
//   blocks are chosen per query block (tokens [b l', (b + 1) l')) and GQA group from the importance summed
//   over the block's queries and the group's heads, forcing the init_blocks first blocks and the blocks
//   within local_blocks - 1 of the query block; the window sees keys |i - j| <= window. k and v are read in
//   place (unit inner stride, any other strides); o and selected must not overlap them (checked).
template <nsa_config C, host_exec Exec = host>
void nsa(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<const float, 3> gates,
         view<float, 3> o, const nsa_weights* weights = nullptr, view<std::int32_t, 3> selected = {},
         const options& opts = {}) {
  const contract c{"attention::nsa"};
  c.require(k.extent(1) >= 1, "k", "at least one KV head", k.extent(1));
  if constexpr (C.causal) {
    nsa_cache cache(k.extent(1), C.head_dim, C.v_dim());
    cache.reserve(k.extent(0));
    nsa_step<C, Exec>(cache, q, k, v, gates, o, weights, selected, opts);
  } else {
    detail::check_nsa_config<C>();
    constexpr int D = C.head_dim, Dv = C.v_dim();
    const index_t T = q.extent(0), Hkv = k.extent(1);
    detail::check_nsa_args<C>(c, q, "k", k, "v", v, gates, o, weights, selected, Hkv,
                              "k.extent(1) (kv_heads)");
    c.unit_inner_stride("k", k).unit_inner_stride("v", v);
    c.disjoint("o", o, "k", k).disjoint("o", o, "v", v);
    c.disjoint("selected", selected, "k", k).disjoint("selected", selected, "v", v);
    const float scale = detail::resolve_scale(opts.scale, D, c);
    using S = exec_packet_t<Exec>;
    const index_t nc = nsa_compressed_count_bidir(T, C.cmp_block, C.cmp_stride);
    std::vector<float> kc(static_cast<std::size_t>(nc * Hkv * D)),
        vc(static_cast<std::size_t>(nc * Hkv * Dv));
    const detail::contiguous_kv raw{k.data(), k.stride(0), k.stride(1), v.data(), v.stride(0), v.stride(1)};
    const detail::contiguous_kv cmp{kc.data(), Hkv * D, D, vc.data(), Hkv * Dv, Dv};
    if constexpr (C.cmp || C.sel)
      detail::nsa_compress_range<S, C>(raw, Hkv, T, 0, nc, weights, kc.data(), vc.data());
    detail::nsa_attend<S, C>(raw, cmp, Hkv, T, nc, 0, q, gates, o, scale, selected.data());
  }
}

// Gates from the input: g[t, h, b] = sigmoid(x[t] . w[h * 3 + b] + bias[h * 3 + b]).
//   x: [T, hidden], w: [3 * heads, hidden], bias: [3 * heads] or {}, g: [T, heads, 3] (contiguous), not
//   overlapping x, w or bias (checked).
template <host_exec Exec = host>
void nsa_gates(view<const float, 2> x, view<const float, 2> w, view<const float, 1> bias, view<float, 3> g) {
  using S = exec_packet_t<Exec>;
  const contract c{"attention::nsa_gates"};
  c.extent("w", w, 0, 3 * g.extent(1), "3 * heads").extent("w", w, 1, x.extent(1), "x.extent(1) (hidden)");
  c.extent("g", g, 0, x.extent(0), "x tokens").extent("g", g, 2, 3, "3 branches");
  c.require(g.is_contiguous(), "g", "a contiguous tensor");
  if (bias.data()) c.extent("bias", bias, 0, w.extent(0), "3 * heads");
  c.disjoint("g", g, "x", x).disjoint("g", g, "w", w).disjoint("g", g, "bias", bias);
  const dense_view<float, 2> y(g.data(), x.extent(0), 3 * g.extent(1));
  if (bias.data())
    gemm::matmul<gemm::matmul_config{}, S>(x, w, bias, view<float, 2>(y));
  else
    gemm::matmul<gemm::matmul_config{}, S>(x, w, view<float, 2>(y));
  for (index_t i = 0; i < x.extent(0) * w.extent(0); ++i) g.data()[i] = nn::packet::sigmoid1(g.data()[i]);
}

DSK_ISA_END
}  // namespace dsk::attention
