// The AVX2 packet layer against the scalar layer (tests in packet_conformance.hpp), and the ISA separation of
// translation units built with different -march flags.
#include "dsk/simd/avx2.hpp"

#include "isa_probe.hpp"
#include "packet_conformance.hpp"

#if defined(DSK_HOST_ISA_AVX2)

DSK_PACKET_CONFORMANCE_TESTS(dsk::simd::avx2, "[simd][avx2]")

TEST_CASE("TUs built for different ISAs keep separate instantiations", "[simd][isa]") {
  const auto x = dsk::test::random_floats(37, 3), y = dsk::test::random_floats(37, 4);
  REQUIRE(dsk::test::native_name() == "avx2");
#if defined(__x86_64__)
  REQUIRE(dsk::test::baseline_tu_native_name() == "scalar");
#endif
  // Same interface, same lane order and reduction tree: bit-identical results.
  REQUIRE(dsk::test::same_bits(dsk::test::native_dot(x.data(), y.data(), 37),
                               dsk::test::baseline_tu_native_dot(x.data(), y.data(), 37)));
}

#else
TEST_CASE("avx2 packet tests", "[simd][avx2]") {
  WARN(
      "this test binary was not compiled for AVX2+FMA+F16C (set DSK_HOST_ARCH); the avx2 layer is not "
      "tested");
  REQUIRE(dsk::test::native_name() != "avx2");
}
#endif
