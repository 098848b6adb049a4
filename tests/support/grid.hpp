// Compile-time size of the tests' type grids. A sanitizer build compiles every test again with
// instrumentation, and its time is spent instantiating kernels, not running them: with DSK_TEST_SMALL_GRID
// (on by default when DSK_SANITIZE is set, tests/CMakeLists.txt) a test may instantiate fewer formats or
// configs for cases whose code paths another instantiation in the same build already covers. Runtime shape
// grids (the awkward lengths, tails, empty inputs) never shrink: those are what the sanitizers look at.
#pragma once

#ifndef DSK_TEST_SMALL_GRID
#define DSK_TEST_SMALL_GRID 0
#endif

namespace dsk::test {
inline constexpr bool small_grid = DSK_TEST_SMALL_GRID != 0;
}  // namespace dsk::test
