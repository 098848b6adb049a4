// Plain scalar references of dsk::attention, written from the formulas in double precision: softmax attention
// under an explicit visibility predicate, and the block-sparse, NSA and MLA forms built on it. The oracle of
// tests/attention/*; shares no code with the optimised paths (host/*). Host only.
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

}  // namespace dsk::attention::ref
