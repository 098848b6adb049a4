// Umbrella header for host code: core, the packet layers and every host kernel family (gemm, nn, quant,
// attention, moe). Not included: dsk/io/io.hpp (needs nlohmann_json and PCRE2: link dsk::io),
// dsk/core/format.hpp (needs fmt), dsk/cuda.cuh (the CUDA umbrella), the scalar references
// dsk/<family>/ref.hpp (for tests). Including it costs about 2.5 s of CPU in an empty TU (g++ 12 -O2
// -march=x86-64-v3 -fopenmp, best of 3 on a shared 2-vCPU Zen 3), against 1.6 s for dsk/core.hpp, 1.75 s for
// dsk/gemm/matmul.hpp and 2.0 s for dsk/attention/attention.hpp alone: small next to what a TU instantiates.
// Per-family headers for a TU that wants less: dsk/core.hpp, dsk/simd/simd.hpp, dsk/gemm/matmul.hpp (+
// dsk/gemm/packed.hpp), dsk/nn/<op>.hpp (linear, rmsnorm, rope, softmax, argmax, embedding,
// elementwise, sampling),
// dsk/quant/quant.hpp, dsk/attention/attention.hpp, dsk/moe/moe.hpp.
#pragma once

#include "dsk/core.hpp"
#include "dsk/simd/simd.hpp"

#include "dsk/gemm/matmul.hpp"
#include "dsk/gemm/packed.hpp"

#include "dsk/nn/argmax.hpp"
#include "dsk/nn/elementwise.hpp"
#include "dsk/nn/embedding.hpp"
#include "dsk/nn/finite.hpp"
#include "dsk/nn/linear.hpp"
#include "dsk/nn/rmsnorm.hpp"
#include "dsk/nn/rope.hpp"
#include "dsk/nn/sampling.hpp"
#include "dsk/nn/softmax.hpp"

#include "dsk/quant/quant.hpp"

#include "dsk/attention/attention.hpp"

#include "dsk/moe/moe.hpp"
