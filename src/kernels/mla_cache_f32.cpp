// dsk::kernels: attention::mla_absorbed / mla_expanded over the DeepSeek-V2 and tiny test-model widths with a
// float latent cache and float / bf16 kv_b_proj (explicit instantiation definitions of the extern templates
// in dsk/kernels.hpp).
#include "dsk/kernels.hpp"

namespace dsk::attention {
DSK_ISA_BEGIN
DSK_KERNELS_MLA(, DSK_KERNELS_MLA_V2, float, float);
DSK_KERNELS_MLA(, DSK_KERNELS_MLA_TINY, float, float);
DSK_KERNELS_MLA(, DSK_KERNELS_MLA_V2, float, bf16);
DSK_KERNELS_MLA(, DSK_KERNELS_MLA_TINY, float, bf16);
DSK_ISA_END
}  // namespace dsk::attention
