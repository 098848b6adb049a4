// Umbrella header of the MoE family (host): router, dispatch/combine, balance losses, grouped expert FFN and
// the DeepSeekMoE layer. The scalar reference is dsk/moe/ref.hpp (tests only).
#pragma once

#include "dsk/moe/balance_loss.hpp"
#include "dsk/moe/dispatch.hpp"
#include "dsk/moe/expert_ffn.hpp"
#include "dsk/moe/layer.hpp"
#include "dsk/moe/router.hpp"
