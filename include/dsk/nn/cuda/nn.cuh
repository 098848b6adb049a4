// All CUDA kernels of nn (dsk::cuda backend): RMSNorm, softmax, argmax, RoPE/YaRN, embedding, SiLU/SwiGLU.
#pragma once

#include "dsk/nn/cuda/embedding.cuh"
#include "dsk/nn/cuda/rope.cuh"
#include "dsk/nn/cuda/rows.cuh"
#include "dsk/nn/cuda/swiglu.cuh"
