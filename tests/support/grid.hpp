// Compile-time size of the tests' type grids. A sanitizer build compiles every test again with
// instrumentation, and its time is spent instantiating kernels, not running them: with DSK_TEST_SMALL_GRID
// (on by default in sanitizer and cross builds, tests/CMakeLists.txt) a test may instantiate fewer formats or
// configs for cases whose code paths another instantiation in the same build already covers. The AArch64
// build (cross-compiled, run under qemu) uses it too: its point is the NEON paths, which the small grid keeps.
// Runtime shape grids (the awkward lengths, tails, empty inputs) never shrink: those are what the sanitizers
// look at.
#pragma once

#ifndef DSK_TEST_SMALL_GRID
#define DSK_TEST_SMALL_GRID 0
#endif

namespace dsk::test {
inline constexpr bool small_grid = DSK_TEST_SMALL_GRID != 0;
}  // namespace dsk::test
