// moe::ep_communicator's helpers for models whose other layers are replicated: token_range splits T tokens
// into contiguous shares in rank order, allgather_rows puts the shares back together on every rank (uneven
// and empty shares, strided views in and out), allgather collects one value per rank; a row count that
// does not add up makes every rank throw.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

#include "dsk/moe/expert_parallel.hpp"
#include "support/mpi.hpp"

namespace {
using dsk::test::world_rank;
using dsk::test::world_size;
using namespace dsk;
using namespace dsk::moe;
using Catch::Matchers::Contains;

// The value every rank writes for row t (global) and column c: the same on all ranks, distinct everywhere.
float cell(index_t t, index_t c) { return static_cast<float>(1000 * t + c) + 0.25f; }
}  // namespace

TEST_CASE("ep_communicator::token_range splits the tokens contiguously in rank order", "[ep]") {
  const int R = world_size(), me = world_rank();
  const index_t H = 3;
  ep_communicator ep(MPI_COMM_WORLD, R, H, 60.0);
  for (const index_t T : {index_t{0}, index_t{1}, index_t{2}, index_t{5}, index_t{13}, index_t{64}}) {
    const auto [first, count] = ep.token_range(T);
    // Independent of the formula: every rank's range, gathered, must tile [0, T) in rank order, and the
    // shares differ by at most one token.
    const auto firsts = ep.allgather(first), counts = ep.allgather(count);
    index_t next = 0, lo = T, hi = 0;
    for (int r = 0; r < R; ++r) {
      CHECK(firsts[static_cast<std::size_t>(r)] == next);
      next += counts[static_cast<std::size_t>(r)];
      lo = std::min<index_t>(lo, counts[static_cast<std::size_t>(r)]);
      hi = std::max<index_t>(hi, counts[static_cast<std::size_t>(r)]);
    }
    CHECK(next == T);
    CHECK(hi - lo <= 1);
    CHECK(firsts[static_cast<std::size_t>(me)] == first);
  }
  CHECK_THROWS_WITH(ep.token_range(-1), Contains("argument 'tokens'"));
}

TEST_CASE("ep_communicator::allgather_rows gathers every rank's rows in rank order", "[ep]") {
  const int R = world_size(), me = world_rank();
  const index_t H = 5;
  ep_communicator ep(MPI_COMM_WORLD, R, H, 60.0);
  // Uneven shares: rank r sends r + 1 rows (and rank 1, when there is one, none).
  const auto rows_of = [](int r) { return r == 1 ? index_t{0} : index_t{r + 1}; };
  index_t total = 0, mine_first = 0;
  for (int r = 0; r < R; ++r) {
    if (r == me) mine_first = total;
    total += rows_of(r);
  }
  for (const bool strided : {false, true}) {
    INFO("strided " << strided);
    const index_t pad = strided ? 3 : 0;  // row stride H + pad in both views
    std::vector<float> in(static_cast<std::size_t>(std::max<index_t>(rows_of(me), 1) * (H + pad)), -1.0f);
    std::vector<float> out(static_cast<std::size_t>(total * (H + pad)), -1.0f);
    const view<float, 2> part(in.data(), dims<2>(rows_of(me), H), {H + pad, 1});
    const view<float, 2> all(out.data(), dims<2>(total, H), {H + pad, 1});
    for (index_t t = 0; t < rows_of(me); ++t)
      for (index_t c = 0; c < H; ++c) part(t, c) = cell(mine_first + t, c);
    ep.allgather_rows(part, all);
    bool ok = true;
    for (index_t t = 0; t < total; ++t)
      for (index_t c = 0; c < H; ++c) ok = ok && all(t, c) == cell(t, c);
    for (index_t t = 0; t < total && pad > 0; ++t)  // the padding is not written
      for (index_t c = H; c < H + pad; ++c)
        ok = ok && out[static_cast<std::size_t>(t * (H + pad) + c)] == -1.0f;
    CHECK(ok);
  }
  const auto values = ep.allgather(10 * me + 7);
  REQUIRE(values.size() == static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) CHECK(values[static_cast<std::size_t>(r)] == 10 * r + 7);
}

TEST_CASE("ep_communicator::allgather_rows rejects shapes on every rank", "[ep]") {
  const int R = world_size(), me = world_rank();
  const index_t H = 4;
  ep_communicator ep(MPI_COMM_WORLD, R, H, 60.0);
  tensor<float, 2> part(2, H), all(2 * R, H), wrong(2 * R + (me == R - 1 ? 1 : 0), H), narrow(2, H - 1);
  part.fill(1.0f);
  // The last rank's `all` has one row too many: every rank throws, naming the last rank.
  CHECK_THROWS_WITH(ep.allgather_rows(part.cview(), wrong.view()),
                    Contains("argument 'all'") && Contains(dsk::detail::concat("on rank ", R - 1)));
  // A wrong width on rank 0 only: rank 0 names the argument, the others name rank 0.
  if (me == 0)
    CHECK_THROWS_WITH(ep.allgather_rows(narrow.cview(), all.view()), Contains("argument 'part'"));
  else
    CHECK_THROWS_WITH(ep.allgather_rows(part.cview(), all.view()), Contains("rank 0 rejected its arguments"));
  // all overlapping part.
  CHECK_THROWS_WITH(ep.allgather_rows(all.cview().slice(0, 0, 2), all.view()), Contains("argument 'all'"));
  // Still usable.
  ep.allgather_rows(part.cview(), all.view());
  bool ok = true;
  for (index_t i = 0; i < all.size(); ++i) ok = ok && all.data()[i] == 1.0f;
  CHECK(ok);
}
