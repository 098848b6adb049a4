// A seeded ISA leak for the isa_leak_canary test: two dsk functions outside any ISA namespace whose code uses
// ymm registers, one inline (a weak symbol in its own COMDAT section) and one not (a global symbol in .text).
// tools/isa-leak-check.sh must name both; only this object library compiles the file, nothing links it.
#include <immintrin.h>

namespace dsk::isa_canary_leak {  // "isa_" inside a longer name: still no ISA namespace
[[gnu::noinline]] inline void doubled(float* a) {
  _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(a)));
}
void squared(float* a) { _mm256_storeu_ps(a, _mm256_mul_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(a))); }
void uses_doubled(float* a) { doubled(a); }
}  // namespace dsk::isa_canary_leak
