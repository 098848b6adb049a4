#include "dsk/core/dispatch.hpp"

#include <catch2/catch.hpp>

TEST_CASE("dispatch maps a runtime value onto a compiled choice", "[dispatch]") {
  auto twice = [](auto c) { return 2 * c.value; };
  REQUIRE(dsk::dispatch<64, 128, 192, 256>("head_dim", 192, twice) == 384);
  REQUIRE(dsk::dispatch<64, 128, 192, 256>("head_dim", 64, twice) == 128);
  REQUIRE_THROWS_AS((dsk::dispatch<64, 128>("head_dim", 96, twice)), dsk::unsupported);
  REQUIRE_THROWS_WITH((dsk::dispatch<64, 128, 192, 256>("head_dim", 96, twice)),
                      "dsk: head_dim = 96 is not supported; compiled choices: 64, 128, 192, 256");
  int seen = 0;
  dsk::dispatch<1, 2, 4>("group", 4, [&](auto c) { seen = c.value; });
  REQUIRE(seen == 4);
  static_assert(
      std::is_same_v<decltype(dsk::dispatch<1>("x", 1, [](auto c) { return c; })), dsk::constant<1>>);
}

namespace {
struct widths {
  int a = 0, b = 0;
  friend constexpr bool operator==(const widths&, const widths&) = default;
};
std::string to_string(const widths& w) { return "(" + std::to_string(w.a) + ", " + std::to_string(w.b) + ")"; }
}  // namespace

TEST_CASE("dispatch maps a runtime config onto a compiled structural config", "[dispatch]") {
  auto sum = [](auto c) { return c.value.a + c.value.b; };
  REQUIRE(dsk::dispatch<widths{512, 64}, widths{128, 16}>("mla widths", widths{128, 16}, sum) == 144);
  REQUIRE(dsk::dispatch<widths{512, 64}, widths{128, 16}>("mla widths", widths{512, 64}, sum) == 576);
  REQUIRE_THROWS_WITH((dsk::dispatch<widths{512, 64}, widths{128, 16}>("mla widths", widths{1, 2}, sum)),
                      "dsk: mla widths = (1, 2) is not supported; compiled choices: (512, 64), (128, 16)");
}
