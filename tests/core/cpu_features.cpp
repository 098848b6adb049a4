#include "dsk/core/cpu_features.hpp"

#include <catch2/catch.hpp>

TEST_CASE("the CPU runs what this test binary was compiled for", "[cpu]") {
  const auto f = dsk::detect_cpu_features();
  INFO("compiled for " << dsk::compiled_isa() << ", CPU offers: " << f.to_string());
  REQUIRE(dsk::cpu_supports_compiled_isa(f));
  REQUIRE_NOTHROW(dsk::require_compiled_isa());
#if defined(DSK_HOST_ISA_AVX2)
  REQUIRE(f.avx2);
  REQUIRE(f.fma);
  REQUIRE(f.f16c);
#endif
  REQUIRE(!f.to_string().empty());
}
