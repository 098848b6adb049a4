// Deterministic expert weights for the MoE benchmarks: [a, b, c] values in [-0.03, 0.03] from a per-row
// xorshift (filled in parallel; the values do not matter for the time, only that they are not zero).
#pragma once

#include <array>
#include <cstdint>

#include "dsk/core.hpp"
#include "dsk/core/parallel.hpp"

namespace dsk_bench {

template <class W>
dsk::tensor<W, 3> filled(dsk::index_t a, dsk::index_t b, dsk::index_t c, std::uint32_t seed) {
  dsk::tensor<W, 3> t(std::array<dsk::index_t, 3>{a, b, c}, dsk::uninitialized);
  dsk::parallel_for(0, a, [&](dsk::index_t i) {
    std::uint32_t s = seed * 2654435761u + static_cast<std::uint32_t>(i) * 97u + 1u;
    W* p = t.data() + i * b * c;
    for (dsk::index_t j = 0; j < b * c; ++j) {
      s ^= s << 13, s ^= s >> 17, s ^= s << 5;
      p[j] = dsk::from_float<W>(float(int(s >> 9) % 2001 - 1000) * 3e-5f);
    }
  });
  return t;
}

}  // namespace dsk_bench
