// The Lite int4 layout's reader lives in examples/common/int4_layout.hpp (the shared loader builds dsk_v2's
// model on it); dsk_lite's names for it.
#pragma once

#include "../common/int4_layout.hpp"

namespace dsk_lite {
using dsk_examples::int4_weight;
using dsk_examples::parse_quantization;
}  // namespace dsk_lite
