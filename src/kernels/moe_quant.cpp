// dsk::kernels: moe::grouped_swiglu over int8 / int4 per-channel quantized expert banks (explicit
// instantiation definitions of the extern templates in dsk/kernels.hpp).
#include "dsk/kernels.hpp"

namespace dsk::moe {
DSK_ISA_BEGIN
DSK_KERNELS_MOE(, quantized_experts<quant::int8_per_channel>);
DSK_KERNELS_MOE(, quantized_experts<quant::int4_per_channel>);
DSK_ISA_END
}  // namespace dsk::moe
