// Dense flash attention (online softmax; Dao et al., "FlashAttention", arXiv 2205.14135 / 2307.08691) on the
// host: prefill and decode, MHA / GQA / MQA, causal (bottom-right aligned), sliding window, cross attention,
// contiguous or paged KV cache, optional log-sum-exp output; and the merge of partial states by their LSE.
// Backends: host (simd::native, or an explicit packet layer such as simd::scalar). Oracle: attention/ref.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>

#include "dsk/attention/host/driver.hpp"
#include "dsk/core/backend.hpp"
#include "dsk/core/dispatch.hpp"
#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/view.hpp"
#include "dsk/simd/simd.hpp"

namespace dsk::attention {

// Compile-time configuration of dense attention.
//   head_dim:  query/key dimension (a multiple of 8: rows are loaded as whole packets)
//   value_dim: value/output dimension; 0 means head_dim (192/128 for MLA expanded, 576/512 for MLA absorbed)
//   causal:    query token t sits at key position query_offset + t and sees keys j <= that position
//   window:    0 = unlimited; otherwise (causal only) a query at position p sees keys p - window < j <= p
struct dense_config {
  int head_dim = 128;
  int value_dim = 0;
  bool causal = false;
  int window = 0;
  constexpr int v_dim() const { return value_dim == 0 ? head_dim : value_dim; }
  // Equal when they generate the same kernel: value_dim 0 and value_dim == head_dim are the same config.
  friend constexpr bool operator==(const dense_config& a, const dense_config& b) {
    return a.head_dim == b.head_dim && a.v_dim() == b.v_dim() && a.causal == b.causal && a.window == b.window;
  }
};

// "(head_dim, value_dim)" plus " causal" / " window W": how dsk::dispatch lists dense configs.
DSK_ISA_BEGIN
inline std::string to_string(const dense_config& c) {
  std::ostringstream s;  // (not std::string operator+: GCC 12's -Wrestrict false positive)
  s << '(' << c.head_dim << ", " << c.v_dim() << ')';
  if (c.causal) s << " causal";
  if (c.window > 0) s << " window " << c.window;
  return s.str();
}
DSK_ISA_END

// Runtime options of one call.
struct options {
  // Softmax scale; 0 means 1 / sqrt(head_dim).
  float scale = 0.0f;
  // Position of query token 0 among the keys (causal / window masks). The default (-1) aligns the queries to
  // the END of the keys: query t sits at kv_len - q_len + t, as in decode and chunked prefill (bottom-right
  // alignment, like FlashAttention >= 2.1). With q_len == kv_len this is the usual causal mask.
  index_t query_offset = -1;
};

namespace detail {
template <dense_config C>
consteval void check_config() {
  static_assert(C.head_dim > 0 && C.head_dim % 8 == 0,
                "dsk::attention::dense_config: head_dim must be a positive multiple of 8 (the packet width)");
  static_assert(C.value_dim >= 0 && C.v_dim() % 8 == 0,
                "dsk::attention::dense_config: value_dim must be 0 (= head_dim) or a positive multiple of 8");
  static_assert(C.window >= 0, "dsk::attention::dense_config: window must be >= 0 (0 = no window)");
  static_assert(C.window == 0 || C.causal,
                "dsk::attention::dense_config: a sliding window needs causal = true (it limits past keys)");
}

inline float resolve_scale(float scale, int head_dim, const contract& c) {
  c.require(std::isfinite(scale) && scale >= 0.0f, "opts.scale", "a finite value >= 0 (0 = 1/sqrt(head_dim))",
            scale);
  return scale == 0.0f ? 1.0f / std::sqrt(static_cast<float>(head_dim)) : scale;
}

// Query token t sits at key position offset + t: offsets in [-1, kv_len] (-1: end-aligned, kv_len - q_len,
// which may be negative when there are more queries than keys). A query beyond the end of the keys would
// need keys that are not there, and an absurd offset (INT64_MAX) would overflow the position arithmetic.
inline index_t check_query_offset(const contract& c, const options& opts, index_t kv_len, index_t q_len) {
  c.require(opts.query_offset >= -1 && opts.query_offset <= kv_len, "opts.query_offset",
            dsk::detail::concat("a value in [0, kv_len = ", kv_len, "], or -1 for end alignment"),
            opts.query_offset);
  return opts.query_offset >= 0 ? opts.query_offset : kv_len - q_len;
}

// Shared shape checks of q, o, lse; returns the query offset.
inline index_t check_qo(const contract& c, view<const float, 3> q, index_t kv_heads, index_t kv_len,
                        int head_dim, int value_dim, view<float, 3> o, view<float, 2> lse,
                        const options& opts) {
  c.extent("q", q, 2, head_dim, "head_dim").unit_inner_stride("q", q);
  c.require(kv_heads > 0 || q.extent(1) == 0, "k", "at least one KV head", kv_heads);
  if (kv_heads > 0)
    c.require(q.extent(1) % kv_heads == 0, "q",
              "a head count that is a multiple of the KV heads (GQA groups)", q.extent(1));
  c.extent("o", o, 0, q.extent(0), "q tokens").extent("o", o, 1, q.extent(1), "q heads");
  c.extent("o", o, 2, value_dim, "value_dim").unit_inner_stride("o", o);
  if (lse.data())
    c.extent("lse", lse, 0, q.extent(0), "q tokens").extent("lse", lse, 1, q.extent(1), "q heads");
  const index_t off = check_query_offset(c, opts, kv_len, q.extent(0));
  // o and lse are written while other rows of q (and all of k and v) are still read.
  c.disjoint("o", o, "q", q).disjoint("lse", lse, "q", q).disjoint("lse", lse, "o", o);
  return off;
}

// Outputs against the keys and values (any KV layout, given as byte ranges).
inline void check_kv_alias(const contract& c, view<float, 3> o, view<float, 2> lse, std::string_view k_name,
                           const byte_range& k, std::string_view v_name, const byte_range& v) {
  c.disjoint("o", o, k_name, k).disjoint("o", o, v_name, v);
  c.disjoint("lse", lse, k_name, k).disjoint("lse", lse, v_name, v);
}

template <dense_config C>
key_range visible_keys(index_t pos, index_t kv_len) {
  if constexpr (!C.causal) {
    (void)pos;
    return {0, kv_len};
  } else {
    const index_t hi = std::clamp<index_t>(pos + 1, 0, kv_len);
    const index_t lo = C.window > 0 ? std::clamp<index_t>(pos - C.window + 1, 0, hi) : 0;
    return {lo, hi};
  }
}

template <class S, dense_config C, class KV>
void run_dense(view<const float, 3> q, const KV& kv, index_t kv_len, index_t kv_heads, view<float, 3> o,
               view<float, 2> lse, float scale, index_t offset) {
  constexpr int D = C.head_dim, Dv = C.v_dim();
  plan pl;
  pl.q_len = q.extent(0);
  pl.kv_len = kv_len;
  pl.kv_heads = kv_heads;
  pl.group = kv_heads > 0 ? q.extent(1) / kv_heads : 1;
  // ~96 rows per task: enough rows to reuse each K/V tile from L1/L2, few enough to parallelise short
  // prefills.
  pl.chunk = std::max<index_t>(1, 96 / pl.group);
  auto visible = [&](index_t t) { return visible_keys<C>(offset + t, kv_len); };
  auto ranges = [&](index_t t0, index_t t1, std::vector<key_range>& out) {
    const key_range a = visible(t0), b = visible(t1 - 1);
    out.push_back({std::min(a.begin, b.begin), std::max(a.end, b.end)});
  };
  drive<S, D, Dv>(pl, q, kv, o, lse, scale, visible, ranges);
}
}  // namespace detail

DSK_ISA_BEGIN

// Dense attention with a contiguous KV cache.
//   q: [q_len, heads, head_dim], k: [kv_len, kv_heads, head_dim], v: [kv_len, kv_heads, value_dim],
//   o: [q_len, heads, value_dim] (written), lse: [q_len, heads] natural-log sum of e^(scale q.k) over the
//   visible keys (optional: pass {} to skip). heads % kv_heads == 0; query head h reads KV head h / (heads /
//   kv_heads). Rows that see no key (fully masked) get o = 0 and lse = -inf. Unit inner strides; any other
//   strides. o and lse must not overlap q, k, v or each other (checked); opts.query_offset in [-1, kv_len].
//   Exec = dsk::host (best SIMD compiled in) or a packet layer (simd::scalar).
template <dense_config C, host_exec Exec = host>
void dense(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<float, 3> o,
           view<float, 2> lse = {}, const options& opts = {}) {
  detail::check_config<C>();
  const contract c{"attention::dense"};
  c.extent("k", k, 2, C.head_dim, "head_dim").unit_inner_stride("k", k);
  c.extent("v", v, 0, k.extent(0), "k.extent(0) (kv_len)")
      .extent("v", v, 1, k.extent(1), "k.extent(1) (kv_heads)");
  c.extent("v", v, 2, C.v_dim(), "value_dim").unit_inner_stride("v", v);
  const index_t off = detail::check_qo(c, q, k.extent(1), k.extent(0), C.head_dim, C.v_dim(), o, lse, opts);
  detail::check_kv_alias(c, o, lse, "k", bytes_of(k), "v", bytes_of(v));
  const float scale = detail::resolve_scale(opts.scale, C.head_dim, c);
  const detail::contiguous_kv kv{k.data(), k.stride(0), k.stride(1), v.data(), v.stride(0), v.stride(1)};
  detail::run_dense<exec_packet_t<Exec>, C>(q, kv, k.extent(0), k.extent(1), o, lse, scale, off);
}

// Dense attention over a paged KV cache (one sequence).
//   k_pages: [num_pages, page_size, kv_heads, head_dim], v_pages: [num_pages, page_size, kv_heads,
//   value_dim]; page_table: page indices of the sequence, key j in page page_table[j / page_size] at slot j %
//   page_size; kv_len: keys of the sequence (page_table must cover them; entries in [0, num_pages)).
//   Otherwise as dense().
template <dense_config C, host_exec Exec = host>
void dense_paged(view<const float, 3> q, view<const float, 4> k_pages, view<const float, 4> v_pages,
                 std::span<const std::int32_t> page_table, index_t kv_len, view<float, 3> o,
                 view<float, 2> lse = {}, const options& opts = {}) {
  detail::check_config<C>();
  const contract c{"attention::dense_paged"};
  c.extent("k_pages", k_pages, 3, C.head_dim, "head_dim").unit_inner_stride("k_pages", k_pages);
  for (std::size_t d = 0; d < 3; ++d) c.extent("v_pages", v_pages, d, k_pages.extent(d), "as k_pages");
  c.extent("v_pages", v_pages, 3, C.v_dim(), "value_dim").unit_inner_stride("v_pages", v_pages);
  const index_t page_size = k_pages.extent(1);
  c.require(kv_len >= 0, "kv_len", ">= 0", kv_len);
  c.require(kv_len == 0 || page_size > 0, "k_pages", "a page size > 0", page_size);
  const index_t pages_needed = kv_len == 0 ? 0 : (kv_len + page_size - 1) / page_size;
  c.require(static_cast<index_t>(page_table.size()) >= pages_needed, "page_table",
            "at least ceil(kv_len / page_size) entries", page_table.size());
  for (index_t p = 0; p < pages_needed; ++p)
    c.in_range("page_table", static_cast<index_t>(page_table[static_cast<std::size_t>(p)]), index_t{0},
               k_pages.extent(0) - 1);
  const index_t off = detail::check_qo(c, q, k_pages.extent(2), kv_len, C.head_dim, C.v_dim(), o, lse, opts);
  detail::check_kv_alias(c, o, lse, "k_pages", bytes_of(k_pages), "v_pages", bytes_of(v_pages));
  const byte_range pt = bytes_of(page_table.data(), page_table.size_bytes());
  c.disjoint("o", o, "page_table", pt).disjoint("lse", lse, "page_table", pt);
  const float scale = detail::resolve_scale(opts.scale, C.head_dim, c);
  const detail::paged_kv kv{k_pages.data(),    k_pages.stride(0), k_pages.stride(1), k_pages.stride(2),
                            v_pages.data(),    v_pages.stride(0), v_pages.stride(1), v_pages.stride(2),
                            page_table.data(), page_size};
  detail::run_dense<exec_packet_t<Exec>, C>(q, kv, kv_len, k_pages.extent(2), o, lse, scale, off);
}

// Runtime head-dim entry: dispatches (head_dim, value_dim) = (q.extent(2), v.extent(2)) with dsk::dispatch
// over the compiled dense_configs (64, 64), (128, 128), (192, 128), (256, 256), (576, 512) (causal = Causal)
// and throws dsk::unsupported listing them for any other pair. Same shapes as dense().
inline constexpr dense_config dense_dynamic_choices[] = {{.head_dim = 64, .value_dim = 64},
                                                         {.head_dim = 128, .value_dim = 128},
                                                         {.head_dim = 192, .value_dim = 128},
                                                         {.head_dim = 256, .value_dim = 256},
                                                         {.head_dim = 576, .value_dim = 512}};

template <bool Causal = false, host_exec Exec = host>
void dense_dynamic(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, view<float, 3> o,
                   view<float, 2> lse = {}, const options& opts = {}) {
  constexpr auto with = [](dense_config c) {
    c.causal = Causal;
    return c;
  };
  // Extents beyond int (never a compiled choice) become -1: unsupported, listed as such.
  constexpr auto narrow = [](index_t x) {
    return x >= 1 && x <= (index_t{1} << 30) ? static_cast<int>(x) : -1;
  };
  const dense_config runtime{
      .head_dim = narrow(q.extent(2)), .value_dim = narrow(v.extent(2)), .causal = Causal};
  dispatch<with(dense_dynamic_choices[0]), with(dense_dynamic_choices[1]), with(dense_dynamic_choices[2]),
           with(dense_dynamic_choices[3]), with(dense_dynamic_choices[4])>(
      "attention::dense_dynamic (head_dim, value_dim)", runtime,
      [&](auto cfg) { dense<decltype(cfg)::value, Exec>(q, k, v, o, lse, opts); });
}

// Merges two partial attention states over disjoint key sets into the state over their union:
//   lse = ln(e^lse_a + e^lse_b), o = (e^(lse_a - lse) o_a + e^(lse_b - lse) o_b).
// o_a, o_b, o: [tokens, heads, dim] (normalised outputs), lse_*: [tokens, heads]; an empty state has lse =
// -inf (its o is ignored). o / lse may be exactly o_a / lse_a (or o_b / lse_b); no other overlap (checked).
// Used by split-K decode and to
// combine attention over different caches (e.g. a shared prefix and a per-request suffix).
template <host_exec Exec = host>
void merge(view<const float, 3> o_a, view<const float, 2> lse_a, view<const float, 3> o_b,
           view<const float, 2> lse_b, view<float, 3> o, view<float, 2> lse) {
  using S = exec_packet_t<Exec>;
  const contract c{"attention::merge"};
  for (std::size_t d = 0; d < 3; ++d) {
    c.extent("o_b", o_b, d, o_a.extent(d), "as o_a");
    c.extent("o", o, d, o_a.extent(d), "as o_a");
  }
  for (std::size_t d = 0; d < 2; ++d) {
    c.extent("lse_a", lse_a, d, o_a.extent(d), "o_a's tokens and heads");
    c.extent("lse_b", lse_b, d, o_a.extent(d), "o_a's tokens and heads");
    c.extent("lse", lse, d, o_a.extent(d), "o_a's tokens and heads");
  }
  c.unit_inner_stride("o_a", o_a).unit_inner_stride("o_b", o_b).unit_inner_stride("o", o);
  // Each (token, head) row reads its two states before writing its own: exact aliases are in place.
  c.disjoint_or_same("o", o, "o_a", o_a)
      .disjoint_or_same("o", o, "o_b", o_b)
      .disjoint_or_same("lse", lse, "lse_a", lse_a)
      .disjoint_or_same("lse", lse, "lse_b", lse_b)
      .disjoint("o", o, "lse_a", lse_a)
      .disjoint("o", o, "lse_b", lse_b)
      .disjoint("lse", lse, "o_a", o_a)
      .disjoint("lse", lse, "o_b", o_b)
      .disjoint("lse", lse, "o", o);
  const index_t T = o_a.extent(0), H = o_a.extent(1), Dv = o_a.extent(2);
  parallel_for(0, T * H, [&](index_t r) {
    const index_t t = r / H, h = r % H;
    const float la = lse_a(t, h), lb = lse_b(t, h);
    const float mx = std::max(la, lb);
    float wa = 0.0f, wb = 0.0f, out_lse = detail::neg_inf;
    if (std::isnan(la) || std::isnan(lb)) {
      wa = wb = out_lse = std::numeric_limits<float>::quiet_NaN();
    } else if (mx != detail::neg_inf) {
      wa = la == detail::neg_inf ? 0.0f : std::exp(la - mx);
      wb = lb == detail::neg_inf ? 0.0f : std::exp(lb - mx);
      const float sum = wa + wb;
      out_lse = mx + std::log(sum);
      wa /= sum;
      wb /= sum;
    }
    const float *pa = &o_a(t, h, index_t{0}), *pb = &o_b(t, h, index_t{0});
    float* po = Dv > 0 ? &o(t, h, index_t{0}) : nullptr;
    const typename S::f32 va = S::broadcast(wa), vb = S::broadcast(wb);
    index_t d = 0;
    // A zero weight must not let an unused (possibly garbage) state leak in: select instead of multiplying.
    for (; d + S::width <= Dv; d += S::width) {
      const auto xa = wa == 0.0f ? S::zero() : S::mul(S::load(pa + d), va);
      S::store(po + d, wb == 0.0f ? xa : S::fma(S::load(pb + d), vb, xa));
    }
    for (; d < Dv; ++d) {
      const float xa = wa == 0.0f ? 0.0f : pa[d] * wa;
      po[d] = wb == 0.0f ? xa : std::fma(pb[d], wb, xa);
    }
    lse(t, h) = out_lse;
  });
}

DSK_ISA_END
}  // namespace dsk::attention
