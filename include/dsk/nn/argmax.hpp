// Greedy sampling: the index of the largest value of each row (the first one on ties; a NaN counts as the
// largest value, as torch.argmax does). Host, scalar (one pass over the logits per token).
// Checked against nn/ref.hpp in tests/nn/argmax.cpp.
#pragma once

#include <cmath>

#include "dsk/core/error.hpp"
#include "dsk/core/exec.hpp"
#include "dsk/core/parallel.hpp"
#include "dsk/core/view.hpp"

namespace dsk::nn {

DSK_ISA_BEGIN
// x: [rows, n] (n >= 1), out: [rows]. Scalar for every Exec (dsk::host or a packet layer).
template <host_exec Exec = host>
void argmax(view<const float, 2> x, view<index_t, 1> out) {
  const contract c{"nn::argmax"};
  c.require(x.extent(1) >= 1 || x.extent(0) == 0, "x", "extent(1) >= 1 (a row to take the argmax of)",
            x.extent(1));
  c.extent("out", out, 0, x.extent(0), "x.extent(0) (rows)");
  const index_t n = x.extent(1), ld = x.stride(1);
  parallel_for(0, x.extent(0), [&](index_t r) {
    const float* p = x.data() + r * x.stride(0);
    index_t best = 0;
    float bv = p[0];
    if (!std::isnan(bv))
      for (index_t i = 1; i < n; ++i) {
        const float v = p[i * ld];
        if (std::isnan(v)) {
          best = i;
          break;
        }
        if (v > bv) bv = v, best = i;
      }
    out(r) = best;
  });
}
DSK_ISA_END

}  // namespace dsk::nn
