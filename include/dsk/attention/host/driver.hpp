// Host task driver shared by the dense, paged and block-sparse attention entry points: splits (KV head, query
// chunk, key split) into parallel tasks around the engine of flash_avx2.hpp, merges split-K partial states by
// log-sum-exp and writes the normalised output. Checked against dsk/attention/ref.hpp (tests/attention/*).
#pragma once

#include <algorithm>
#include <atomic>
#include <span>
#include <vector>

#include "dsk/attention/host/flash_avx2.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"

namespace dsk::attention::detail {
DSK_ISA_BEGIN

// Runs body(i) for i in [0, n) on the threads, each thread taking the next task from a shared counter: causal
// tasks differ in cost (later query chunks see more keys), and on a shared machine a descheduled thread must
// not hold a fixed half of the work. Each task's result does not depend on which thread runs it.
template <class Body>
void parallel_tasks(index_t n, Body&& body) {
  if (n <= 0) return;
  std::atomic<index_t> next{0};
  const index_t threads = std::min<index_t>(num_threads(), n);
  parallel_for(0, threads, [&](index_t) {
    for (index_t i = next.fetch_add(1, std::memory_order_relaxed); i < n;
         i = next.fetch_add(1, std::memory_order_relaxed))
      body(i);
  });
}

// How the rows of one call are cut into tasks. Query tokens [0, q_len) go in chunks of `chunk` tokens; each
// token contributes `group` rows (the query heads of one KV head). visible(t) -> key_range gives the keys
// token t may see; ranges(t0, t1, out) lists the key ranges a chunk visits (a superset of the visible keys).
struct plan {
  index_t q_len = 0;
  index_t kv_len = 0;
  index_t kv_heads = 0;
  index_t group = 1;
  index_t chunk = 1;
  bool allow_split = true;  // split the keys of a task over threads when there are too few tasks
};

// Split-K (the keys of a task cut into nsplit parts whose partial states are merged by log-sum-exp in split
// order) changes the rounding, so the split count is a function of the problem size alone, never of the
// thread count: 1 thread and 64 threads give the same bits (as every other dsk kernel does). Enough splits to
// keep ~split_tasks tasks in flight when there are few (KV head, query chunk) tasks, each split at least
// split_keys keys long; the token-major decode walk splits into up to kv_major_max_splits parts of at least
// 8 tiles.
inline constexpr index_t split_tasks = 32, split_keys = 1024;
inline constexpr index_t kv_major_max_splits = 32, kv_major_split_tiles = 8;
inline index_t key_splits(index_t base_tasks, index_t kv_len) {
  if (base_tasks <= 0 || base_tasks >= split_tasks) return 1;
  return std::clamp<index_t>((split_tasks + base_tasks - 1) / base_tasks, 1,
                             std::max<index_t>(1, kv_len / split_keys));
}
inline index_t kv_major_splits(index_t tiles) {
  return std::clamp<index_t>(tiles / kv_major_split_tiles, 1, kv_major_max_splits);
}

template <class S, int D, int Dv, class KV, class Visible, class Ranges>
void drive_kv_major(const plan& pl, view<const float, 3> q, const KV& kv, view<float, 3> o,
                    view<float, 2> lse, float scale, Visible& visible, Ranges& ranges_of) {
  const index_t G = pl.group, Hkv = pl.kv_heads, H = Hkv * G, T = pl.q_len, RH = T * G, rows = Hkv * RH;
  std::vector<key_range> ranges;
  ranges_of(index_t{0}, T, ranges);
  const index_t tiles = (pl.kv_len + tile_keys - 1) / tile_keys;
  // Splits handed out dynamically (a shared machine may stall any one thread); how many depends on the
  // length only, never on the thread count, so the merged result is the same bits on any machine.
  const index_t nsplit = kv_major_splits(tiles);
  // Partial states per split: [split][row], row = kvh * RH + t * G + g.
  std::vector<float> acc(static_cast<std::size_t>(nsplit * rows * Dv)),
      m(static_cast<std::size_t>(nsplit * rows)), l(static_cast<std::size_t>(nsplit * rows));
  parallel_tasks(nsplit, [&](index_t sp) {
    const index_t k0 = std::min(pl.kv_len, tiles * sp / nsplit * tile_keys);
    const index_t k1 = std::min(pl.kv_len, tiles * (sp + 1) / nsplit * tile_keys);
    std::vector<const float*> qp(static_cast<std::size_t>(rows));
    std::vector<index_t> lo(static_cast<std::size_t>(rows)), hi(static_cast<std::size_t>(rows));
    for (index_t kvh = 0; kvh < Hkv; ++kvh)
      for (index_t t = 0; t < T; ++t) {
        const key_range vis = visible(t);
        for (index_t g = 0; g < G; ++g) {
          const index_t r = kvh * RH + t * G + g;
          qp[r] = &q(t, kvh * G + g, index_t{0});
          lo[r] = vis.begin;
          hi[r] = vis.end;
        }
      }
    float* a = acc.data() + sp * rows * Dv;
    float* mm = m.data() + sp * rows;
    float* ll = l.data() + sp * rows;
    reset_state(rows, Dv, a, mm, ll);
    for (const key_range& kr : ranges) {
      const index_t b = std::max(kr.begin, k0), e = std::min(kr.end, k1);
      // One 64-key tile of every head per step: memory order, and the per-call softmax overhead amortised
      // over 64 keys (software prefetch measured no gain here: the walk is sequential).
      for (index_t j0 = b; j0 < e; j0 += tile_keys) {
        const key_range tile{j0, std::min(e, j0 + tile_keys)};
        for (index_t kvh = 0; kvh < Hkv; ++kvh) {
          const index_t r0 = kvh * RH;
          const row_set st{RH, qp.data() + r0, lo.data() + r0, hi.data() + r0, a + r0 * Dv, mm + r0, ll + r0};
          attend<S, D, Dv>(kv, kvh, std::span<const key_range>(&tile, 1), st, scale);
        }
      }
    }
  });
  // The merge is tiny for decode: serial, so a call opens one parallel region, not two.
  auto merge_row = [&](index_t r) {
    float* a = acc.data() + r * Dv;
    float mm = m[r], ll = l[r];
    for (index_t sp = 1; sp < nsplit; ++sp)
      combine_state<S, Dv>(a, mm, ll, acc.data() + (sp * rows + r) * Dv, m[sp * rows + r], l[sp * rows + r]);
    const index_t kvh = r / RH, t = (r % RH) / G, g = r % G, h = kvh * G + g;
    (void)H;
    finalize_row<S, Dv>(a, mm, ll, &o(t, h, index_t{0}), lse.data() ? &lse(t, h) : nullptr);
  };
  if (rows * nsplit * Dv < (index_t{1} << 18))
    for (index_t r = 0; r < rows; ++r) merge_row(r);
  else
    parallel_for(0, rows, merge_row);
}

template <class S, int D, int Dv, class KV, class Visible, class Ranges>
void drive(const plan& pl, view<const float, 3> q, const KV& kv, view<float, 3> o, view<float, 2> lse,
           float scale, Visible&& visible, Ranges&& ranges_of) {
  const index_t G = pl.group, H = pl.kv_heads * G, T = pl.q_len;
  if (T == 0 || H == 0) return;
  const index_t nchunks = (T + pl.chunk - 1) / pl.chunk;
  const index_t base_tasks = pl.kv_heads * nchunks;
  const index_t nsplit = pl.allow_split ? key_splits(base_tasks, pl.kv_len) : 1;
  const bool split = nsplit > 1;

  // Split-K partial states, indexed by (split, token * H + head).
  std::vector<float> part_acc, part_m, part_l;
  if (split) {
    part_acc.assign(static_cast<std::size_t>(nsplit * T * H * Dv), 0.0f);
    part_m.assign(static_cast<std::size_t>(nsplit * T * H), neg_inf);
    part_l.assign(static_cast<std::size_t>(nsplit * T * H), 0.0f);
  }

  // Decode-like calls (one chunk, few rows per KV head, several KV heads): walk the keys in memory order with
  // all heads at each tile instead of one head at a time. A head's rows are kv_heads * dim floats apart, so
  // per-head walks touch a new page per key (TLB misses, no hardware prefetch); token-major walks stream.
  if (nchunks == 1 && T * G <= 16 && pl.kv_heads > 1) {
    drive_kv_major<S, D, Dv>(pl, q, kv, o, lse, scale, visible, ranges_of);
    return;
  }

  parallel_tasks(base_tasks * nsplit, [&](index_t task) {
    const index_t sp = task % nsplit, rest = task / nsplit;
    // Last query chunks first: under a causal mask they are the longest tasks (longest-first balancing).
    const index_t kvh = rest % pl.kv_heads, c = nchunks - 1 - rest / pl.kv_heads;
    const index_t t0 = c * pl.chunk, t1 = std::min(T, t0 + pl.chunk);
    const index_t rows = (t1 - t0) * G;
    // Keys of this split, in whole tiles so that split boundaries do not add partial tiles.
    const index_t tiles = (pl.kv_len + tile_keys - 1) / tile_keys;
    const index_t k0 = std::min(pl.kv_len, tiles * sp / nsplit * tile_keys);
    const index_t k1 = std::min(pl.kv_len, tiles * (sp + 1) / nsplit * tile_keys);

    std::vector<const float*> qp(static_cast<std::size_t>(rows));
    std::vector<index_t> lo(static_cast<std::size_t>(rows)), hi(static_cast<std::size_t>(rows));
    std::vector<float> acc_local, m_local, l_local;
    for (index_t t = t0; t < t1; ++t) {
      const key_range vis = visible(t);
      for (index_t g = 0; g < G; ++g) {
        const index_t r = (t - t0) * G + g;
        qp[r] = &q(t, kvh * G + g, index_t{0});
        lo[r] = std::max(vis.begin, k0);
        hi[r] = std::min(vis.end, k1);
      }
    }
    std::vector<key_range> ranges;
    ranges_of(t0, t1, ranges);
    for (key_range& kr : ranges) {
      kr.begin = std::max(kr.begin, k0);
      kr.end = std::min(kr.end, k1);
    }
    std::erase_if(ranges, [](const key_range& kr) { return kr.begin >= kr.end; });

    acc_local.resize(static_cast<std::size_t>(rows * Dv));
    m_local.resize(static_cast<std::size_t>(rows));
    l_local.resize(static_cast<std::size_t>(rows));
    reset_state(rows, Dv, acc_local.data(), m_local.data(), l_local.data());
    row_set st{rows, qp.data(), lo.data(), hi.data(), acc_local.data(), m_local.data(), l_local.data()};
    attend<S, D, Dv>(kv, kvh, ranges, st, scale);

    for (index_t t = t0; t < t1; ++t)
      for (index_t g = 0; g < G; ++g) {
        const index_t r = (t - t0) * G + g, h = kvh * G + g;
        if (split) {
          const index_t gr = sp * T * H + t * H + h;
          std::copy_n(acc_local.data() + r * Dv, Dv, part_acc.data() + gr * Dv);
          part_m[gr] = m_local[r];
          part_l[gr] = l_local[r];
        } else {
          finalize_row<S, Dv>(acc_local.data() + r * Dv, m_local[r], l_local[r], &o(t, h, index_t{0}),
                              lse.data() ? &lse(t, h) : nullptr);
        }
      }
  });

  if (split) {
    // Decode-sized merges run serially: one parallel region per call instead of two.
    auto merge_row = [&](index_t gr) {
      float* acc = part_acc.data() + gr * Dv;
      float m = part_m[gr], l = part_l[gr];
      for (index_t sp = 1; sp < nsplit; ++sp) {
        const index_t g2 = sp * T * H + gr;
        combine_state<S, Dv>(acc, m, l, part_acc.data() + g2 * Dv, part_m[g2], part_l[g2]);
      }
      const index_t t = gr / H, h = gr % H;
      finalize_row<S, Dv>(acc, m, l, &o(t, h, index_t{0}), lse.data() ? &lse(t, h) : nullptr);
    };
    if (T * H * nsplit * Dv < (index_t{1} << 18))
      for (index_t gr = 0; gr < T * H; ++gr) merge_row(gr);
    else
      parallel_for(0, T * H, merge_row);
  }
}

DSK_ISA_END
}  // namespace dsk::attention::detail
