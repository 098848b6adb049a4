// DeepSeek-V1 presets (examples/v1/presets.hpp): the 13B card's constexpr count against the seed's 13.0B, and
// the tiny preset's count against a sum written out by hand from the architecture (not from the code).
#include <catch2/catch.hpp>

#include "../../examples/v1/presets.hpp"

// Checked at compile time as well (presets.hpp has the same assert): within 3% of the card's 13.0 B.
static_assert(dsk_v1::parameter_count(dsk_v1::v1_card) >= 12'610'000'000 &&
              dsk_v1::parameter_count(dsk_v1::v1_card) <= 13'390'000'000);

TEST_CASE("models: the V1 card has 13.0B parameters, the tiny preset its hand count",
          "[models][presets][v1]") {
  const double card = static_cast<double>(dsk_v1::parameter_count(dsk_v1::v1_card));
  CHECK(card / 13.0e9 == Approx(1.0).margin(0.03));
  // tiny: d 64, 4 heads, 2 KV heads, dh 16, SwiGLU 128, vocab 512, 2 + 2 layers, mean-pooled compression.
  //   embedding (tied): 512*64 = 32768
  //   self-attention: q 64*64 + k,v 2*64*32 + o 64*64 = 12288, gates 3*4*64 = 768
  //   cross-attention: 12288; FFN: 3*64*128 = 24576
  //   encoder layer: 12288 + 768 + 24576 + 2*64 = 37760
  //   decoder layer: 12288 + 768 + 12288 + 24576 + 3*64 = 50112
  //   total: 32768 + 2*37760 + 2*50112 + 2*64 (final norms) = 208640
  CHECK(dsk_v1::parameter_count(dsk_v1::tiny) == 208640);
  // learned-linear compression adds w_k, w_v [16, 8*16] and pe_k, pe_v [8, 16] per self-attention (4 of them:
  // 2 encoder, 2 decoder; cross attention has none)
  auto learned = dsk_v1::tiny;
  learned.learned_compression = true;
  CHECK(dsk_v1::parameter_count(learned) - dsk_v1::parameter_count(dsk_v1::tiny) ==
        4 * (2 * 16 * 128 + 2 * 8 * 16));
}
