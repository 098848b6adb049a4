// The NEON packet layer against the scalar layer (tests in packet_conformance.hpp). Cross-compiled for
// AArch64 and run under qemu-aarch64 (tests/simd/neon.cmake).
#include "dsk/simd/neon.hpp"

#include "packet_conformance.hpp"

#if defined(DSK_HOST_ISA_NEON)
DSK_PACKET_CONFORMANCE_TESTS(dsk::simd::neon, "[simd][neon]")
#else
#error "tests/simd/neon.cpp must be compiled for AArch64 with Advanced SIMD"
#endif
