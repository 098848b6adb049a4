// dsk::kernels: moe::grouped_swiglu over dense f32 / bf16 expert banks (explicit instantiation definitions
// of the extern templates in dsk/kernels.hpp).
#include "dsk/kernels.hpp"

namespace dsk::moe {
DSK_ISA_BEGIN
DSK_KERNELS_MOE(, dense_experts<float>);
DSK_KERNELS_MOE(, dense_experts<bf16>);
DSK_ISA_END
}  // namespace dsk::moe
