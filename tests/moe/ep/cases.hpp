// The problems of the expert-parallel tests (tests/moe/ep): a global routing problem that every rank builds
// from the same seed, split over the ranks by contiguous token ranges, and bitwise comparisons.
#pragma once

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dsk/moe/expert_parallel.hpp"
#include "moe/common.hpp"

namespace ep_test {
using namespace dsk;
using namespace dsk::moe;

template <class T, class U>
inline bool same_bits(const T* a, const U* b, index_t n) {
  static_assert(sizeof(T) == sizeof(U));
  return n == 0 || std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(T)) == 0;
}

// Rows [begin, end) of a [rows, cols] tensor compared with a buffer of the same row length.
template <class T>
bool same_rows(const tensor<T, 2>& whole, index_t begin, index_t end, const T* part) {
  return same_bits(whole.data() + begin * whole.extent(1), part, (end - begin) * whole.extent(1));
}

enum class routing { random_with_holes, all_to_last_rank, none, one_expert };
enum class split { even, uneven_with_empty, all_on_one };

struct ep_case {
  index_t tokens, K, experts_per_rank, H;
  routing route;
  split share;
  ep_options opt;
};

inline std::string describe(const ep_case& c) {
  return dsk::detail::concat("T=", c.tokens, " K=", c.K, " E/R=", c.experts_per_rank, " H=", c.H,
                             " routing=", static_cast<int>(c.route), " split=", static_cast<int>(c.share),
                             " block=", c.opt.block, " capacity=", c.opt.capacity,
                             " factor=", c.opt.capacity_factor);
}

// The tokens of each rank (contiguous, in rank order).
inline std::vector<index_t> token_split(const ep_case& c, int R) {
  std::vector<index_t> n(static_cast<std::size_t>(R), 0);
  switch (c.share) {
    case split::even:
      for (int r = 0; r < R; ++r) n[r] = c.tokens / R + (r < c.tokens % R);
      break;
    case split::uneven_with_empty: {  // rank 0 holds nothing, the last rank twice the others' share
      const index_t parts = R == 1 ? 1 : 2 * R - 2;  // rank 0: 0, ranks 1..R-2: 1 part each, the last: 2
      index_t given = 0;
      for (int r = 1; r < R - 1; ++r) given += n[r] = c.tokens / parts;
      n[R - 1] = c.tokens - given;
      break;
    }
    case split::all_on_one:
      n[R / 2] = c.tokens;
      break;
  }
  return n;
}

inline tensor<expert_id, 2> make_routing(const ep_case& c, index_t E, std::uint64_t seed) {
  tensor<expert_id, 2> idx(c.tokens, c.K);
  auto g = dsk::test::rng(seed);
  std::uniform_int_distribution<int> any(-1, static_cast<int>(E) - 1);
  std::uniform_int_distribution<int> last(static_cast<int>(E - c.experts_per_rank), static_cast<int>(E) - 1);
  for (index_t t = 0; t < c.tokens; ++t)
    for (index_t k = 0; k < c.K; ++k) switch (c.route) {
        case routing::random_with_holes:
          idx(t, k) = any(g);
          break;  // -1 and repeated ids included
        case routing::all_to_last_rank:
          idx(t, k) = last(g);
          break;
        case routing::none:
          idx(t, k) = -1;
          break;
        case routing::one_expert:
          idx(t, k) = k == 0 ? static_cast<expert_id>(E / 2) : -1;
          break;
      }
  return idx;
}

// The rows of `src` [T, C] from `begin` to `begin + n`, as an owning tensor (a rank's share).
template <class T>
tensor<T, 2> rows_of(const tensor<T, 2>& src, index_t begin, index_t n) {
  tensor<T, 2> out({n, src.extent(1)}, uninitialized);
  std::copy_n(src.data() + begin * src.extent(1), n * src.extent(1), out.data());
  return out;
}

// Empty and one-token problems, awkward sizes, all tokens to one rank or held by one rank, capacity drops,
// padded segments, no routed pair at all, K = 0.
inline std::vector<ep_case> standard_cases() {
  return {
      {0, 2, 2, 8, routing::random_with_holes, split::even, {}},
      {1, 1, 1, 1, routing::random_with_holes, split::all_on_one, {}},
      {37, 3, 2, 33, routing::random_with_holes, split::even, {}},
      {37, 3, 2, 33, routing::random_with_holes, split::uneven_with_empty, {4, 0.0, -1}},
      {40, 2, 3, 16, routing::all_to_last_rank, split::even, {}},
      {40, 2, 3, 16, routing::all_to_last_rank, split::all_on_one, {1, 0.0, 5}},
      {29, 4, 1, 7, routing::random_with_holes, split::uneven_with_empty, {1, 0.0, 3}},
      {64, 2, 2, 24, routing::random_with_holes, split::even, {8, 0.5, -1}},
      {64, 2, 2, 24, routing::random_with_holes, split::all_on_one, {1, 1.25, -1}},
      {13, 2, 2, 5, routing::none, split::uneven_with_empty, {}},
      {50, 3, 4, 9, routing::one_expert, split::even, {2, 0.0, 7}},
      {16, 0, 2, 4, routing::none, split::even, {}},
  };
}

}  // namespace ep_test
