// dsk::kernels: moe::route (softmax scores, greedy and group-limited top-k; sigmoid noaux_tc), gate_logits,
// dispatch_tokens and combine_tokens, and quant::quantize of f32 / bf16 matrices into int8 / int4 per channel
// (the expert stores) (explicit instantiation definitions of the extern templates in dsk/kernels.hpp).
#include "dsk/kernels.hpp"

namespace dsk::moe {
DSK_ISA_BEGIN
DSK_KERNELS_MOE_ROUTE(, router_config{});
DSK_KERNELS_MOE_ROUTE(, router_config{.method = topk_method::group_limited_greedy});
DSK_KERNELS_MOE_ROUTE(, deepseek_v3_router);
DSK_KERNELS_MOE_TOKENS();
DSK_ISA_END
}  // namespace dsk::moe

namespace dsk::quant {
DSK_ISA_BEGIN
DSK_KERNELS_QUANTIZE(, int8_per_channel);
DSK_KERNELS_QUANTIZE(, int4_per_channel);
DSK_ISA_END
}  // namespace dsk::quant
