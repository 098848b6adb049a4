// Umbrella header for host code: everything in dsk that needs no GPU and no third-party library.
// (dsk/core/format.hpp needs fmt; dsk/cuda.cuh is the umbrella for CUDA code.)
#pragma once

#include "dsk/core.hpp"
#include "dsk/simd/simd.hpp"
