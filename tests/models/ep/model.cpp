// dsk_v2::model expert-parallel (examples/v2/expert_parallel.hpp) under mpirun -np 1, 2, 4: the tiny preset
// with its routed experts split over the ranks against the whole model in one process (every rank builds that
// reference itself: the random weights are deterministic): the same logits bit for bit, prefill (a prompt
// whose token shares are uneven) and greedy decode over the latent cache (one token: rank 0's share, the
// others route none), in every weight format; each rank holds only its share of the experts; ranks that
// disagree and models loaded for another split give a clear error on every rank.
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "expert_parallel.hpp"
#include "support/mpi.hpp"

using namespace dsk;

namespace {
using dsk::test::on_all_ranks;
using dsk::test::world_rank;
using dsk::test::world_size;
bool same_bits(const tensor<float, 2>& a, const tensor<float, 2>& b) {
  return a.extent(0) == b.extent(0) && a.extent(1) == b.extent(1) &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(float)) == 0;
}
std::int32_t argmax(const tensor<float, 2>& l) {
  index_t best = 0;
  for (index_t v = 1; v < l.extent(1); ++v)
    if (l(0, v) > l(0, best)) best = v;
  return static_cast<std::int32_t>(best);
}
std::string join(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (const auto t : ids) s += std::to_string(t) + " ";
  return s;
}
std::shared_ptr<dsk_v2::expert_exchange> world_exchange(double timeout_s = 60.0) {
  return std::make_shared<dsk_v2::mpi_expert_exchange>(MPI_COMM_WORLD, timeout_s);
}
dsk_v2::load_options shard_of_world() {
  return {.expert_shard = world_rank(), .expert_shards = world_size()};
}
}  // namespace

TEST_CASE("models ep: the tiny model split over the ranks gives one process's logits bit for bit",
          "[models][ep]") {
  const int R = world_size(), r = world_rank();
  const index_t E = dsk_v2::tiny.n_routed_experts;
  // 13 prompt tokens: shares of 3 and 4 over 4 ranks, 6 and 7 over 2; then 8 greedy steps.
  const std::vector<std::int32_t> prompt = {1, 17, 42, 7, 99, 3, 250, 11, 480, 64, 5, 301, 77};
  constexpr int steps = 8;
  for (const auto fmt : {dsk_v2::weight_format::checkpoint, dsk_v2::weight_format::f32,
                         dsk_v2::weight_format::int8, dsk_v2::weight_format::int4}) {
    INFO("weight format " << static_cast<int>(fmt) << ", " << R << " ranks, rank " << r);
    const auto whole = dsk_v2::model::random(dsk_v2::tiny, fmt);
    auto split = dsk_v2::model::random(dsk_v2::tiny, fmt, shard_of_world());
    split.set_expert_parallel(world_exchange());
    CHECK(split.held_experts() == std::pair<index_t, index_t>{r * E / R, E / R});
    CHECK(whole.held_experts() == std::pair<index_t, index_t>{0, E});

    const auto a = dsk::test::prefill_logits(whole, prompt), b = dsk::test::prefill_logits(split, prompt);
    CHECK(on_all_ranks(same_bits(a, b)));
    CHECK(dsk::test::rms(a) > 0.0);

    // Greedy decode over the cache: both models sample their own argmax; the tokens and logits must agree.
    auto ca = whole.new_cache(static_cast<index_t>(prompt.size()) + steps);
    auto cb = split.new_cache(static_cast<index_t>(prompt.size()) + steps);
    const std::array<index_t, 2> one_row{1, whole.config().vocab_size};
    tensor<float, 2> la(one_row), lb(one_row);
    whole.forward(prompt, ca, la.view());
    split.forward(prompt, cb, lb.view());
    bool same = same_bits(la, lb);
    std::vector<std::int32_t> ta, tb;
    for (int i = 0; i < steps && same; ++i) {
      ta.push_back(argmax(la));
      tb.push_back(argmax(lb));
      const std::int32_t na[1] = {ta.back()}, nb[1] = {tb.back()};
      whole.forward(na, ca, la.view());
      split.forward(nb, cb, lb.view());
      same = same_bits(la, lb) && ta == tb;
    }
    INFO("tokens " << join(ta) << " vs " << join(tb));
    CHECK(on_all_ranks(same));
    CHECK(ta.size() == steps);
    // Every rank routes all tokens (the router is replicated), so the expert load is the whole model's.
    CHECK(split.prof().expert_tokens == whole.prof().expert_tokens);
  }
}

TEST_CASE("models ep: each rank holds only its share of the routed experts", "[models][ep]") {
  const int R = world_size();
  // checkpoint format: the bf16 experts are views of the mapped file, weight_bytes counts exactly their
  // bytes.
  const auto whole = dsk_v2::model::random(dsk_v2::tiny, dsk_v2::weight_format::checkpoint);
  const auto split = dsk_v2::model::random(dsk_v2::tiny, dsk_v2::weight_format::checkpoint, shard_of_world());
  const auto& d = dsk_v2::tiny;
  index_t moe_layers = 0;
  for (index_t i = 0; i < d.num_hidden_layers; ++i) moe_layers += d.is_moe_layer(i);
  const std::int64_t routed_bytes = moe_layers * d.n_routed_experts * 3 * d.moe_intermediate_size *
                                    d.hidden_size * std::int64_t(sizeof(bf16));
  CHECK(whole.weight_bytes() - split.weight_bytes() == routed_bytes - routed_bytes / R);
}

TEST_CASE("models ep: bad splits give a clear error on every rank", "[models][ep]") {
  const int R = world_size(), r = world_rank();
  using dsk_v2::weight_format;
  // Local checks (no exchange): a split that does not divide the experts, a shard out of range, LoRA.
  CHECK_THROWS_WITH(
      dsk_v2::model::random(dsk_v2::tiny, weight_format::f32, {.expert_shards = 3}),
      Catch::Contains("load_options.expert_shards") && Catch::Contains("a divisor of n_routed_experts = 16"));
  CHECK_THROWS_WITH(
      dsk_v2::model::random(dsk_v2::tiny, weight_format::f32, {.expert_shard = 2, .expert_shards = 2}),
      Catch::Contains("load_options.expert_shard") && Catch::Contains("[0, 1]"));
  CHECK_THROWS_WITH(
      dsk_v2::model::random(dsk_v2::tiny, weight_format::f32, {.lora = "adapter", .expert_shards = 2}),
      Catch::Contains("load_options.lora") && Catch::Contains("no adapter when the experts are split"));
  if (R > 1) {
    // A model holding a share cannot run alone, nor over an exchange whose rank holds another share.
    auto share = dsk_v2::model::random(dsk_v2::tiny, weight_format::f32, shard_of_world());
    CHECK_THROWS_WITH(share.set_expert_parallel(nullptr), Catch::Contains("this model holds only experts ["));
    auto other = dsk_v2::model::random(dsk_v2::tiny, weight_format::f32,
                                       {.expert_shard = (r + 1) % R, .expert_shards = R});
    CHECK_THROWS_WITH(other.set_expert_parallel(world_exchange()),
                      Catch::Contains("holds the experts this model loaded"));
    // Ranks that run different models: rank 0 has 16 experts, the others 8 (still a multiple of R).
    dsk_v2::preset p = dsk_v2::tiny;
    if (r > 0) p.n_routed_experts = 8, p.n_group = 4, p.topk_group = 2;
    auto mixed = dsk_v2::model::random(p, weight_format::f32, shard_of_world());
    CHECK_THROWS_WITH(mixed.set_expert_parallel(world_exchange()),
                      Catch::Contains("experts") && Catch::Contains("the same on every rank"));
  }
  // The world is still usable: a correct split runs afterwards.
  auto ok = dsk_v2::model::random(dsk_v2::tiny, weight_format::f32, shard_of_world());
  ok.set_expert_parallel(world_exchange());
  const std::vector<std::int32_t> toks = {3, 4, 5};
  CHECK(dsk::test::rms(dsk::test::prefill_logits(ok, toks)) > 0.0);
}
