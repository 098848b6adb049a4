// Built with -march=x86-64: here dsk::simd::native is the scalar layer, and everything ISA-dependent lives in
// the isa_scalar inline namespace, so it cannot be merged with the AVX2 instantiations of the other TUs.
#include "isa_probe.hpp"

namespace dsk::test {
std::string_view baseline_tu_native_name() { return native_name(); }
float baseline_tu_native_dot(const float* a, const float* b, int n) { return native_dot(a, b, n); }
}  // namespace dsk::test
