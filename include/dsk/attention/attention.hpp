// Umbrella header of dsk::attention (host): dense flash attention and LSE merge, block-sparse (BSR), NSA
// dynamic block attention, MLA. Each is checked against attention/ref.hpp in tests/attention/.
#pragma once

#include "dsk/attention/bsr.hpp"
#include "dsk/attention/flash.hpp"
#include "dsk/attention/mla.hpp"
#include "dsk/attention/nsa.hpp"
