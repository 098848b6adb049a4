// All CUDA kernels of quant (dsk::cuda backend): device weights, quantize / dequantize, weight-only
// GEMV/GEMM, fake quantization forward and backward.
#pragma once

#include "dsk/quant/cuda/fake_quant.cuh"
#include "dsk/quant/cuda/matmul.cuh"
#include "dsk/quant/cuda/quantize.cuh"
#include "dsk/quant/cuda/weight.cuh"
