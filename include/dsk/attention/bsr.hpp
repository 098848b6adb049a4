// Block-sparse attention with a block table in BSR form (row-block pointer + column-block indices), as in
// BigBird / Longformer-style block masks and FlashInfer's BSR attention; causal masking inside diagonal
// blocks. Backends: host (simd::native or an explicit packet layer), on the flash engine of
// host/flash_avx2.hpp. Oracle: ref::bsr in attention/ref.hpp.
#pragma once

#include <cstdint>
#include <span>

#include "dsk/attention/flash.hpp"

namespace dsk::attention {

// Compile-time configuration: block is both the query-block and key-block size (tokens), a multiple of 8.
struct bsr_config {
  int head_dim = 128;
  int value_dim = 0;  // 0 = head_dim
  int block = 64;
  bool causal = false;
  constexpr int v_dim() const { return value_dim == 0 ? head_dim : value_dim; }
};

// The block table, shared by all heads: query block i (tokens [i*block, (i+1)*block)) attends to key blocks
// col_idx[row_ptr[i] .. row_ptr[i+1]) (strictly increasing within a row). row_ptr has ceil(q_len/block) + 1
// entries, row_ptr[0] = 0, non-decreasing, row_ptr.back() = col_idx.size(); key blocks < ceil(kv_len/block).
struct bsr_table {
  std::span<const std::int32_t> row_ptr;
  std::span<const std::int32_t> col_idx;
};

DSK_ISA_BEGIN

// Block-sparse attention. q: [q_len, heads, head_dim], k: [kv_len, kv_heads, head_dim],
// v: [kv_len, kv_heads, value_dim], o: [q_len, heads, value_dim], lse: [q_len, heads] or {}.
// Causal positions as in dense() (query t at opts.query_offset + t, default end-aligned). Query rows whose
// listed blocks hold no visible key get o = 0, lse = -inf. o and lse must not overlap q, k, v, the table or
// each other (checked).
template <bsr_config C, host_exec Exec = host>
void bsr(view<const float, 3> q, view<const float, 3> k, view<const float, 3> v, const bsr_table& table,
         view<float, 3> o, view<float, 2> lse = {}, const options& opts = {}) {
  static_assert(C.block > 0 && C.block % 8 == 0,
                "dsk::attention::bsr_config: block must be a positive multiple of 8");
  constexpr dense_config DC{.head_dim = C.head_dim, .value_dim = C.value_dim, .causal = C.causal};
  detail::check_config<DC>();
  const contract c{"attention::bsr"};
  c.extent("k", k, 2, C.head_dim, "head_dim").unit_inner_stride("k", k);
  c.extent("v", v, 0, k.extent(0), "k.extent(0) (kv_len)")
      .extent("v", v, 1, k.extent(1), "k.extent(1) (kv_heads)");
  c.extent("v", v, 2, C.v_dim(), "value_dim").unit_inner_stride("v", v);
  const index_t off = detail::check_qo(c, q, k.extent(1), k.extent(0), C.head_dim, C.v_dim(), o, lse, opts);
  detail::check_kv_alias(c, o, lse, "k", bytes_of(k), "v", bytes_of(v));
  const byte_range rp = bytes_of(table.row_ptr.data(), table.row_ptr.size_bytes()),
                   ci = bytes_of(table.col_idx.data(), table.col_idx.size_bytes());
  c.disjoint("o", o, "table.row_ptr", rp).disjoint("o", o, "table.col_idx", ci);
  c.disjoint("lse", lse, "table.row_ptr", rp).disjoint("lse", lse, "table.col_idx", ci);
  const float scale = detail::resolve_scale(opts.scale, C.head_dim, c);
  const index_t B = C.block, T = q.extent(0), L = k.extent(0);
  const index_t q_blocks = (T + B - 1) / B, k_blocks = (L + B - 1) / B;
  c.require(static_cast<index_t>(table.row_ptr.size()) == q_blocks + 1, "table.row_ptr",
            "ceil(q_len / block) + 1 entries", table.row_ptr.size());
  c.require(table.row_ptr[0] == 0, "table.row_ptr", "row_ptr[0] == 0", table.row_ptr[0]);
  c.require(table.row_ptr[static_cast<std::size_t>(q_blocks)] == static_cast<index_t>(table.col_idx.size()),
            "table.row_ptr", "a last entry equal to col_idx.size()",
            table.row_ptr[static_cast<std::size_t>(q_blocks)]);
  for (index_t i = 0; i < q_blocks; ++i) {
    const auto b = table.row_ptr[static_cast<std::size_t>(i)],
               e = table.row_ptr[static_cast<std::size_t>(i) + 1];
    c.require(b <= e, "table.row_ptr", "non-decreasing entries", i);
    for (auto x = b; x < e; ++x) {
      const auto col = table.col_idx[static_cast<std::size_t>(x)];
      c.in_range("table.col_idx", static_cast<index_t>(col), index_t{0}, k_blocks - 1);
      c.require(x == b || table.col_idx[static_cast<std::size_t>(x) - 1] < col, "table.col_idx",
                "strictly increasing block indices within a row", col);
    }
  }
  using S = exec_packet_t<Exec>;
  const detail::contiguous_kv kv{k.data(), k.stride(0), k.stride(1), v.data(), v.stride(0), v.stride(1)};
  detail::plan pl;
  pl.q_len = T;
  pl.kv_len = L;
  pl.kv_heads = k.extent(1);
  pl.group = pl.kv_heads > 0 ? q.extent(1) / pl.kv_heads : 1;
  pl.chunk = B;  // one query block per task: its rows share one block list
  auto visible = [&](index_t t) { return detail::visible_keys<DC>(off + t, L); };
  auto ranges = [&](index_t t0, index_t, std::vector<key_range>& out) {
    const auto i = static_cast<std::size_t>(t0 / B);
    for (auto x = table.row_ptr[i]; x < table.row_ptr[i + 1]; ++x) {
      const index_t b = table.col_idx[static_cast<std::size_t>(x)];
      out.push_back({b * B, std::min(L, (b + 1) * B)});
    }
  };
  detail::drive<S, C.head_dim, C.v_dim()>(pl, q, kv, o, lse, scale, visible, ranges);
}

DSK_ISA_END
}  // namespace dsk::attention
