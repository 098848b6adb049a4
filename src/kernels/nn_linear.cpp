// dsk::kernels: the one definition of nn::linear and nn::swiglu_mlp (every weight format: gemm over f32 /
// bf16 / f16, quant over the ten compiled formats, weight-only and int8 activations) for compiled mode.
#define DSK_KERNELS_SOURCE_NN_LINEAR 1
#include "dsk/nn/linear.hpp"
