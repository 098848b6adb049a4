// Umbrella header for host code: core, the packet layers and every host kernel family (gemm, nn, quant,
// attention, moe). Not included: dsk/io/io.hpp (needs nlohmann_json and PCRE2: link dsk::io),
// dsk/core/format.hpp (needs fmt), dsk/cuda.cuh (the CUDA umbrella) and the scalar references
// (dsk/<family>/ref.hpp, for tests). Cost: COMPILE_COST_PLACEHOLDER Per-family headers, for a TU that needs
// less: dsk/core.hpp, dsk/simd/simd.hpp, dsk/gemm/matmul.hpp (+ gemm/packed.hpp), dsk/nn/<op>.hpp,
// dsk/quant/quant.hpp, dsk/attention/attention.hpp, dsk/moe/moe.hpp.
#pragma once

#include "dsk/core.hpp"
#include "dsk/simd/simd.hpp"

#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/packed.hpp"

#include "dsk/nn/argmax.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "dsk/nn/softmax.hpp"

#include "dsk/quant/quant.hpp"

#include "dsk/attention/attention.hpp"

#include "dsk/moe/moe.hpp"
