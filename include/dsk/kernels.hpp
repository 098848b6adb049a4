// The common configs that dsk::kernels compiles once (explicit instantiation definitions in src/kernels/),
// declared here as extern templates when DSK_COMPILED_KERNELS=1 (linking dsk::kernels sets it) so that a TU
// including this header (nn/linear.hpp includes it in that mode) does not instantiate them again. In
// header-only mode this header declares nothing. Host only; see "Compile time" in docs/architecture.md.
#pragma once

#include <span>

#include "dsk/attention/mla.hpp"
#include "dsk/kernels/config.hpp"
#include "dsk/moe/expert_ffn.hpp"
#include "dsk/moe/layer.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/quant/format.hpp"

// MLA configs compiled in: the DeepSeek-V2 / V2-Lite widths (mla_config{}: kv_lora_rank 512, rope_dim 64,
// nope_dim 128, v_dim 128, causal) and the tiny test model's (16 / 8 / 8 / 8: examples/v2's tiny preset and
// tests/models), both forms, latent cache CACHE (float / bf16), kv_b_proj KVB (float / bf16).
#define DSK_KERNELS_MLA_V2 (mla_config{})
#define DSK_KERNELS_MLA_TINY (mla_config{.kv_lora_rank = 16, .rope_dim = 8, .nope_dim = 8, .v_dim = 8})
#define DSK_KERNELS_MLA(EXT, C, CACHE, KVB)                                                           \
  EXT template void mla_absorbed<C, host, mla_cache<CACHE>, view<const KVB, 2>>(                      \
      view<const float, 3>, view<const float, 3>, const mla_cache<CACHE>&, const view<const KVB, 2>&, \
      view<float, 3>, const options&);                                                                \
  EXT template void mla_expanded<C, host, mla_cache<CACHE>, view<const KVB, 2>>(                      \
      view<const float, 3>, view<const float, 3>, const mla_cache<CACHE>&, const view<const KVB, 2>&, \
      view<float, 3>, const options&)
#define DSK_KERNELS_MLA_ALL(EXT, C)      \
  DSK_KERNELS_MLA(EXT, C, float, float); \
  DSK_KERNELS_MLA(EXT, C, float, bf16);  \
  DSK_KERNELS_MLA(EXT, C, bf16, float);  \
  DSK_KERNELS_MLA(EXT, C, bf16, bf16)

// The grouped SwiGLU expert FFN (both overloads) of moe::deepseek_moe over an expert bank BANK.
#define DSK_KERNELS_MOE(EXT, BANK)                                                                        \
  EXT template void grouped_swiglu<host, BANK>(view<const float, 2>, std::span<const index_t>,            \
                                               std::span<const index_t>, const BANK&, view<float, 2>,     \
                                               view<float, 2>);                                           \
  EXT template void grouped_swiglu<host, BANK>(view<const float, 2>, const dispatch_handle&, const BANK&, \
                                               view<float, 2>, view<float, 2>)

// The router over a router_config R (softmax scores with greedy or group-limited top-k; V3's sigmoid scores
// with noaux_tc), and the gate logits, token dispatch and combine of moe::deepseek_moe (no config).
#define DSK_KERNELS_MOE_ROUTE(EXT, R)                                                          \
  EXT template void route<R, host>(view<const float, 2>, view<const float, 1>, view<float, 2>, \
                                   view<expert_id, 2>, view<float, 2>, const router_options&)
#define DSK_KERNELS_MOE_TOKENS(EXT)                                                                          \
  EXT template void gate_logits<host>(view<const float, 2>, view<const float, 2>, view<float, 2>);           \
  EXT template void dispatch_tokens<host>(view<const float, 2>, const dispatch_handle&, view<float, 2>);     \
  EXT template void combine_tokens<host>(view<const float, 2>, const dispatch_handle&, view<const float, 2>, \
                                         view<float, 2>, view<const float, 2>)

// quant::quantize<quantize_config{.fmt = F}> of an f32 and a bf16 matrix (how expert stores quantize a
// checkpoint one tensor at a time).
#define DSK_KERNELS_QUANTIZE(EXT, F)                                                                \
  EXT template quantized_weight<F> quantize<quantize_config{.fmt = F}, host>(view<const float, 2>); \
  EXT template quantized_weight<F> quantize<quantize_config{.fmt = F}, host>(view<const bf16, 2>)

#if DSK_COMPILED_KERNELS
namespace dsk::quant {
DSK_ISA_BEGIN
DSK_KERNELS_QUANTIZE(extern, int8_per_channel);
DSK_KERNELS_QUANTIZE(extern, int4_per_channel);
DSK_ISA_END
}  // namespace dsk::quant

namespace dsk::attention {
DSK_ISA_BEGIN
DSK_KERNELS_MLA_ALL(extern, DSK_KERNELS_MLA_V2);
DSK_KERNELS_MLA_ALL(extern, DSK_KERNELS_MLA_TINY);
DSK_ISA_END
}  // namespace dsk::attention

namespace dsk::moe {
DSK_ISA_BEGIN
DSK_KERNELS_MOE(extern, dense_experts<float>);
DSK_KERNELS_MOE(extern, dense_experts<bf16>);
DSK_KERNELS_MOE(extern, quantized_experts<quant::int8_per_channel>);
DSK_KERNELS_MOE(extern, quantized_experts<quant::int4_per_channel>);
DSK_KERNELS_MOE_ROUTE(extern, router_config{});
DSK_KERNELS_MOE_ROUTE(extern, router_config{.method = topk_method::group_limited_greedy});
DSK_KERNELS_MOE_ROUTE(extern, deepseek_v3_router);
DSK_KERNELS_MOE_TOKENS(extern);
DSK_ISA_END
}  // namespace dsk::moe
#endif
