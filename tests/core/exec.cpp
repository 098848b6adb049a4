#include "dsk/core/exec.hpp"

#include <catch2/catch.hpp>

TEST_CASE("execution tags select a packet layer", "[exec]") {
  static_assert(std::is_same_v<dsk::exec_packet_t<dsk::host>, dsk::simd::native>);
  static_assert(std::is_same_v<dsk::exec_packet_t<dsk::simd::scalar>, dsk::simd::scalar>);
  static_assert(dsk::host_exec<dsk::host> && dsk::host_exec<dsk::simd::scalar>);
  static_assert(!dsk::host_exec<dsk::cuda> && !dsk::host_exec<int>);
  CHECK(std::is_same_v<dsk::exec_packet_t<dsk::simd::scalar>, dsk::simd::scalar>);
  CHECK(dsk::host_exec<dsk::simd::native>);
  CHECK_FALSE(dsk::host_exec<dsk::cuda>);
  CHECK_FALSE(dsk::host_exec<float>);
}
